# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_read_only: emergency read-only mode of a database or a whole server.

Pure decisions (current value, which sessions to act on) are plain functions, unit-tested without a server; the
SQL helpers take a _connection.Session.
"""

from __future__ import annotations

import re

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql

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


def select_sessions(sessions, selection='writing', application_names=None, users=None, changed_now=False,
                    state='on'):
    """The sessions to cancel or terminate, each with the reason.

    `sessions`: client backends other than the module's own. `writing` picks the writers (see write_reason) while
    the mode is on; `all` picks every session when the setting changes in this run, because sessions keep the
    default they started with (and writers in any run). Filters match exactly.
    """
    picked = []
    for session in sessions:
        if application_names and session.get('application_name') not in application_names:
            continue
        if users and session.get('user') not in users:
            continue
        reason = write_reason(session) if state == 'on' else None
        if reason is None and selection == 'all' and changed_now:
            reason = 'connected before the mode changed, so it keeps the old default'
        if reason is not None:
            picked.append(dict(session, reason=reason))
    return picked


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
        "SELECT d.oid, d.datname, s.setconfig FROM pg_database d "
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


def client_sessions(session, database=None):
    """Client sessions other than our own (replication and background processes are not client backends)."""
    query = ("SELECT pid, datname AS database, usename AS \"user\", application_name, client_addr::text AS "
             "client_addr, state, backend_xid::text AS backend_xid, left(query, 200) AS query, "
             "backend_start FROM pg_stat_activity WHERE backend_type = 'client backend' "
             "AND pid <> pg_backend_pid()")
    params = []
    if database is not None:
        query += ' AND datname = %s'
        params.append(database)
    rows = session.rows(sql.SQL(query + ' ORDER BY pid'), params)
    for row in rows:
        if row.get('backend_start') is not None:
            row['backend_start'] = row['backend_start'].isoformat()
    return rows


def signal_session(session, pid, action):
    """pg_cancel_backend / pg_terminate_backend; True when the signal was sent."""
    func = 'pg_terminate_backend' if action == 'terminate' else 'pg_cancel_backend'
    return bool(session.scalar(sql.SQL('SELECT {}(%s)').format(sql.Identifier(func)), (pid,)))


class ReadOnlyError(Exception):
    """A refusal of pg_read_only; the message says why."""


def run(params, session, check_mode=False, warn=None):
    """The whole run of pg_read_only: plan, warnings, change, sessions; returns the result. Raises ReadOnlyError."""
    warn = warn or (lambda msg: None)
    scope = params['scope']
    database = params['database']
    want_on = normalize_state(params['state']) == 'on'
    if session.scalar(sql.SQL('SELECT pg_is_in_recovery()')):
        raise ReadOnlyError('The server is a standby (in recovery): set the read-only mode on the primary; a '
                            'database-level setting replicates to the standbys')
    # The module's own session must be able to run ALTER while the mode it manages is on.
    session.execute(sql.SQL('SET default_transaction_read_only = off'))
    if scope == 'database':
        try:
            current = database_is_on(session, database)
        except LookupError:
            raise ReadOnlyError('Database %s does not exist' % database)
        was_on = bool(current)
        action = None if was_on == want_on else ('database_on' if want_on else 'database_off')
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
    picked = []
    if params['sessions'] != 'keep':
        candidates = client_sessions(session, database)
        picked = select_sessions(candidates, params['session_selection'], params['session_application_names'],
                                 params['session_users'], changed_now=action is not None,
                                 state='on' if want_on else 'off')
    if not check_mode:
        if action in ('database_on', 'database_off'):
            set_database(session, database, want_on)
        elif action is not None:
            apply_server(session, action)
    for item in picked:
        item['action'] = params['sessions']
        item['signalled'] = not check_mode and signal_session(session, item['pid'], params['sessions'])
    changed = action is not None or any(item['signalled'] for item in picked) or (check_mode and bool(picked))
    result = dict(changed=changed, state='on' if want_on else 'off', previous_state='on' if was_on else 'off',
                  scope=scope, database=database, sessions=picked, overrides=found)
    if action is not None:
        result['diff'] = dict(before={SETTING: result['previous_state'], 'scope': scope, 'database': database},
                              after={SETTING: result['state'], 'scope': scope, 'database': database})
    return result
