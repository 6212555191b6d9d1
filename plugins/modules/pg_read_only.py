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
    with. With O(sessions=cancel) or O(sessions=terminate) the module also cancels the statements of, or ends,
    the sessions that write (see O(session_selection)), optionally only those of some applications or users.
    It never touches its own session, replication connections or background processes.
  - Idempotent - it changes the setting only when it differs, and reports every session it signalled.
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
      - What to do with the existing sessions that O(session_selection) picks.
      - V(keep) leaves them alone. V(cancel) cancels their running statement (C(pg_cancel_backend)); a session
        idle inside a write transaction has no statement to cancel, so use V(terminate) for those.
        V(terminate) ends the sessions (C(pg_terminate_backend)); their open transactions roll back.
    type: str
    default: keep
    choices: [keep, cancel, terminate]
  session_selection:
    description:
      - V(writing) picks, while the mode is V(on), the sessions that write. A session writes when it holds a
        transaction ID (C(pg_stat_activity.backend_xid) is set, which PostgreSQL does at the first write of a
        transaction), or when it is running (C(state = active)) a statement whose first keyword is not a read-only
        one (C(SELECT), C(SHOW), C(EXPLAIN), C(FETCH), C(VALUES), C(TABLE), transaction control, C(SET)...).
        A C(SELECT) of a function that writes is not seen as writing until it holds a transaction ID.
      - V(all) picks, in the run that changes the setting, every client session in scope, because idle sessions
        connected before keep their old default and could write later (or, for V(off), stay read-only until they
        reconnect). In later runs it picks only the writers, so a second run does not end reconnected sessions.
    type: str
    default: writing
    choices: [writing, all]
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
    database and server values. The module warns about such role or database settings. For a hard stop of writes
    use the failover module's fencing or revoke privileges.
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
    sessions: terminate

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

from ansible_collections.procgenie.dbops.plugins.module_utils import _read_only as ro
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    PostgresModule, QueryLog, connect, open_session, postgres_argument_spec)
from ansible_collections.procgenie.dbops.plugins.module_utils._failures import clean_failures


def main():
    argument_spec = postgres_argument_spec()
    argument_spec.update(
        state=dict(type='raw', required=True),
        scope=dict(type='str', default='database', choices=['database', 'server']),
        database=dict(type='str'),
        sessions=dict(type='str', choices=['keep', 'cancel', 'terminate']),
        session_selection=dict(type='str', default='all', choices=['writing', 'all']),
        session_application_names=dict(type='list', elements='str'),
        session_users=dict(type='list', elements='str'),
        session_timeout=dict(type='int', default=30),
        revoke_writes=dict(type='list', elements='str'),
    )
    module = PostgresModule(argument_spec=argument_spec, supports_check_mode=True,
                            required_if=[('scope', 'database', ['database'])])
    try:
        ro.normalize_state(module.params['state'])
    except ValueError as exc:
        module.fail_json(msg=str(exc), queries=[], commands=[])
    if module.params['session_timeout'] <= 0:
        module.fail_json(msg='session_timeout must be a positive number of seconds', queries=[], commands=[])
    log = QueryLog()
    session = connect(module, log=log)
    try:
        with clean_failures(module, log, [], 'Changing the read-only mode', ro.ReadOnlyError):
            result = ro.run(module.params, session, module.check_mode, module.warn,
                            lambda name: open_session(module.params, database=name, autocommit=False, log=log))
    finally:
        session.close()
    module.exit_json(queries=log.queries, commands=[], **result)


if __name__ == '__main__':
    main()
