# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_rls_info facts and audit: policies, per-table RLS flags, and what lets a tenant's rows leak."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils.rls import catalog
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import model as _rls

TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind, c.relispartition AS is_partition,
       c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner,
       a.attnum IS NOT NULL AS has_tenant_column,
       EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND a.attnum IS NOT NULL
               AND x.indkey[0] = a.attnum AND x.indisvalid) AS has_tenant_index,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)::int AS policy_count
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %(column)s AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%(schemas)s::text[])
   AND (a.attnum IS NOT NULL OR c.relrowsecurity)
 ORDER BY n.nspname, c.relname
"""

ROLES_SQL = """
SELECT r.rolname AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
       ARRAY(SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%(schemas)s::text[])
                AND c.relrowsecurity AND NOT c.relforcerowsecurity
                AND pg_has_role(r.oid, c.relowner, 'USAGE') ORDER BY 1)::text[] AS owned_unforced
  FROM pg_roles r WHERE r.rolname = ANY(%(roles)s::text[]) ORDER BY 1
"""


def policy_fact(p):
    return dict(schema=p['schema'], table=p['table'], name=p['name'],
                permissive='PERMISSIVE' if p['permissive'] else 'RESTRICTIVE', roles=p['roles'], cmd=p['command'],
                qual=p['using'], with_check=p['with_check'])


def gather(session, schemas, column, app_roles, tenant_settings, audit=True):
    policies = catalog.policies_in(session, schemas)
    tables = session.rows(TABLES_SQL, dict(column=column, schemas=list(schemas)))
    out = dict(policies=[policy_fact(p) for p in policies], tables=tables)
    if not audit:
        return out

    def key(t):
        return '%s.%s' % (t['schema'], t['name'])

    tenant_tables = [t for t in tables if t['has_tenant_column']]
    findings = dict(
        no_rls=[key(t) for t in tenant_tables if not t['relrowsecurity']],
        not_forced=[key(t) for t in tables if t['relrowsecurity'] and not t['relforcerowsecurity']],
        no_policy=[key(t) for t in tenant_tables if t['policy_count'] == 0],
        no_tenant_index=[key(t) for t in tenant_tables if t['relrowsecurity'] and not t['has_tenant_index']],
        self_grantable_bypass=[],
        bypass_roles=[],
        missing_roles=[],
    )
    for p in policies:
        names = _rls.self_grantable(p, tenant_settings)
        if names:
            findings['self_grantable_bypass'].append(dict(schema=p['schema'], table=p['table'], policy=p['name'],
                                                          settings=names))
    if app_roles:
        rows = session.rows(ROLES_SQL, dict(schemas=list(schemas), roles=list(app_roles)))
        found = set(r['role'] for r in rows)
        findings['missing_roles'] = sorted(set(app_roles) - found)
        for r in rows:
            reasons = []
            if r['superuser']:
                reasons.append('superuser')
            if r['bypassrls']:
                reasons.append('BYPASSRLS')
            if r['owned_unforced']:
                reasons.append('owner of tables without FORCE ROW LEVEL SECURITY')
            if reasons:
                findings['bypass_roles'].append(dict(role=r['role'], reasons=reasons, tables=r['owned_unforced']))
    problems = []
    for name in findings['no_rls']:
        problems.append('%s has the tenant column but row-level security is off' % name)
    for name in findings['not_forced']:
        problems.append('%s: row-level security is not forced (its owner bypasses it)' % name)
    for name in findings['no_policy']:
        problems.append('%s has no policy' % name)
    for name in findings['no_tenant_index']:
        problems.append('%s has no index leading with %s' % (name, column))
    for f in findings['self_grantable_bypass']:
        problems.append('policy %s on %s.%s opens up to any session that sets %s' % (
            f['policy'], f['schema'], f['table'], ', '.join(f['settings'])))
    for f in findings['bypass_roles']:
        problems.append('application role %s bypasses row-level security: %s' % (f['role'], ', '.join(f['reasons'])))
    for name in findings['missing_roles']:
        problems.append('application role %s does not exist' % name)
    findings['problems'] = problems
    out['audit'] = findings
    return out
