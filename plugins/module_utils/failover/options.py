# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_failover: the options every provider reads (what to do, how hard, how long)."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec


def shared_spec():
    """mode, force and timeout (its default differs by provider: the provider table's defaults)."""
    return ArgumentSpec(dict(
        mode=dict(type='str', default='status', choices=['status', 'planned', 'forced']),
        force=dict(type='bool', default=False),
        timeout=dict(type='int'),
    ))
