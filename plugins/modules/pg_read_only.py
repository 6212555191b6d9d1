#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_read_only
short_description: Emergency read-only mode of a PostgreSQL database or server, optionally ending writing sessions
version_added: 0.1.0
description:
  - Turns the runbook's emergency read-only mode on or off. For a database (O(scope=database)) it runs
    C(ALTER DATABASE ... SET default_transaction_read_only = on), as the runbook does, and
    C(ALTER DATABASE ... RESET default_transaction_read_only) to turn it off.
  - For the whole server (O(scope=server)) it runs C(ALTER SYSTEM SET default_transaction_read_only = on) and
    reloads the configuration; V(off) removes the setting from C(postgresql.auto.conf) with C(ALTER SYSTEM RESET)
    (or sets it V(off) there when C(postgresql.conf) itself turns it on) and reloads.
  - The runbook's command only reaches B(new) sessions; sessions already connected keep the default they started
    with, so a connection pool goes on writing. By default (O(sessions=terminate), O(session_selection=all)) the
    module sets the default first, records the moment from which new sessions start read-only, then ends every
    client session of the database that connected before it (or that writes anyway), and lists the sessions again
    until none is left. It never touches its own sessions, replication connections, background processes or other
    databases. When O(state=on) returns, no session of the database that connected before can commit a write.
  - The moment and the privileges revoked by O(revoke_writes) are kept in the database itself, in the table
    C(procgenie_dbops.read_only_mode) (a schema the module creates, owned by its login role). O(state=off) puts
    the privileges back and drops the schema. A schema of that name owned by another, non-superuser role is refused.
  - Idempotent - a second V(on) changes nothing and leaves alone the sessions that started read-only (a pool that
    reconnected); it ends only sessions that connected before the switch or write although the mode is on.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  state:
    description:
      - V(on) makes new transactions read-only by default; V(off) restores read-write.
      - Quote it in YAML, C(state="on"); unquoted C(on)/C(off) and the booleans YAML makes of them are accepted too.
    type: raw
    required: true
  scope:
    description:
      - V(database) changes the default of O(database) only; V(server) changes it server-wide.
    type: str
    default: database
    choices: [database, server]
  database:
    description:
      - The database to make read-only. Required when O(scope=database).
      - With O(scope=server), limits the sessions acted on to this database.
    type: str
  sessions:
    description:
      - What to do with the existing sessions that O(session_selection) picks. Default V(terminate) for
        O(state=on), V(keep) for O(state=off).
      - V(terminate) ends the sessions (C(pg_terminate_backend)); their open transactions roll back. With
        O(state=on) the module lists the sessions again until none of those picked is left (see
        O(session_timeout)).
      - V(keep) leaves them alone and warns that the sessions connected before can still commit writes.
        V(cancel) only cancels their running statement (C(pg_cancel_backend)), with the same warning; a session
        idle between transactions has nothing to cancel and keeps writing afterwards.
      - With O(state=off), V(terminate) ends the sessions that connected while the mode was on (they stay
        read-only until they reconnect).
    type: str
    choices: [keep, cancel, terminate]
  session_selection:
    description:
      - V(all) picks, with O(state=on), every client session of the database that is not known to have started
        read-only - a session's own read-only state cannot be seen from C(pg_stat_activity), so only the sessions
        that connected after the switch count as read-only - plus sessions of roles whose own
        C(default_transaction_read_only = off) setting wins, and sessions that write anyway (they turned the
        default off for themselves). With O(scope=server), in later runs (the reload reached every session) only
        the last two kinds.
      - V(writing) picks only the sessions writing at the moment of the check (holding a transaction ID, or running
        a statement whose first keyword is not a read-only one). A session idle between two transactions is not
        seen, so this does not stop a pool; the module warns.
      - With O(state=off), V(all) picks, in the run that changes the setting, the sessions that connected while the
        mode was on.
    type: str
    default: all
    choices: [writing, all]
  session_timeout:
    description:
      - Seconds to keep ending sessions until none of those picked is left; the module fails after it, naming them.
    type: int
    default: 30
  revoke_writes:
    description:
      - Strict mode for application roles. Revokes the roles' C(INSERT), C(UPDATE), C(DELETE) and C(TRUNCATE)
        privileges on every table, view and foreign table of the database (and their column C(INSERT)/C(UPDATE)
        privileges), so C(SET default_transaction_read_only = off) or C(BEGIN READ WRITE) does not let them write.
      - Each privilege is revoked as the role that granted it and recorded (grantor, grant option, column) in the
        database; O(state=off) grants exactly those back as the same grantors, so the ACLs are as before.
      - Refuses unknown roles and superusers before any change. Warns when a role can still write through C(PUBLIC)
        or a role it inherits from, and when it owns tables (an owner can grant itself back).
      - Only with O(scope=database). Needs a login role that is a superuser or a member of every grantor.
    type: list
    elements: str
  session_application_names:
    description: Only act on sessions whose C(application_name) is one of these.
    type: list
    elements: str
  session_users:
    description: Only act on sessions of these roles.
    type: list
    elements: str
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Reports whether the setting would change and the sessions that would be signalled, and changes nothing.
  diff_mode:
    support: full
notes:
  - C(default_transaction_read_only) is only a default. Any session can run C(SET default_transaction_read_only =
    off) or C(BEGIN READ WRITE) and write again, and role-level settings (C(ALTER ROLE ... SET)) win over the
    database and server values. The module warns about such role or database settings and ends the sessions that
    write anyway; O(revoke_writes) takes the write privileges of application roles away for the time of the mode.
  - A server-wide change reaches existing sessions too at their next transaction after the reload, unless they or
    their role or database set the parameter themselves; a database-level change reaches only new sessions.
  - Needs superuser or ownership of the database for C(ALTER DATABASE), superuser (or C(ALTER SYSTEM) privilege)
    for O(scope=server), and C(pg_signal_backend) membership to signal other roles' sessions.
seealso:
  - module: procgenie.dbops.pg_failover
  - name: default_transaction_read_only
    description: The parameter the module sets.
    link: https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-DEFAULT-TRANSACTION-READ-ONLY
'''

EXAMPLES = r'''
- name: Make procgenie_prod read-only and end the sessions that are writing
  procgenie.dbops.pg_read_only:
    database: procgenie_prod
    state: "on"

- name: Strict - also take the application role's write privileges away until the mode is turned off
  procgenie.dbops.pg_read_only:
    database: procgenie_prod
    state: "on"
    revoke_writes: [procgenie_app]

- name: Whole server read-only, ending every session of the application so its pool reconnects read-only
  procgenie.dbops.pg_read_only:
    scope: server
    state: "on"
    sessions: terminate
    session_selection: all
    session_application_names: [procgenie-api]

- name: Back to read-write
  procgenie.dbops.pg_read_only:
    database: procgenie_prod
    state: "off"
'''

RETURN = r'''
state:
  description: The mode after the run (what it would be in check mode).
  returned: always
  type: str
  sample: "on"
previous_state:
  description: The mode before the run.
  returned: always
  type: str
  sample: "off"
scope:
  description: V(database) or V(server).
  returned: always
  type: str
database:
  description: The database, for O(scope=database) (or the session filter for O(scope=server)).
  returned: always
  type: str
sessions:
  description:
    - The sessions picked, with C(pid), C(database), C(user), C(application_name), C(client_addr), C(state),
      C(backend_xid), C(query) (first 200 characters), C(backend_start), C(reason), C(action) (V(cancel) or
      V(terminate)) and C(signalled) (false in check mode or when the session was already gone).
  returned: always
  type: list
  elements: dict
  sample: [{pid: 4711, user: procgenie_app, application_name: api, state: idle in transaction,
            backend_xid: "1234", reason: holds a write transaction (transaction ID 1234), action: terminate,
            signalled: true}]
revoked:
  description: Write privileges revoked in this run (O(revoke_writes)), each with C(schema), C(table), C(column),
    C(grantee), C(grantor), C(privilege), C(grantable).
  returned: always
  type: list
  elements: dict
restored:
  description: Write privileges granted back by O(state=off), same fields as RV(revoked).
  returned: always
  type: list
  elements: dict
read_only_since:
  description: With O(scope=database) and O(state=on), the moment (ISO-8601) from which new sessions start
    read-only; null in check mode when the mode is not on yet.
  returned: always
  type: str
overrides:
  description: Role- or database-level settings of C(default_transaction_read_only) that win over the one set.
  returned: always
  type: list
  elements: dict
  sample: [{database: null, role: batch_writer, value: "off"}]
diff:
  description: The setting before and after.
  returned: when it changes
  type: dict
queries:
  description: The SQL the module ran.
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
from ansible_collections.procgenie.dbops.plugins.module_utils.read_only import postgres as backend


def main():
    module = postgres_spec().merge(backend.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, backend.ReadOnly, backend.ReadOnlyError, 'Changing the read-only mode')


if __name__ == '__main__':
    main()
