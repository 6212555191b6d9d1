# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring pg_backup artifacts: the pg_restore/psql commands, counting what arrived, scratch databases."""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid
from contextlib import contextmanager

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art, _psql_script as script
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, fk_order, parse_table_name
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, database_error_message, open_session, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.procgenie.dbops.plugins.module_utils._dump_restore import (
    RestoreFailure, artifact_format, detect_format, plain_script_too_new, run_restore, uses_pg_restore)
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import catalog, dump

SCRATCH_MAX_AGE_S = 24 * 3600


def resolve_in(session, qnames):
    """{qname: table row or None} in the session's database."""
    found = {}
    for qname in qnames:
        oid = session.scalar(sql.SQL('SELECT to_regclass(%s)::oid::bigint'), [qname])
        found[qname] = None if oid is None else session.row(catalog.table_query('WHERE c.oid = %s'),
                                                            [oid])
    return found


def count_tables(session, qnames, where_column=None, where_value=None):
    """{qname: exact count, or None when the table is missing}."""
    counts = {}
    for qname, table in resolve_in(session, qnames).items():
        if table is None:
            counts[qname] = None
        else:
            counts.update(catalog.count_rows(session, [table], where_column, where_value))
    return counts


def compare_counts(expected, restored, live=None):
    """Pure: a row per table, and the mismatches. `live` (optional) is reported as drift, never as a mismatch."""
    rows, mismatches = [], []
    for qname in sorted(expected):
        want, got = expected[qname], restored.get(qname)
        row = dict(table=qname, expected=want, restored=got, match=got == want)
        if live is not None:
            row['live'] = live.get(qname)
            row['drift'] = None if row['live'] is None else row['live'] - want
        rows.append(row)
        if got is None:
            mismatches.append('%s: missing after restore' % qname)
        elif got != want:
            mismatches.append('%s: %s rows restored, the manifest says %s' % (qname, got, want))
    return rows, mismatches


# ---------------------------------------------------------------- scratch databases
def scratch_name(prefix, now=None):
    now = now or art.utc_now()
    return '%s%s_%s' % (prefix, now.strftime('%Y%m%d%H%M%S'), uuid.uuid4().hex[:6])


def scratch_comment(now=None):
    return json.dumps(dict(tool='procgenie.dbops.pg_backup_verify', host=socket.gethostname(), pid=os.getpid(),
                           started=art.iso(now or art.utc_now())), sort_keys=True)


def is_stale(comment, now, host=None, alive=art.pid_alive):
    """Pure but for the pid check: a scratch database whose verification is gone (its process died on this host,
    or it is older than a day)."""
    try:
        data = json.loads(comment or '')
    except ValueError:
        return False
    if not isinstance(data, dict) or data.get('tool') != 'procgenie.dbops.pg_backup_verify':
        return False
    started = art.parse_iso(data.get('started'))
    if started is not None and (now - started).total_seconds() > SCRATCH_MAX_AGE_S:
        return True
    return data.get('host') == (host or socket.gethostname()) and not alive(int(data.get('pid') or 0))


def drop_database(session, name):
    """DROP DATABASE IF EXISTS, ending its sessions first (WITH (FORCE) from PostgreSQL 13)."""
    if session.server_version_num >= 130000:
        session.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))
    else:
        session.execute(sql.SQL('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s'), [name])
        session.execute(sql.SQL('DROP DATABASE IF EXISTS {}').format(sql.Identifier(name)))


def stale_scratch_databases(session, prefix, now):
    rows = session.rows(sql.SQL(
        "SELECT datname, shobj_description(oid, 'pg_database') AS comment FROM pg_database "
        "WHERE left(datname, length(%s)) = %s ORDER BY datname"), [prefix, prefix])
    return [r['datname'] for r in rows if is_stale(r['comment'], now)]


@contextmanager
def sigterm_deferred():
    """A SIGTERM (a cancel) that arrives while the block runs is held back until the block ends, then handled: for
    a statement whose outcome the way out must know (a CREATE DATABASE: created, or not). Only the main thread's
    mask: the operations that use it run no other thread at that moment."""
    if not hasattr(signal, 'pthread_sigmask'):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def create_scratch(session, name, now=None):
    session.execute(sql.SQL('CREATE DATABASE {} TEMPLATE template0').format(sql.Identifier(name)))
    session.execute(sql.SQL('COMMENT ON DATABASE {} IS %s').format(sql.Identifier(name)), [scratch_comment(now)])


# ---------------------------------------------------------------- pg_restore (the module)
def split_table_name(name):
    """Pure: (schema or None, table) of a SQL name (`_catalog.parse_table_name`: unquoted parts fold to lower case,
    quoted ones keep their case and their doubled quotes become one). Raises RestoreFailure for a malformed name."""
    try:
        return parse_table_name(name)
    except CatalogError as exc:
        raise RestoreFailure(str(exc))


def argument_spec():
    """pg_restore's own options, with their constraints."""
    return ArgumentSpec(dict(
        path=dict(type='path'),
        dest=dict(type='path'),
        kind=dict(type='str', choices=['full', 'schema_only', 'tables', 'tenant']),
        recreate_database=dict(type='bool', default=False),
        clean=dict(type='bool'),
        tables=dict(type='list', elements='str', default=[]),
        data_only=dict(type='bool', default=False),
        disable_triggers=dict(type='bool', default=False),
        jobs=dict(type='int', default=1),
        single_transaction=dict(type='bool', default=False),
        no_owner=dict(type='bool', default=False),
        create_database=dict(type='bool', default=False),
        maintenance_db=dict(type='str', default='postgres'),
        verify_checksum=dict(type='bool', default=True),
        pre_restore_backup=dict(type='bool', default=False),
        backup_dest=dict(type='path'),
        terminate_connections=dict(type='bool', default=False),
        timeout=dict(type='int'),
    ), required_if=[('pre_restore_backup', True, ['backup_dest'])], required_one_of=[('path', 'dest')],
        mutually_exclusive=[('path', 'dest')])


def _other_sessions(session, database):
    """The other sessions of `database`, each with whether this login may end it (can_end: as pg_terminate_backend
    decides: a superuser ends any; others end no superuser's session nor a background process, and the rest only as
    a member of the session's role or of pg_signal_backend). Autovacuum is not a session of the application: it gives
    way to the restore's locks by itself (and DROP DATABASE ... WITH (FORCE) ends it)."""
    return session.rows(sql.SQL(
        'SELECT a.pid, a.usename, a.application_name, a.client_addr::text AS client_addr, a.state, '
        'COALESCE(me.rolsuper OR (NOT COALESCE(r.rolsuper, true) AND (pg_has_role(a.usesysid, %s) '
        'OR pg_has_role(%s, %s))), false) AS can_end '
        'FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid '
        'CROSS JOIN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) me '
        'WHERE a.datname = %s AND a.pid <> pg_backend_pid() AND a.backend_type IS DISTINCT FROM %s ORDER BY a.pid'),
        ['USAGE', 'pg_signal_backend', 'USAGE', database, 'autovacuum worker'])


def _fk_order(params, database, split, log, warn):
    """The tables of a data-only subset in foreign-key order, read from the target's catalog (it has the schema)."""
    try:
        target = open_session(params, database=database, autocommit=True, log=log)
    except ConnectionFailure as exc:
        raise RestoreFailure(str(exc))
    try:
        names = [t for _s, t in split]
        rows = target.rows(sql.SQL(
            'SELECT cn.nspname AS schema, c.relname AS name, rn.nspname AS ref_schema, r.relname AS ref_name '
            'FROM pg_class c JOIN pg_namespace cn ON cn.oid = c.relnamespace '
            'LEFT JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = %s '
            'LEFT JOIN pg_class r ON r.oid = k.confrelid LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace '
            'WHERE c.relname = ANY(%s) AND c.relkind IN (%s, %s)'), ['f', names, 'r', 'p'])
        visible = target.rows(sql.SQL('SELECT current_schemas(false) AS path'))[0]['path']
    except psycopg2.Error as exc:
        raise RestoreFailure('Reading the foreign keys of %s failed: %s' % (database, database_error_message(exc)))
    finally:
        target.close()
    present = set((r['schema'], r['name']) for r in rows)

    def resolve(schema, name):
        if schema:
            return (schema, name)
        for candidate in visible:
            if (candidate, name) in present:
                return (candidate, name)
        return None
    tables = [t for t in (resolve(s, n) for s, n in split) if t is not None]
    edges = [((r['schema'], r['name']), (r['ref_schema'], r['ref_name'])) for r in rows if r['ref_name']]
    order, cyclic = fk_order(tables, edges)
    if cyclic:
        warn('tables in a foreign-key cycle are loaded in the given order: %s' % ', '.join(
            '%s.%s' % t for t in cyclic))
    return order


def restore_options(params, path, fmt, kind):
    """Pure: the restore options checked together against the artifact's format and kind (what the argument spec
    cannot say; its constraints are not checked again). Returns dict(tables, split, schemas, jobs, clean, data_only,
    single_transaction). Raises RestoreFailure."""
    database = params.get('login_db')
    if (params.get('maintenance_db') or 'postgres') == database:
        raise RestoreFailure('maintenance_db is %s, the database restored into: the module checks, creates, drops and '
                             'ends the sessions of the target from another database; set maintenance_db to another '
                             'one (postgres, template1)' % database)
    tables = list(params.get('tables') or [])
    jobs = 1 if params.get('jobs') is None else params['jobs']
    if jobs < 1:
        raise RestoreFailure('jobs must be 1 or more')
    if params.get('timeout') is not None and params['timeout'] < 1:
        raise RestoreFailure('timeout must be a positive number of seconds')
    if jobs > 1 and params.get('single_transaction'):
        raise RestoreFailure('single_transaction cannot be combined with jobs > 1 (pg_restore restores in '
                             'parallel only in several transactions)')
    if not uses_pg_restore(fmt) and (tables or jobs > 1 or params.get('clean')
                                     or (params.get('data_only') and kind != 'tenant')):
        raise RestoreFailure('%s is a plain SQL script; tables, jobs, clean and data_only need the custom or '
                             'directory format' % path)
    clean = params.get('clean')
    if clean is None:
        clean = uses_pg_restore(fmt) and not tables and not params.get('data_only')
    if clean and params.get('data_only'):
        raise RestoreFailure('clean and data_only exclude each other')
    split = [split_table_name(t) for t in tables]
    return dict(tables=tables, split=split, schemas=sorted(set(s for s, _t in split if s)), jobs=jobs,
                clean=bool(clean), data_only=bool(params.get('data_only')),
                single_transaction=bool(params.get('single_transaction')))


def programs_needed(fmt, pre_restore_backup):
    """Pure: the client programs a restore runs: pg_restore (custom, directory) or psql (plain), and pg_dump for the
    backup of the target; each with the server major it must reach (None: any version)."""
    needed = [('pg_restore', True) if uses_pg_restore(fmt) else ('psql', False)]
    if pre_restore_backup:
        needed.append(('pg_dump', True))
    return needed


def target_actions(database, target, params):
    """Pure: what is done to the target before the restore, from what was read of it (`target`: exists, others
    (sessions), rights (superuser, createdb, owner)). Returns dict(create_database, recreate_database, terminate).
    Raises RestoreFailure when the restore may not or cannot go ahead."""
    exists, others, rights = target['exists'], target['others'], target.get('rights') or {}
    if not exists and not (params.get('create_database') or params.get('recreate_database')):
        raise RestoreFailure('database %s does not exist; set create_database=true to create it' % database)
    if others and not params.get('terminate_connections'):
        raise RestoreFailure('database %s has %d other session(s) (%s); stop the application (runbook restore '
                             'checklist step 3) or set terminate_connections=true' % (
                                 database, len(others), ', '.join('pid %s %s/%s' % (
                                     o['pid'], o['usename'], o['application_name'] or '-') for o in others)))
    protected = [o for o in others if o.get('can_end') is False]
    if protected:
        raise RestoreFailure('%s may not end %d of the other sessions of %s (%s): only a superuser ends a superuser\'s '
                             'session, and others need to be a member of the session\'s role or of pg_signal_backend; '
                             'nothing was ended' % (rights.get('rolname') or 'the login role', len(protected), database,
                                                    ', '.join('pid %s %s' % (o['pid'], o['usename'] or '(background)')
                                                              for o in protected)))
    recreate = bool(params.get('recreate_database')) and exists
    if (recreate or not exists) and not (rights.get('superuser') or rights.get('createdb')):
        raise RestoreFailure('%s database %s needs a superuser or a role with CREATEDB; %s has neither' % (
            'recreating' if recreate else 'creating', database, rights.get('rolname') or 'the login role'))
    if recreate and not (rights.get('superuser') or rights.get('owner')):
        raise RestoreFailure('recreating database %s drops it, which only its owner or a superuser may do; %s is '
                             'neither' % (database, rights.get('rolname') or 'the login role'))
    return dict(create_database=not exists, recreate_database=recreate, terminate=[o['pid'] for o in others])


def restore_diff(database, path):
    """The diff of a restore: the database, and the artifact it then holds."""
    tracker = DifferenceTracker().add('database', database, database, active=False)
    return tracker.add('restored', None, path).diff(only_differences=False)


class Restore(Operation):
    """pg_restore: one artifact into login_db. plan() reads and checks all of it (artifact, manifest, checksum,
    format, a plain script's content, options, programs, target, rights, foreign-key order) before apply() touches
    the target."""

    def __init__(self, params, ctx):
        super(Restore, self).__init__(params, ctx)
        self.admin = None
        self.manifest = None
        self.programs = {}
        self.options = {}
        self.order = None
        self.exists = False
        self.created = None  # 'created' (no database was there) or 'recreated', once this run's CREATE DATABASE ran

    def close(self):
        if self.admin is not None:
            self.admin.close()
            self.admin = None

    # ------------------------------------------------------------ plan: read and check everything, change nothing
    def artifact_path(self):
        params = self.params
        if params.get('path'):
            return params['path'].rstrip('/')
        skipped = []
        entries = [(p, m) for p, m in art.list_manifests(params.get('dest') or '', skipped=skipped, kind='logical')
                   if not params.get('kind') or m['kind'] == params['kind']]
        for message in art.skipped_messages(skipped):
            self.warn(message)
        if not entries:
            raise RestoreFailure('no pg_backup artifact%s in %s' % (
                ' of kind %s' % params['kind'] if params.get('kind') else '', params.get('dest')))
        return art.artifact_of_manifest(entries[-1][0])

    def read_manifest(self, path):
        """The artifact's manifest (None for a dump pg_backup did not make, with verify_checksum=false), checked
        against the artifact's checksum."""
        verify = self.params.get('verify_checksum')
        try:
            manifest = art.read_manifest(path, kind='logical')
        except art.ArtifactError as exc:
            if not verify:
                return None
            if not os.path.exists(art.manifest_path(path)):
                raise RestoreFailure('%s; set verify_checksum=false to restore a dump that pg_backup did not make'
                                     % exc)
            raise RestoreFailure(str(exc))
        if verify:
            problems = art.verify_checksum(path, manifest)
            if problems:
                raise RestoreFailure('%s does not match its manifest, refusing to restore it: %s'
                                     % (path, '; '.join(problems)))
        return manifest

    def find_programs(self, fmt, pre_restore_backup, major):
        found = {}
        for name, of_server in programs_needed(fmt, pre_restore_backup):
            path = self.runner.find(name, min_major=major if of_server else None)
            found[name] = dict(path=path, version=self.runner.versions.get(name))
        return found

    def read_target(self, database):
        admin = self.admin
        exists = admin.scalar(sql.SQL('SELECT count(*) FROM pg_database WHERE datname = %s'), [database]) > 0
        rights = admin.rows(sql.SQL(
            'SELECT r.rolname, r.rolsuper AS superuser, r.rolcreatedb AS createdb, '
            "(SELECT pg_has_role(d.datdba, 'USAGE') FROM pg_database d WHERE d.datname = %s) AS owner "
            'FROM pg_roles r WHERE r.rolname = current_user'), [database])
        return dict(exists=exists, others=_other_sessions(admin, database) if exists else [],
                    rights=rights[0] if rights else {})

    def plan(self):
        params = self.params
        database = params.get('login_db')
        if not database:
            raise RestoreFailure('login_db (the database to restore into) is required')
        path = self.artifact_path()
        if not os.path.exists(path):
            raise RestoreFailure('%s does not exist' % path)
        manifest = self.read_manifest(path)
        fmt = artifact_format(manifest.get('format') if manifest else None, detect_format(path))
        kind = manifest.get('kind') if manifest else None
        opts = restore_options(params, path, fmt, kind)
        if fmt == 'plain':
            unsafe = script.scan_script(path)
            if unsafe:
                raise RestoreFailure('%s is not restored: it holds what psql would run as meta-commands (shell '
                                     'commands, file writes); a SQL artifact may hold only SQL and COPY data: %s'
                                     % (path, '; '.join(unsafe)))
        try:
            self.admin = open_session(params, database=params.get('maintenance_db') or 'postgres', autocommit=True,
                                      log=self.log)
        except ConnectionFailure as exc:
            raise RestoreFailure(str(exc))
        major = server_major(self.admin.server_version_num)
        if fmt == 'plain':
            older = plain_script_too_new(manifest, path, major)
            if older:
                raise RestoreFailure(older)
        target = self.read_target(database)
        actions = target_actions(database, target, params)
        backup_first = bool(params.get('pre_restore_backup')) and target['exists']
        self.programs = self.find_programs(fmt, backup_first, major)
        steps = dict(database=database, clean=opts['clean'], data_only=opts['data_only'], tables=opts['tables'],
                     jobs=opts['jobs'], single_transaction=opts['single_transaction'],
                     pre_restore_backup=bool(params.get('pre_restore_backup')),
                     programs=dict((n, p['version']) for n, p in self.programs.items()), **actions)
        if opts['data_only'] and opts['split'] and uses_pg_restore(fmt) and target['exists'] \
                and not actions['recreate_database']:
            self.order = _fk_order(params, database, opts['split'], self.log, self.warn)
            if self.order and opts['jobs'] > 1:
                self.warn('jobs > 1: pg_restore loads tables in parallel, so the foreign-key order of the tables is '
                          'not guaranteed; use jobs=1 or disable_triggers=true')
            steps['table_order'] = ['%s.%s' % t for t in self.order or []]
        self.manifest, self.options, self.exists, self.major = manifest, opts, target['exists'], major
        return dict(changed=True, path=path, database=database, plan=steps, pre_restore_backup=None, row_counts={},
                    expected_counts={}, mismatches=[], format=fmt, kind=kind or 'unknown',
                    duration_s=self.elapsed(), diff=restore_diff(database, path))

    # ------------------------------------------------------------ apply: the validated plan, in order
    def apply(self, plan):
        result = dict(plan, plan=dict(plan['plan']))
        steps, database, path = plan['plan'], plan['database'], plan['path']
        if steps['pre_restore_backup'] and self.exists:
            result['pre_restore_backup'] = self.ctx.partial['pre_restore_backup'] = self.backup_target()
        try:
            self.prepare(steps, database)
            forgiven = self.restore(path, plan['format'], database)
        except RestoreFailure as exc:
            done = self.undo_create(database)
            if done:
                raise RestoreFailure('%s; %s' % (exc, done))
            raise
        except BaseException:  # a cancel (SIGTERM: SystemExit once pg_restore or psql is ended): as a failure
            self.undo_create(database)
            raise
        if forgiven:
            self.warn('pg_restore --clean could not drop %d inherited constraint(s) of partitions; harmless, the '
                      'partitioned tables\' own drops removed them' % len(forgiven))
        self.close()
        result.update(self.count(database, path))
        result['duration_s'] = self.elapsed()
        return result

    def backup_target(self):
        """pg_backup's full backup of the target into backup_dest; its path."""
        params = self.params
        backup_params = dict(params, kind='full', format='custom', compress=None, dest=params['backup_dest'],
                             name='pre_restore_{database}_{timestamp}{ext}', tables=[], tenant=None,
                             keep_last=None, max_age_days=None, prune_only=False, jobs=1)
        try:
            made = dump.make_backup(backup_params, self.runner, self.log)
        except Exception as exc:  # pylint: disable=broad-except
            raise RestoreFailure('the backup of %s before the restore failed, nothing was restored: %s'
                                 % (params.get('login_db'), exc))
        return made['path']

    def prepare(self, steps, database):
        """End the other sessions, drop and create the target, as planned."""
        admin = self.admin
        try:
            if steps['terminate']:
                admin.execute(sql.SQL('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s '
                                      'AND pid <> pg_backend_pid() AND backend_type IS DISTINCT FROM %s'),
                              [database, 'autovacuum worker'])
            if steps['recreate_database']:
                drop_database(admin, database)
            if steps['create_database'] or steps['recreate_database']:
                # whether this run made the database is known before a cancel is handled (undo_create drops it)
                with sigterm_deferred():
                    admin.execute(sql.SQL('CREATE DATABASE {}').format(sql.Identifier(database)))
                    self.created = 'recreated' if steps['recreate_database'] else 'created'
        except psycopg2.Error as exc:
            raise RestoreFailure('Preparing %s failed: %s' % (database, database_error_message(exc)))

    def undo_create(self, database):
        """After a failed or cancelled restore: a database this run created where there was none is dropped (WITH
        (FORCE) from PostgreSQL 13, so the session of a pg_restore just ended does not hold it up), so a half-restored
        database never looks restored and the next run starts as this one did; a database that was there is never
        dropped, and one recreated (recreate_database: its old contents are gone either way) is left and named.
        Returns what the failure message adds, or None."""
        if self.created == 'recreated':
            return 'database %s was recreated by this run and holds a partial restore' % database
        if self.created != 'created' or self.admin is None:
            return None
        try:
            drop_database(self.admin, database)
        except psycopg2.Error as exc:
            return 'database %s, created by this run, holds a partial restore; dropping it failed: %s' % (
                database, database_error_message(exc))
        self.created = None
        return 'database %s, created by this run, was dropped' % database

    def restore(self, path, fmt, database):
        params, opts = self.params, self.options
        program = self.programs['pg_restore' if uses_pg_restore(fmt) else 'psql']['path']
        try:
            return run_restore(
                self.runner, self.major, path, self.manifest or dict(format=fmt), database, jobs=opts['jobs'],
                clean=opts['clean'], data_only=opts['data_only'] and uses_pg_restore(fmt),
                tables=[t for _s, t in opts['split']], single_transaction=opts['single_transaction'],
                no_owner=params.get('no_owner'), timeout=params.get('timeout'),
                disable_triggers=params.get('disable_triggers'), schemas=opts['schemas'], order=self.order,
                program=program)
        except RestoreFailure as exc:
            if opts['data_only'] and 'violates foreign key constraint' in str(exc):
                raise RestoreFailure('%s (the tables were loaded in foreign-key order; the referenced rows are not in '
                                     'the target nor in the tables restored: restore the referenced tables too, or '
                                     'set disable_triggers=true as a superuser)' % exc)
            raise

    def count(self, database, path):
        """What arrived: the artifact's tables (or the subset), counted in the target; mismatches with the
        manifest for a full clean restore."""
        opts = self.options
        expected = (self.manifest or {}).get('row_counts') or {}
        try:
            target = open_session(self.params, database=database, autocommit=True, log=self.log)
        except ConnectionFailure as exc:
            raise RestoreFailure(str(exc))
        try:
            if opts['tables']:
                names = [target.scalar(sql.SQL("SELECT CASE WHEN %s::text IS NULL THEN '' "
                                               "ELSE quote_ident(%s) || '.' END || quote_ident(%s)"), [s, s, t])
                         for s, t in opts['split']]
            else:
                names = list(expected) or [t['qname'] for t in catalog.user_tables(target)]
            counts = count_tables(target, names)
        except psycopg2.Error as exc:
            raise RestoreFailure('Counting the restored rows failed: %s' % database_error_message(exc))
        finally:
            target.close()
        found = dict(row_counts=counts)
        if opts['clean'] and not opts['tables'] and expected:
            found['expected_counts'] = expected
            found['mismatches'] = compare_counts(expected, counts)[1]
            if found['mismatches']:
                self.warn('restored counts differ from the manifest: %s' % '; '.join(found['mismatches']))
        return found
