# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the activity modules read and send: one query for the settings, one for every process of pg_stat_activity
(with its blocking pids), and the guarded signals. The number of queries does not grow with the sessions.

Every query runs under a short statement_timeout (pg_blocking_pids() takes the lock manager's partition locks; a
monitoring query must not queue behind the trouble it looks at): set once on the module's own session."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql
from ansible_collections.procgenie.dbops.plugins.module_utils.activity.text import shown_query

STATEMENT_TIMEOUT = '5s'
# extra characters read beyond query_length, so that masking sees the end of a literal the cut would split
QUERY_MARGIN = 256

SETTINGS = """
SELECT current_setting('server_version_num')::int AS server_version_num,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved_connections,
       coalesce(current_setting('reserved_connections', true), '0')::int AS reserved_connections,
       current_database() AS current_database, current_user AS login_role, pg_backend_pid() AS own_pid,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS login_superuser,
       now() AS now
"""

# pg_locks.waitstart (PostgreSQL 14 and later): when each waiting session began to wait for its lock
WAITS_14 = "SELECT pid, min(waitstart) AS waitstart FROM pg_locks WHERE NOT granted GROUP BY pid"
WAITS_OLD = "SELECT NULL::int AS pid, NULL::timestamptz AS waitstart WHERE false"

SESSIONS = """
WITH waits AS ({waits}),
     me AS (SELECT rolsuper, pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS signal_backend
            FROM pg_roles WHERE rolname = current_user)
SELECT a.pid, a.datname AS database, a.usename AS "user", a.application_name, host(a.client_addr) AS client_addr,
       a.client_port, a.backend_type, a.state, a.backend_start,
       extract(epoch FROM now() - a.backend_start)::float8 AS backend_s,
       extract(epoch FROM now() - a.xact_start)::float8 AS transaction_s,
       extract(epoch FROM now() - a.query_start)::float8 AS query_s,
       extract(epoch FROM now() - a.state_change)::float8 AS state_s,
       a.wait_event_type, a.wait_event,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) ELSE '{{}}'::int[] END AS blocked_by,
       extract(epoch FROM now() - coalesce(w.waitstart, CASE WHEN a.wait_event_type = 'Lock'
                                                             THEN a.state_change END))::float8 AS wait_s,
       left(a.query, %(chars)s) AS query, length(a.query) AS query_chars,
       coalesce(r.rolsuper, false) AS superuser, a.pid = pg_backend_pid() AS own,
       CASE WHEN me.rolsuper THEN true WHEN coalesce(r.rolsuper, false) THEN false
            WHEN me.signal_backend THEN true
            WHEN a.usesysid IS NOT NULL THEN pg_has_role(current_user, a.usesysid, 'USAGE')
            ELSE false END AS can_signal
FROM pg_stat_activity a CROSS JOIN me
LEFT JOIN pg_roles r ON r.oid = a.usesysid
LEFT JOIN waits w ON w.pid = a.pid
ORDER BY a.pid
"""

# The signals: one statement per session, guarded by its pid AND its backend_start, so a session that ended and
# whose pid a new session got is never touched (no row, nothing signalled: reported gone).
SIGNAL = """
SELECT pid, {function}(pid) AS signalled FROM pg_stat_activity
WHERE pid = %s AND backend_start = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""
FUNCTIONS = dict(cancel='pg_cancel_backend', terminate='pg_terminate_backend')

# which of the (pid, backend_start) pairs still exist
ALIVE = """
SELECT a.pid FROM pg_stat_activity a
JOIN unnest(%s::int[], %s::timestamptz[]) AS s(pid, backend_start)
  ON s.pid = a.pid AND s.backend_start = a.backend_start
"""


def prepare(session):
    """The module's own session: a short statement_timeout, and a lock_timeout for the same reason."""
    session.execute(sql.SQL("SELECT set_config('statement_timeout', %s, false), "
                            "set_config('lock_timeout', %s, false)"), (STATEMENT_TIMEOUT, STATEMENT_TIMEOUT))


def settings(session):
    return session.row(sql.SQL(SETTINGS))


def sessions(session, server_version_num, query_length):
    """Every process of pg_stat_activity as a row (see activity.model), query text masked and cut."""
    waits = WAITS_14 if server_version_num >= 140000 else WAITS_OLD
    rows = session.rows(sql.SQL(SESSIONS.format(waits=waits)), dict(chars=query_length + QUERY_MARGIN))
    for row in rows:
        row['query'], row['query_truncated'] = shown_query(row['query'], query_length, row.pop('query_chars'))
        row['blocked_by'] = list(row.get('blocked_by') or [])
        for name in ('backend_s', 'transaction_s', 'query_s', 'state_s', 'wait_s'):
            if row.get(name) is not None:
                row[name] = round(max(row[name], 0.0), 3)
    return rows


def snapshot(session, query_length):
    """What both modules read, in three queries whatever the number of sessions: the guards on the module's own
    session, the settings, and every process as a row. Returns (settings, rows)."""
    prepare(session)
    facts = settings(session)
    return facts, sessions(session, facts['server_version_num'], query_length)


def signal(session, action, pid, backend_start):
    """Send the signal to the session if it is still the one planned; True when sent, None when it is gone."""
    row = session.row(sql.SQL(SIGNAL.format(function=FUNCTIONS[action])), (pid, backend_start))
    if row is None:
        return None
    return bool(row['signalled'])


def alive(session, planned):
    """The pids of the planned (pid, backend_start) sessions that still exist."""
    if not planned:
        return set()
    rows = session.rows(sql.SQL(ALIVE), ([p for p, _unused in planned], [b for _unused2, b in planned]))
    return set(r['pid'] for r in rows)
