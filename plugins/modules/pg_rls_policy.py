#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_rls_policy
short_description: Enable, force and keep tenant isolation row-level security policies on many tables
version_added: 0.1.0
description:
  - For the listed tables, and every table of the given schemas that has the tenant column, enables and forces
    row-level security and keeps a tenant isolation policy, an optional administrator bypass and custom policies.
  - Idempotent against what PostgreSQL stores. The wanted expressions are deparsed by PostgreSQL itself (created
    on a TEMP probe table inside a savepoint that is rolled back) and compared with C(pg_get_expr) of
    C(pg_policy), together with roles, command and permissive/restrictive, so an expression written with other
    parentheses, casts or case is not a change. Only what differs is altered (C(ALTER POLICY)) or replaced
    (C(DROP POLICY) and C(CREATE POLICY) when the command or permissive/restrictive differs).
  - One call reads the catalogs with a constant number of queries whatever the number of tables and makes all
    changes in one transaction.
  - "The default expression is C(tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid):
    a session that never set the tenant, and a pooled connection after C(RESET) (the parameter then reads as an
    empty string), both compare with NULL and see and write no row. The runbook's
    C(current_setting('app.current_tenant_id')::uuid) errors in both cases instead; that is safe but turns a
    forgotten tenant into an application error."
  - Partitions of a partitioned table get the same policies (O(partitions)), because a query on a partition
    itself is checked against the partition's policies only, not the parent's.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  tables:
    description:
      - Tables to manage, as C(table) (in O(schema)) or C(schema.table), or a dict with C(schema) and C(name)
        (for names containing a dot). Names are taken literally, case and spaces included, without quotes.
    type: list
    elements: raw
    default: []
  schemas:
    description:
      - Also manage every table of these schemas that has the O(tenant_column).
      - A schema that does not exist fails the call.
    type: list
    elements: str
    default: []
  schema:
    description: Schema of the O(tables) given without one.
    type: str
    default: public
  partitions:
    description: Manage the partitions of the partitioned tables too.
    type: bool
    default: true
  state:
    description:
      - V(present) enables and forces row-level security and keeps the policies.
      - V(absent) drops the policies this call names (the tenant policy, the bypass policy, O(policies));
        with O(disable) also disables row-level security.
    type: str
    choices: [present, absent]
    default: present
  tenant_policy:
    description: Keep the tenant isolation policy. V(false) manages only the bypass and O(policies).
    type: bool
    default: true
  policy_name:
    description: Name of the tenant isolation policy.
    type: str
    default: tenant_isolation
  tenant_column:
    description: The tenant column.
    type: str
    default: tenant_id
  tenant_type:
    description:
      - The type the setting is cast to, the type of the tenant column.
      - A type name only, resolved by the server (C(to_regtype), then C(format_type)); the policy is built with the
        server's name of the type, never with the text given. Text that is not a type name (such as
        C(uuid OR true)) or an unknown type fails before any change.
    type: str
    default: uuid
  tenant_setting:
    description: The custom parameter the application sets to its tenant id for each transaction or session.
    type: str
    default: app.current_tenant_id
  roles:
    description: Roles the tenant policy applies to; default C(PUBLIC).
    type: list
    elements: str
  command:
    description: The command the tenant policy applies to.
    type: str
    choices: [ALL, SELECT, INSERT, UPDATE, DELETE]
    default: ALL
  permissive:
    description: Whether the tenant policy is permissive (V(false) means C(AS RESTRICTIVE)).
    type: bool
    default: true
  bypass:
    description:
      - V(none) no bypass policy. Migrations and admin scripts can run as a role with C(BYPASSRLS) instead.
      - V(role) a policy C(TO) O(bypass_roles) that sees and writes every row. Only members of those roles get it.
      - V(setting) the runbook's C(superadmin_bypass) on the O(bypass_setting) parameter. B(Insecure) any session
        of any role the policy applies to can run C(SET app.is_superadmin = true) and see every tenant; a
        warning says so. The expression used treats an empty value (after C(RESET)) as off instead of failing.
    type: str
    choices: [none, role, setting]
    default: none
  bypass_roles:
    description:
      - Roles of the bypass policy (required with O(bypass=role)).
      - C(PUBLIC) (in any case or quoting) is refused, and so is any role an application role is a member of
        (directly or through other roles), or is; the application roles are O(app_roles) and the O(roles) of
        the tenant policy. The call then fails before any change.
    type: list
    elements: str
  app_roles:
    description:
      - The roles the application connects as. With O(bypass=role), a bypass role any of them is a member of
        fails the call before any change (their sessions would see every tenant).
    type: list
    elements: str
    default: []
  bypass_setting:
    description: The parameter of O(bypass=setting).
    type: str
    default: app.is_superadmin
  bypass_policy_name:
    description: Name of the bypass policy; default C(admin_bypass) for V(role), C(superadmin_bypass) for V(setting).
    type: str
  policies:
    description: Further policies every managed table carries.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Policy name.
        type: str
        required: true
      using:
        description: The USING expression.
        type: str
      with_check:
        description: The WITH CHECK expression.
        type: str
      command:
        description: ALL, SELECT, INSERT, UPDATE or DELETE.
        type: str
        default: ALL
      roles:
        description: Roles; default PUBLIC.
        type: list
        elements: str
      permissive:
        description: Permissive or restrictive.
        type: bool
        default: true
  exclusive:
    description: Drop the other policies of the managed tables (with O(state=absent), all their policies).
    type: bool
    default: false
  force:
    description: C(FORCE ROW LEVEL SECURITY) so that the table owner is held by the policies too.
    type: bool
    default: true
  disable:
    description: With O(state=absent), also disable (and unforce) row-level security.
    type: bool
    default: false
  create_indexes:
    description:
      - Create, with C(CREATE INDEX CONCURRENTLY) after the transaction, an index leading with the tenant column
        (followed by the primary key columns) on tables that have none, as the runbook advises.
      - Partitioned parents are skipped (PostgreSQL cannot build their indexes concurrently); their partitions
        are handled as tables.
    type: bool
    default: false
  lock_timeout:
    description: C(lock_timeout) for the transaction (C(ALTER TABLE) and policy changes take an exclusive lock).
    type: str
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Reads and deparses (on a rolled-back probe) but changes nothing; the transaction is rolled back.
  diff_mode:
    support: full
    details:
      - Before and after per changed table, row-level security flags and policies.
notes:
  - Needs the table owner or a superuser. Superusers and roles with C(BYPASSRLS) are never held by policies.
seealso:
  - module: procgenie.dbops.pg_rls_info
  - name: Row Security Policies
    description: How PostgreSQL applies policies, FORCE ROW LEVEL SECURITY and BYPASSRLS.
    link: https://www.postgresql.org/docs/current/ddl-rowsecurity.html
'''

EXAMPLES = r'''
- name: Tenant isolation on the ProcGenie tables, indexes where missing
  procgenie.dbops.pg_rls_policy:
    login_db: procgenie
    tables: [requisitions, request_items, vendors, contracts, audit_events]
    create_indexes: true

- name: Every table of the public schema with a tenant_id, plus a bypass for the migration role
  procgenie.dbops.pg_rls_policy:
    login_db: procgenie
    schemas: [public]
    bypass: role
    bypass_roles: [procgenie_migrator]
    app_roles: [procgenie_app]  # fails if procgenie_app is a member of procgenie_migrator

- name: Remove the policies and disable RLS
  procgenie.dbops.pg_rls_policy:
    login_db: procgenie
    tables: [vendors]
    state: absent
    disable: true
'''

RETURN = r'''
tables:
  description: The tables changed (or that would be in check mode) with what was done.
  returned: always
  type: list
  elements: dict
  sample: [{schema: public, name: vendors, actions: [enable row level security, create policy tenant_isolation]}]
managed_tables:
  description: Every table the call managed, as C(schema.table).
  returned: always
  type: list
  elements: str
indexes:
  description: Tenant indexes created (or that would be in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{schema: public, table: contracts, name: contracts_tenant_id_rls_idx, columns: [tenant_id, id]}]
duration_s:
  description: Seconds the call took, from connecting to the end (indexes included).
  returned: success
  type: float
bypass_warning:
  description: Why O(bypass=setting) is insecure.
  returned: when bypass is setting and state is present
  type: str
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
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import policy as backend


def main():
    module = postgres_spec().merge(backend.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, backend.Policy, backend.RlsError, 'Changing row-level security')


if __name__ == '__main__':
    main()
