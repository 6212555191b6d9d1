# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_read_only on a PostgreSQL server: its options (argument_spec), the SQL that reads and changes the mode, the
record and the grants, and the operation `ReadOnly`: plan() reads the state and checks everything (state words,
standby, unknown roles, superusers, scope=server with revoke_writes, a foreign-owned record schema, grantors the
login role cannot act as, privileges in the record), apply() sets the mode, writes the record, revokes or grants back,
then ends the sessions. The decisions are in read_only.plan."""

from __future__ import annotations

import json
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    database_error_message, open_session, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation
from ansible_collections.procgenie.dbops.plugins.module_utils.read_only import plan as decide
from ansible_collections.procgenie.dbops.plugins.module_utils.read_only import tables
from ansible_collections.procgenie.dbops.plugins.module_utils.read_only.plan import (
    COLUMN_WRITE_PRIVILEGES, RECORD_SCHEMA, RECORD_TABLE, SETTING, WRITE_PRIVILEGES, ReadOnlyError)


def argument_spec():
    """pg_read_only's own options and their constraints (the connection options: _argspec.postgres_spec())."""
    return ArgumentSpec(dict(
        state=dict(type='raw', required=True),
        scope=dict(type='str', default='database', choices=['database', 'server', 'tables']),
        database=dict(type='str'),
        tables=dict(type='list', elements='str'),
        lock_timeout=dict(type='str', default='5s'),
        sessions=dict(type='str', choices=['keep', 'cancel', 'terminate']),
        session_selection=dict(type='str', default='all', choices=['writing', 'all']),
        session_application_names=dict(type='list', elements='str'),
        session_users=dict(type='list', elements='str'),
        session_timeout=dict(type='int', default=30),
        revoke_writes=dict(type='list', elements='str'),
    ), required_if=[('scope', 'database', ['database']), ('scope', 'tables', ['database'])])


# ---------------------------------------------------------------- SQL helpers

def database_row(session, database):
    return session.row(sql.SQL(
        "SELECT d.oid, d.datname, s.setconfig, s.xmin::text AS setting_xmin FROM pg_database d "
        "LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 WHERE d.datname = %s"),
        (database,))


def set_database(session, database, on):
    if on:
        session.execute(sql.SQL('ALTER DATABASE {} SET default_transaction_read_only = on').format(
            sql.Identifier(database)))
    else:
        session.execute(sql.SQL('ALTER DATABASE {} RESET default_transaction_read_only').format(
            sql.Identifier(database)))


def server_file_rows(session):
    return session.rows(sql.SQL(
        "SELECT sourcefile, sourceline, setting, applied, error FROM pg_file_settings WHERE name = %s "
        "ORDER BY seqno"), (SETTING,))


def apply_server(session, action):
    if action == 'set_on':
        session.execute(sql.SQL('ALTER SYSTEM SET default_transaction_read_only = on'))
    elif action == 'set_off':
        session.execute(sql.SQL('ALTER SYSTEM SET default_transaction_read_only = off'))
    elif action == 'reset':
        session.execute(sql.SQL('ALTER SYSTEM RESET default_transaction_read_only'))
    session.scalar(sql.SQL('SELECT pg_reload_conf()'))


def overrides(session, database=None):
    """Database- and role-level settings of the parameter that win over the server-wide value."""
    rows = session.rows(sql.SQL(
        "SELECT d.datname AS database, r.rolname AS role, s.setconfig FROM pg_db_role_setting s "
        "LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole "
        "WHERE EXISTS (SELECT FROM unnest(s.setconfig) c WHERE c ILIKE %s)"), (SETTING + '=%',))
    found = []
    for row in rows:
        if database is not None and row['database'] not in (None, database):
            continue
        found.append(dict(database=row['database'], role=row['role'],
                          value=decide.setting_from_setconfig(row['setconfig'])))
    return found


def client_sessions(session, database=None, since=None, exclude=()):
    """Client sessions other than `exclude` (the module's own); replication and background processes are not client
    backends. `started_before`: the session connected before `since` (None when `since` is unknown)."""
    query = ("SELECT pid, datname AS database, usename AS \"user\", application_name, client_addr::text AS "
             "client_addr, state, backend_xid::text AS backend_xid, left(query, 200) AS query, backend_start, "
             "CASE WHEN %s::timestamptz IS NULL THEN NULL ELSE backend_start <= %s::timestamptz END "
             "AS started_before FROM pg_stat_activity WHERE backend_type = 'client backend' "
             "AND pid <> ALL (%s::int[])")
    params = [since, since, list(exclude)]
    if database is not None:
        query += ' AND datname = %s'
        params.append(database)
    rows = session.rows(sql.SQL(query + ' ORDER BY pid'), params)
    for row in rows:
        if row.get('backend_start') is not None:
            row['backend_start'] = row['backend_start'].isoformat()
    return rows


def signal_session(session, pid, action, wait_ms=1000):
    """pg_cancel_backend / pg_terminate_backend (waiting up to wait_ms for the end, PostgreSQL 14 and later);
    True when the signal was sent."""
    if action != 'terminate':
        return bool(session.scalar(sql.SQL('SELECT pg_cancel_backend(%s)'), (pid,)))
    if session.server_version_num >= 140000:
        return bool(session.scalar(sql.SQL('SELECT pg_terminate_backend(%s, %s)'), (pid, wait_ms)))
    return bool(session.scalar(sql.SQL('SELECT pg_terminate_backend(%s)'), (pid,)))


# ---------------------------------------------------------------- the record (in the database itself)

def _record():
    return sql.Identifier(RECORD_SCHEMA, RECORD_TABLE)


def read_record(dbs):
    """The module's record in the database: None when there is none, else since, setting_xmin, roles, revoked.
    Refuses a schema or table of that name that a role other than a superuser or the module's own created."""
    row = dbs.row(sql.SQL(
        "SELECT n.oid IS NOT NULL AS has_schema, c.oid IS NOT NULL AS has_table, "
        "(SELECT r.rolsuper OR r.rolname = current_user FROM pg_roles r WHERE r.oid = n.nspowner) AS schema_ok, "
        "(SELECT r.rolsuper OR r.rolname = current_user FROM pg_roles r WHERE r.oid = c.relowner) AS table_ok, "
        "c.relkind FROM (SELECT %s::name AS nspname) x LEFT JOIN pg_namespace n ON n.nspname = x.nspname "
        "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = %s"), (RECORD_SCHEMA, RECORD_TABLE))
    if not row['has_schema']:
        return None
    if not row['schema_ok'] or (row['has_table'] and (not row['table_ok'] or row['relkind'] != 'r')):
        raise ReadOnlyError('The schema %s (or its table %s) in this database belongs to a role that is neither a '
                            'superuser nor the module\'s login role: pg_read_only keeps its record there and does '
                            'not trust it; drop or rename it' % (RECORD_SCHEMA, RECORD_TABLE))
    if not row['has_table']:
        return dict(has_table=False, since=None, setting_xmin=None, roles=[], revoked=[])
    found = dbs.row(sql.SQL('SELECT since, setting_xmin, roles, revoked FROM {}').format(_record()))
    record = dict(has_table=True, since=None, setting_xmin=None, roles=[], revoked=[])
    if found:
        record.update(found)
        record['roles'] = list(found['roles'] or [])
        record['revoked'] = list(found['revoked'] or [])
    return record


def write_record(dbs, since, roles, revoked):
    dbs.execute(sql.SQL('CREATE SCHEMA IF NOT EXISTS {}').format(sql.Identifier(RECORD_SCHEMA)))
    dbs.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (id boolean PRIMARY KEY DEFAULT true CHECK (id), since timestamptz, "
        "setting_xmin text, roles text[] NOT NULL DEFAULT '{{}}', revoked jsonb NOT NULL DEFAULT '[]', "
        "updated timestamptz NOT NULL DEFAULT clock_timestamp())").format(_record()))
    dbs.execute(sql.SQL(
        "COMMENT ON TABLE {} IS 'procgenie.dbops pg_read_only: since when the database is read-only and the write "
        "privileges it revoked; state=off restores them and drops this schema'").format(_record()))
    dbs.execute(sql.SQL(
        "INSERT INTO {} AS r (id, since, setting_xmin, roles, revoked) VALUES (true, %s, NULL, %s, %s::jsonb) "
        "ON CONFLICT (id) DO UPDATE SET since = EXCLUDED.since, setting_xmin = r.setting_xmin, "
        "roles = EXCLUDED.roles, revoked = EXCLUDED.revoked, updated = clock_timestamp()").format(_record()),
        (since, list(roles), json.dumps(revoked)))


def stamp_record(dbs):
    """Record now (after the commit that made the setting) as the moment from which new sessions start read-only,
    with the setting row's xmin so a later change of the setting by hand makes the moment unknown again."""
    return dbs.scalar(sql.SQL(
        "UPDATE {} SET since = clock_timestamp(), setting_xmin = (SELECT s.xmin::text FROM pg_db_role_setting s "
        "JOIN pg_database d ON d.oid = s.setdatabase AND s.setrole = 0 WHERE d.datname = current_database()), "
        "updated = clock_timestamp() RETURNING since").format(_record()))


def drop_record(dbs, warn):
    dbs.execute(sql.SQL('DROP TABLE IF EXISTS {}').format(_record()))
    if tables.tables_record_exists(dbs):  # scope=tables still keeps its record there
        return
    dbs.execute(sql.SQL('SAVEPOINT pg_read_only_schema'))
    try:
        dbs.execute(sql.SQL('DROP SCHEMA IF EXISTS {}').format(sql.Identifier(RECORD_SCHEMA)))
    except psycopg2.Error:
        dbs.execute(sql.SQL('ROLLBACK TO SAVEPOINT pg_read_only_schema'))
        warn('The schema %s holds other objects, so it was left in place' % RECORD_SCHEMA)
    dbs.execute(sql.SQL('RELEASE SAVEPOINT pg_read_only_schema'))


# ---------------------------------------------------------------- strict mode SQL

_RELS = ("FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'f') "
         "AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', %s]::name[]) "
         "AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'")


def strict_roles(session, names):
    """[{rolname, oid}] of the roles to revoke from; refuses unknown roles and superusers (privileges do not bind
    them)."""
    if not names:
        return []
    rows = session.rows(sql.SQL('SELECT rolname::text AS rolname, oid::bigint AS oid, rolsuper FROM pg_roles '
                                'WHERE rolname = ANY (%s) ORDER BY rolname'), (list(names),))
    missing = sorted(set(names) - set(r['rolname'] for r in rows))
    if missing:
        raise ReadOnlyError('revoke_writes: role(s) %s do not exist' % ', '.join(missing))
    supers = [r['rolname'] for r in rows if r['rolsuper']]
    if supers:
        raise ReadOnlyError('revoke_writes: %s is a superuser; privileges do not bind a superuser, so strict mode '
                            'cannot stop it (remove SUPERUSER from application roles)' % ', '.join(supers))
    return rows


def write_grants(dbs, role_oids=None, relids=None):
    """The table and column write privileges granted to the roles (None: to any grantee, PUBLIC included) on the
    tables, views and foreign tables of the database (relids: only these), as aclexplode rows; the grantee PUBLIC
    has grantee_oid 0."""
    cols = ("c.oid::bigint AS relid, n.nspname::text AS schema, c.relname::text AS \"table\", {attnum} AS attnum, "
            "{column} AS \"column\", e.grantor::bigint AS grantor_oid, pg_get_userbyid(e.grantor)::text AS grantor, "
            "e.grantee::bigint AS grantee_oid, CASE WHEN e.grantee = 0 THEN 'PUBLIC' "
            "ELSE pg_get_userbyid(e.grantee)::text END AS grantee, "
            "e.privilege_type::text AS privilege, e.is_grantable AS grantable ")
    query = ("SELECT " + cols.format(attnum='NULL::int', column='NULL::text') +
             "FROM (SELECT c.* " + _RELS + ") c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) e "
             "WHERE (%s::oid[] IS NULL OR e.grantee = ANY (%s::oid[])) AND e.privilege_type = ANY (%s) "
             "AND (%s::oid[] IS NULL OR c.oid = ANY (%s::oid[])) "
             "UNION ALL SELECT " + cols.format(attnum='a.attnum::int', column='a.attname::text') +
             "FROM (SELECT c.* " + _RELS + ") c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
             "AND a.attacl IS NOT NULL CROSS JOIN LATERAL aclexplode(a.attacl) e "
             "WHERE (%s::oid[] IS NULL OR e.grantee = ANY (%s::oid[])) AND e.privilege_type = ANY (%s) "
             "AND (%s::oid[] IS NULL OR c.oid = ANY (%s::oid[])) "
             "ORDER BY 2, 3, 4 NULLS FIRST, 9, 10")
    oids = None if role_oids is None else [int(o) for o in role_oids]
    rels = None if relids is None else [int(r) for r in relids]
    return dbs.rows(sql.SQL(query), (RECORD_SCHEMA, oids, oids, list(WRITE_PRIVILEGES), rels, rels,
                                     RECORD_SCHEMA, oids, oids, list(COLUMN_WRITE_PRIVILEGES), rels, rels))


def strict_gap_rows(dbs, role_oids):
    """(rows role/via/tables of write privileges the roles get through PUBLIC or inherited roles, rows role/tables
    of the tables they own)."""
    oids = [int(o) for o in role_oids]
    other = dbs.rows(sql.SQL(
        "SELECT r.rolname::text AS role, CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(e.grantee)::text "
        "END AS via, count(DISTINCT c.oid) AS tables FROM pg_roles r CROSS JOIN (SELECT c.* " + _RELS + ") c "
        "CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) e "
        "WHERE r.oid = ANY (%s::oid[]) AND e.privilege_type = ANY (%s) AND e.grantee <> ALL (%s::oid[]) "
        "AND (e.grantee = 0 OR pg_has_role(r.oid, e.grantee, 'USAGE')) GROUP BY 1, 2 ORDER BY 1, 2"),
        (RECORD_SCHEMA, oids, list(WRITE_PRIVILEGES), oids))
    owned = dbs.rows(sql.SQL(
        "SELECT pg_get_userbyid(c.relowner)::text AS role, count(*) AS tables " + _RELS +
        " AND c.relowner = ANY (%s::oid[]) GROUP BY 1 ORDER BY 1"), (RECORD_SCHEMA, oids))
    return other, owned


def resolve_recorded(dbs, recorded):
    """The recorded grants with today's names (tables and roles may have been renamed); (found, missing)."""
    if not recorded:
        return [], []
    rows = dbs.rows(sql.SQL(
        "SELECT j.ord, j.g AS recorded, n.nspname::text AS schema, c.relname::text AS \"table\", "
        "a.attname::text AS \"column\", gr.rolname::text AS grantor, "
        "CASE WHEN (j.g->>'grantee_oid')::oid = 0 THEN 'PUBLIC' ELSE ge.rolname::text END AS grantee "
        "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS j(g, ord) "
        "LEFT JOIN pg_class c ON c.oid = (j.g->>'relid')::oid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = (j.g->>'attnum')::int AND NOT a.attisdropped "
        "LEFT JOIN pg_roles gr ON gr.oid = (j.g->>'grantor_oid')::oid "
        "LEFT JOIN pg_roles ge ON ge.oid = (j.g->>'grantee_oid')::oid ORDER BY j.ord"), (json.dumps(recorded),))
    found, missing = [], []
    for row in rows:
        grant = dict(row['recorded'])
        if (row['table'] is None or row['grantor'] is None or row['grantee'] is None or
                (grant.get('attnum') is not None and row['column'] is None)):
            missing.append(grant)
            continue
        grant.update(schema=row['schema'], table=row['table'], column=row['column'], grantor=row['grantor'],
                     grantee=row['grantee'])
        found.append(grant)
    return found, missing


def check_grantors(session, grants):
    """The module's role must be able to act as every grantor (REVOKE and GRANT act as the grantor)."""
    oids = sorted(set(int(g['grantor_oid']) for g in grants))
    if not oids:
        return
    bad = session.rows(sql.SQL("SELECT rolname::text AS rolname FROM pg_roles WHERE oid = ANY (%s::oid[]) "
                               "AND NOT pg_has_role(current_user, oid, 'MEMBER') ORDER BY 1"), (oids,))
    if bad:
        raise ReadOnlyError('revoke_writes: the login role is not a member of %s, who granted the privileges; '
                            'connect as a superuser' % ', '.join(r['rolname'] for r in bad))


def run_grant_statements(dbs, statements, revoke):
    """REVOKE (revoke=True) or GRANT back, as plan.grant_statements ordered and checked them, each as its grantor so
    the ACL is exactly what it was."""
    for query in grant_sql(statements, revoke):
        dbs.execute(query)


def grant_sql(statements, revoke):
    """The statements of run_grant_statements (SET ROLE grantor, REVOKE or GRANT, RESET ROLE), composed."""
    out = []
    for grantor, schema, table, column, grantee, grantable, privileges in statements:
        privs = sql.SQL(', ').join(sql.SQL(p) for p in privileges)  # write privileges only: checked by the plan
        if column is not None:
            privs = sql.SQL('{} ({})').format(privs, sql.Identifier(column))
        to = sql.SQL('PUBLIC') if grantee is None else sql.Identifier(grantee)  # None: PUBLIC (plan.group_grants)
        out.append(sql.SQL('SET ROLE {}').format(sql.Identifier(grantor)))
        if revoke:
            out.append(sql.SQL('REVOKE {} ON TABLE {} FROM {}').format(
                privs, sql.Identifier(schema, table), to))
        else:
            out.append(sql.SQL('GRANT {} ON TABLE {} TO {}{}').format(
                privs, sql.Identifier(schema, table), to,
                sql.SQL(' WITH GRANT OPTION' if grantable else '')))
        out.append(sql.SQL('RESET ROLE'))
    return out


# ---------------------------------------------------------------- session plumbing

def _prepare(session):
    """The module's sessions write even while the mode they manage is on, and resolve names in pg_catalog only."""
    session.execute(sql.SQL('SET default_transaction_read_only = off'))
    session.execute(sql.SQL('SET search_path = pg_catalog'))
    if not session.conn.autocommit:
        session.commit()
    return session.scalar(sql.SQL('SELECT pg_backend_pid()'))


def _wait_for_reload(session, loaded_before, timeout=5.0):
    """After pg_reload_conf: wait until our own backend has reloaded (so the postmaster has, and new sessions
    start with the new value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if session.scalar(sql.SQL('SELECT pg_conf_load_time() > %s'), (loaded_before,)):
            return
        time.sleep(0.02)


def end_sessions(session, database, since, own, choose, action, timeout, repeat):
    """Signal the chosen sessions; with `repeat`, list again until none is left (a session that connected before
    the switch may appear in pg_stat_activity only after its authentication), twice empty 0.1 s apart.
    Returns the sessions signalled; raises ReadOnlyError when some are still there after `timeout` seconds."""
    done = {}
    deadline = time.monotonic() + timeout
    empty = 0
    while True:
        picked = choose(client_sessions(session, database, since, own))
        if not picked:
            empty += 1
            if not repeat or empty >= 2:
                break
            time.sleep(0.1)
            continue
        empty = 0
        if time.monotonic() > deadline:
            raise ReadOnlyError('Sessions %s were still connected %s seconds after the mode was set' % (
                ', '.join(str(p['pid']) for p in picked), timeout), dict(sessions=list(done.values())))
        for item in picked:
            sent = signal_session(session, item['pid'], action)
            if item['pid'] in done:
                done[item['pid']]['signalled'] = done[item['pid']]['signalled'] or sent
            else:
                done[item['pid']] = dict(item, action=action, signalled=sent)
        if not repeat:
            break
    return list(done.values())


# ---------------------------------------------------------------- the operation

class ReadOnly(Operation):
    """pg_read_only: plan() reads the mode, the record, the grants and the sessions and checks everything (it
    changes nothing and returns what check mode reports); apply(plan) sets the mode, keeps the record, revokes or
    grants back in one transaction of the database, then ends the sessions."""

    @classmethod
    def make_runner(cls, params):
        return None  # no client program: `commands` stays empty

    def __init__(self, params, ctx):
        super(ReadOnly, self).__init__(params, ctx)
        self.session = None  # autocommit, to the login database: the catalogs, ALTER SYSTEM, the signals
        self.dbs = None  # one transaction in the target database: ALTER DATABASE, the record, the grants
        self.own = []  # the module's own backends, never signalled
        self.options = None
        self.facts = None

    def close(self):
        if self.dbs is not None:
            try:
                self.dbs.rollback()  # nothing half-done is committed (check mode, or a failure before the commit)
            except Exception:  # pylint: disable=broad-except  # a broken connection has nothing to roll back
                pass
            self.dbs.close()
            self.dbs = None
        if self.session is not None:
            self.session.close()
            self.session = None

    def open_database(self, name):
        """A non-autocommit session to a database, prepared like the module's first one, with the lock_timeout of
        its changes (ALTER DATABASE and GRANT/REVOKE update catalog rows another transaction may hold)."""
        dbs = open_session(self.params, database=name, autocommit=False, log=self.log)
        self.own.append(_prepare(dbs))
        try:
            dbs.execute(sql.SQL("SELECT set_config('lock_timeout', %s, false)"), (self.params['lock_timeout'],))
        except psycopg2.Error as exc:
            raise ReadOnlyError('lock_timeout %r is not a valid setting: %s' % (
                self.params['lock_timeout'], database_error_message(exc)))
        dbs.commit()
        return dbs

    def choose(self, candidates):
        return decide.select_sessions(candidates, **self.facts['select'])

    def listed(self, since):
        """The sessions the selection picks now, `since` being the moment new sessions start read-only."""
        return self.choose(client_sessions(self.session, self.params['database'], since, self.own))

    # ------------------------------------------------------------ plan: read and check everything, change nothing
    def plan(self):
        params = self.params
        options = self.options = decide.check_options(params)
        scope, database, want_on = params['scope'], params['database'], options['want_on']
        self.session = session = open_session(params, log=self.log)
        if session.scalar(sql.SQL('SELECT pg_is_in_recovery()')):
            raise ReadOnlyError('The server is a standby (in recovery): set the read-only mode on the primary; a '
                                'database-level setting replicates to the standbys')
        self.own = [_prepare(session)]
        if scope == 'tables':
            return self.plan_tables()
        roles = strict_roles(session, options['roles'])
        role_oids = [r['oid'] for r in roles]
        record = None
        since = None
        if scope == 'database':
            row = database_row(session, database)
            if row is None:
                raise ReadOnlyError('Database %s does not exist' % database)
            was_on = bool(decide.parse_bool_setting(decide.setting_from_setconfig(row['setconfig'])))
            action = decide.database_action(was_on, want_on)
            self.dbs = self.open_database(database)
            record = read_record(self.dbs)
            stopped = tables.read_tables_record(self.dbs) or []
            problem = decide.combination_problem(scope, want_on, options['roles'], record, stopped)
            if problem:
                raise ReadOnlyError(problem)
            if record is not None and not record['has_table'] and stopped:
                record = None  # the schema holds only the record of scope=tables: no database-wide record
            since = decide.known_since(record, row['setting_xmin'], was_on, action)
        else:
            rows = server_file_rows(session)
            action = decide.server_plan(want_on, rows)
            was_on = decide.server_value(rows)[0]
        found = overrides(session, database if scope == 'database' else None)
        blocking = decide.blocking_overrides(found, scope)
        if want_on:
            for item in blocking:
                self.warn(decide.override_warning(item, scope))
        revokes, restores = [], []
        if want_on and roles:
            revokes = write_grants(self.dbs, role_oids)
            check_grantors(session, revokes)
            other, owned = strict_gap_rows(self.dbs, role_oids)
            for message in decide.strict_gaps(other, options['roles'], owned):
                self.warn(message)
        if not want_on and record and record['revoked']:
            restores, missing = resolve_recorded(self.dbs, record['revoked'])
            for grant in missing:
                self.warn(decide.missing_grant_warning(grant))
            check_grantors(session, restores)
        write_rec, drop_rec = decide.record_steps(scope, want_on, record, since, revokes)
        if not want_on and record is not None and record['since'] is not None:
            since = record['since']
        self.facts = dict(
            action=action, was_on=was_on, record=record, since=since, found=found, revokes=revokes,
            restores=restores, write_rec=write_rec, drop_rec=drop_rec,
            revoke_statements=decide.grant_statements(revokes, role_oids, revoke=True),
            restore_statements=decide.grant_statements(restores, [g['grantee_oid'] for g in restores], revoke=False),
            select=decide.selection_args(params, options, scope, action, blocking))
        picked = self.listed(since)
        keep = options['sessions'] == 'keep'
        for message in decide.session_warnings(want_on, options['sessions'], options['selection'],
                                               picked if keep else []):
            self.warn(message)
        sessions = [] if keep else [dict(s, action=options['sessions'], signalled=False) for s in picked]
        return self.result(sessions, since, planned=True)

    def result(self, sessions, since, planned):
        """The module's result (the plan when `planned`)."""
        facts, options, params = self.facts, self.options, self.params
        state, previous_state = options['state'], 'on' if facts['was_on'] else 'off'
        revokes, restores = facts['revokes'], facts['restores']
        result = dict(
            changed=decide.is_changed(facts['action'], revokes, restores, facts['write_rec'], facts['drop_rec'],
                                      sessions, planned),
            state=state, previous_state=previous_state, scope=params['scope'], database=params['database'],
            sessions=sessions, overrides=facts['found'],
            revoked=[decide.public_grant(g) for g in revokes], restored=[decide.public_grant(g) for g in restores],
            read_only_since=since.isoformat() if options['want_on'] and hasattr(since, 'isoformat') else None)
        diff = decide.result_diff(facts['action'], params['scope'], params['database'], previous_state, state,
                                  facts['record'], revokes, restores)
        if diff is not None:
            result['diff'] = diff
        return result

    # ------------------------------------------------------------ apply: the validated plan, nothing else
    def apply(self, plan):
        if self.params['scope'] == 'tables':
            return self.apply_tables()
        facts, options = self.facts, self.options
        scope, database, want_on = self.params['scope'], self.params['database'], options['want_on']
        action, record, since = facts['action'], facts['record'], facts['since']
        if scope == 'database' and (action or facts['write_rec'] or facts['drop_rec'] or facts['revokes'] or
                                    facts['restores']):
            dbs = self.dbs
            if action:
                set_database(dbs, database, want_on)
            if facts['write_rec']:
                write_record(dbs, since, decide.record_roles(record, options['roles']),
                             decide.merge_revoked((record or {}).get('revoked') or [], facts['revokes']))
            run_grant_statements(dbs, facts['revoke_statements'], revoke=True)
            run_grant_statements(dbs, facts['restore_statements'], revoke=False)
            if facts['drop_rec']:
                drop_record(dbs, self.warn)
            dbs.commit()
            if want_on and since is None:
                since = stamp_record(dbs)
                dbs.commit()
        elif action is not None:
            loaded = self.session.scalar(sql.SQL('SELECT pg_conf_load_time()'))
            apply_server(self.session, action)
            _wait_for_reload(self.session, loaded)
            if want_on:
                since = self.session.scalar(sql.SQL('SELECT clock_timestamp()'))
        sessions = []
        if options['sessions'] != 'keep':
            sessions = end_sessions(self.session, database, since, self.own, self.choose, options['sessions'],
                                    options['timeout'], repeat=want_on and options['sessions'] == 'terminate')
        return self.result(sessions, since, planned=False)

    # ------------------------------------------------------------ scope=tables
    def plan_tables(self):
        """scope=tables: the tables resolved, the write grants on them (on) or the recorded ones (off), the roles
        privileges cannot stop, the sessions holding write locks; every refusal before any change."""
        params, options, session = self.params, self.options, self.session
        database, want_on = params['database'], options['want_on']
        if database_row(session, database) is None:
            raise ReadOnlyError('Database %s does not exist' % database)
        dbs = self.dbs = self.open_database(database)
        mode_record = read_record(dbs)
        recorded = tables.read_tables_record(dbs) or []
        problem = decide.combination_problem('tables', want_on, [], mode_record, recorded)
        if problem:
            raise ReadOnlyError(problem)
        requested = tables.resolve(dbs, options['tables']) if options['tables'] else []
        by_oid = dict((r['relid'], r) for r in recorded)
        relids = [t['oid'] for t in requested]
        revokes, restores, write_tables, forget, writers, relations = [], [], [], [], [], {}
        revoked_by_table = {}
        if want_on:
            revokes = decide.grant_depths(write_grants(dbs, None, relids), tables.owners(dbs, relids))
            check_grantors(session, revokes)
            for table in requested:
                new = [g for g in revokes if int(g['relid']) == table['oid']]
                if table['oid'] not in by_oid or new:
                    write_tables.append(table)
                    revoked_by_table[table['oid']] = decide.merge_revoked(
                        by_oid[table['oid']]['revoked'] if table['oid'] in by_oid else [], new)
            writers = tables.free_writers(session)
            shown = [t['qname'] for t in requested]
            message = decide.writers_warning(writers, shown)
            if message:
                self.warn(message)
            referencing = tables.referencing_tables(dbs, relids)
            if referencing:
                self.warn('scope=tables: %s reference the stopped tables by foreign key; inserting or changing their '
                          'keys fails while writes are stopped (the check locks the referenced row as the owner of '
                          'the referenced table, which needs UPDATE)' % ', '.join(referencing))
            relations = dict((t['oid'], t['qname']) for t in requested)
            relations.update((q['oid'], q['qname']) for q in tables.owned_sequences(dbs, relids))
        else:
            chosen = [by_oid[o] for o in relids if o in by_oid] if requested else recorded
            forget = [c['relid'] for c in chosen]
            found, missing = resolve_recorded(dbs, [g for c in chosen for g in c['revoked']])
            for grant in missing:
                self.warn(decide.missing_grant_warning(grant))
            restores = decide.grant_depths(found, tables.owners(dbs, [g['relid'] for g in found]))
            check_grantors(session, restores)
        before = sorted(r['qname'] for r in recorded)
        if want_on:
            after = sorted(set(before) | set('%s.%s' % (t['schema'], t['name']) for t in requested))
        else:
            after = sorted(r['qname'] for r in recorded if r['relid'] not in forget)
        self.facts = dict(
            previous_state=decide.table_state(relids, by_oid, want_on), revokes=revokes, restores=restores,
            write_tables=write_tables, revoked_by_table=revoked_by_table, forget=forget, writers=writers,
            relations=relations, before=before, after=after, tables=[t['qname'] for t in requested] or
            [c['qname'] for c in recorded if c['relid'] in forget],
            revoke_statements=decide.grant_statements(revokes, [], revoke=True),
            restore_statements=decide.grant_statements(restores, [], revoke=False))
        statements = [q.as_string(dbs.conn) for q in grant_sql(self.facts['revoke_statements'], True) +
                      grant_sql(self.facts['restore_statements'], False)]
        self.facts['statements'] = statements
        if self.ctx.check_mode:
            for text in statements:  # what the run would execute (not run in check mode)
                self.log.add(text)
        picked = self.choose_tables(client_sessions(session, database, None, self.own)) if want_on else []
        keep = options['sessions'] == 'keep'
        if keep and picked:
            self.warn('sessions=keep: %d session(s) hold write locks on the stopped tables; their open transactions '
                      'can still commit: %s' % (len(picked), ', '.join(str(s['pid']) for s in picked)))
        elif options['sessions'] == 'cancel' and picked:
            self.warn('sessions=cancel only cancels running statements: a session idle in its write transaction can '
                      'still commit it; use sessions=terminate')
        sessions = [] if keep else [dict(s, action=options['sessions'], signalled=False) for s in picked]
        return self.result_tables(sessions, planned=True)

    def choose_tables(self, candidates):
        """Of the client sessions, those holding a write lock on a stopped table or its sequences (filtered)."""
        holders = tables.lock_holders(self.session, self.params['database'], self.facts['relations'], self.own)
        return decide.select_lock_holders([dict(c, locks=holders[c['pid']]) for c in candidates
                                           if c['pid'] in holders],
                                          self.params.get('session_application_names'),
                                          self.params.get('session_users'))

    def result_tables(self, sessions, planned):
        facts, options = self.facts, self.options
        changed = bool(facts['revokes'] or facts['restores'] or facts['write_tables'] or facts['forget'])
        if not changed:
            changed = bool(sessions) if planned else any(s['signalled'] for s in sessions)
        result = dict(
            changed=changed, state=options['state'], previous_state=facts['previous_state'], scope='tables',
            database=self.params['database'], tables=facts['tables'], stopped_tables=facts['after'],
            sessions=sessions, overrides=[], writers=facts['writers'], statements=facts['statements'],
            revoked=[decide.public_grant(g) for g in facts['revokes']],
            restored=[decide.public_grant(g) for g in facts['restores']], read_only_since=None)
        diff = decide.tables_diff(facts['before'], facts['after'])
        if diff is not None:
            result['diff'] = diff
        return result

    def apply_tables(self):
        """One transaction: the record first, then the REVOKEs (on) or the GRANTs back and the record forgotten
        (off); commit; then the sessions holding write locks ended (on)."""
        facts, options, dbs = self.facts, self.options, self.dbs
        if facts['write_tables'] or facts['revokes'] or facts['restores'] or facts['forget']:
            if facts['write_tables']:
                tables.write_table_records(dbs, facts['write_tables'], facts['revoked_by_table'])
            run_grant_statements(dbs, facts['revoke_statements'], revoke=True)
            run_grant_statements(dbs, facts['restore_statements'], revoke=False)
            if facts['forget']:
                tables.delete_table_records(dbs, facts['forget'], self.warn)
            dbs.commit()
        sessions = []
        if options['want_on'] and options['sessions'] != 'keep':
            sessions = end_sessions(self.session, self.params['database'], None, self.own, self.choose_tables,
                                    options['sessions'], options['timeout'], repeat=options['sessions'] == 'terminate')
        return self.result_tables(sessions, planned=False)
