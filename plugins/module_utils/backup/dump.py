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
from ansible_collections.procgenie.dbops.plugins.module_utils import _psql_script as script
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, database_error_message, open_session, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import catalog

KINDS = ('full', 'schema_only', 'tables', 'tenant')
FORMATS = ('custom', 'directory', 'plain')
FORMAT_FLAG = {'custom': 'c', 'directory': 'd', 'plain': 'p'}


class BackupFailure(Exception):
    """The backup failed; the message says why (pg_dump's stderr, the missing table, ...)."""


def backup_argument_spec():
    """The pg_backup options (also used by pg_restore's pre-restore backup)."""
    return dict(
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
    )


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
    if params.get('keep_last') is not None and params['keep_last'] < 1:
        raise BackupFailure('keep_last must be 1 or more (the newest backup is always kept)')
    if params.get('max_age_days') is not None and params['max_age_days'] < 0:
        raise BackupFailure('max_age_days must not be negative')
    if params.get('timeout') is not None and params['timeout'] < 1:
        raise BackupFailure('timeout must be 1 second or more (it was %s)' % params['timeout'])
    if 'dest' in params and not str(params.get('dest') or '').strip():
        raise BackupFailure('dest must name the backup folder; an empty dest would write into the current directory')
    return kind, fmt


def pg_dump_argv(pg_dump, fmt, out, snapshot, compress=None, jobs=1, schema_only=False, patterns=()):
    """Pure: the pg_dump command (the database comes from PGDATABASE, the password from PGPASSWORD)."""
    argv = [pg_dump, '--format=%s' % FORMAT_FLAG[fmt], '--file=%s' % out, '--no-password']
    if snapshot:
        argv.append('--snapshot=%s' % snapshot)
    if compress is not None:
        argv.append('--compress=%d' % compress)
    if jobs and jobs > 1:
        argv.append('--jobs=%d' % jobs)
    if schema_only:
        argv.append('--schema-only')
    argv += ['--table=%s' % p for p in patterns]
    return argv


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


class _Worker(threading.Thread):
    """Runs func() beside the main thread, which only waits: a wait in join() is interrupted by SIGTERM, a wait in
    libpq or in a pipe read is not, so pg_dump and the row counts both run in workers."""

    def __init__(self, name, func):
        super(_Worker, self).__init__(name=name, daemon=True)
        self.func = func
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self.func()
        except Exception as exc:  # pylint: disable=broad-except  # handed to the main thread
            self.error = exc

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


def _write_tenant_script(session, path, tables, tenant):
    """The tenant artifact: one transaction of COPY blocks, parents first, rows filtered in the snapshot.

    Nothing a user or the database gives leaves its literal: the comments hold no value (the tenant and the
    database are in the manifest), names are written by _psql_script (never spanning lines), the rows are COPY's
    own text format (backslash, newline, CR and tab escaped by the server), and no line is a psql meta-command
    except the \\. that ends each COPY block. The caller scans the file before publishing it."""
    cursor = session.conn.cursor()
    with open(path, 'w', encoding='utf-8', newline='\n') as out:
        out.write('-- procgenie.dbops pg_backup: the rows of one tenant (data only); what it holds is in its manifest\n')
        out.write('-- Restore into a database that has the schema: psql -v ON_ERROR_STOP=1 -1 -f <this file>\n')
        out.write("SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
                  "SET client_min_messages = warning;\nSET row_security = off;\nBEGIN;\n\n")
        for table in tables:
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


def make_backup(params, runner, log, check_mode=False, warn=None):
    """Run one backup with the module's params; returns the result fields. Raises BackupFailure.

    Folders it creates are 0700, the artifact and its manifest 0600 (pg_dump runs with umask 077, so not even the
    temporary artifact is readable by others)."""
    with art.private_files():
        return _make_backup(params, runner, log, check_mode, warn)


def _warn_skipped(skipped, warn):
    for message in art.skipped_messages(skipped):
        warn('retention left alone a manifest it cannot use: %s' % message)


def _make_backup(params, runner, log, check_mode=False, warn=None):
    warn = warn or (lambda msg: None)
    kind, fmt = validate(params)
    started = time.monotonic()
    start = art.utc_now()
    dest = os.path.abspath(params['dest'])
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
    final = os.path.join(dest, name)
    if not check_mode and not params.get('prune_only'):
        try:
            art.check_writable_folder(dest)
        except art.ArtifactError as exc:
            raise BackupFailure(str(exc))
        if os.path.lexists(final):
            raise BackupFailure('%s already exists; set a name template that makes unique names' % final)

    try:
        session = open_session(params, database=database, autocommit=False, log=log)
    except ConnectionFailure as exc:
        raise BackupFailure(str(exc))
    tmp = None
    workers = []
    try:
        try:
            session.execute(sql.SQL('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY'))
            session.execute(sql.SQL('SET LOCAL row_security = off'))
            # COPY output as pg_dump writes it, whatever the role's or database's defaults are
            session.execute(sql.SQL("SET LOCAL datestyle = 'ISO'"))
            session.execute(sql.SQL("SET LOCAL intervalstyle = 'postgres'"))
            session.execute(sql.SQL('SET LOCAL extra_float_digits = 3'))
            snapshot = session.scalar(sql.SQL('SELECT pg_export_snapshot()'))
            server_version = session.scalar(sql.SQL("SELECT current_setting('server_version')"))
            major = server_major(session.server_version_num)
            cyclic = []
            if kind == 'tenant':
                tables, cyclic, notes = catalog.tenant_tables(
                    session, params.get('tenant_column') or 'tenant_id', params.get('tenant_table') or None,
                    params.get('tenant_table_key') or 'id')
                for note in notes:
                    warn(note)
                if cyclic:
                    warn('tables in a foreign-key cycle are restored in name order: %s' % ', '.join(cyclic))
            elif kind == 'tables':
                tables = catalog.resolve_tables(session, params['tables'])
            else:
                tables = catalog.user_tables(session)
            rls = catalog.rls_state(session, tables)
        except catalog.CatalogError as exc:
            raise BackupFailure(str(exc))
        except psycopg2.Error as exc:
            raise BackupFailure('Reading the catalogs of %s failed: %s' % (database, database_error_message(exc)))

        series = art.series_key(database, kind, [t['qname'] for t in tables] if kind == 'tables' else None,
                                tenant, fmt)
        keep_last, max_age = params.get('keep_last'), params.get('max_age_days')
        skipped = []
        if params.get('prune_only'):
            if keep_last is None and max_age is None:
                raise BackupFailure('prune_only needs keep_last and/or max_age_days')
            delete, _keep = retention_plan(dest, series, start, keep_last, max_age, skipped=skipped)
            _warn_skipped(skipped, warn)
            if not check_mode:
                for path in delete:
                    art.delete_artifact(path)
            return dict(changed=bool(delete), path=None, manifest=None, size_bytes=None, sha256=None,
                        duration_s=round(time.monotonic() - started, 3), row_counts={}, deleted=delete,
                        skipped_manifests=[p for p, _r in skipped],
                        tables=[t['qname'] for t in tables], kind=kind, format=fmt,
                        diff=dict(before=dict(artifacts=delete), after=dict(artifacts=[])))
        pg_dump = None
        if kind != 'tenant':
            try:
                pg_dump = runner.find('pg_dump', min_major=major)
            except ClientError as exc:
                raise BackupFailure(str(exc))
        # retention is planned before anything is written: a manifest it cannot read is skipped and reported
        delete, _keep = retention_plan(dest, series, start, keep_last, max_age, new_path=final, skipped=skipped)
        _warn_skipped(skipped, warn)
        if check_mode:
            return dict(changed=True, path=final, manifest=art.manifest_path(final), size_bytes=None, sha256=None,
                        duration_s=round(time.monotonic() - started, 3), row_counts={}, deleted=delete,
                        skipped_manifests=[p for p, _r in skipped],
                        tables=[t['qname'] for t in tables], kind=kind, format=fmt,
                        diff=dict(before=dict(artifacts=[]), after=dict(artifacts=[final], deleted=delete)))

        for stale in art.stale_partials(dest):
            art.remove_path(stale)
        tmp = art.temp_path(final)
        try:
            if kind == 'tenant':
                counts = {}
                for table in tables:
                    counts.update(catalog.count_rows(session, [table], table['filter_column'], tenant))
                _write_tenant_script(session, tmp, tables, tenant)
                check_script(tmp)
            else:
                patterns = [catalog.dump_pattern(t['schema'], t['name']) for t in tables] if kind == 'tables' else []
                argv = pg_dump_argv(pg_dump, fmt, tmp, snapshot, params.get('compress'), params.get('jobs') or 1,
                                    kind == 'schema_only', patterns)
                workers = [_Worker('pg_dump', lambda: runner.run(argv, database=database,
                                                                 timeout=params.get('timeout')))]
                if kind != 'schema_only':
                    workers.append(_Worker('row counts', lambda: catalog.count_rows(session, tables)))
                    runner.on_cancel(session.conn.cancel)  # SIGTERM: the count query ends with pg_dump
                for worker in workers:
                    worker.start()
                counts = workers[1].outcome() if len(workers) > 1 else dict((t['qname'], 0) for t in tables)
                try:
                    workers[0].outcome()
                except ClientError as exc:
                    raise BackupFailure(describe_failure(exc))
        except psycopg2.Error as exc:
            raise BackupFailure('Reading the data of %s failed: %s' % (database, database_error_message(exc)))
        except OSError as exc:
            raise BackupFailure('Writing %s failed: %s' % (tmp, exc))
        finally:
            # failed or cancelled (SIGTERM) while they run: pg_dump and the count query must not outlive the module
            if any(w.is_alive() for w in workers):
                runner.kill_running()
                if workers[1:] and workers[1].is_alive():
                    session.conn.cancel()
                for worker in workers:
                    worker.join(timeout=30)
        session.rollback()
        end = art.utc_now()
        try:
            digest, files, size = art.checksum(tmp)
            manifest = dict(
                tool=art.MANIFEST_TOOL, manifest_version=art.MANIFEST_VERSION, artifact=name, series=series,
                database=database, host=params.get('login_unix_socket') or params.get('login_host'),
                port=params.get('login_port'), server_version=server_version,
                pg_dump_version=runner.versions.get('pg_dump'), kind=kind, format=fmt,
                compress=params.get('compress'), jobs=params.get('jobs') or 1,
                tables=[t['qname'] for t in tables], tenant=tenant,
                tenant_column=params.get('tenant_column') if kind == 'tenant' else None,
                tenant_filters=dict((t['qname'], t['filter_column']) for t in tables) if kind == 'tenant' else None,
                method='copy-in-snapshot' if kind == 'tenant' else 'pg_dump', snapshot=snapshot,
                start_time=art.iso(start), end_time=art.iso(end), duration_s=round(time.monotonic() - started, 3),
                size_bytes=size, sha256=digest, files=files, row_counts=counts, rls=rls, verifications=[])
            art.publish(tmp, final, manifest)
        except (OSError, art.ArtifactError) as exc:
            raise BackupFailure('Publishing the backup %s failed: %s' % (final, exc))
        tmp = None
        deleted = []
        delete, _keep = retention_plan(dest, series, end, keep_last, max_age)
        for path in delete:
            art.delete_artifact(path)
            deleted.append(path)
        return dict(changed=True, path=final, manifest=art.manifest_path(final), size_bytes=size, sha256=digest,
                    duration_s=manifest['duration_s'], row_counts=counts, deleted=deleted,
                    skipped_manifests=[p for p, _r in skipped],
                    tables=manifest['tables'], kind=kind, format=fmt, start_time=manifest['start_time'],
                    end_time=manifest['end_time'],
                    diff=dict(before=dict(artifacts=[]), after=dict(artifacts=[final], deleted=deleted)))
    finally:
        if tmp is not None:
            art.remove_path(tmp)
        session.close()
