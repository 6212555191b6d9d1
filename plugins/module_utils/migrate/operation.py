# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_migrate: its options (argument_spec) and the operation `Migrate`.

plan() reads the folder (every file parsed by PostgreSQL's parser), validates the options and the timeouts (by the
server), takes the runner lock (not in check mode: a plan is read-only), reads the tracking tables, refuses drift,
selects what to run, finds the INVALID indexes an interrupted migration left, lints the up sections about to run
with squawk, and returns the plan (check mode's result: the statements in order, transactional or not, lint
findings). apply() drops those INVALID indexes concurrently, then runs each migration: a transactional one in one
transaction with its tracking rows; a non-transactional one statement by statement between a start and an end
record. A statement that hits lock_timeout is retried `lock_retries` times with backoff (the whole transaction for
a transactional migration); after that the run fails naming the sessions holding a lock on its tables."""

from __future__ import annotations

import os
import re
import shutil
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import (
    ClientRunner, dbname_conninfo, install_sigterm_handler, on_cancel, forget, server_major)
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    database_error_message, open_session, psycopg2)
from ansible_collections.procgenie.dbops.plugins.module_utils._dump_restore import RestoreFailure, run_restore
from ansible_collections.procgenie.dbops.plugins.module_utils._lock_retry import backoff, is_lock_timeout
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils._timeouts import problem as timeout_problem
from ansible_collections.procgenie.dbops.plugins.module_utils.migrate import (
    lint, planning, rehearse, source, tracking, typeorm)
from ansible_collections.procgenie.dbops.plugins.module_utils.migrate.lint import LintError
from ansible_collections.procgenie.dbops.plugins.module_utils.migrate.source import MigrationError


class MigrateFailure(Exception):
    """The migration run failed; `result` carries what was done before."""

    def __init__(self, msg, result=None):
        super(MigrateFailure, self).__init__(msg)
        self.result = result or {}


ERRORS = (MigrateFailure, MigrationError, LintError, typeorm.TypeOrmError)
SAFE_SETTING = re.compile(r'^[A-Za-z0-9_.]+$')


def argument_spec():
    return ArgumentSpec(dict(
        path=dict(type='path'),
        source=dict(type='str', default='dbmate', choices=['dbmate', 'typeorm']),
        typeorm_table=dict(type='str', default='migrations'),
        expected=dict(type='list', elements='str'),
        rehearse_from=dict(type='path'),
        compare_with=dict(type='dict', options=dict(
            login_host=dict(type='str'), login_port=dict(type='int'), login_user=dict(type='str'),
            login_password=dict(type='str', no_log=True), login_db=dict(type='str'),
            typeorm_table=dict(type='str'))),
        command=dict(type='list', elements='str'),
        command_chdir=dict(type='path'),
        mode=dict(type='str', default='status', choices=['status', 'up', 'down', 'rehearse']),
        maintenance_db=dict(type='str', default='postgres'),
        target=dict(type='str'),
        steps=dict(type='int', default=1),
        lock_timeout=dict(type='str', default='10s'),
        lock_retries=dict(type='int', default=3),
        lock_retry_delay=dict(type='float', default=1.0),
        statement_timeout=dict(type='str'),
        runner_lock_timeout=dict(type='float', default=60.0),
        allow_drift=dict(type='bool', default=False),
        lint=dict(type='str', default='fail', choices=['fail', 'warn', 'off']),
    ), required_if=[('source', 'dbmate', ['path'])], mutually_exclusive=[('expected', 'compare_with')])


def check_options(params):
    for name in ('lock_retries', 'lock_retry_delay', 'runner_lock_timeout'):
        if params[name] < 0:
            raise MigrateFailure('%s must not be negative (got %s)' % (name, params[name]))
    if params['steps'] < 1:
        raise MigrateFailure('steps must be at least 1 (got %s)' % params['steps'])
    for name in ('lock_timeout', 'statement_timeout'):
        trouble = timeout_problem(name, params.get(name))
        if trouble:
            raise MigrateFailure(trouble)


class Migrate(SessionOperation):
    """pg_migrate: plan() reads, validates, locks and lints; apply() runs what was planned, and only that."""

    programs = True

    @classmethod
    def make_runner(cls, params):
        return ClientRunner(params)

    def __init__(self, params, ctx):
        super(Migrate, self).__init__(params, ctx)
        self.migrations = []
        self.todo = []
        self.invalid = []
        self.dbmate = None
        self.locked = False
        self.cancel_token = None
        self.database = None
        self.pg_dump = None
        self.typeorm_rows = []
        self.artifact = None

    def run(self):
        result = super(Migrate, self).run()
        return dict(result, duration_s=self.elapsed())

    # ------------------------------------------------------------------------------------------ plan
    def plan(self):
        params = self.params
        check_options(params)
        mode = params['mode']
        if params['source'] == 'typeorm':
            return self.plan_typeorm()
        self.migrations = source.read_folder(params['path'])
        session = self.connect()
        if mode in ('up', 'down') and not self.ctx.check_mode:
            self.take_runner_lock()
        history = tracking.read_history(session)
        self.dbmate = tracking.dbmate_table(session)
        status = planning.state(self.migrations, history, tracking.read_dbmate(session, self.dbmate))
        result = dict(changed=False, mode=mode, path=params['path'], status=status, plan=[], lint=[],
                      applied=[], reverted=[], invalid_indexes=[],
                      dbmate_table=self.dbmate, database=self.database)
        if mode == 'status':
            return result
        if status['drifted'] and not params['allow_drift']:
            raise MigrateFailure(
                'Applied migrations changed since they ran (drift): %s; restore the files, or set allow_drift' % (
                    ', '.join('%s (%s section)' % (d['file'], '/'.join(d['sections'])) for d in status['drifted'])),
                dict(result))
        if mode == 'rehearse':
            return self.plan_rehearsal(result, status)
        if mode == 'up':
            self.todo = planning.select_up(self.migrations, status, params.get('target'))
            direction = 'up'
        else:
            self.todo = planning.select_down(self.migrations, status, params.get('target'), params['steps'])
            direction = 'down'
        result['plan'] = [planning.steps_of(m, direction) for m in self.todo]
        result['changed'] = bool(self.todo)
        if direction == 'up':
            names = [s.index for m in self.todo for s in m.up.statements if s.index]
            self.invalid = tracking.invalid_indexes(session, names)
            result['invalid_indexes'] = ['%s.%s' % pair for pair in self.invalid]
            if self.invalid:
                self.warn('INVALID indexes left by an interrupted CREATE INDEX CONCURRENTLY (%s) are dropped '
                          'concurrently before the migration runs again' % ', '.join(result['invalid_indexes']))
            result['lint'] = self.lint(result)
        return result

    # ------------------------------------------------------------------------------------------ TypeORM
    def connect(self):
        install_sigterm_handler()
        if psycopg2 is not None:
            psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)  # a cancel interrupts a query
        session = self.open()
        self.cancel_token = on_cancel(session.conn.cancel)
        self.set_timeouts()
        self.database = session.scalar('SELECT current_database()')
        return session

    def take_runner_lock(self):
        holders = tracking.try_runner_lock(self.session, self.params['runner_lock_timeout'])
        if holders is not None:
            raise MigrateFailure(
                'Another pg_migrate run holds the migration lock of this database (pid %s) and did not release '
                'it within %s s (runner_lock_timeout): nothing was run' % (
                    ', '.join(str(p) for p in holders) or 'unknown', self.params['runner_lock_timeout']))
        self.locked = True

    def plan_typeorm(self):
        """source=typeorm: the application's table read (and compared by name with `expected`); with mode=up, the
        application's command checked, the runner lock taken; nothing runs."""
        params = self.params
        mode = params['mode']
        if mode not in ('status', 'up', 'down'):
            raise MigrateFailure('source=typeorm supports mode status, up and down (the application\'s own command); '
                                 'rehearse the SQL files with source=dbmate')
        command = params.get('command') or []
        if mode in ('up', 'down'):
            if not command:
                raise MigrateFailure('source=typeorm with mode=%s runs the application\'s command: set command, '
                                     'for example [npx, typeorm, %s, -d, dist/data-source.js%s]' % (
                                         mode, 'migration:run' if mode == 'up' else 'migration:revert',
                                         ', --transaction, each' if mode == 'up' else ''))
            program = command[0] if os.path.isabs(command[0]) else shutil.which(command[0])
            if not program or not os.access(program, os.X_OK):
                raise MigrateFailure('The command %s is not found (or not executable)' % command[0])
            if params.get('command_chdir') and not os.path.isdir(params['command_chdir']):
                raise MigrateFailure('command_chdir %s is not a folder' % params['command_chdir'])
            for name in ('lock_timeout', 'statement_timeout'):
                if params.get(name) is not None and not SAFE_SETTING.match(params[name]):
                    raise MigrateFailure('%s %r: the command gets it in PGOPTIONS, which takes letters, digits, '
                                         '"_" and "." only (for example 10s)' % (name, params[name]))
        session = self.connect()
        if mode in ('up', 'down') and not self.ctx.check_mode:
            self.take_runner_lock()
        rows, regclass = typeorm.read_table(session, params['typeorm_table'])
        expected = params.get('expected')
        other = None
        if params.get('compare_with'):
            other = self.other_table(params['compare_with'])
            expected = [r['name'] for r in other['migrations']]
        pending, unexpected = typeorm.compare(rows, expected)
        self.typeorm_rows = rows
        if mode == 'down':
            if not rows:
                raise MigrateFailure('down: no migration is applied (%s is %s)' % (
                    params['typeorm_table'], 'empty' if regclass else 'missing'))
            will_run = True  # migration:revert reverts the newest one
        else:
            will_run = mode == 'up' and (pending is None or bool(pending))
        status = dict(applied=[dict(version=r['timestamp'], name=r['name'], id=r['id']) for r in rows],
                      pending=[dict(name=n) for n in pending or []], drifted=[],
                      missing=[dict(name=n) for n in unexpected or []], interrupted=[])
        return dict(changed=will_run, mode=mode, source='typeorm', path=params.get('path'), status=status, plan=[],
                    lint=[], applied=[], reverted=[], invalid_indexes=[], dbmate_table=None, database=self.database,
                    typeorm=dict(table=regclass, migrations=rows, pending=pending, unexpected=unexpected,
                                 command=command if will_run else [], ran=[], removed=[], compared_with=other))

    def other_table(self, other):
        """The TypeORM table of another server (compare_with): the names expected here."""
        options = dict((k, v) for k, v in other.items() if v is not None and k != 'typeorm_table')
        session = open_session(dict(self.params, **options), log=self.log)
        try:
            rows, regclass = typeorm.read_table(session, other.get('typeorm_table') or self.params['typeorm_table'])
        finally:
            session.close()
        if regclass is None:
            raise typeorm.TypeOrmError('compare_with: the server has no TypeORM table %s' % (
                other.get('typeorm_table') or self.params['typeorm_table']))
        where = '%s:%s/%s' % (options.get('login_host') or self.params.get('login_host') or 'socket',
                              options.get('login_port') or self.params.get('login_port'),
                              options.get('login_db') or self.params.get('login_db'))
        return dict(server=where, table=regclass, migrations=rows)

    def apply_typeorm(self, result):
        if not result['changed']:
            return result
        options = ['-c lock_timeout=%s' % self.params['lock_timeout']]
        if self.params.get('statement_timeout') is not None:
            options.append('-c statement_timeout=%s' % self.params['statement_timeout'])
        if (self.params.get('connect_params') or {}).get('options'):  # PGOPTIONS below replaces the connection's own
            options.insert(0, str(self.params['connect_params']['options']))
        self.runner.run(self.params['command'], database=self.database, cwd=self.params.get('command_chdir'),
                        env_extra=dict(PGOPTIONS=' '.join(options)))
        after, _regclass = typeorm.read_table(self.session, self.params['typeorm_table'])
        added, removed = typeorm.ran(self.typeorm_rows, after)
        expected = self.params.get('expected')
        if result['typeorm'].get('compared_with'):
            expected = [r['name'] for r in result['typeorm']['compared_with']['migrations']]
        pending, unexpected = typeorm.compare(after, expected)
        result = dict(result, changed=bool(added or removed))
        result['typeorm'] = dict(result['typeorm'], migrations=after, pending=pending, unexpected=unexpected,
                                 ran=[r['name'] for r in added], removed=removed)
        result['applied'] = [dict(version=r['timestamp'], name=r['name']) for r in added]
        result['reverted'] = [dict(version=r['timestamp'], name=r['name']) for r in self.typeorm_rows
                              if r['name'] in removed]
        if self.params['mode'] == 'down':
            if not removed:
                raise MigrateFailure('The application\'s command ran but no migration left %s' % (
                    result['typeorm']['table'],), result)
            return result
        if pending:
            raise MigrateFailure('The application\'s command ran %d migration(s) but %s are still not in %s' % (
                len(added), ', '.join(pending), result['typeorm']['table']), result)
        return result

    def plan_rehearsal(self, result, status):
        """Rehearse: the pending migrations (up to target), the programs, the copy's name; nothing changes."""
        self.todo = planning.select_up(self.migrations, status, self.params.get('target'))
        result['plan'] = [planning.steps_of(m, 'up') for m in self.todo]
        result['rehearsal'] = []
        result['scratch_database'] = None
        if not self.todo:
            return result
        major = server_major(self.session.server_version_num)
        self.pg_dump = self.runner.find('pg_dump', major)
        if self.params.get('rehearse_from'):
            self.artifact = rehearse.check_artifact(self.runner, self.params['rehearse_from'], major)
            self.major = major
            result['rehearse_from'] = self.artifact['path']
        else:
            others = rehearse.others_on(self.session, self.database)
            if others:
                raise MigrateFailure(
                    'rehearse copies %s with CREATE DATABASE ... TEMPLATE, which needs no other session on it; pids '
                    '%s are connected: nothing was done (rehearse_from restores a pg_backup artifact instead)' % (
                        self.database, ', '.join(str(p) for p in others)), dict(result))
        result['lint'] = self.lint(result)
        result['scratch_database'] = rehearse.scratch_name(self.database)
        return result

    def set_timeouts(self):
        try:
            self.session.scalar("SELECT set_config('lock_timeout', %s, false)", (self.params['lock_timeout'],))
            if self.params.get('statement_timeout') is not None:
                self.session.scalar("SELECT set_config('statement_timeout', %s, false)",
                                    (self.params['statement_timeout'],))
        except psycopg2.Error as exc:
            raise MigrateFailure('lock_timeout/statement_timeout refused by the server: %s' % (
                database_error_message(exc),))

    def lint(self, result):
        if self.params['lint'] == 'off' or not self.todo:
            return []
        squawk = lint.find_squawk()
        if squawk is None:
            raise LintError('squawk is needed to lint the migrations (pip install squawk-cli) unless lint=off')
        num = self.session.server_version_num
        version = '%d.%d' % (num // 10000, num % 10000)
        settings = dict((name, self.session.scalar('SELECT current_setting(%s)', (name,)))
                        for name, _rule in lint.TIMEOUT_RULES)
        findings = lint.lint(self.runner, squawk, self.todo, version, exclude=lint.covered_rules(settings))
        if findings and self.params['lint'] == 'fail':
            raise MigrateFailure('Lint (squawk) refused the migrations, nothing was run: %s' % lint.describe(
                findings), dict(result, lint=findings, changed=False))
        if findings:
            self.warn('Lint (squawk): %s' % lint.describe(findings))
        return findings

    # ------------------------------------------------------------------------------------------ apply
    def apply(self, plan):
        result = dict(plan)
        if self.params['source'] == 'typeorm':
            return self.apply_typeorm(result)
        if self.params['mode'] == 'rehearse':
            return self.rehearse(result) if self.todo else result
        session = self.session
        if not self.todo:
            return result
        tracking.create_history(session)
        for schema, name in self.invalid:
            tracking.drop_index_concurrently(session, schema, name)
        direction = self.params['mode']
        for migration in self.todo:
            try:
                done = self.run_one(migration, direction)
            except MigrateFailure as exc:
                exc.result = dict(result, **exc.result)
                raise
            result['applied' if direction == 'up' else 'reverted'].append(done)
        return result

    # ------------------------------------------------------------------------------------------ rehearse
    def schema(self, scratch):
        _rc, out, _err = self.runner.run([self.pg_dump, '--schema-only', '--dbname=%s' % dbname_conninfo(scratch)],
                                         database=scratch)
        return rehearse.normalize(out)

    def rehearse(self, result):
        scratch = result['scratch_database']
        self.close_session()
        admin = open_session(self.params, database=self.params['maintenance_db'], log=self.log)
        token = on_cancel(admin.conn.cancel)
        try:
            if self.artifact:
                rehearse.create_empty(admin, scratch)
            else:
                rehearse.create_copy(admin, scratch, self.database)
            try:
                if self.artifact:
                    self.restore_artifact(scratch)
                self.open(database=scratch)
                self.cancel_token = on_cancel(self.session.conn.cancel)
                self.set_timeouts()
                tracking.create_history(self.session)
                if self.artifact:
                    result['caught_up'] = self.catch_up()
                for migration in self.todo:
                    entry = dict(version=migration.version, name=migration.name, file=migration.file, up=False,
                                 down=None, down_restores_schema=None, schema_diff=[], reapplied=False)
                    result['rehearsal'].append(entry)
                    try:
                        before = self.schema(scratch)
                        self.run_one(migration, 'up')
                        entry['up'] = True
                        if migration.down is None:
                            entry['down'] = 'no -- migrate:down section'
                            continue
                        self.run_one(migration, 'down')
                        entry['down'] = True
                        entry['schema_diff'] = rehearse.schema_diff(before, self.schema(scratch))
                        entry['down_restores_schema'] = not entry['schema_diff']
                        self.run_one(migration, 'up')
                        entry['reapplied'] = True
                    except (MigrateFailure, psycopg2.Error) as exc:
                        entry['error'] = str(exc) if isinstance(exc, MigrateFailure) else database_error_message(exc)
                        break
            finally:
                self.close_session()
                rehearse.drop_copy(admin, scratch)
        finally:
            forget(token)
            admin.close()
        problems = ['the down section of %s does not restore the schema' % e['file']
                    for e in result['rehearsal'] if e['down_restores_schema'] is False]
        problems += ['%s: %s' % (e['file'], e['error']) for e in result['rehearsal'] if e.get('error')]
        if problems:
            raise MigrateFailure('Rehearsal on a scratch copy (dropped; %s was not changed): %s' % (
                self.database, '; '.join(problems)), dict(result))
        return result

    def restore_artifact(self, scratch):
        artifact = self.artifact
        try:
            run_restore(self.runner, self.major, artifact['path'], artifact['manifest'], scratch, no_owner=True,
                        program=artifact['program'])
        except RestoreFailure as exc:
            raise MigrateFailure('Restoring %s into the scratch database failed (dropped; %s was not changed): %s' % (
                artifact['path'], self.database, exc))

    def catch_up(self):
        """Apply to the restored copy the migrations the database has and the artifact lacks (older backup), so
        the pending ones are rehearsed on the schema they will meet; their versions."""
        dbmate = tracking.dbmate_table(self.session)
        copy = planning.state(self.migrations, tracking.read_history(self.session),
                              tracking.read_dbmate(self.session, dbmate))
        rehearsed = set(m.version for m in self.todo)
        behind = [m for m in planning.select_up(self.migrations, copy) if m.version not in rehearsed]
        saved, self.dbmate = self.dbmate, dbmate
        try:
            for migration in behind:
                self.run_one(migration, 'up')
        except MigrateFailure as exc:
            raise MigrateFailure('Bringing the restored copy up to the database\'s migrations failed: %s' % exc)
        finally:
            self.dbmate = saved
        return [m.version for m in behind]

    def close_session(self):
        if self.cancel_token is not None:
            forget(self.cancel_token)
            self.cancel_token = None
        if self.session is not None:
            self.session.close()
            self.session = None

    def run_one(self, migration, direction):
        section = migration.section(direction)
        started = time.monotonic()
        retries = 0
        if section.transactional:
            while True:
                try:
                    self.session.execute('BEGIN')
                    if direction == 'up':
                        tracking.record_start(self.session, migration, True)
                    for statement in section.statements:
                        self.statement(migration, section, statement)
                    if direction == 'up':
                        tracking.record_end(self.session, migration, time.monotonic() - started, self.dbmate)
                    else:
                        tracking.record_down(self.session, migration.version, self.dbmate)
                    self.session.execute('COMMIT')
                    break
                except _LockTimeout as exc:
                    self.session.execute('ROLLBACK')
                    retries = self.retry_or_fail(migration, exc.statement, retries)
                except (MigrateFailure, psycopg2.Error):
                    try:
                        self.session.execute('ROLLBACK')
                    except psycopg2.Error:
                        pass
                    raise
        else:
            if direction == 'up':
                tracking.record_start(self.session, migration, False)
            else:
                tracking.record_down_start(self.session, migration.version)
            for statement in section.statements:
                while True:
                    try:
                        self.statement(migration, section, statement)
                        break
                    except _LockTimeout as exc:
                        retries = self.retry_or_fail(migration, exc.statement, retries)
            if direction == 'up':
                tracking.record_end(self.session, migration, time.monotonic() - started, self.dbmate)
            else:
                tracking.record_down(self.session, migration.version, self.dbmate)
        self.set_timeouts()  # a migration may SET its own
        return dict(version=migration.version, name=migration.name, file=migration.file, direction=direction,
                    transactional=section.transactional, duration_s=round(time.monotonic() - started, 3),
                    lock_retries=retries)

    def statement(self, migration, section, statement):
        try:
            self.session.execute(statement.text)
        except psycopg2.Error as exc:
            if is_lock_timeout(exc):
                raise _LockTimeout(statement)
            raise MigrateFailure('%s line %d failed: %s%s' % (
                migration.file, statement.line, database_error_message(exc),
                ' (in a transaction: nothing of this migration was applied)' if section.transactional else
                ' (outside a transaction: the statements before it stay; the migration is recorded as interrupted)'))

    def retry_or_fail(self, migration, statement, retries):
        if retries >= self.params['lock_retries']:
            holders = tracking.lock_holders(self.session, statement.relations)
            raise MigrateFailure(
                '%s line %d: lock_timeout (%s) reached %d time(s); blocking pid(s): %s' % (
                    migration.file, statement.line, self.params['lock_timeout'], retries + 1,
                    ', '.join(str(p) for p in holders) or 'none found any more'),
                dict(blocking_pids=holders))
        time.sleep(backoff(self.params['lock_retry_delay'], retries))
        return retries + 1

    def close(self):
        if self.cancel_token is not None:
            forget(self.cancel_token)
            self.cancel_token = None
        if self.session is not None and self.locked:
            try:
                self.session.rollback()
                tracking.release_runner_lock(self.session)
            except Exception:  # pylint: disable=broad-except  # the session's end releases it anyway
                pass
            self.locked = False
        super(Migrate, self).close()


class _LockTimeout(Exception):
    def __init__(self, statement):
        super(_LockTimeout, self).__init__('lock timeout')
        self.statement = statement
