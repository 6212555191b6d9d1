#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_read_only
short_description: Emergency read-only mode of a PostgreSQL database, server or some tables, ending writing sessions
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
  - For some tables only (O(scope=tables), the runbook's "stop writes to the affected table(s)"), the module takes
    every write privilege (C(INSERT), C(UPDATE), C(DELETE), C(TRUNCATE), and column C(INSERT)/C(UPDATE)) on the
    O(tables) away from every grantee of their ACL - C(PUBLIC), the table's owner (applications often own their
    tables) and every other role - so no application role can write them, whatever its
    C(default_transaction_read_only). The other tables and the rest of the database keep working. Each privilege is
    revoked as the role that granted it, the deepest grants of a grant-option chain first, and recorded (grantee,
    grantor, grant option, column) per table in C(procgenie_dbops.read_only_tables) in the same transaction, before
    the REVOKEs; O(state=off) grants exactly those back as the same grantors (the grant options first), so the ACL
    holds the same entries as before (their order inside C(relacl) may differ; a table that had the default ACL,
    C(relacl) null, gets the explicit equivalent). All or nothing, in one transaction with O(lock_timeout).
  - Decisions of O(scope=tables) - B(sessions) - sessions holding C(RowExclusiveLock) or a stronger lock on one of the
    tables or on one of their sequences (an open transaction that has written there, or is writing, and could commit
    after the REVOKE, as a session that already holds the lock does not see the new ACL) are ended with
    O(sessions=terminate) (the default), listed again until none is left; all other sessions, idle ones and readers
    of the tables included, are left alone (a new statement checks the new ACL). O(session_selection) does not apply.
    B(sequences) of the tables (serial, identity) are left alone - C(nextval) still works, a value taken only leaves a
    gap and writes no row. B(Who can still write) - superusers, and members of C(pg_write_all_data) (PostgreSQL 14
    and later), as privileges do not bind them; RV(writers) lists them and the module warns. B(Foreign keys) - a table
    referencing a stopped table cannot insert rows or change its key while stopped (the foreign-key check locks the
    referenced row as the referenced table's owner, which needs C(UPDATE)); the module warns, naming those tables.
    B(Partitions) of a partitioned table are stopped with it (they can be written directly).
  - B(Coexistence) - the database-wide default (O(scope=database) without O(revoke_writes)) and O(scope=tables) work
    side by side and are turned off separately (the database-wide V(off) leaves the tables' record alone). The
    database-wide O(revoke_writes) and O(scope=tables) would record and give back privileges of the same tables, so
    the one is refused while the other is on. B(pg_row_restore) still writes a stopped table - as a superuser as is; as
    the table owner (or a member of it) it grants the owner the missing privileges inside its own transaction and
    revokes them again before its commit, so no other session ever sees them. The record is readable by every role
    for that.
  - O(scope=tables) with O(state=off) and no O(tables) turns off every table the record holds; with O(tables), those
    of them that are recorded. A second V(on) revokes only what was granted since (and records it); a second V(off)
    finds nothing to do.
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
      - V(database) changes the default of O(database) only; V(server) changes it server-wide; V(tables) stops writes
        to O(tables) of O(database) only, by privileges (see the description).
    type: str
    default: database
    choices: [database, server, tables]
  database:
    description:
      - The database to make read-only (or of the O(tables)). Required when O(scope=database) or O(scope=tables).
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
  tables:
    description:
      - With O(scope=tables), the tables whose writes to stop (O(state=on), required) or resume (O(state=off); without
        it, every table the record holds). Names in SQL syntax (C(orders), C(public.orders), C("Odd Name")), resolved by
        the server - a name without schema on the database's default C(search_path); the partitions of a partitioned
        table come with it. A name that is no table fails the run before any change.
    type: list
    elements: str
  lock_timeout:
    description:
      - C(lock_timeout) of the module's transaction in the database (C(ALTER DATABASE), the C(GRANT)/C(REVOKE)s, which
        update catalog rows that another transaction, a concurrent C(ALTER TABLE) or C(GRANT), may hold). The table
        itself is not locked. PostgreSQL's syntax (C(5s), C(500ms)); after it the run fails and nothing is changed.
    type: str
    default: 5s
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
      - Sequences are left alone (C(nextval) still works; a value taken writes no row), as with O(scope=tables).
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

- name: Stop writes to two tables only (every role, the owner included); end sessions writing them
  procgenie.dbops.pg_read_only:
    scope: tables
    database: procgenie_prod
    tables: [public.orders, order_items]
    state: "on"

- name: Resume writes to those tables (the recorded privileges granted back exactly)
  procgenie.dbops.pg_read_only:
    scope: tables
    database: procgenie_prod
    state: "off"

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
  description: V(database), V(server) or V(tables).
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
tables:
  description: With O(scope=tables), the tables acted on (quoted C(schema.table)); with O(state=off) and no O(tables),
    the recorded ones.
  returned: when O(scope=tables)
  type: list
  elements: str
stopped_tables:
  description: With O(scope=tables), every table of the database whose writes are stopped after the run.
  returned: when O(scope=tables)
  type: list
  elements: str
writers:
  description: With O(scope=tables) and O(state=on), the roles privileges cannot stop, each with C(role) and C(why)
    (V(superuser), V(member of pg_write_all_data)).
  returned: when O(scope=tables)
  type: list
  elements: dict
statements:
  description: With O(scope=tables), the C(SET ROLE)/C(REVOKE)/C(GRANT) statements of the change (in check mode the
    ones that would run; they are then in RV(queries) too, not run).
  returned: when O(scope=tables)
  type: list
  elements: str
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
