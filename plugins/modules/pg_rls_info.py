#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_rls_info
short_description: Row-level security facts, audit and a tenant isolation proof
version_added: 0.1.0
description:
  - Lists the row-level security policies and, per table, C(relrowsecurity) and C(relforcerowsecurity), the
    runbook's two viewing queries, as facts.
  - With O(audit), finds tables that have the tenant column but no row-level security, row-level security not
    forced, no policy, or no index leading with the tenant column; permissive policies that open up through a
    parameter any session can C(SET) (such as the runbook's C(superadmin_bypass)); and application roles that
    bypass row-level security (superuser, C(BYPASSRLS), owner of a table without C(FORCE)).
  - With O(verify), proves isolation as the application role (C(SET ROLE), so never as a superuser or owner
    unless that is the role given) inside one transaction that is rolled back. For each tenant and table it
    counts the visible rows and the rows of other tenants, checks that a session with no tenant (never set,
    set to empty, C(RESET) on a pooled connection) sees nothing or errors, that setting the bypass parameters
    does not widen what is visible, and that inserting or moving a row to another tenant is rejected by a
    row-level security violation.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  schemas:
    description: Schemas to report on and audit.
    type: list
    elements: str
    default: [public]
  schema:
    description: Schema of the O(verify_tables) given without one.
    type: str
    default: public
  tenant_column:
    description: The tenant column.
    type: str
    default: tenant_id
  tenant_setting:
    description: The parameter the application sets to its tenant (used by O(verify)).
    type: str
    default: app.current_tenant_id
  tenant_settings:
    description:
      - Parameters that carry the tenant by design. Other custom parameters a permissive policy reads are
        reported as self-grantable bypasses. Defaults to O(tenant_setting).
    type: list
    elements: str
  audit:
    description: Run the audit.
    type: bool
    default: true
  app_roles:
    description: Roles the application uses, checked for ways to bypass row-level security.
    type: list
    elements: str
    default: []
  verify:
    description: Run the isolation proof.
    type: bool
    default: false
  verify_role:
    description: The application role the proof runs as (required with O(verify)).
    type: str
  verify_tenants:
    description: Tenant ids to prove; at least two. Default the first three tenant ids of the first table.
    type: list
    elements: str
    default: []
  verify_tables:
    description: Tables to prove; default every table of O(schemas) with the tenant column, partitions included.
    type: list
    elements: raw
    default: []
  verify_bypass_settings:
    description: Parameters set to C(true) during the proof, which must not widen what a tenant sees.
    type: list
    elements: str
    default: [app.is_superadmin]
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.INFO_MODULE
  - procgenie.dbops.attributes.ACTIONGROUP
notes:
  - The proof counts every tenant's rows as the login role first, so log in as a superuser or a C(BYPASSRLS) role.
  - The proof's writes are rolled back; it takes row locks on the rows it tries to move while it runs.
  - The proof's inserts copy every column of an existing row (identity columns with C(OVERRIDING SYSTEM VALUE)),
    so no column default runs and no sequence advances. Only a column with a default that the O(verify_role) may
    not insert into, or a trigger, could still run C(nextval); every sequence's state is read before and after,
    and a sequence that moved is reported in C(verification.sequences_advanced), with C(changed=true) and a
    warning (in check mode too; sequences are not transactional).
seealso:
  - module: procgenie.dbops.pg_rls_policy
'''

EXAMPLES = r'''
- name: Audit and prove isolation for the application role
  procgenie.dbops.pg_rls_info:
    login_db: procgenie
    app_roles: [procgenie_app]
    verify: true
    verify_role: procgenie_app
  register: rls

- name: Fail when isolation does not hold
  ansible.builtin.assert:
    that: rls.verification.isolated
'''

RETURN = r'''
policies:
  description: Policies of the tables of O(schemas), as C(pg_policies) shows them.
  returned: always
  type: list
  elements: dict
  sample: [{schema: public, table: vendors, name: tenant_isolation, permissive: PERMISSIVE, roles: [public],
            cmd: ALL, qual: "(tenant_id = (NULLIF(current_setting(...), ''::text))::uuid)", with_check: "..."}]
tables:
  description: Tables with the tenant column or row-level security, with C(relrowsecurity), C(relforcerowsecurity),
    owner, C(has_tenant_column), C(has_tenant_index) and C(policy_count).
  returned: always
  type: list
  elements: dict
audit:
  description:
    - Findings C(no_rls), C(not_forced), C(no_policy), C(no_tenant_index) (lists of C(schema.table)),
      C(self_grantable_bypass), C(bypass_roles), C(missing_roles), and C(problems) as sentences.
  returned: when audit is true
  type: dict
verification:
  description:
    - The proof; C(isolated) is true when no cross-tenant row was visible or written, nothing was visible without a
      tenant, and the bypass parameters did not widen visibility. C(leaks) says what failed; C(tables) holds the
      per-table, per-tenant counts and outcomes.
  returned: when verify is true
  type: dict
  sample: {role: procgenie_app, isolated: true, leaks: [], tenants: ["..."], tables: {}, sequences_advanced: []}
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
commands:
  description: Client programs run; always empty for this module.
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule, ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import info as backend


def main():
    module = postgres_spec().merge(backend.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, backend.Info, backend.ERRORS, 'Reading row-level security')


if __name__ == '__main__':
    main()
