# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the row-level security operations share: one session in a transaction, no client program."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import open_session
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation


class RlsOperation(Operation):
    """An operation on one session of login_db, in a transaction: `open()` in plan(), rolled back (whatever was not
    committed: check mode, a failure) and closed by close()."""

    @classmethod
    def make_runner(cls, params):
        return None  # no client program: `commands` stays empty

    def __init__(self, params, ctx):
        super(RlsOperation, self).__init__(params, ctx)
        self.session = None

    def open(self):
        self.session = open_session(self.params, autocommit=False, log=self.log)
        return self.session

    def close(self):
        if self.session is not None:
            try:
                self.session.rollback()  # check mode, or a failure before the commit: nothing half-done stays
            except Exception:  # pylint: disable=broad-except  # a broken connection has nothing to roll back
                pass
            self.session.close()
            self.session = None
