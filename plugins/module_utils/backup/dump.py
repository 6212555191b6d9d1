# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup: a logical backup whose manifest tells exactly what it holds, published atomically, with retention.

How one backup runs:
  1. a REPEATABLE READ, READ ONLY transaction exports its snapshot (pg_export_snapshot());
  2. pg_dump --snapshot=<it> writes the artifact under a hidden temporary name, while the same transaction counts
     the rows of every table it dumps (the counts are of the very snapshot pg_dump reads);
  3. the artifact is hashed (every file of a directory-format dump), the manifest is written beside it, and only
     then the artifact is renamed to its final name.
Tenant backups do not use pg_dump (it has no --where): inside the same kind of snapshot the module writes a plain
SQL script of `COPY ... FROM stdin` blocks holding `SELECT <columns> FROM <table> WHERE <tenant column> = <id>` for
every table with the tenant column, parents before children, wrapped in one transaction. `psql -1 -f` (or this
collection's pg_restore) restores it into a database that has the schema.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art
from ansible_collections.procgenie.dbops.plugins.module_utils import _catalog
from ansible_collections.procgenie.dbops.plugins.module_utils import _psql_script as script
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import (
    ClientError, forget, pg_dump_argv, server_major)
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, database_error_message, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Context, SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import catalog

KINDS = ('full', 'schema_only', 'tables', 'tenant')
FORMATS = ('custom', 'directory', 'plain')
CANCEL_WAIT_S = 1.0  # how long a cancelled tenant export may take to see its query cancelled (the 2 s budget)


class BackupFailure(Exception):
    """The backup failed; the message says why (pg_dump's stderr, the missing table, ...)."""


def argument_spec():
    """pg_backup's own options (the connection and client options: _argspec.postgres_spec(), client_spec()); what
    they mean together is checked by validate() (Ansible's int has no minimum, and the pairs depend on kind)."""
    return ArgumentSpec(dict(
        kind=dict(type='str', default='full', choices=list(KINDS)),
        format=dict(type='str', choices=list(FORMATS)),
        compress=dict(type='int'),
        jobs=dict(type='int', default=1),
        dest=dict(type='path', required=True),
        name=dict(type='str'),
        tables=dict(type='list', elements='str', default=[]),
        tenant=dict(type='str'),
        tenant_column=dict(type='str', default='tenant_id'),
        tenant_id_type=dict(type='str', default='uuid', choices=list(catalog.TENANT_ID_TYPES)),
        tenant_table=dict(type='str', default='tenants'),
        tenant_table_key=dict(type='str', default='id', no_log=False),
        keep_last=dict(type='int'),
        max_age_days=dict(type='float'),
        timeout=dict(type='int'),
        prune_only=dict(type='bool', default=False),
    ))


def default_format(kind):
    """The runbook's formats: custom for full and table dumps, a plain .sql for the schema and for tenants."""
    return 'plain' if kind in ('schema_only', 'tenant') else 'custom'


def validate(params):
    """Cross-option checks; returns (kind, format). Raises BackupFailure."""
    kind = params.get('kind') or 'full'
    fmt = params.get('format') or default_format(kind)
    if kind == 'tables' and not params.get('tables'):
        raise BackupFailure('kind=tables needs a non-empty list of tables')
    if kind != 'tables' and params.get('tables'):
        raise BackupFailure('tables is only used with kind=tables')
    if kind == 'tenant' and fmt != 'plain':
        raise BackupFailure('kind=tenant makes a plain SQL script (pg_dump cannot filter rows); use format=plain '
                            'or leave format unset')
    if kind != 'tenant' and params.get('tenant'):
        raise BackupFailure('tenant is only used with kind=tenant')
    jobs = 1 if params.get('jobs') is None else params['jobs']
    if jobs < 1:
        raise BackupFailure('jobs must be 1 or more')
    if jobs > 1 and fmt != 'directory':
        raise BackupFailure('jobs > 1 needs format=directory (pg_dump dumps in parallel only into a directory)')
    compress = params.get('compress')
    if compress is not None:
        if not 0 <= compress <= 9:
            raise BackupFailure('compress must be between 0 and 9')
        if fmt == 'plain':
            raise BackupFailure('compress applies to the custom and directory formats only')
    problem = art.option_problem(params, 'backup')
    if problem:
        raise BackupFailure(problem)
    return kind, fmt


def describe_failure(error):
    """pg_dump's failure, saying which signal killed it (a kill, SIGXFSZ for a file-size limit)."""
    rc = getattr(error, 'rc', None)
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = 'unknown signal'
        hint = ' (file size limit exceeded)' if name == 'SIGXFSZ' else ''
        stderr = (getattr(error, 'stderr', '') or '').strip()
        return 'pg_dump was killed by signal %d, %s%s%s' % (-rc, name, hint, ': ' + stderr if stderr else '')
    return str(error)


def retention_plan(dest, series, now, keep_last, max_age_days, new_path=None, skipped=None):
    """(delete, keep) for a series, counting a new artifact about to be made as the newest. Manifests that are
    not valid are left alone and listed in skipped (a list of (path, reason)), never block the others."""
    if keep_last is None and max_age_days is None:
        return [], []
    entries = art.retention_entries(dest, series, skipped)
    if new_path:
        entries.append(dict(path=new_path, end_time=now, verified=False))
    delete, keep = art.select_for_deletion(entries, now, keep_last=keep_last, max_age_days=max_age_days)
    return [p for p in delete if p != new_path], keep


class Cancelled(BackupFailure):
    """The work of a worker thread was stopped before its next query (the module is on its way out)."""


class _Worker(threading.Thread):
    """Runs func() beside the main thread, which only waits: a wait in join() is interrupted by SIGTERM, a wait in
    libpq or in a pipe read is not, so pg_dump and the row counts both run in workers."""

    def __init__(self, name, func):
        super(_Worker, self).__init__(name=name, daemon=True)
        self.func = func
        self.result = None
        self.error = None
        # its own end: Thread.is_alive() is wrong after a join() a signal handler interrupted (CPython gh-90882)
        self.finished = threading.Event()

    def run(self):
        try:
            self.result = self.func()
        except Exception as exc:  # pylint: disable=broad-except  # handed to the main thread
            self.error = exc
        finally:
            self.finished.set()

    def running(self):
        """Started and not finished (what is_alive() should say)."""
        return self.ident is not None and not self.finished.is_set()

    def outcome(self):
        """Wait for the worker; its result, or its exception raised here."""
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def _sequence_columns(session, target):
    """Columns of a table that take their values from a sequence (identity or serial)."""
    name = target.as_string(session.conn)
    rows = session.rows(sql.SQL(
        'SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped '
        'AND pg_get_serial_sequence(%s, attname) IS NOT NULL ORDER BY attnum'), [name, name])
    return [r['attname'] for r in rows]


def _write_tenant_script(session, path, tables, tenant, stop=None):
    """The tenant artifact: one transaction of COPY blocks, parents first, rows filtered in the snapshot.

    Nothing a user or the database gives leaves its literal: the comments hold no value (the tenant and the
    database are in the manifest), names are written by _psql_script (never spanning lines), the rows are COPY's
    own text format (backslash, newline, CR and tab escaped by the server), and no line is a psql meta-command
    except the \\. that ends each COPY block. The caller scans the file before publishing it.

    `stop` (a threading.Event): when set, no further query starts (the module was cancelled while this runs in a
    worker thread; a query already running is cancelled by the caller)."""
    def go_on():
        if stop is not None and stop.is_set():
            raise Cancelled('the tenant export was cancelled')
    go_on()
    cursor = session.conn.cursor()
    with open(path, 'w', encoding='utf-8', newline='\n') as out:
        out.write('-- procgenie.dbops pg_backup: the rows of one tenant (data only); what it holds is in its manifest\n')
        out.write('-- Restore into a database that has the schema: psql -v ON_ERROR_STOP=1 -1 -f <this file>\n')
        out.write("SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
                  "SET client_min_messages = warning;\nSET row_security = off;\nBEGIN;\n\n")
        for table in tables:
            go_on()
            columns = catalog.copy_columns(session, table)
            cols = sql.SQL(', ').join(sql.Identifier(c) for c in columns)
            target = sql.Identifier(table['schema'], table['name'])
            copy = sql.SQL('COPY (SELECT {cols} FROM {only}{table} WHERE {col} = %s) TO STDOUT').format(
                cols=cols, only=sql.SQL('' if table['relkind'] == 'p' else 'ONLY '), table=target,
                col=sql.Identifier(table['filter_column']))
            statement = cursor.mogrify(copy, [tenant]).decode('utf-8')
            session.log.add(statement)
            script_table = script.qualified(table['schema'], table['name'])
            out.write('COPY %s (%s) FROM stdin;\n' % (script_table, ', '.join(script.ident(c) for c in columns)))
            out.flush()
            go_on()
            cursor.copy_expert(statement, out)
            out.write('\\.\n')
            for column in _sequence_columns(session, target):
                # the restored ids must not be handed out again: move the column's sequence past them, never back
                table_name = script.literal('"%s"."%s"' % (table['schema'].replace('"', '""'),
                                                           table['name'].replace('"', '""')))
                out.write('SELECT setval(s.seq, s.top) FROM (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq, '
                          '(SELECT max(%s) FROM %s) AS top) s WHERE s.top IS NOT NULL AND s.top > '
                          'COALESCE(pg_sequence_last_value(s.seq), 0);\n'
                          % (table_name, script.literal(column), script.ident(column), script_table))
            out.write('\n')
        out.write('COMMIT;\n')
        out.flush()
        os.fsync(out.fileno())
    cursor.close()


def check_script(path):
    """Raise BackupFailure when a plain script holds anything but SQL and COPY data (see _psql_script)."""
    try:
        problems = script.scan_script(path)
    except OSError as exc:
        raise BackupFailure('Reading %s failed: %s' % (path, exc))
    if problems:
        raise BackupFailure('The script written holds what psql would run as a meta-command, so it is not '
                            'published: %s' % '; '.join(problems))


# ---------------------------------------------------------------- the plan's pure decisions
def backup_target(params, kind, fmt, start):
    """Pure: where the backup goes and of what: dict(dest (absolute), database, tenant (canonical, or None), name,
    final (the artifact's path)). Raises BackupFailure for a tenant or a name template that is not valid."""
    database = params.get('login_db') or 'postgres'
    tenant = None
    if kind == 'tenant':
        try:
            tenant = catalog.validate_tenant_id(params.get('tenant'), params.get('tenant_id_type') or 'uuid')
        except catalog.CatalogError as exc:
            raise BackupFailure(str(exc))
    try:
        name = art.artifact_name(kind, fmt, start, params.get('name'), database=database,
                                 tenant=str(tenant) if tenant is not None else '')
    except art.ArtifactError as exc:
        raise BackupFailure(str(exc))
    dest = os.path.abspath(params['dest'])
    return dict(dest=dest, database=database, tenant=tenant, name=name, final=os.path.join(dest, name))


def plan_result(kind, fmt, tables, final, delete, skipped, prune_only=False):
    """Pure: what a backup reports before it runs (check mode's result, and the start of apply's): the artifact it
    makes (none when pruning), what retention deletes, the manifests retention skipped; `changed` is true when an
    artifact is made or one is deleted."""
    tracker = DifferenceTracker()
    if prune_only:
        tracker.add('artifacts', before=delete, after=[])
    else:
        tracker.add('artifacts', before=[], after=[final])
        tracker.add('deleted', before=[], after=delete)
    return dict(changed=tracker.has_difference(), path=None if prune_only else final,
                manifest=None if prune_only else art.manifest_path(final), size_bytes=None, sha256=None,
                row_counts={}, deleted=list(delete), skipped_manifests=[p for p, _r in skipped],
                tables=[t['qname'] for t in tables], kind=kind, format=fmt, diff=tracker.diff())


# ---------------------------------------------------------------- the operation
class Backup(SessionOperation):
    """pg_backup. plan() checks the options, the name and the folder, opens the snapshot, reads the tables (and their
    partitions, RLS state), finds pg_dump (not older than the server) and plans retention (damaged manifests skipped
    and reported); apply() dumps into a temporary name (umask 077), counts the rows in the same snapshot, scans a
    tenant script, publishes the artifact with its manifest and deletes what retention planned.

    A cancel (SIGTERM) while pg_dump and the count query run kills pg_dump and cancels the query, one during a tenant
    export cancels its COPY (or count); the temporary artifact is removed on the way out."""

    programs = True  # pg_dump

    def __init__(self, params, ctx):
        super(Backup, self).__init__(params, ctx)
        self.facts = {}

    # ------------------------------------------------------------ plan: read and check everything, change nothing
    def plan(self):
        params = self.params
        kind, fmt = validate(params)
        start = art.utc_now()
        target = backup_target(params, kind, fmt, start)
        prune_only = bool(params.get('prune_only'))
        keep_last, max_age = params.get('keep_last'), params.get('max_age_days')
        if prune_only and keep_last is None and max_age is None:
            raise BackupFailure('prune_only needs keep_last and/or max_age_days')
        if not prune_only:
            try:
                art.check_folder_can_be_written(target['dest'])
            except art.ArtifactError as exc:
                raise BackupFailure(str(exc))
            if os.path.lexists(target['final']):
                raise BackupFailure('%s already exists; set a name template that makes unique names' % target['final'])
        snapshot = self.open_snapshot(target['database'])
        tables, rls = self.read_tables(kind, target['database'])
        pg_dump = None
        if not prune_only and kind != 'tenant':
            try:
                pg_dump = self.runner.find('pg_dump', min_major=snapshot['major'])
            except ClientError as exc:
                raise BackupFailure(str(exc))
        series = art.series_key(target['database'], kind,
                                [t['qname'] for t in tables] if kind == 'tables' else None, target['tenant'], fmt)
        # retention is planned before anything is written: a manifest it cannot read is skipped and reported
        skipped = []
        delete, _keep = retention_plan(target['dest'], series, start, keep_last, max_age,
                                       new_path=None if prune_only else target['final'], skipped=skipped)
        for message in art.skipped_messages(skipped):
            self.warn('retention left alone a manifest it cannot use: %s' % message)
        self.facts = dict(target, kind=kind, format=fmt, start=start, tables=tables, rls=rls, series=series,
                          pg_dump=pg_dump, **snapshot)
        result = plan_result(kind, fmt, tables, target['final'], delete, skipped, prune_only)
        result['duration_s'] = self.elapsed()
        return result

    def open_snapshot(self, database):
        """The REPEATABLE READ, READ ONLY transaction whose exported snapshot pg_dump reads and the counts count in;
        dict(snapshot, server_version, major)."""
        try:
            self.open(database=database, autocommit=False)
        except ConnectionFailure as exc:
            raise BackupFailure(str(exc))
        session = self.session
        try:
            session.execute(sql.SQL('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY'))
            session.execute(sql.SQL('SET LOCAL row_security = off'))
            # COPY output as pg_dump writes it, whatever the role's or database's defaults are
            session.execute(sql.SQL("SET LOCAL datestyle = 'ISO'"))
            session.execute(sql.SQL("SET LOCAL intervalstyle = 'postgres'"))
            session.execute(sql.SQL('SET LOCAL extra_float_digits = 3'))
            snapshot = session.scalar(sql.SQL('SELECT pg_export_snapshot()'))
            server_version = session.scalar(sql.SQL("SELECT current_setting('server_version')"))
        except psycopg2.Error as exc:
            raise BackupFailure('Reading the catalogs of %s failed: %s' % (database, database_error_message(exc)))
        return dict(snapshot=snapshot, server_version=server_version, major=server_major(session.server_version_num))

    def read_tables(self, kind, database):
        """The tables the backup holds (a tenant's in foreign-key order, named ones with their partitions, else every
        user table) and their RLS state, read in the snapshot."""
        params, session = self.params, self.session
        try:
            if kind == 'tenant':
                tables, cyclic, notes = catalog.tenant_tables(
                    session, params.get('tenant_column') or 'tenant_id', params.get('tenant_table') or None,
                    params.get('tenant_table_key') or 'id')
                for note in notes:
                    self.warn(note)
                if cyclic:
                    self.warn('tables in a foreign-key cycle are restored in name order: %s' % ', '.join(cyclic))
            elif kind == 'tables':
                tables = _catalog.resolve_tables(session, params['tables'])
            else:
                tables = catalog.user_tables(session)
            return tables, catalog.rls_state(session, tables)
        except catalog.CatalogError as exc:
            raise BackupFailure(str(exc))
        except psycopg2.Error as exc:
            raise BackupFailure('Reading the catalogs of %s failed: %s' % (database, database_error_message(exc)))

    # ------------------------------------------------------------ apply: the validated plan
    def apply(self, plan):
        """Folders it creates are 0700, the artifact and its manifest 0600 (pg_dump runs with umask 077, so not even
        the temporary artifact is readable by others)."""
        with art.private_files():
            if self.params.get('prune_only'):
                for path in plan['deleted']:
                    art.delete_artifact(path)
                return dict(plan, duration_s=self.elapsed())
            result = dict(plan, **self.publish(self.dump()))
            deleted = []
            for path in plan['deleted']:
                art.delete_artifact(path)
                deleted.append(path)
            tracker = DifferenceTracker()
            tracker.add('artifacts', before=[], after=[result['path']])
            tracker.add('deleted', before=[], after=deleted)
            result.update(deleted=deleted, diff=tracker.diff())
            return result

    def dump(self):
        """Write the artifact under its temporary name; (temporary path, row counts). The temporary artifact is
        removed when this fails or is interrupted."""
        facts = self.facts
        try:
            art.prepare_folder(facts['dest'])
        except art.ArtifactError as exc:
            raise BackupFailure(str(exc))
        tmp = art.temp_path(facts['final'])
        try:
            if facts['kind'] == 'tenant':
                counts = self.write_tenant(tmp)
            else:
                counts = self.run_pg_dump(tmp)
            self.session.rollback()
        except psycopg2.Error as exc:
            art.remove_path(tmp)
            raise BackupFailure('Reading the data of %s failed: %s' % (facts['database'], database_error_message(exc)))
        except OSError as exc:
            art.remove_path(tmp)
            raise BackupFailure('Writing %s failed: %s' % (tmp, exc))
        except BaseException:
            art.remove_path(tmp)
            raise
        return tmp, counts

    def write_tenant(self, tmp):
        """The tenant's row counts and its script, in a worker while this thread only waits: a COPY (or a count) of a
        big table waits in libpq, where a SIGTERM is not handled until it returns; a cancel cancels the running query
        at once, and no further query starts. The caller removes the temporary script."""
        facts, session = self.facts, self.session
        stop = threading.Event()

        def export():
            counts = {}
            for table in facts['tables']:
                if stop.is_set():
                    raise Cancelled('the tenant export was cancelled')
                counts.update(catalog.count_rows(session, [table], table['filter_column'], facts['tenant']))
            _write_tenant_script(session, tmp, facts['tables'], facts['tenant'], stop)
            return counts

        def cancel():
            stop.set()
            session.conn.cancel()
        worker = _Worker('tenant export', export)
        token = self.runner.on_cancel(cancel)  # SIGTERM: the running COPY or count ends now, not when it is done
        try:
            worker.start()
            counts = worker.outcome()
        finally:
            forget(token)
            # failed or cancelled while it runs: its query must not outlive the module, nor may it write on
            stop.set()
            deadline = time.monotonic() + CANCEL_WAIT_S
            while worker.running() and time.monotonic() < deadline:
                session.conn.cancel()
                worker.finished.wait(0.05)
        check_script(tmp)
        return counts

    def run_pg_dump(self, tmp):
        """pg_dump of the snapshot and the row counts in it, both in workers while this thread only waits (so a
        SIGTERM is handled at once); a failure or a cancel ends pg_dump and the count query."""
        facts, params, runner, session = self.facts, self.params, self.runner, self.session
        kind = facts['kind']
        patterns = [catalog.dump_pattern(t['schema'], t['name']) for t in facts['tables']] if kind == 'tables' else []
        argv = pg_dump_argv(facts['pg_dump'], facts['format'], tmp, facts['snapshot'], params.get('compress'),
                            params.get('jobs') or 1, kind == 'schema_only', patterns)
        workers = [_Worker('pg_dump', lambda: runner.run(argv, database=facts['database'],
                                                         timeout=params.get('timeout')))]
        if kind != 'schema_only':
            workers.append(_Worker('row counts', lambda: catalog.count_rows(session, facts['tables'])))
            runner.on_cancel(session.conn.cancel)  # SIGTERM: the count query ends with pg_dump
        try:
            for worker in workers:
                worker.start()
            counts = workers[1].outcome() if len(workers) > 1 else dict((t['qname'], 0) for t in facts['tables'])
            try:
                workers[0].outcome()
            except ClientError as exc:
                raise BackupFailure(describe_failure(exc))
            return counts
        finally:
            # failed or cancelled (SIGTERM) while they run: pg_dump and the count query must not outlive the module
            if any(w.running() for w in workers):
                runner.kill_running()
                if workers[1:] and workers[1].running():
                    session.conn.cancel()
                for worker in workers:
                    if worker.ident is not None:
                        worker.finished.wait(30)

    def publish(self, dumped):
        """Checksum, manifest, rename to the final name; the result fields of the artifact."""
        facts, params = self.facts, self.params
        tmp, counts = dumped
        end = art.utc_now()
        kind, tables = facts['kind'], facts['tables']
        duration = self.elapsed()
        try:
            digest, files, size = art.checksum(tmp)
            manifest = dict(
                tool=art.MANIFEST_TOOL, manifest_version=art.MANIFEST_VERSION, artifact=facts['name'],
                series=facts['series'], database=facts['database'],
                host=params.get('login_unix_socket') or params.get('login_host'), port=params.get('login_port'),
                server_version=facts['server_version'], pg_dump_version=self.runner.versions.get('pg_dump'),
                kind=kind, format=facts['format'], compress=params.get('compress'), jobs=params.get('jobs') or 1,
                tables=[t['qname'] for t in tables], tenant=facts['tenant'],
                tenant_column=params.get('tenant_column') if kind == 'tenant' else None,
                tenant_filters=dict((t['qname'], t['filter_column']) for t in tables) if kind == 'tenant' else None,
                method='copy-in-snapshot' if kind == 'tenant' else 'pg_dump', snapshot=facts['snapshot'],
                start_time=art.iso(facts['start']), end_time=art.iso(end), duration_s=duration,
                size_bytes=size, sha256=digest, files=files, row_counts=counts, rls=facts['rls'], verifications=[])
            art.publish(tmp, facts['final'], manifest)
        except (OSError, art.ArtifactError) as exc:
            art.remove_path(tmp)
            raise BackupFailure('Publishing the backup %s failed: %s' % (facts['final'], exc))
        except BaseException:
            art.remove_path(tmp)
            raise
        return dict(path=facts['final'], manifest=art.manifest_path(facts['final']), size_bytes=size, sha256=digest,
                    duration_s=duration, row_counts=counts, tables=manifest['tables'],
                    start_time=manifest['start_time'], end_time=manifest['end_time'])


def make_backup(params, runner, log, warn=None):
    """A backup as one step of another operation (pg_restore's backup of its target): the Backup operation,
    planned and applied with that operation's runner and query log. Returns its result; raises BackupFailure."""
    return Backup(params, Context(log=log, runner=runner, warn=warn)).run()
