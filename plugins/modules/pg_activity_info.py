#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_activity_info
short_description: Connections, long-running and waiting sessions, and the blocking tree of a PostgreSQL server
version_added: 0.1.0
description:
  - Reads C(pg_stat_activity) once and reports what the runbook's connection monitoring (section 4) shows, per
    database - client sessions by state, by C(application_name), and by user and client address; long-running
    statements or transactions over O(min_duration); sessions waiting, with their wait event; sessions idle in a
    transaction, with how long.
  - The blocking tree from C(pg_blocking_pids()) - for every session waiting for a lock, the chain of sessions up to
    its root blocker; and the root blockers (sessions that block others and wait for nobody) with how many sessions
    wait behind them, directly or not, and the longest of those waits. The root blocker is the session to end.
  - Capacity - client connections against what C(max_connections) leaves them (less
    C(superuser_reserved_connections), C(reserved_connections) and, with O(platform=azure), the 15 connections Azure
    keeps); and with O(pool) the check M(procgenie.dbops.pg_tune_params) makes of the application's pool
    (C(DB_MAX_CONNECTIONS) x instances + reserved) against the same figure.
  - Query text is masked (C(PASSWORD '...') of C(CREATE/ALTER ROLE), C(password=...) of connection strings, the
    password of C(postgresql://) URIs) and cut to O(query_length) characters.
  - Two queries (and a C(statement_timeout) of 5 seconds on its own session, so that it never queues behind the
    locks it looks at), whatever the number of sessions. Never changes anything.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  databases:
    description:
      - Report the sessions of these databases only. Capacity and the background processes are the server's.
      - Default - every database.
    type: list
    elements: str
  min_duration:
    description:
      - Seconds from which a session is long-running (RV(long_running)); the runbook's 60 seconds by default.
    type: float
    default: 60
  basis:
    description:
      - What the duration of a session is measured from.
      - V(query) - the start of its current (or, when idle, last) statement; RV(long_running) then lists running
        statements only (C(state = active)), as the runbook's query does.
      - V(transaction) - the start of its open transaction.
      - V(backend) - when it connected.
      - V(state) - its last change of state (how long it has been idle, active, idle in transaction).
    type: str
    default: query
    choices: [query, transaction, backend, state]
  query_length:
    description: Characters of query text to return (after masking secrets); V(0) returns no text.
    type: int
    default: 300
  platform:
    description:
      - Where the server runs. V(azure) - an Azure Database for PostgreSQL flexible server (reached over SQL like
        any server) - takes Azure's 15 reserved connections off the capacity.
    type: str
    default: postgres
    choices: [postgres, azure]
  pool:
    description:
      - The application's connection pool, checked against the capacity as M(procgenie.dbops.pg_tune_params) does.
    type: dict
    suboptions:
      db_max_connections:
        description: The application's C(DB_MAX_CONNECTIONS) (runbook pool table - development 20, production 100).
        type: int
        required: true
      replicas:
        description: Application instances, each with its own pool.
        type: int
        default: 1
      reserved:
        description: Further connections to keep free (migrations, operators, monitoring).
        type: int
        default: 0
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.INFO_MODULE
  - procgenie.dbops.attributes.ACTIONGROUP
notes:
  - Other roles' query text, client addresses and wait events need superuser or membership in C(pg_read_all_stats)
    (C(pg_monitor)); without it PostgreSQL shows C(<insufficient privilege>).
  - Lock waits are timed from C(pg_locks.waitstart) on PostgreSQL 14 and later, from the session's last change of
    state before.
seealso:
  - module: procgenie.dbops.pg_sessions
  - name: pg_stat_activity and pg_blocking_pids
    description: The view and the function the module reads.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
'''

EXAMPLES = r'''
- name: Connections of the application database and who blocks whom
  procgenie.dbops.pg_activity_info:
    login_db: procgenie
    databases: [procgenie]
  register: activity

- name: Fail when a root blocker has held others for more than 30 seconds
  ansible.builtin.assert:
    that: activity.blocking.roots | selectattr('longest_wait_s', 'gt', 30) | list | length == 0
    fail_msg: "end the root blocker: {{ activity.blocking.roots | map(attribute='pid') | join(', ') }}"

- name: Transactions open for more than 5 minutes, and whether the pool fits on Azure
  procgenie.dbops.pg_activity_info:
    min_duration: 300
    basis: transaction
    platform: azure
    pool:
      db_max_connections: 100
      replicas: 4
  register: activity
'''

RETURN = r'''
server:
  description: The server's version number, its time, the login role and the module's own pid (never reported).
  returned: always
  type: dict
  sample: {server_version_num: 150018, now: "2026-08-01T03:12:44.120+00:00", login_role: postgres, own_pid: 4711}
capacity:
  description:
    - C(used) client connections of C(available) = C(max_connections) - C(superuser_reserved_connections) -
      C(reserved_connections) - C(platform_reserved_connections); C(free) and C(usage_percent).
  returned: always
  type: dict
  sample: {max_connections: 800, superuser_reserved_connections: 3, reserved_connections: 0,
           platform_reserved_connections: 0, available: 797, used: 212, free: 585, usage_percent: 26.6}
pool:
  description: With O(pool), the pool check (C(needed), C(available), C(fits), ...) of M(procgenie.dbops.pg_tune_params).
  returned: always
  type: dict
databases:
  description:
    - Per database, its client sessions (the module's own left out) - C(sessions), C(by_state), C(by_application) (application_name to count),
      C(by_client) (list of C(user), C(client_addr) (C(local) for Unix sockets) and C(sessions)).
  returned: always
  type: dict
  sample: {procgenie: {sessions: 3, by_state: {idle: 2, active: 1}, by_application: {procgenie-api: 3},
                       by_client: [{user: procgenie_app, client_addr: 10.0.0.7, sessions: 3}]}}
background:
  description: PostgreSQL's own processes by C(backend_type) (autovacuum workers, WAL senders, checkpointer ...).
  returned: always
  type: dict
basis:
  description: The basis of RV(long_running)'s C(duration_s).
  returned: always
  type: str
min_duration:
  description: The threshold of RV(long_running) in seconds.
  returned: always
  type: float
long_running:
  description:
    - Client sessions over O(min_duration) on O(basis), longest first. Each session has C(pid), C(database),
      C(user), C(application_name), C(client_addr), C(backend_type), C(state), C(backend_start), C(transaction_s),
      C(query_s), C(state_s) (seconds since the transaction, statement and state began), C(wait_event_type),
      C(wait_event), C(query) (masked, cut), C(query_truncated) and C(duration_s).
  returned: always
  type: list
  elements: dict
waiting:
  description: Running statements that wait (C(wait_event) set), with C(wait_s) and C(blocked_by) (pids).
  returned: always
  type: list
  elements: dict
idle_in_transaction:
  description: Sessions idle in a transaction, with C(idle_s) (since the last statement) and C(transaction_s).
  returned: always
  type: list
  elements: dict
blocking:
  description:
    - C(roots) - the root blockers, each a session (C(duration_s) its transaction's age) with C(waiters) (sessions
      waiting behind it, directly or not), C(direct_waiters), C(longest_wait_s) and C(prepared_transaction) (pid 0 -
      a prepared transaction holds the lock).
    - C(waiting) - every session waiting for a lock with C(blocked_by), C(chain) (pids from it up to its root
      blocker), C(roots), C(depth) and C(cycle) (a deadlock the server has not broken yet).
  returned: always
  type: dict
  sample: {roots: [{pid: 101, user: procgenie_app, state: idle in transaction, waiters: 2, direct_waiters: 1,
                    longest_wait_s: 41.2}],
           waiting: [{pid: 102, blocked_by: [101], chain: [102, 101], depth: 1},
                     {pid: 103, blocked_by: [102], chain: [103, 102, 101], depth: 2}]}
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
commands:
  description: Client programs run (none).
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule, ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.activity import info


def main():
    module = postgres_spec().merge(info.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, info.ActivityInfo, info.ERRORS, 'Reading the activity')


if __name__ == '__main__':
    main()
