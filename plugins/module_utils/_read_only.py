# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_read_only: emergency read-only mode of a database or a whole server.

Pure decisions (current value, which sessions to act on) are plain functions, unit-tested without a server; the
SQL helpers take a _connection.Session.
"""

from __future__ import annotations

import json
import re
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import psycopg2, sql

SETTING = 'default_transaction_read_only'
TRUE_WORDS = ('on', 'true', 'yes', '1', 't', 'y')
FALSE_WORDS = ('off', 'false', 'no', '0', 'f', 'n')

# A session "writes" when it holds a transaction ID (PostgreSQL assigns one at the first write of a transaction, so
# backend_xid IS NOT NULL means the open transaction has written), or when it is running a statement that does not
# start with one of these read-only keywords.
READ_KEYWORDS = ('SELECT', 'SHOW', 'EXPLAIN', 'FETCH', 'VALUES', 'TABLE', 'BEGIN', 'START', 'COMMIT', 'END',
                 'ROLLBACK', 'SET', 'RESET', 'DECLARE', 'CLOSE', 'MOVE', 'DISCARD', 'DEALLOCATE', 'LISTEN',
                 'UNLISTEN', 'SAVEPOINT', 'RELEASE', 'PREPARE', 'EXECUTE')
_FIRST_WORD = re.compile(r'^(?:\s|--[^\n]*\n|/\*.*?\*/)*([A-Za-z]+)', re.S)


def normalize_state(value):
    """'on'/'off' from what a playbook may pass: on/off, or the booleans YAML makes of unquoted on/off/yes/no."""
    if isinstance(value, bool):
        return 'on' if value else 'off'
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return 'on'
    if text in FALSE_WORDS:
        return 'off'
    raise ValueError('state must be on or off, got %r' % (value,))


def parse_bool_setting(value):
    """True/False for a boolean parameter value as the catalogs spell it (unique prefixes too); None when unset."""
    if value is None:
        return None
    text = str(value).strip().strip("'").lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    if len(text) > 1 and ('true'.startswith(text) or 'yes'.startswith(text)):
        return True
    if len(text) > 1 and ('false'.startswith(text) or 'off'.startswith(text)):
        return False
    return None


def setting_from_setconfig(setconfig, name=SETTING):
    """The value of `name` in a pg_db_role_setting.setconfig array (['a=b', ...]), or None."""
    for item in setconfig or []:
        key, _sep, value = item.partition('=')
        if key.strip().lower() == name:
            return value
    return None


def first_keyword(query):
    """The first SQL keyword of a statement (comments skipped), upper-cased; '' when none."""
    match = _FIRST_WORD.match(query or '')
    return match.group(1).upper() if match else ''


def write_reason(session):
    """Why a pg_stat_activity row counts as a writer, or None: the rule the module documents."""
    if session.get('backend_xid'):
        return 'holds a write transaction (transaction ID %s)' % session['backend_xid']
    if session.get('state') == 'active':
        word = first_keyword(session.get('query'))
        if word and word not in READ_KEYWORDS:
            return 'running a %s statement' % word
    return None


def select_sessions(sessions, selection='all', application_names=None, users=None, changed_now=False,
                    state='on', unknown_is_old=False, override_roles=()):
    """The sessions to cancel or terminate, each with the reason.

    `sessions`: client backends other than the module's own, each with `started_before`: True when it connected
    before the read-only default was in force (it keeps read-write), False when after, None when unknown
    (`unknown_is_old` decides). While the mode is on, `all` picks every session that is not known to have started
    read-only: the old ones, those of roles whose own setting keeps them read-write (`override_roles`), and any that
    writes anyway (it turned the default off for itself); `writing` picks the writers only (see write_reason).
    For `off`, `all` picks, in the run that changes the setting, the sessions that connected while the mode was on
    (they stay read-only until they reconnect). Filters match exactly.
    """
    picked = []
    for session in sessions:
        if application_names and session.get('application_name') not in application_names:
            continue
        if users and session.get('user') not in users:
            continue
        old = session.get('started_before')
        if old is None:  # in the run that changes the setting every session there is is an old one
            old = unknown_is_old or changed_now
        reason = None
        if state == 'on':
            reason = write_reason(session)
            if reason is None and selection == 'all':
                if old:
                    reason = 'connected before the read-only default was in force, so it keeps the old default (read-write)'
                elif session.get('user') in override_roles:
                    reason = 'its role sets default_transaction_read_only = off, which wins over the database'
        elif selection == 'all' and changed_now and session.get('started_before') is not True:
            reason = 'connected while the mode was on, so it stays read-only until it reconnects'
        if reason is not None:
            picked.append(dict(session, reason=reason))
    return picked


# ---------------------------------------------------------------- strict mode: write privileges of roles

WRITE_PRIVILEGES = ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
COLUMN_WRITE_PRIVILEGES = ('INSERT', 'UPDATE')
RECORD_SCHEMA = 'procgenie_dbops'
RECORD_TABLE = 'read_only_mode'


def grant_key(grant):
    """The identity of one privilege grant: table, column, grantee, grantor, privilege (names are not identity)."""
    return (int(grant['relid']), grant.get('attnum'), int(grant['grantee_oid']), int(grant['grantor_oid']),
            grant['privilege'])


def merge_revoked(recorded, new):
    """The record after revoking `new` on top of what an earlier run `recorded`: the union, earlier entries first."""
    seen = set(grant_key(g) for g in recorded)
    merged = list(recorded)
    for grant in new:
        if grant_key(grant) not in seen:
            seen.add(grant_key(grant))
            merged.append(grant)
    return merged


def revoke_order(grants, role_oids):
    """Revokes of grants made by a listed role come first (PostgreSQL refuses to revoke a grant option on which
    another grant depends); restores run in the reverse order."""
    role_oids = set(int(o) for o in role_oids)
    return sorted(grants, key=lambda g: (0 if int(g['grantor_oid']) in role_oids else 1,
                                         g['schema'], g['table'], g.get('attnum') or 0, g['grantee'],
                                         g['privilege']))


def group_grants(grants):
    """One statement per (grantor, table, column, grantee, grant option): [(key, [privileges])], in order."""
    groups = []
    index = {}
    for grant in grants:
        key = (grant['grantor'], grant['schema'], grant['table'], grant.get('column'), grant['grantee'],
               bool(grant.get('grantable')))
        if key not in index:
            index[key] = len(groups)
            groups.append((key, []))
        if grant['privilege'] not in groups[index[key]][1]:
            groups[index[key]][1].append(grant['privilege'])
    return groups


def strict_gaps(other_grants, role_names, owned):
    """Warnings for what revoking the listed roles' own grants cannot stop: privileges through PUBLIC or a role
    they inherit from (`other_grants`: rows role, via, tables), and tables they own (an owner can grant itself
    back)."""
    warnings = []
    for row in other_grants:
        warnings.append('revoke_writes: role %s can still write %s table(s) through privileges granted to %s; '
                        'add that role to revoke_writes or revoke them' % (row['role'], row['tables'], row['via']))
    for row in owned:
        if row['role'] in role_names:
            warnings.append('revoke_writes: role %s owns %s table(s); its privileges there are revoked, but an owner '
                            'can grant them back to itself' % (row['role'], row['tables']))
    return warnings


def server_value(file_rows):
    """(effective bool, value in postgresql.auto.conf or None, set elsewhere bool) from pg_file_settings rows."""
    effective = False
    auto_value = None
    elsewhere = None
    for row in file_rows:
        value = parse_bool_setting(row['setting'])
        if row.get('applied'):
            effective = bool(value)
        if (row.get('sourcefile') or '').endswith('postgresql.auto.conf'):
            auto_value = row['setting']
        else:
            elsewhere = value
    return effective, auto_value, elsewhere


def server_plan(want_on, file_rows):
    """The ALTER SYSTEM action for the server: 'set_on', 'set_off', 'reset' or None (nothing to do)."""
    effective, auto_value, elsewhere = server_value(file_rows)
    if want_on:
        return None if effective else 'set_on'
    if not effective:
        return None
    if elsewhere:  # postgresql.conf (or an include) turns it on: override it in postgresql.auto.conf
        return 'set_off'
    return 'reset' if auto_value is not None else 'set_off'


# ---------------------------------------------------------------- SQL helpers

def database_row(session, database):
    return session.row(sql.SQL(
        "SELECT d.oid, d.datname, s.setconfig, s.xmin::text AS setting_xmin FROM pg_database d "
        "LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 WHERE d.datname = %s"),
        (database,))


def database_is_on(session, database):
    """True/False/None (unset) for the database-level setting; raises LookupError when there is no database."""
    row = database_row(session, database)
    if row is None:
        raise LookupError(database)
    return parse_bool_setting(setting_from_setconfig(row['setconfig']))


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
                          value=setting_from_setconfig(row['setconfig'])))
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


class ReadOnlyError(Exception):
    """A refusal of pg_read_only; the message says why. `result` carries what was done before it."""

    def __init__(self, msg, result=None):
        super(ReadOnlyError, self).__init__(msg)
        self.result = result


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


def write_grants(dbs, role_oids):
    """The table and column write privileges granted to the roles in the database (aclexplode rows)."""
    cols = ("c.oid::bigint AS relid, n.nspname::text AS schema, c.relname::text AS \"table\", {attnum} AS attnum, "
            "{column} AS \"column\", e.grantor::bigint AS grantor_oid, pg_get_userbyid(e.grantor)::text AS grantor, "
            "e.grantee::bigint AS grantee_oid, pg_get_userbyid(e.grantee)::text AS grantee, "
            "e.privilege_type::text AS privilege, e.is_grantable AS grantable ")
    query = ("SELECT " + cols.format(attnum='NULL::int', column='NULL::text') +
             "FROM (SELECT c.* " + _RELS + ") c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) e "
             "WHERE e.grantee = ANY (%s::oid[]) AND e.privilege_type = ANY (%s) "
             "UNION ALL SELECT " + cols.format(attnum='a.attnum::int', column='a.attname::text') +
             "FROM (SELECT c.* " + _RELS + ") c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
             "AND a.attacl IS NOT NULL CROSS JOIN LATERAL aclexplode(a.attacl) e "
             "WHERE e.grantee = ANY (%s::oid[]) AND e.privilege_type = ANY (%s) "
             "ORDER BY 2, 3, 4 NULLS FIRST, 9, 10")
    oids = [int(o) for o in role_oids]
    return dbs.rows(sql.SQL(query), (RECORD_SCHEMA, oids, list(WRITE_PRIVILEGES), RECORD_SCHEMA, oids,
                                     list(COLUMN_WRITE_PRIVILEGES)))


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
        "a.attname::text AS \"column\", gr.rolname::text AS grantor, ge.rolname::text AS grantee "
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


def apply_grants(dbs, grants, role_oids, revoke):
    """REVOKE (revoke=True) or GRANT back the grants, each as its grantor so the ACL is exactly what it was."""
    ordered = revoke_order(grants, role_oids)
    if not revoke:
        ordered.reverse()
    for (grantor, schema, table, column, grantee, grantable), privileges in group_grants(ordered):
        allowed = COLUMN_WRITE_PRIVILEGES if column is not None else WRITE_PRIVILEGES
        if any(p not in allowed for p in privileges):
            raise ReadOnlyError('Unexpected privilege in the record: %s' % ', '.join(privileges))
        privs = sql.SQL(', ').join(sql.SQL(p) for p in privileges)
        if column is not None:
            privs = sql.SQL('{} ({})').format(privs, sql.Identifier(column))
        dbs.execute(sql.SQL('SET ROLE {}').format(sql.Identifier(grantor)))
        if revoke:
            dbs.execute(sql.SQL('REVOKE {} ON TABLE {} FROM {}').format(
                privs, sql.Identifier(schema, table), sql.Identifier(grantee)))
        else:
            dbs.execute(sql.SQL('GRANT {} ON TABLE {} TO {}{}').format(
                privs, sql.Identifier(schema, table), sql.Identifier(grantee),
                sql.SQL(' WITH GRANT OPTION' if grantable else '')))
        dbs.execute(sql.SQL('RESET ROLE'))


def public_grant(grant):
    """A grant as the result shows it (no oids)."""
    return dict((k, grant.get(k)) for k in ('schema', 'table', 'column', 'grantee', 'grantor', 'privilege',
                                            'grantable'))


# ---------------------------------------------------------------- the run

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


def run(params, session, check_mode=False, warn=None, open_database=None):
    """The whole run of pg_read_only: validate and plan, then change, then end sessions; returns the result.
    `open_database(name)` opens a non-autocommit Session to a database. Raises ReadOnlyError."""
    warn = warn or (lambda msg: None)
    scope = params['scope']
    database = params['database']
    want_on = normalize_state(params['state']) == 'on'
    state = 'on' if want_on else 'off'
    action_on_sessions = params.get('sessions') or ('terminate' if want_on else 'keep')
    selection = params.get('session_selection') or 'all'
    timeout = params.get('session_timeout') or 30
    role_names = list(params.get('revoke_writes') or [])
    if role_names and scope != 'database':
        raise ReadOnlyError('revoke_writes works on the tables of one database: use it with scope=database')
    if session.scalar(sql.SQL('SELECT pg_is_in_recovery()')):
        raise ReadOnlyError('The server is a standby (in recovery): set the read-only mode on the primary; a '
                            'database-level setting replicates to the standbys')
    own = [_prepare(session)]
    roles = strict_roles(session, role_names)
    role_oids = [r['oid'] for r in roles]
    dbs = None
    try:
        record = None
        since = None
        if scope == 'database':
            row = database_row(session, database)
            if row is None:
                raise ReadOnlyError('Database %s does not exist' % database)
            was_on = bool(parse_bool_setting(setting_from_setconfig(row['setconfig'])))
            action = None if was_on == want_on else ('database_on' if want_on else 'database_off')
            dbs = open_database(database)
            own.append(_prepare(dbs))
            record = read_record(dbs)
            if (record and record['since'] is not None and was_on and not action and
                    record['setting_xmin'] == row['setting_xmin']):
                since = record['since']
        else:
            rows = server_file_rows(session)
            action = server_plan(want_on, rows)
            was_on = server_value(rows)[0]
        found = overrides(session, database if scope == 'database' else None)
        blocking = [o for o in found if parse_bool_setting(o['value']) is False and
                    (scope == 'server' or o['role'] is not None)]
        if want_on:
            for item in blocking:
                warn('default_transaction_read_only=%s is set for %s and wins over this %s-level setting: '
                     'those sessions stay read-write' % (
                         item['value'], ', '.join('%s %s' % (k, item[k]) for k in ('role', 'database') if item[k]),
                         scope))
        revokes, restores = [], []
        if want_on and roles:
            revokes = write_grants(dbs, role_oids)
            check_grantors(session, revokes)
            other, owned = strict_gap_rows(dbs, role_oids)
            for message in strict_gaps(other, role_names, owned):
                warn(message)
        if not want_on and record and record['revoked']:
            restores, missing = resolve_recorded(dbs, record['revoked'])
            for grant in missing:
                warn('Not restored (the table, column or role is gone): %s %s on relation %s by role %s to role %s'
                     % (grant.get('privilege'), 'column %s' % grant.get('column') if grant.get('column') else '',
                        grant.get('relid'), grant.get('grantor_oid'), grant.get('grantee_oid')))
            check_grantors(session, restores)
        write_rec = scope == 'database' and want_on and (record is None or not record['has_table'] or
                                                          since is None or bool(revokes))
        drop_rec = scope == 'database' and not want_on and record is not None
        select_args = dict(selection=selection, application_names=params.get('session_application_names'),
                           users=params.get('session_users'), changed_now=action is not None, state=state,
                           override_roles=set(o['role'] for o in blocking if o['role']))
        if want_on:  # unknown moment: in the database scope every session may be old; server-wide only when set now
            select_args['unknown_is_old'] = scope == 'database' or action is not None
        elif record is not None and record['since'] is not None:
            since = record['since']

        def choose(candidates):
            return select_sessions(candidates, **select_args)

        if check_mode:
            sessions = [dict(s, action=action_on_sessions, signalled=False)
                        for s in choose(client_sessions(session, database, since, own))]
        else:
            if scope == 'database' and (action or write_rec or drop_rec or revokes or restores):
                if action:
                    set_database(dbs, database, want_on)
                if write_rec:
                    write_record(dbs, since, sorted(set((record or {}).get('roles') or []) | set(role_names)),
                                 merge_revoked((record or {}).get('revoked') or [], revokes))
                apply_grants(dbs, revokes, role_oids, revoke=True)
                apply_grants(dbs, restores, [g['grantee_oid'] for g in restores], revoke=False)
                if drop_rec:
                    drop_record(dbs, warn)
                dbs.commit()
                if want_on and since is None:
                    since = stamp_record(dbs)
                    dbs.commit()
            elif action is not None:
                loaded = session.scalar(sql.SQL('SELECT pg_conf_load_time()'))
                apply_server(session, action)
                _wait_for_reload(session, loaded)
                if want_on:
                    since = session.scalar(sql.SQL('SELECT clock_timestamp()'))
            sessions = []
            if action_on_sessions != 'keep':
                sessions = end_sessions(session, database, since, own, choose, action_on_sessions, timeout,
                                        repeat=want_on and action_on_sessions == 'terminate')
        if action_on_sessions == 'keep':
            left = choose(client_sessions(session, database, since, own))
            sessions = []
            if want_on and left:
                warn('sessions=keep: %d session(s) connected before the read-only default (or whose role keeps '
                     'read-write) can still commit writes: %s' % (len(left), ', '.join(str(s['pid']) for s in left)))
            elif left:
                warn('sessions=keep: %d session(s) connected while the mode was on stay read-only until they '
                     'reconnect: %s' % (len(left), ', '.join(str(s['pid']) for s in left)))
        elif action_on_sessions == 'cancel' and want_on:
            warn('sessions=cancel only cancels running statements: a session idle between transactions keeps '
                 'read-write and can commit writes later; use sessions=terminate to stop every writer')
        if want_on and selection == 'writing' and action_on_sessions != 'keep':
            warn('session_selection=writing picks only the sessions writing at the moment of the check: a session '
                 'idle between two transactions keeps read-write; use session_selection=all')
    except Exception:
        if dbs is not None:
            try:
                dbs.rollback()
            except Exception:  # pylint: disable=broad-except  # a broken connection has nothing to roll back
                pass
        raise
    finally:
        if dbs is not None:
            dbs.close()
    changed = (action is not None or bool(revokes) or bool(restores) or write_rec or drop_rec or
               any(s['signalled'] for s in sessions) or (check_mode and bool(sessions)))
    result = dict(changed=changed, state=state, previous_state='on' if was_on else 'off', scope=scope,
                  database=database, sessions=sessions, overrides=found,
                  revoked=[public_grant(g) for g in revokes], restored=[public_grant(g) for g in restores],
                  read_only_since=since.isoformat() if want_on and hasattr(since, 'isoformat') else None)
    if changed and (action is not None or revokes or restores):
        before = {SETTING: result['previous_state'], 'scope': scope, 'database': database}
        after = {SETTING: state, 'scope': scope, 'database': database}
        if revokes or restores:
            before['revoked_privileges'] = len(record['revoked']) if record else 0
            after['revoked_privileges'] = len(merge_revoked((record or {}).get('revoked') or [], revokes)) \
                if want_on else 0
        result['diff'] = dict(before=before, after=after)
    return result
