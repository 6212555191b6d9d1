# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_rls_policy's work: read the catalog once, let PostgreSQL deparse the wanted policies on a rolled-back
probe table, change only what differs, in one transaction; tenant indexes afterwards, concurrently."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import psycopg2, sql
from ansible_collections.procgenie.dbops.plugins.module_utils import _rls
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import catalog


class ProbeError(Exception):
    """PostgreSQL refused a wanted policy expression."""


def _policy_state(p):
    return dict(command=p['command'], permissive=p['permissive'], roles=list(p['roles']), using=p['using'],
                with_check=p['with_check'])


def _policy_clauses(policy):
    parts = []
    if policy['using'] is not None:
        parts.append(sql.SQL('USING ({})').format(sql.SQL(policy['using'])))
    if policy['with_check'] is not None:
        parts.append(sql.SQL('WITH CHECK ({})').format(sql.SQL(policy['with_check'])))
    return sql.SQL(' ').join(parts)


def create_policy_sql(table, policy):
    return sql.SQL('CREATE POLICY {} ON {} AS {} FOR {} TO {} {}').format(
        sql.Identifier(policy['name']), table, sql.SQL('PERMISSIVE' if policy['permissive'] else 'RESTRICTIVE'),
        sql.SQL(policy['command']), catalog.roles_sql(policy['roles']), _policy_clauses(policy))


def alter_policy_sql(table, policy):
    return sql.SQL('ALTER POLICY {} ON {} TO {} {}').format(
        sql.Identifier(policy['name']), table, catalog.roles_sql(policy['roles']), _policy_clauses(policy))


def drop_policy_sql(table, name):
    return sql.SQL('DROP POLICY {} ON {}').format(sql.Identifier(name), table)


def deparse(session, wanted, groups):
    """PostgreSQL's own text of each wanted expression, per probe signature: a TEMP table with just the
    referenced columns gets the policies inside a savepoint that is rolled back. {signature: {name: (u, c)}}."""
    out = {}
    for number, sig in enumerate(sorted(groups)):
        probe = sql.SQL('pg_temp.{}').format(sql.Identifier('rls_probe_%d' % number))
        session.execute(sql.SQL('SAVEPOINT rls_probe'))
        try:
            session.execute(sql.SQL('CREATE TEMP TABLE {} ({})').format(probe, sql.SQL(', ').join(
                [sql.SQL('{} {}').format(sql.Identifier(col), sql.SQL(typ)) for col, typ in sig])))
            for policy in wanted:
                session.execute(create_policy_sql(probe, dict(policy, roles=['public'])))
            rows = session.rows(
                "SELECT polname AS name, pg_get_expr(polqual, polrelid) AS using,"
                "       pg_get_expr(polwithcheck, polrelid) AS with_check"
                "  FROM pg_policy WHERE polrelid = %(probe)s::regclass",
                dict(probe='pg_temp.rls_probe_%d' % number))
        except Exception as exc:  # pylint: disable=broad-except
            session.execute(sql.SQL('ROLLBACK TO SAVEPOINT rls_probe'))
            raise ProbeError(exc)
        session.execute(sql.SQL('ROLLBACK TO SAVEPOINT rls_probe'))
        out[sig] = dict((r['name'], (r['using'], r['with_check'])) for r in rows)
    return out


TEXT_PARAMS = ('tables', 'schemas', 'schema', 'policy_name', 'tenant_column', 'tenant_type', 'tenant_setting',
               'roles', 'bypass_roles', 'bypass_setting', 'bypass_policy_name', 'policies', 'lock_timeout',
               'app_roles')


def resolve_type(session, name):
    """tenant_type as the server knows it: to_regtype (a type name, never an expression), then format_type.
    The text given never reaches a statement; the formatted name of an existing type does."""
    text = _rls.check_type_text(name)
    try:
        formatted = session.scalar('SELECT format_type(to_regtype(%(name)s), NULL)', dict(name=text))
    except psycopg2.Error as exc:  # PostgreSQL 15 raises on text that does not parse as a type name
        raise _rls.RlsError('invalid type name %r for tenant_type: %s' % (name, _message(exc)))
    if not formatted:
        raise _rls.RlsError('invalid type name %r for tenant_type: no such type' % (name,))
    return formatted


def tenant_expression(session, column, setting, type_name):
    """The tenant isolation expression (see _rls.tenant_expression for why NULLIF), composed with psycopg2.sql:
    the column as an identifier, the setting as a literal, the cast to the server-formatted type."""
    composed = sql.SQL("{} = NULLIF(current_setting({}, true), '')::{}").format(
        sql.Identifier(column), sql.Literal(_rls.check_setting(setting)), sql.SQL(type_name))
    return composed.as_string(session.conn)


def check_bypass_members(session, app_roles, bypass_roles):
    """Refuse a bypass role the application role is (transitively) a member of, or is: its sessions would see
    every tenant. A superuser is a member of every role (and bypasses row-level security anyway)."""
    apps = sorted(set(r for r in app_roles if not _rls.is_public(r)))
    if not apps or not bypass_roles:
        return
    rows = session.rows(
        "SELECT a.rolname AS app, a.rolsuper AS superuser, b.rolname AS bypass"
        "  FROM pg_roles a JOIN pg_roles b ON pg_has_role(a.oid, b.oid, 'MEMBER')"
        " WHERE a.rolname = ANY(%(apps)s::text[]) AND b.rolname = ANY(%(bypass)s::text[])"
        " ORDER BY 1, 3", dict(apps=apps, bypass=sorted(set(bypass_roles))))
    if rows:
        raise _rls.RlsError('bypass_roles would let the application role see every tenant: %s' % '; '.join(
            '%s is %s' % (r['app'], 'a superuser (a member of every role)' if r['superuser']
                          else 'the bypass role %s' % r['bypass'] if r['app'] == r['bypass']
                          else 'a member of the bypass role %s' % r['bypass']) for r in rows))


def _wanted(session, params):
    """The wanted policies, with tenant_type resolved by the server and the bypass roles checked (PUBLIC in
    _rls.wanted_policies, membership of the application roles here)."""
    expr = None
    if params['tenant_policy']:
        expr = tenant_expression(session, params['tenant_column'], params['tenant_setting'],
                                 resolve_type(session, params['tenant_type']))
    wanted = _rls.wanted_policies(params, tenant_expr=expr)
    if params['bypass'] == 'role':
        apps = list(params.get('app_roles') or [])
        if params['tenant_policy'] and params['roles']:
            apps.extend(params['roles'])  # the tenant policy's roles are application roles
        named = set(r for r in apps if not _rls.is_public(r)) | set(params['bypass_roles'])
        unknown = sorted(named - catalog.existing_roles(session, named))
        if unknown:
            raise _rls.RlsError('roles do not exist: %s' % ', '.join(unknown))
        check_bypass_members(session, apps, params['bypass_roles'])
    return wanted


def run(session, params, check_mode):
    """Plan and (outside check mode) apply. Returns the result dict (without queries/commands)."""
    _rls.check_no_nul(params, TEXT_PARAMS)
    column = params['tenant_column']
    state = params['state']
    if not column:
        raise _rls.RlsError('tenant_column must not be empty')
    requested = [_rls.parse_table(t, params['schema']) for t in params['tables'] or []]
    if not requested and not params['schemas']:
        raise _rls.RlsError('give tables or schemas')
    wanted = _wanted(session, params) if state == 'present' else []
    if params['lock_timeout']:
        session.execute(sql.SQL('SET LOCAL lock_timeout = {}').format(sql.Literal(params['lock_timeout'])))

    if params['schemas']:
        known = set(r['nspname'] for r in session.rows(
            'SELECT nspname FROM pg_namespace WHERE nspname = ANY(%(s)s::text[])', dict(s=list(params['schemas']))))
        absent = [s for s in params['schemas'] if s not in known]
        if absent:
            raise _rls.RlsError('schemas not found: %s' % ', '.join(absent))
    tables = catalog.resolve_tables(session, requested, params['schemas'], column, params['partitions'])
    found = set((t['schema'], t['name']) for t in tables)
    missing = ['%s.%s' % r for r in requested if r not in found]
    if missing:
        raise _rls.RlsError('tables not found (or not tables): %s (names are taken literally, without quotes; '
                            'give {schema: ..., name: ...} for a name with a dot)' % ', '.join(missing))
    if state == 'present' and params['tenant_policy']:
        lacking = ['%s.%s' % (t['schema'], t['name']) for t in tables if not t['has_tenant_column']]
        if lacking:
            raise _rls.RlsError('tables without the tenant column %s: %s' % (column, ', '.join(lacking)))

    roles = set()
    for p in wanted:
        roles.update(p['roles'])
    unknown = sorted(r for r in roles if r != 'public') and sorted(
        set(r for r in roles if r != 'public') - catalog.existing_roles(session, roles))
    if unknown:
        raise _rls.RlsError('roles do not exist: %s' % ', '.join(unknown))

    oids = [t['oid'] for t in tables]
    current = {}
    for p in catalog.policies_of(session, oids) if oids else []:
        current.setdefault(p['oid'], []).append(p)

    # Deparse the wanted expressions once per distinct set of referenced columns.
    deparsed = {}
    if wanted and oids:
        tokens = set()
        for p in wanted:
            for expr in (p['using'], p['with_check']):
                if expr:
                    tokens |= _rls.identifier_tokens(expr)
        columns = catalog.columns_named(session, oids, tokens)
        sig_of = {}
        for t in tables:
            cols = columns.get(t['oid'], {})
            sig_of[t['oid']] = tuple(sorted(set(s for p in wanted for s in _rls.signature(cols, p))))
        try:
            by_sig = deparse(session, wanted, set(sig_of.values()))
        except ProbeError as exc:
            raise _rls.RlsError('PostgreSQL refused a policy expression (checked on a temporary probe table): '
                                '%s' % _message(exc.args[0]))
        for oid, sig in sig_of.items():
            deparsed[oid] = [dict(p, using=by_sig[sig][p['name']][0], with_check=by_sig[sig][p['name']][1])
                             for p in wanted]

    report, before, after, statements = [], {}, {}, []
    for t in tables:
        key = '%s.%s' % (t['schema'], t['name'])
        target = catalog.qualified(t['schema'], t['name'])
        have = current.get(t['oid'], [])
        if state == 'present':
            actions, flags = _rls.plan_table(t, deparsed.get(t['oid'], []), have, params['exclusive'],
                                             params['force'])
        else:
            names = set(p['name'] for p in _rls_names(params))
            actions = [('drop', p['name']) for p in have if p['name'] in names or params['exclusive']]
            flags = {}
            if params['disable']:
                if t['rowsecurity']:
                    flags['enable'] = False
                if t['forcerowsecurity']:
                    flags['force'] = False
        if not actions and not flags:
            continue
        pol_before = dict((p['name'], _policy_state(p)) for p in have)
        pol_after = dict(pol_before)
        done = []
        if flags.get('enable') is True:
            statements.append(sql.SQL('ALTER TABLE {} ENABLE ROW LEVEL SECURITY').format(target))
            done.append('enable row level security')
        if flags.get('force') is True:
            statements.append(sql.SQL('ALTER TABLE {} FORCE ROW LEVEL SECURITY').format(target))
            done.append('force row level security')
        for action, item in actions:
            if action == 'drop':
                statements.append(drop_policy_sql(target, item))
                pol_after.pop(item, None)
                done.append('drop policy %s' % item)
                continue
            original = [p for p in wanted if p['name'] == item['name']][0]
            if action == 'replace':
                statements.append(drop_policy_sql(target, item['name']))
            if action in ('create', 'replace'):
                statements.append(create_policy_sql(target, original))
            else:
                statements.append(alter_policy_sql(target, original))
            pol_after[item['name']] = _policy_state(item)
            done.append('%s policy %s' % (action, item['name']))
        if flags.get('force') is False:
            statements.append(sql.SQL('ALTER TABLE {} NO FORCE ROW LEVEL SECURITY').format(target))
            done.append('no force row level security')
        if flags.get('enable') is False:
            statements.append(sql.SQL('ALTER TABLE {} DISABLE ROW LEVEL SECURITY').format(target))
            done.append('disable row level security')
        before[key] = dict(rls_enabled=t['rowsecurity'], rls_forced=t['forcerowsecurity'], policies=pol_before)
        after[key] = dict(rls_enabled=flags.get('enable', t['rowsecurity']),
                          rls_forced=flags.get('force', t['forcerowsecurity']), policies=pol_after)
        report.append(dict(schema=t['schema'], name=t['name'], actions=done))

    for statement in statements:
        if not check_mode:
            session.execute(statement)

    indexes = []
    if state == 'present' and params['create_indexes']:
        for t in tables:
            if t['has_tenant_column'] and not t['has_tenant_index'] and t['relkind'] == 'r':
                cols = [column] + [c for c in t['primary_key'] if c != column]
                indexes.append(dict(schema=t['schema'], table=t['name'], columns=cols,
                                    name=_rls.index_name(t['name'], column)))
    return dict(tables=report, managed_tables=['%s.%s' % (t['schema'], t['name']) for t in tables],
                indexes=indexes, statements=len(statements), diff=dict(before=before, after=after))


def create_indexes(session, indexes):
    """CREATE INDEX CONCURRENTLY (autocommit session), leading with the tenant column."""
    for ix in indexes:
        session.execute(sql.SQL('CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})').format(
            sql.Identifier(ix['name']), catalog.qualified(ix['schema'], ix['table']),
            sql.SQL(', ').join(sql.Identifier(c) for c in ix['columns'])))


def _rls_names(params):
    """The policy names this module manages, for state=absent (expressions are not needed)."""
    names = [dict(name=params['policy_name'])] if params['tenant_policy'] else []
    if params['bypass'] == 'role':
        names.append(dict(name=params['bypass_policy_name'] or 'admin_bypass'))
    elif params['bypass'] == 'setting':
        names.append(dict(name=params['bypass_policy_name'] or 'superadmin_bypass'))
    names.extend(dict(name=p.get('name')) for p in params['policies'] or [])
    return names


def _message(exc):
    from ansible_collections.procgenie.dbops.plugins.module_utils._connection import database_error_message
    return database_error_message(exc)
