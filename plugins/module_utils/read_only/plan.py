# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_read_only, the pure decisions: what the state is (catalog values parsed), what to change (the database or
server action, the record, the grants to revoke or restore, in which order), which sessions to act on and why, what
to warn about, and the result's `changed` and `diff`. Plain functions, unit-tested without a server; the operation
(read_only.postgres.ReadOnly) reads the state and calls them."""

from __future__ import annotations

import re

from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker

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

WRITE_PRIVILEGES = ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
COLUMN_WRITE_PRIVILEGES = ('INSERT', 'UPDATE')
RECORD_SCHEMA = 'procgenie_dbops'
RECORD_TABLE = 'read_only_mode'
TABLES_RECORD = 'read_only_tables'
# the lock modes a writing statement holds on its table until its transaction ends (RowExclusiveLock and stronger)
WRITE_LOCKS = ('RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
               'ExclusiveLock', 'AccessExclusiveLock')


class ReadOnlyError(Exception):
    """A refusal of pg_read_only; the message says why. `result` carries what was done before it."""

    def __init__(self, msg, result=None):
        super(ReadOnlyError, self).__init__(msg)
        self.result = result


# ---------------------------------------------------------------- options

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


def check_options(params):
    """What the argument spec cannot express, checked before anything is connected: the state's words, a positive
    session_timeout, revoke_writes only with scope=database, tables only (and, to turn it on, always) with
    scope=tables. Returns the options the run works with (state, want_on, sessions, selection, timeout, roles,
    tables). Raises ReadOnlyError."""
    try:
        state = normalize_state(params['state'])
    except ValueError as exc:
        raise ReadOnlyError(str(exc))
    timeout = params.get('session_timeout')
    if timeout is not None and timeout <= 0:
        raise ReadOnlyError('session_timeout must be a positive number of seconds')
    roles = list(params.get('revoke_writes') or [])
    if roles and params['scope'] != 'database':
        raise ReadOnlyError('revoke_writes works on the tables of one database: use it with scope=database')
    want_on = state == 'on'
    tables = list(params.get('tables') or [])
    if params['scope'] == 'tables':
        if not params.get('database'):
            raise ReadOnlyError('scope=tables needs the database of the tables (database)')
        if want_on and not tables:
            raise ReadOnlyError('scope=tables needs the tables to stop writes to (tables: a list of table names)')
        if any(not str(t or '').strip() for t in tables):
            raise ReadOnlyError('tables: an empty table name was given')
    elif tables:
        raise ReadOnlyError('tables works with scope=tables only')
    return dict(state=state, want_on=want_on, sessions=params.get('sessions') or ('terminate' if want_on else 'keep'),
                selection=params.get('session_selection') or 'all', timeout=timeout or 30, roles=roles,
                tables=tables)


# ---------------------------------------------------------------- catalog values

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


def database_action(was_on, want_on):
    """The ALTER DATABASE action: 'database_on', 'database_off' or None (the setting is already so)."""
    if bool(was_on) == bool(want_on):
        return None
    return 'database_on' if want_on else 'database_off'


def known_since(record, setting_xmin, was_on, action):
    """The recorded moment from which new sessions start read-only, when it still holds: the mode is on and stays
    so, and the setting row is the one the module stamped (same xmin: nobody set it again by hand). Else None."""
    if record and record.get('since') is not None and was_on and not action and \
            record.get('setting_xmin') == setting_xmin:
        return record['since']
    return None


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


def blocking_overrides(found, scope):
    """The overrides that keep sessions read-write although the mode is on: a role-level `off` (it wins over the
    database and the server), or, server-wide, a database-level `off` too."""
    return [o for o in found
            if parse_bool_setting(o['value']) is False and (scope == 'server' or o['role'] is not None)]


def override_warning(item, scope):
    return ('default_transaction_read_only=%s is set for %s and wins over this %s-level setting: those sessions '
            'stay read-write' % (item['value'], ', '.join('%s %s' % (k, item[k]) for k in ('role', 'database')
                                                          if item[k]), scope))


# ---------------------------------------------------------------- sessions

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
                    reason = ('connected before the read-only default was in force, so it keeps the old default '
                              '(read-write)')
                elif session.get('user') in override_roles:
                    reason = 'its role sets default_transaction_read_only = off, which wins over the database'
        elif selection == 'all' and changed_now and session.get('started_before') is not True:
            reason = 'connected while the mode was on, so it stays read-only until it reconnects'
        if reason is not None:
            picked.append(dict(session, reason=reason))
    return picked


def selection_args(params, options, scope, action, blocking):
    """The keyword arguments of select_sessions for this run."""
    args = dict(selection=options['selection'], application_names=params.get('session_application_names'),
                users=params.get('session_users'), changed_now=action is not None, state=options['state'],
                override_roles=set(o['role'] for o in blocking if o['role']))
    if options['want_on']:
        # unknown moment: in the database scope every session may be old; server-wide only when set now
        args['unknown_is_old'] = scope == 'database' or action is not None
    return args


def session_warnings(want_on, action_on_sessions, selection, kept):
    """Warnings about the sessions the run leaves alone: with sessions=keep the `kept` ones (those the selection
    picks), with cancel the idle ones, with writing the ones idle between two transactions."""
    warnings = []
    if action_on_sessions == 'keep':
        if want_on and kept:
            warnings.append('sessions=keep: %d session(s) connected before the read-only default (or whose role '
                            'keeps read-write) can still commit writes: %s' % (
                                len(kept), ', '.join(str(s['pid']) for s in kept)))
        elif kept:
            warnings.append('sessions=keep: %d session(s) connected while the mode was on stay read-only until they '
                            'reconnect: %s' % (len(kept), ', '.join(str(s['pid']) for s in kept)))
    elif action_on_sessions == 'cancel' and want_on:
        warnings.append('sessions=cancel only cancels running statements: a session idle between transactions keeps '
                        'read-write and can commit writes later; use sessions=terminate to stop every writer')
    if want_on and selection == 'writing' and action_on_sessions != 'keep':
        warnings.append('session_selection=writing picks only the sessions writing at the moment of the check: a '
                        'session idle between two transactions keeps read-write; use session_selection=all')
    return warnings


# ---------------------------------------------------------------- strict mode: write privileges of roles

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
    return sorted(grants, key=lambda g: (-int(g.get('depth') or 0), 0 if int(g['grantor_oid']) in role_oids else 1,
                                         g['schema'], g['table'], g.get('attnum') or 0, g['grantee'] or '',
                                         g['privilege']))


def grant_depths(grants, owners):
    """Each grant with `depth`: 0 when the table's owner made it, else 1 + the depth of the grant (with grant option)
    through which its grantor could make it (same table and privilege; table-level or the same column). Revoking
    the deepest first never revokes a grant option on which another grant still depends (a REVOKE without CASCADE
    refuses that); restoring runs the other way. `owners`: relid -> owner oid. A grant whose chain cannot be
    followed counts as deep (revoked early, restored late)."""
    by_grantee = {}
    for grant in grants:
        if grant.get('grantable'):
            key = (int(grant['relid']), grant['privilege'], int(grant['grantee_oid']))
            by_grantee.setdefault(key, []).append(grant)
    memo = {}

    def depth(grant, seen):
        key = grant_key(grant)
        if key in memo:
            return memo[key]
        relid, grantor = int(grant['relid']), int(grant['grantor_oid'])
        if grantor == int(owners.get(relid, -1)):
            found = 0
        else:
            parents = [p for p in by_grantee.get((relid, grant['privilege'], grantor), [])
                       if p.get('attnum') is None or p.get('attnum') == grant.get('attnum')]
            parents = [p for p in parents if grant_key(p) not in seen]
            found = 1 + min([depth(p, seen | set([key])) for p in parents] or [len(grants)])
        memo[key] = found
        return found

    return [dict(g, depth=depth(g, set([grant_key(g)]))) for g in grants]


def group_grants(grants):
    """One statement per (grantor, table, column, grantee, grant option): [(key, [privileges])], in order; the
    grantee PUBLIC (oid 0) is None in the key."""
    groups = []
    index = {}
    for grant in grants:
        grantee = None if int(grant.get('grantee_oid') or 0) == 0 else grant['grantee']  # None: PUBLIC
        key = (grant['grantor'], grant['schema'], grant['table'], grant.get('column'), grantee,
               bool(grant.get('grantable')))
        if key not in index:
            index[key] = len(groups)
            groups.append((key, []))
        if grant['privilege'] not in groups[index[key]][1]:
            groups[index[key]][1].append(grant['privilege'])
    return groups


def grant_statements(grants, role_oids, revoke):
    """The REVOKE (revoke=True) or GRANT statements for the grants, in order: [(grantor, schema, table, column,
    grantee, grantable, privileges)]; the restore runs the revoke order backwards. Refuses a privilege that is not a
    write privilege of its kind (the record is in the database: it is checked, not trusted)."""
    ordered = revoke_order(grants, role_oids)
    if not revoke:
        ordered.reverse()
    statements = []
    for (grantor, schema, table, column, grantee, grantable), privileges in group_grants(ordered):
        allowed = COLUMN_WRITE_PRIVILEGES if column is not None else WRITE_PRIVILEGES
        if any(p not in allowed for p in privileges):
            raise ReadOnlyError('Unexpected privilege in the record: %s' % ', '.join(privileges))
        statements.append((grantor, schema, table, column, grantee, grantable, privileges))
    return statements


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


def missing_grant_warning(grant):
    """The warning for a recorded grant that cannot be put back (its table, column or a role is gone)."""
    return ('Not restored (the table, column or role is gone): %s %s on relation %s by role %s to role %s' % (
        grant.get('privilege'), 'column %s' % grant.get('column') if grant.get('column') else '',
        grant.get('relid'), grant.get('grantor_oid'), grant.get('grantee_oid')))


def public_grant(grant):
    """A grant as the result shows it (no oids; the grantee PUBLIC, oid 0, as PUBLIC)."""
    shown = dict((k, grant.get(k)) for k in ('schema', 'table', 'column', 'grantee', 'grantor', 'privilege',
                                             'grantable'))
    if int(grant.get('grantee_oid') or 0) == 0:
        shown['grantee'] = 'PUBLIC'
    return shown


# ---------------------------------------------------------------- the record

def record_steps(scope, want_on, record, since, revokes):
    """(write the record, drop the record): `on` writes it when there is none, when the moment is unknown or when
    privileges are revoked; `off` drops any record (after restoring its grants)."""
    if scope != 'database':
        return False, False
    if want_on:
        return (record is None or not record.get('has_table') or since is None or bool(revokes)), False
    return False, record is not None


def record_roles(record, role_names):
    """The roles the record names after this run: the earlier ones and the new ones, sorted."""
    return sorted(set((record or {}).get('roles') or []) | set(role_names))


# ---------------------------------------------------------------- the result

def is_changed(action, revokes, restores, write_rec, drop_rec, sessions, planned):
    """`changed`: a setting, a grant or the record changes, or a session is (planned: would be) signalled."""
    if action is not None or revokes or restores or write_rec or drop_rec:
        return True
    if planned:
        return bool(sessions)
    return any(s['signalled'] for s in sessions)


def result_diff(action, scope, database, previous_state, state, record, revokes, restores):
    """The module's diff (the setting, and the number of recorded revoked privileges when grants change), or None
    when neither the setting (`action`) nor a grant changes."""
    if action is None and not revokes and not restores:
        return None
    tracker = DifferenceTracker()
    tracker.add(SETTING, previous_state, state)
    tracker.add('scope', scope, scope, active=False)
    tracker.add('database', database, database, active=False)
    if revokes or restores:
        recorded = (record or {}).get('revoked') or []
        tracker.add('revoked_privileges', len(recorded) if record else 0,
                    len(merge_revoked(recorded, revokes)) if state == 'on' else 0)
    return tracker.diff()


# ---------------------------------------------------------------- scope=tables

def table_state(requested, recorded, want_on):
    """'on' or 'off' before the run for scope=tables: `on` when every requested table (oids) is in the record (for
    state=on), or, for state=off, when any of them is (no tables requested: any recorded at all)."""
    recorded = set(int(r) for r in recorded)
    requested = [int(r) for r in requested]
    if want_on:
        return 'on' if requested and all(r in recorded for r in requested) else 'off'
    if not requested:
        return 'on' if recorded else 'off'
    return 'on' if any(r in recorded for r in requested) else 'off'


def combination_problem(scope, want_on, roles, mode_record, tables_recorded):
    """The refusal for a combination that would make `off` ambiguous, or None. The database-wide default
    (default_transaction_read_only) and the table mode coexist; the database-wide revoke_writes and the table mode do
    not: both would record (and put back) privileges of the same tables, and the first `off` would give back writes
    the other mode still means to stop."""
    if not want_on:
        return None
    if scope == 'tables' and mode_record and (mode_record.get('revoked') or mode_record.get('roles')):
        return ('scope=tables: the database-wide read-only mode with revoke_writes (roles %s) is on in this '
                'database; turn it off first (state=off, scope=database), or keep it - it already takes the write '
                'privileges of those roles' % ', '.join(mode_record.get('roles') or []))
    if scope == 'database' and roles and tables_recorded:
        return ('revoke_writes: writes to %d table(s) of this database are stopped by scope=tables; turn that off '
                'first (state=off, scope=tables), or use the database-wide mode without revoke_writes' % (
                    len(tables_recorded)))
    return None


def lock_reason(lock):
    """Why a session holding a write lock on a stopped table is picked (a pg_locks row: mode, relation)."""
    return ('holds %s on %s: its open transaction has written or is writing there and could commit after the '
            'privileges are revoked' % (lock['mode'], lock['relation']))


def select_lock_holders(holders, application_names=None, users=None):
    """The sessions (pg_stat_activity rows with `locks`) to end: every holder of a write lock, filtered."""
    picked = []
    for session in holders:
        if application_names and session.get('application_name') not in application_names:
            continue
        if users and session.get('user') not in users:
            continue
        picked.append(dict(session, reason='; '.join(lock_reason(l) for l in session['locks'])))
    return picked


def writers_warning(writers, tables):
    """The warning naming the roles that can still write the stopped tables (privileges do not bind them)."""
    if not writers:
        return None
    return ('scope=tables: %s can still write %s: superusers are not bound by privileges, and members of '
            'pg_write_all_data write every table; end their sessions or take the attribute away if they are '
            'application roles' % (', '.join('%s (%s)' % (w['role'], w['why']) for w in writers),
                                   ', '.join(tables) or 'the tables'))


def tables_diff(before, after):
    """The diff of scope=tables: the stopped tables (names) before and after."""
    if sorted(before) == sorted(after):
        return None
    tracker = DifferenceTracker()
    tracker.add('stopped_tables', sorted(before), sorted(after))
    return tracker.diff()
