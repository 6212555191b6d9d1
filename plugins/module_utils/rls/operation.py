# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the row-level security operations share: one session in a transaction, no client program."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation


class RlsOperation(SessionOperation):
    """An operation on one session of login_db, in a transaction: `open()` in plan(), rolled back (whatever was not
    committed: check mode, a failure) and closed by close()."""

    def open(self, database=None, autocommit=False):
        return super(RlsOperation, self).open(database=database, autocommit=autocommit)
