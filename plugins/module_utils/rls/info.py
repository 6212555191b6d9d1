# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_rls_info: its options (argument_spec) and the operation `Info`.

An information module changes nothing, so everything happens in plan(): the facts and the audit (rls.audit), then,
with verify, the isolation proof (rls.verify) - read-only by design, its writes rolled back, so it runs in check
mode too. Its result says `changed` honestly: sequences are not transactional, and a proof that advanced one
(a default the verify role may not write, a trigger) reports it, with a warning. apply(plan) has nothing left to do.
"""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import audit as auditor
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import verify as verifier
from ansible_collections.procgenie.dbops.plugins.module_utils.rls.model import RlsError, check_no_nul
from ansible_collections.procgenie.dbops.plugins.module_utils.rls.operation import RlsOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.rls.verify import VerifyError

ERRORS = (RlsError, VerifyError)
TEXT_PARAMS = ('schemas', 'schema', 'tenant_column', 'tenant_setting', 'tenant_settings', 'app_roles', 'verify_role',
               'verify_tenants', 'verify_tables', 'verify_bypass_settings')
SEQUENCE_WARNING = ('the isolation proof advanced sequences (%s): sequences are not transactional, so a rolled-back '
                    'insert that runs nextval (a default the verify role may not write, a trigger) keeps its effect')


def argument_spec():
    """pg_rls_info's own options and their constraints (the connection options: _argspec.postgres_spec())."""
    return ArgumentSpec(dict(
        schemas=dict(type='list', elements='str', default=['public']),
        schema=dict(type='str', default='public'),
        tenant_column=dict(type='str', default='tenant_id'),
        tenant_setting=dict(type='str', default='app.current_tenant_id'),
        tenant_settings=dict(type='list', elements='str'),
        audit=dict(type='bool', default=True),
        app_roles=dict(type='list', elements='str', default=[]),
        verify=dict(type='bool', default=False),
        verify_role=dict(type='str'),
        verify_tenants=dict(type='list', elements='str', default=[]),
        verify_tables=dict(type='list', elements='raw', default=[]),
        verify_bypass_settings=dict(type='list', elements='str', default=['app.is_superadmin'], no_log=False),
    ), required_if=[('verify', True, ['verify_role'])])


def info_result(facts, verification=None):
    """Pure: the module's result from the facts (and audit) and the proof: `changed` when the proof advanced a
    sequence (the only lasting effect it can have)."""
    result = dict(facts)
    if verification is not None:
        result['verification'] = verification
    advanced = (verification or {}).get('sequences_advanced')
    result['changed'] = bool(advanced)
    return result


class Info(RlsOperation):
    """pg_rls_info: plan() reads the facts, audits and (verify) proves isolation in rolled-back transactions;
    apply(plan) returns it."""

    def plan(self):
        params = self.params
        check_no_nul(params, TEXT_PARAMS)
        session = self.open()
        facts = auditor.gather(session, params['schemas'], params['tenant_column'], params['app_roles'],
                               params['tenant_settings'] or [params['tenant_setting']], params['audit'])
        session.rollback()
        verification = verifier.prove(session, params) if params['verify'] else None
        result = info_result(facts, verification)
        if result['changed']:
            self.warn(SEQUENCE_WARNING % ', '.join(verification['sequences_advanced']))
        return result

    def apply(self, plan):
        return plan  # nothing to change: the proof's writes are rolled back (plan)
