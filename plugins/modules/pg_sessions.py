#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_sessions
short_description: Cancel or terminate PostgreSQL sessions by policy, never PostgreSQL's own or other databases'
version_added: 0.1.0
description:
  - The runbook's connection clean-up (section 4) as a policy - C(pg_cancel_backend) (O(action=cancel)) or
    C(pg_terminate_backend) (O(action=terminate)) for the client sessions the filters select.
  - A session is selected when it meets every filter given - O(users), O(application_names), O(client_addrs),
    O(states), O(min_duration) on O(basis), O(pids), O(blockers_only) - and none of the C(exclude_*) lists.
  - Never signalled, whatever the filters, and listed in RV(not_signalled) with the reason - the module's own session,
    PostgreSQL's own processes (autovacuum workers, WAL senders and receivers, background workers, the
    checkpointer ...), sessions of databases not in O(databases), superusers' sessions unless
    O(include_superusers), and with O(platform=azure) the platform's sessions, which cannot be ended.
  - Each signal is one statement that names the session by its pid B(and) its C(backend_start), so a session that
    ended since it was selected is not touched even when a new session got its pid; it is reported gone.
  - Everything is checked before the first signal - more sessions selected than O(limit), or one the login role may
    not signal, fails and nothing is signalled. Check mode returns exactly the sessions a real run would signal.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  action:
    description:
      - V(cancel) ends the running statement (the session stays; in a transaction block, the transaction is
        aborted). V(terminate) ends the session and rolls back its transaction.
    type: str
    required: true
    choices: [cancel, terminate]
  databases:
    description:
      - The databases whose sessions may be signalled. Default - the database the module connects to (O(login_db)).
    type: list
    elements: str
  users:
    description: Only sessions of these roles.
    type: list
    elements: str
  application_names:
    description: Only sessions with one of these C(application_name) values.
    type: list
    elements: str
  client_addrs:
    description:
      - Only sessions from these client addresses - IP addresses, networks (V(10.0.0.0/8)), or V(local) for
        Unix-socket sessions.
    type: list
    elements: str
  states:
    description: Only sessions in one of these states.
    type: list
    elements: str
    choices: [active, idle, idle in transaction, idle in transaction (aborted), fastpath function call, disabled]
  min_duration:
    description: Only sessions whose duration on O(basis) is at least this many seconds.
    type: float
  basis:
    description:
      - What O(min_duration) is measured from. V(query) - the start of the current or last statement (the runbook's
        C(query_start)); V(transaction) - the start of the open transaction; V(backend) - the connection; V(state) -
        the last change of state, that is how long a session has been idle (or idle in transaction).
    type: str
    default: query
    choices: [query, transaction, backend, state]
  pids:
    description: Only these sessions. A pid listed here that is protected is reported in RV(not_signalled).
    type: list
    elements: int
  blockers_only:
    description:
      - Only root blockers - sessions that hold locks others wait for and wait for nobody themselves (see
        M(procgenie.dbops.pg_activity_info)'s blocking tree). Ending them lets the waiters proceed.
    type: bool
    default: false
  exclude_users:
    description: Never sessions of these roles.
    type: list
    elements: str
  exclude_application_names:
    description: Never sessions with these C(application_name) values.
    type: list
    elements: str
  exclude_client_addrs:
    description: Never sessions from these addresses or networks (V(local) for Unix sockets).
    type: list
    elements: str
  exclude_pids:
    description: Never these pids.
    type: list
    elements: int
  include_superusers:
    description: Also signal sessions of superusers (never with O(platform=azure), where they are the platform's).
    type: bool
    default: false
  limit:
    description:
      - The most sessions the run may signal. When the filters select more, the module fails and signals nothing.
    type: int
  grace:
    description:
      - With O(action=terminate), cancel the selected sessions first, wait up to this many seconds, then terminate
        the ones still there (the runbook's graceful cancel, then force terminate). V(0) terminates at once.
    type: float
    default: 0
  query_length:
    description: Characters of query text to return (after masking secrets); V(0) returns no text.
    type: int
    default: 300
  platform:
    description:
      - V(azure) - an Azure Database for PostgreSQL flexible server (over SQL); sessions of superusers and of the
        platform's roles (C(azuresu), C(replication)) are the platform's and never signalled.
    type: str
    default: postgres
    choices: [postgres, azure]
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Returns exactly the sessions a real run would signal, and signals nothing.
  diff_mode:
    support: none
notes:
  - Signalling other roles' sessions needs superuser, membership in C(pg_signal_backend) or in their role;
    superusers' sessions need a superuser.
  - Ending idle sessions of a healthy connection pool mostly makes it reconnect; sessions idle in a transaction
    are the harmful ones (they hold locks and old snapshots).
seealso:
  - module: procgenie.dbops.pg_activity_info
  - name: Server signaling functions
    description: pg_cancel_backend and pg_terminate_backend.
    link: https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SIGNAL
'''

EXAMPLES = r'''
- name: The runbook's "kill idle connections older than 10 minutes", for the application only
  procgenie.dbops.pg_sessions:
    login_db: procgenie
    action: terminate
    users: [procgenie_app]
    states: [idle]
    min_duration: 600
    basis: state
    limit: 200

- name: End the root blockers (the waiters proceed), cancelling their statement first
  procgenie.dbops.pg_sessions:
    action: terminate
    blockers_only: true
    grace: 5

- name: Cancel one statement
  procgenie.dbops.pg_sessions:
    action: cancel
    pids: [12345]
'''

RETURN = r'''
action:
  description: The action, as given.
  returned: always
  type: str
databases:
  description: The databases whose sessions could be signalled.
  returned: always
  type: list
  elements: str
sessions:
  description:
    - The selected sessions - in check mode exactly those a real run would signal. Each has C(pid), C(database),
      C(user), C(application_name), C(client_addr), C(backend_type), C(state), C(backend_start), C(duration_s) (on
      O(basis)), C(transaction_s), C(query_s), C(state_s), C(wait_event_type), C(wait_event), C(query) (secrets
      masked, cut to O(query_length)), C(query_truncated), C(signals) (sent), C(signalled) and C(outcome)
      (C(terminated), C(cancelled), C(cancelled, then terminated), C(cancelled, then ended by itself), C(gone)).
  returned: always
  type: list
  elements: dict
signalled:
  description: The sessions that were signalled (none in check mode).
  returned: always
  type: list
  elements: dict
not_signalled:
  description:
    - Sessions the filters picked but that were not signalled, each with its C(reason) - protected (own session,
      PostgreSQL's own process, database not listed, superuser, Azure platform) or gone before the signal.
  returned: always
  type: list
  elements: dict
  sample: [{pid: 88, backend_type: autovacuum worker, reason: "not a client session (autovacuum worker): ..."}]
limit:
  description: The limit, as given.
  returned: always
  type: int
grace:
  description: Seconds between the cancel and the terminate.
  returned: always
  type: float
basis:
  description: The basis of C(duration_s).
  returned: always
  type: str
queries:
  description: The SQL the module ran (the signals included).
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
from ansible_collections.procgenie.dbops.plugins.module_utils.activity import sessions


def main():
    module = postgres_spec().merge(sessions.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, sessions.Sessions, sessions.ERRORS, 'Signalling the sessions')


if __name__ == '__main__':
    main()
