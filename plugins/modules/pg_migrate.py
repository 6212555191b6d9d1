#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_migrate
short_description: Run SQL migrations in dbmate's format, one runner at a time, linted, with lock-timeout retries
version_added: 0.1.0
description:
  - The runbook's migrations (section 3) from Ansible - a folder of SQL migrations in dbmate's format, one file per
    migration named C(<version>_<name>.sql) (version - digits, ordered numerically) with a C(-- migrate:up) section
    and an optional C(-- migrate:down) section; C(transaction:false) on a section marker runs that section outside
    a transaction, statement by statement.
  - Statements are split and classified with PostgreSQL's own parser (pglast), never by splitting on C(;). A
    transactional section holding C(CREATE INDEX CONCURRENTLY), C(DROP INDEX CONCURRENTLY),
    C(REINDEX CONCURRENTLY), C(VACUUM), C(ALTER SYSTEM) or C(CREATE DATABASE) is refused with the file and line.
  - B(Tracking.) dbmate's C(schema_migrations(version)) table is honoured (versions applied by dbmate count as
    applied, and pg_migrate keeps it up to date); the collection's own C(public.dbops_schema_history) records the
    version, name, SHA-256 of the up and down sections, applied_at, applied_by, duration and whether it ran in a
    transaction. A transactional migration commits its rows with it; a non-transactional one records its start and
    its end, so one killed half-way is reported as interrupted and run again by the next V(up) (its statements
    should be idempotent), after the INVALID indexes its C(CREATE INDEX CONCURRENTLY) left are dropped
    concurrently (else C(CREATE INDEX CONCURRENTLY IF NOT EXISTS) would silently keep a broken index). A
    non-transactional down killed half-way is reported as interrupted too (C(direction=down)) - V(down) finishes
    reverting it, V(up) applies it again.
  - B(Drift.) An applied migration whose file changed fails V(up) and V(down) naming it, unless O(allow_drift); an
    applied version without a file is reported in RV(status) (C(missing)).
  - B(One runner at a time.) A session-level advisory lock taken with C(pg_try_advisory_lock) in a retry loop (never
    a blocking or transaction-level lock, which deadlock or hang with C(CREATE INDEX CONCURRENTLY)). A second run
    waits up to O(runner_lock_timeout), then finds nothing pending, or fails naming the holder's pid.
  - B(Lint before anything runs.) The up sections about to run are checked with squawk (PyPI C(squawk-cli)) for the
    server's version; with O(lint=fail) a finding fails the run with its rule, file and line and nothing is applied.
    squawk's own C(-- squawk-ignore) comments are honoured. squawk's C(require-lock-timeout) rule is not checked
    (the module sets O(lock_timeout) on its session before every migration), nor C(require-statement-timeout) when
    O(statement_timeout) is set; with O(lock_timeout=0) the rule applies again.
  - Everything is read and checked before the first statement runs - the files, the options and timeouts (by the
    server), the lock, drift, the target, lint.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  path:
    description:
      - The folder of migration files (C(*.sql); other files are ignored). Required with O(source=dbmate).
    type: path
  source:
    description:
      - V(dbmate) - the SQL files of O(path).
      - V(typeorm) - the application's TypeORM table O(typeorm_table) (C(id), C(timestamp), C(name)); V(status)
        reports it and compares it by name (never by C(timestamp), the class name's suffix) with O(expected);
        V(up) runs the application's O(command) under the runner lock, with O(lock_timeout) and
        O(statement_timeout) in C(PGOPTIONS), reading the table before and after to report what ran (not when
        O(expected) shows nothing pending). V(down) runs the application's revert command (for example
        C(migration:revert)) the same way and reports the names it removed (RV(reverted)); it fails when the table
        is empty or the command removed nothing. V(rehearse) is refused (it needs the SQL files).
    type: str
    default: dbmate
    choices: [dbmate, typeorm]
  typeorm_table:
    description: With O(source=typeorm), the table (the DataSource's C(migrationsTableName), may be schema-qualified).
    type: str
    default: migrations
  expected:
    description:
      - With O(source=typeorm), the migration names the application expects (class names); RV(typeorm.pending) and
        RV(typeorm.unexpected) compare them with the table by name.
    type: list
    elements: str
  compare_with:
    description:
      - With O(source=typeorm), another server's TypeORM table gives the expected names (the restore checklist's
        "run any migrations that were applied after the backup point" - compare the restored server with the current
        one by name, never by timestamp). Connection options not given are the module's.
    type: dict
    suboptions:
      login_host:
        description: The other server's host.
        type: str
      login_port:
        description: Its port.
        type: int
      login_user:
        description: The role to connect as.
        type: str
      login_password:
        description: Its password.
        type: str
      login_db:
        description: Its database.
        type: str
      typeorm_table:
        description: Its TypeORM table (default O(typeorm_table)).
        type: str
  command:
    description:
      - With O(source=typeorm) and O(mode=up), the application's command as an argument list (no shell), for example
        V([npx, typeorm, migration:run, -d, dist/data-source.js, --transaction, each]). It gets the connection
        options as C(PG*) environment variables (never on argv).
    type: list
    elements: str
  command_chdir:
    description: The folder O(command) runs in.
    type: path
  mode:
    description:
      - V(status) reports applied, pending, drifted, missing and interrupted migrations and changes nothing.
      - V(up) applies the pending migrations (up to O(target)).
      - V(down) reverts the newest applied migrations with their down sections - O(steps) of them, or all above
        O(target).
      - V(rehearse) runs the pending migrations (up to O(target)) on a scratch copy of the database (C(CREATE
        DATABASE ... TEMPLATE), unique name, always dropped) - each one applied, reverted, the schema compared with
        the one before (C(pg_dump --schema-only), normalized), applied again - and reports in RV(rehearsal) whether
        each down section restores the schema exactly. The database itself is never changed. The copy needs no
        other session on the database (a refusal names them), C(CREATEDB) and C(pg_dump) not older than the server.
        In production, where sessions are always connected, O(rehearse_from) restores a pg_backup artifact instead.
    type: str
    default: status
    choices: [status, up, down, rehearse]
  rehearse_from:
    description:
      - With O(mode=rehearse), a pg_backup artifact (a C(full) backup of this database, with its manifest; a
        C(schema_only) one carries no tracking rows, so the copy's migration state would be unknown) restored into
        the scratch database instead of a C(TEMPLATE) copy, so a rehearsal needs no quiet database. The manifest,
        the kind, the checksum, the format and a plain script's content are checked, and C(pg_restore) (or C(psql))
        found, before anything is created; the restore runs with C(--no-owner).
      - Migrations the database has applied and the (older) artifact lacks are applied to the copy first
        (RV(caught_up)), then the pending ones are rehearsed.
    type: path
  maintenance_db:
    description: With O(mode=rehearse), the database to connect to while the scratch copy is created and dropped.
    type: str
    default: postgres
  target:
    description:
      - A migration version. V(up) applies up to it (included); V(down) reverts down to just above it.
    type: str
  steps:
    description: With O(mode=down) and no O(target), how many migrations to revert.
    type: int
    default: 1
  lock_timeout:
    description:
      - The session's C(lock_timeout) (the runbook's V(10s)). A statement that waits longer for a lock is retried
        O(lock_retries) times. A short value with retries keeps the table's other queries from queueing behind a
        waiting C(ALTER TABLE) for long.
    type: str
    default: 10s
  lock_retries:
    description:
      - How many times a statement that hit O(lock_timeout) is retried (a transactional migration - the whole
        transaction). Then the run fails naming the sessions holding a lock on the statement's tables.
    type: int
    default: 3
  lock_retry_delay:
    description: Seconds before the first retry; doubled before each next one.
    type: float
    default: 1.0
  statement_timeout:
    description: The session's C(statement_timeout) for the migrations (default - the server's).
    type: str
  runner_lock_timeout:
    description: Seconds to wait for another pg_migrate run of the same database to finish.
    type: float
    default: 60.0
  allow_drift:
    description: Run even when applied migrations changed since they ran.
    type: bool
    default: false
  lint:
    description:
      - V(fail) - a squawk finding on an up section about to run fails the run before anything runs. V(warn) - it
        is returned and warned about. V(off) - squawk is not run.
    type: str
    default: fail
    choices: [fail, warn, 'off']
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Returns the plan - the migrations and their statements in order, transactional or not, the lint findings,
        the INVALID indexes that would be dropped. The runner lock is not taken.
  diff_mode:
    support: none
requirements:
  - pglast (PostgreSQL's parser)
  - pg_dump not older than the server, with O(mode=rehearse)
  - squawk-cli, unless O(lint=off)
notes:
  - Connect directly to the server (port 5432), not through PgBouncer's transaction pooling (Azure's port 6432),
    where a session-level advisory lock does not hold.
  - A migration's own C(SET lock_timeout) applies until its end; the module's settings are set again after it.
seealso:
  - name: dbmate
    description: The migration file format.
    link: https://github.com/amacneil/dbmate
  - name: squawk
    description: The linter of PostgreSQL migrations.
    link: https://squawkhq.com
'''

EXAMPLES = r'''
- name: What is applied, pending, drifted
  procgenie.dbops.pg_migrate:
    login_db: procgenie
    path: /srv/app/db/migrations
  register: migrations

- name: Apply the pending migrations (a short lock_timeout with retries)
  procgenie.dbops.pg_migrate:
    login_db: procgenie
    path: /srv/app/db/migrations
    mode: up
    lock_timeout: 2s
    lock_retries: 5

- name: Rehearse the pending migrations on a scratch copy (down sections checked)
  procgenie.dbops.pg_migrate:
    login_db: procgenie
    path: /srv/app/db/migrations
    mode: rehearse

- name: Rehearse them in production, on a restore of last night's backup
  procgenie.dbops.pg_migrate:
    login_db: procgenie
    path: /srv/app/db/migrations
    mode: rehearse
    rehearse_from: /var/backups/procgenie/backup_20261130_020000.dump

- name: Run the application's TypeORM migrations under the runner lock, checked against the expected names
  procgenie.dbops.pg_migrate:
    login_db: procgenie
    source: typeorm
    mode: up
    expected: "{{ lookup('ansible.builtin.file', '/srv/app/migrations.txt').splitlines() }}"
    command: [npx, typeorm, migration:run, -d, dist/data-source.js, --transaction, each]
    command_chdir: /srv/app

- name: Revert the last migration
  procgenie.dbops.pg_migrate:
    login_db: procgenie
    path: /srv/app/db/migrations
    mode: down
'''

RETURN = r'''
mode:
  description: O(mode).
  returned: always
  type: str
path:
  description: O(path).
  returned: always
  type: str
status:
  description:
    - The state before the run - C(applied), C(pending), C(drifted) (with the changed C(sections)), C(missing)
      (applied versions without a file) and C(interrupted) (non-transactional migrations whose up or down did not
      finish, with C(direction) and C(advice)); lists of dicts with C(version), C(name), C(file).
  returned: always
  type: dict
plan:
  description:
    - The migrations to run, in order - C(version), C(name), C(file), C(direction), C(transactional), C(statements)
      (C(sql), C(line), C(kind)).
  returned: always
  type: list
  elements: dict
lint:
  description: squawk's findings - C(rule), C(file), C(line), C(level), C(message), C(help).
  returned: always
  type: list
  elements: dict
applied:
  description: The migrations applied - C(version), C(name), C(file), C(transactional), C(duration_s), C(lock_retries).
  returned: always
  type: list
  elements: dict
reverted:
  description: The migrations reverted (as RV(applied)).
  returned: always
  type: list
  elements: dict
invalid_indexes:
  description: INVALID indexes left by an interrupted migration, dropped concurrently before it runs again.
  returned: always
  type: list
  elements: str
dbmate_table:
  description: dbmate's table honoured, or null.
  returned: always
  type: str
duration_s:
  description: Seconds the module's work took (reading, lint, the migrations).
  returned: success
  type: float
database:
  description: The database migrated (or rehearsed).
  returned: always
  type: str
rehearsal:
  description:
    - With O(mode=rehearse), one dict a migration - C(version), C(name), C(file), C(up) (applied), C(down)
      (reverted, or why not), C(down_restores_schema), C(schema_diff) (unified diff lines of the schema before up
      and after down, empty when the same), C(reapplied), C(error).
  returned: when O(mode=rehearse)
  type: list
  elements: dict
scratch_database:
  description: With O(mode=rehearse), the name of the scratch copy (dropped at the end).
  returned: when O(mode=rehearse)
  type: str
rehearse_from:
  description: The artifact restored into the scratch database.
  returned: when O(rehearse_from) is set and migrations are pending
  type: str
caught_up:
  description: With O(rehearse_from), the versions applied to the restored copy before the rehearsal (applied to the
    database after the backup was made).
  returned: when O(rehearse_from) is set and migrations are pending
  type: list
  elements: str
typeorm:
  description: With O(source=typeorm) - the table's name and rows, and what was compared and run.
  returned: when O(source=typeorm)
  type: dict
  contains:
    table:
      description: The table found (null when it does not exist).
      type: str
    migrations:
      description: Its rows (C(id), C(timestamp), C(name)) in id order, after the command when it ran.
      type: list
      elements: dict
    pending:
      description: Names of O(expected) not in the table (null without O(expected)).
      type: list
      elements: str
    unexpected:
      description: Names in the table not in O(expected) (null without O(expected)).
      type: list
      elements: str
    command:
      description: The command run (or that would run); empty when nothing is pending.
      type: list
      elements: str
    ran:
      description: Names the command added to the table.
      type: list
      elements: str
    removed:
      description: Names the command removed from the table.
      type: list
      elements: str
    compared_with:
      description: With O(compare_with), the other server (C(server) - host:port/database), C(table) and C(migrations).
      type: dict
blocking_pids:
  description: On a failure after the lock retries, the sessions that held a lock on the statement's tables.
  returned: failure
  type: list
  elements: int
queries:
  description: The SQL the module ran (the migrations' statements included).
  returned: always
  type: list
  elements: str
commands:
  description: Programs run (squawk).
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import client_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    PostgresModule, ensure_psycopg2, missing_requirement_message)
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.migrate import operation, source


def main():
    module = postgres_spec().merge(client_spec(), operation.argument_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    if source.PGLAST_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_requirement_message('pglast', 'pglast', source.PGLAST_IMPORT_ERROR),
                         queries=[], commands=[])
    run_operation(module, operation.Migrate, operation.ERRORS, 'The migration')


if __name__ == '__main__':
    main()
