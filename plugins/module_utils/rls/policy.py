# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_rls_policy: its options (argument_spec) and the operation `Policy`. plan() reads the catalog once, resolves
tenant_type with the server, refuses bad bypass roles, lets PostgreSQL deparse the wanted policies on a rolled-back
probe table and computes the statements of what differs; apply(plan) runs them in one transaction, then builds the
tenant indexes concurrently. The pure decisions (what to do with one table) are plain functions below."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import qualified
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import database_error_message, psycopg2, sql
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.procgenie.dbops.plugins.module_utils._timeouts import problem as timeout_problem
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import catalog
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import model as _rls
from ansible_collections.procgenie.dbops.plugins.module_utils.rls.model import RlsError
from ansible_collections.procgenie.dbops.plugins.module_utils.rls.operation import RlsOperation

SETTING_WARNING = ('bypass=setting: any session the policy applies to can run SET %s = true and see every '
                   'tenant; prefer bypass=role or a BYPASSRLS role for migrations and admin scripts')
TEXT_PARAMS = ('tables', 'schemas', 'schema', 'policy_name', 'tenant_column', 'tenant_type', 'tenant_setting',
               'roles', 'bypass_roles', 'bypass_setting', 'bypass_policy_name', 'policies', 'lock_timeout',
               'app_roles')


def argument_spec():
    """pg_rls_policy's own options and their constraints (the connection options: _argspec.postgres_spec())."""
    return ArgumentSpec(dict(
        tables=dict(type='list', elements='raw', default=[]),
        schemas=dict(type='list', elements='str', default=[]),
        schema=dict(type='str', default='public'),
        partitions=dict(type='bool', default=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        tenant_policy=dict(type='bool', default=True),
        policy_name=dict(type='str', default='tenant_isolation'),
        tenant_column=dict(type='str', default='tenant_id'),
        tenant_type=dict(type='str', default='uuid'),
        tenant_setting=dict(type='str', default='app.current_tenant_id'),
        roles=dict(type='list', elements='str'),
        command=dict(type='str', default='ALL', choices=['ALL', 'SELECT', 'INSERT', 'UPDATE', 'DELETE']),
        permissive=dict(type='bool', default=True),
        bypass=dict(type='str', default='none', choices=['none', 'role', 'setting']),
        bypass_roles=dict(type='list', elements='str', no_log=False),
        app_roles=dict(type='list', elements='str', default=[]),
        bypass_setting=dict(type='str', default='app.is_superadmin', no_log=False),
        bypass_policy_name=dict(type='str'),
        policies=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            using=dict(type='str'),
            with_check=dict(type='str'),
            command=dict(type='str', default='ALL'),
            roles=dict(type='list', elements='str'),
            permissive=dict(type='bool', default=True),
        )),
        exclusive=dict(type='bool', default=False),
        force=dict(type='bool', default=True),
        disable=dict(type='bool', default=False),
        create_indexes=dict(type='bool', default=False),
        lock_timeout=dict(type='str'),
    ), required_if=[('bypass', 'role', ['bypass_roles'])])


class ProbeError(Exception):
    """PostgreSQL refused a wanted policy expression."""


# ---------------------------------------------------------------- statements (pure: psycopg2.sql composables)
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


def managed_names(params):
    """Pure: the policy names this module manages, for state=absent (expressions are not needed)."""
    names = [params['policy_name']] if params['tenant_policy'] else []
    if params['bypass'] == 'role':
        names.append(params['bypass_policy_name'] or 'admin_bypass')
    elif params['bypass'] == 'setting':
        names.append(params['bypass_policy_name'] or 'superadmin_bypass')
    names.extend(p.get('name') for p in params['policies'] or [])
    return names


def absent_actions(table, have, params):
    """Pure: for state=absent, the policies to drop (those this call names, or all with exclusive) and the flags
    to clear (with disable)."""
    names = set(managed_names(params))
    actions = [('drop', p['name']) for p in have if p['name'] in names or params['exclusive']]
    flags = {}
    if params['disable']:
        if table['rowsecurity']:
            flags['enable'] = False
        if table['forcerowsecurity']:
            flags['force'] = False
    return actions, flags


# (flag, value, the ALTER TABLE clause that sets it): switched on before the policies change, off after
FLAGS_ON = (('enable', True, 'ENABLE ROW LEVEL SECURITY'), ('force', True, 'FORCE ROW LEVEL SECURITY'))
FLAGS_OFF = (('force', False, 'NO FORCE ROW LEVEL SECURITY'), ('enable', False, 'DISABLE ROW LEVEL SECURITY'))


def table_change(table, actions, flags, wanted, have):
    """Pure: what one table's actions and flags come to: (statements, done, before, after), `done` the sentences of
    the result's `tables`, `before`/`after` the table's RLS flags and policies for the diff. `wanted` are the
    policies as given (their statements use the text given; the deparsed forms in `actions` are what the catalog
    will show)."""
    target = qualified(table['schema'], table['name'])
    statements, done = [], []
    pol_before = dict((p['name'], _policy_state(p)) for p in have)
    pol_after = dict(pol_before)

    def set_flags(changes):
        for flag, value, clause in changes:
            if flags.get(flag) is value:
                statements.append(sql.SQL('ALTER TABLE {} {}').format(target, sql.SQL(clause)))
                done.append(clause.lower())
    set_flags(FLAGS_ON)
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
    set_flags(FLAGS_OFF)
    before = dict(rls_enabled=table['rowsecurity'], rls_forced=table['forcerowsecurity'], policies=pol_before)
    after = dict(rls_enabled=flags.get('enable', table['rowsecurity']),
                 rls_forced=flags.get('force', table['forcerowsecurity']), policies=pol_after)
    return statements, done, before, after


def tenant_indexes(tables, column):
    """Pure: the tenant indexes to build: on every ordinary table with the tenant column and no valid index leading
    with it, the tenant column then the primary key's columns (partitioned parents cannot be built concurrently)."""
    indexes = []
    for t in tables:
        if t['has_tenant_column'] and not t['has_tenant_index'] and t['relkind'] == 'r':
            cols = [column] + [c for c in t['primary_key'] if c != column]
            indexes.append(dict(schema=t['schema'], table=t['name'], columns=cols,
                                name=_rls.index_name(t['name'], column)))
    return indexes


def check_request(params):
    """Pure: the parameters every plan needs first (no NUL byte, a tenant column, tables or schemas). Returns the
    requested tables as (schema, name) pairs."""
    _rls.check_no_nul(params, TEXT_PARAMS)
    if not params['tenant_column']:
        raise RlsError('tenant_column must not be empty')
    trouble = timeout_problem('lock_timeout', params.get('lock_timeout'))
    if trouble:
        raise RlsError(trouble)
    requested = [_rls.parse_table(t, params['schema']) for t in params['tables'] or []]
    if not requested and not params['schemas']:
        raise RlsError('give tables or schemas')
    return requested


# ---------------------------------------------------------------- reads that only the server can answer
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


def resolve_type(session, name):
    """tenant_type as the server knows it: to_regtype (a type name, never an expression), then format_type.
    The text given never reaches a statement; the formatted name of an existing type does."""
    text = _rls.check_type_text(name)
    try:
        formatted = session.scalar('SELECT format_type(to_regtype(%(name)s), NULL)', dict(name=text))
    except psycopg2.Error as exc:  # PostgreSQL 15 raises on text that does not parse as a type name
        raise RlsError('invalid type name %r for tenant_type: %s' % (name, database_error_message(exc)))
    if not formatted:
        raise RlsError('invalid type name %r for tenant_type: no such type' % (name,))
    return formatted


def tenant_expression(session, column, setting, type_name):
    """The tenant isolation expression (see model.tenant_expression for why NULLIF), composed with psycopg2.sql:
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
        raise RlsError('bypass_roles would let the application role see every tenant: %s' % '; '.join(
            '%s is %s' % (r['app'], 'a superuser (a member of every role)' if r['superuser']
                          else 'the bypass role %s' % r['bypass'] if r['app'] == r['bypass']
                          else 'a member of the bypass role %s' % r['bypass']) for r in rows))


def wanted_policies(session, params):
    """The wanted policies, with tenant_type resolved by the server and the bypass roles checked (PUBLIC in
    model.wanted_policies, membership of the application roles here)."""
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
            raise RlsError('roles do not exist: %s' % ', '.join(unknown))
        check_bypass_members(session, apps, params['bypass_roles'])
    return wanted


def deparsed_policies(session, tables, wanted):
    """{oid: the wanted policies with PostgreSQL's deparse of their expressions on that table}; the expressions
    are deparsed once per distinct set of referenced columns."""
    deparsed = {}
    oids = [t['oid'] for t in tables]
    if not wanted or not oids:
        return deparsed
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
        raise RlsError('PostgreSQL refused a policy expression (checked on a temporary probe table): '
                       '%s' % database_error_message(exc.args[0]))
    for oid, sig in sig_of.items():
        deparsed[oid] = [dict(p, using=by_sig[sig][p['name']][0], with_check=by_sig[sig][p['name']][1])
                         for p in wanted]
    return deparsed


# ---------------------------------------------------------------- the operation
class Policy(RlsOperation):
    """pg_rls_policy: plan() reads and checks everything in one transaction and computes the statements (it changes
    nothing: the probe is rolled back, and in check mode so is the transaction); apply(plan) runs the statements
    and commits, then creates the tenant indexes concurrently."""

    def __init__(self, params, ctx):
        super(Policy, self).__init__(params, ctx)
        self.statements = []

    # ------------------------------------------------------------ plan: read and check everything, change nothing
    def plan(self):
        params = self.params
        column, state = params['tenant_column'], params['state']
        warning = None
        if params['bypass'] == 'setting' and state == 'present':
            warning = SETTING_WARNING % params['bypass_setting']
            self.warn(warning)
        requested = check_request(params)
        session = self.open()
        wanted = wanted_policies(session, params) if state == 'present' else []
        if params['lock_timeout']:  # checked by the server here, before any change
            session.execute(sql.SQL('SET LOCAL lock_timeout = {}').format(sql.Literal(params['lock_timeout'])))

        if params['schemas']:
            known = set(r['nspname'] for r in session.rows(
                'SELECT nspname FROM pg_namespace WHERE nspname = ANY(%(s)s::text[])',
                dict(s=list(params['schemas']))))
            absent = [s for s in params['schemas'] if s not in known]
            if absent:
                raise RlsError('schemas not found: %s' % ', '.join(absent))
        tables = catalog.managed_tables(session, requested, params['schemas'], column, params['partitions'])
        missing = _rls.missing_tables(requested, tables)
        if missing:
            raise RlsError('tables not found (or not tables): %s (names are taken literally, without quotes; '
                           'give {schema: ..., name: ...} for a name with a dot)' % ', '.join(missing))
        if state == 'present' and params['tenant_policy']:
            lacking = ['%s.%s' % (t['schema'], t['name']) for t in tables if not t['has_tenant_column']]
            if lacking:
                raise RlsError('tables without the tenant column %s: %s' % (column, ', '.join(lacking)))

        roles = set()
        for p in wanted:
            roles.update(p['roles'])
        named = set(r for r in roles if r != 'public')
        unknown = sorted(named - catalog.existing_roles(session, roles)) if named else []
        if unknown:
            raise RlsError('roles do not exist: %s' % ', '.join(unknown))

        current = {}
        for p in catalog.policies_of(session, [t['oid'] for t in tables]) if tables else []:
            current.setdefault(p['oid'], []).append(p)
        deparsed = deparsed_policies(session, tables, wanted)

        report, diff = [], DifferenceTracker()
        for t in tables:
            have = current.get(t['oid'], [])
            if state == 'present':
                actions, flags = _rls.plan_table(t, deparsed.get(t['oid'], []), have, params['exclusive'],
                                                 params['force'])
            else:
                actions, flags = absent_actions(t, have, params)
            if not actions and not flags:
                continue
            statements, done, before, after = table_change(t, actions, flags, wanted, have)
            self.statements.extend(statements)
            diff.add('%s.%s' % (t['schema'], t['name']), before=before, after=after)
            report.append(dict(schema=t['schema'], name=t['name'], actions=done))

        indexes = tenant_indexes(tables, column) if state == 'present' and params['create_indexes'] else []
        result = dict(changed=bool(report or indexes), tables=report,
                      managed_tables=['%s.%s' % (t['schema'], t['name']) for t in tables], indexes=indexes,
                      duration_s=self.elapsed())
        if self.ctx.diff:
            result['diff'] = diff.diff()
        if warning:
            result['bypass_warning'] = warning
        return result

    # ------------------------------------------------------------ apply: the statements, one transaction; indexes
    def apply(self, plan):
        session = self.session
        for statement in self.statements:
            session.execute(statement)
        session.commit()
        if plan['indexes']:
            session.conn.autocommit = True
            # the policies are committed: a failed index build reports them (tables) with the error
            self.ctx.partial['tables'] = plan['tables']
            try:
                create_indexes(session, plan['indexes'])
            except psycopg2.Error as exc:
                raise RlsError('Creating a tenant index failed: %s' % database_error_message(
                    exc, self.params.get('login_password')))
        return dict(plan, duration_s=self.elapsed())


def create_indexes(session, indexes):
    """CREATE INDEX CONCURRENTLY (autocommit session), leading with the tenant column."""
    for ix in indexes:
        session.execute(sql.SQL('CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})').format(
            sql.Identifier(ix['name']), qualified(ix['schema'], ix['table']),
            sql.SQL(', ').join(sql.Identifier(c) for c in ix['columns'])))
