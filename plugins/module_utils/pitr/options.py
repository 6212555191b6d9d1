# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_restore_pitr: the options every provider reads (where recovery stops, how long to wait)."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec


def target_spec():
    """The recovery target options (a provider refuses the kinds it cannot restore to) and timeout (its default
    differs by provider: the provider table's defaults)."""
    return ArgumentSpec(dict(
        target=dict(type='str', choices=['immediate', 'latest']),
        target_time=dict(type='str', aliases=['restore_time']),
        target_lsn=dict(type='str'),
        target_xid=dict(type='int'),
        target_name=dict(type='str'),
        timeout=dict(type='int'),
    ))
