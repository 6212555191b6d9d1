# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_integrity_check: its options (argument_spec) and the operation `IntegrityCheck`.

plan() reads the server (recovery, data_checksums, Azure's extension allow-list), the databases (their amcheck,
the tables and schemas named), finds pg_amcheck (method auto falls back to the extension's functions when it is
not found; method functions never looks), refuses what cannot run, and checks the databases that have amcheck (the
checks only read; the parent check's ShareLock is why it needs `maintenance_window`). apply() creates
amcheck where `create_extension` asked for it and checks those databases too; it is the only change."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec, client_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, resolve_tables
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import open_session, sql
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.integrity import amcheck, functions


class IntegrityError(Exception):
    """Options that cannot run (a parent check outside a maintenance window, a missing database or table)."""


ERRORS = (IntegrityError, CatalogError, functions.FunctionsError)
METHODS = ('auto', 'pg_amcheck', 'functions')
MIN_MAJOR = 14  # pg_amcheck ships with PostgreSQL 14 and later (it checks servers from 9.6 with amcheck)


def argument_spec():
    return ArgumentSpec(dict(
        databases=dict(type='list', elements='str'),
        schemas=dict(type='list', elements='str'),
        tables=dict(type='list', elements='str'),
        heapallindexed=dict(type='bool', default=False),
        parent_check=dict(type='bool', default=False),
        rootdescend=dict(type='bool', default=False),
        maintenance_window=dict(type='bool', default=False),
        jobs=dict(type='int', default=1),
        create_extension=dict(type='bool', default=False),
        method=dict(type='str', default='auto', choices=list(METHODS)),
    )).merge(client_spec())


def check_options(params, in_recovery):
    """Pure: refusals of the options alone (and of the server's recovery state)."""
    if params['jobs'] is None or params['jobs'] < 1:
        raise IntegrityError('jobs must be 1 or more (concurrent connections of pg_amcheck)')
    if params['parent_check'] and not params['maintenance_window']:
        raise IntegrityError('parent_check takes a ShareLock on every index and its table (INSERT, UPDATE, DELETE and '
                             'VACUUM wait for it): set maintenance_window: true to run it, in a maintenance window')
    if params['parent_check'] and in_recovery:
        raise IntegrityError('parent_check cannot run on a standby (bt_index_parent_check needs a ShareLock a hot '
                             'standby cannot take); run it on the primary or without parent_check')
    if params['rootdescend'] and not params['parent_check']:
        raise IntegrityError('rootdescend is part of the parent check: set parent_check: true (and '
                             'maintenance_window: true)')


def choose_method(method, find):
    """(method, program path, reason): `find()` returns pg_amcheck's path or raises ClientError (not found, or older
    than the server). auto: pg_amcheck when found, else the extension's functions (the reason says why)."""
    if method == 'functions':
        return 'functions', None, None
    try:
        return 'pg_amcheck', find(), None
    except ClientError as exc:
        if method == 'pg_amcheck':
            raise
        return 'functions', None, 'pg_amcheck not usable: %s' % exc


def old_amcheck(entries):
    """Pure: what says that a database to be checked has amcheck without verify_heapam (None when none has)."""
    for entry in entries:
        version = entry['amcheck_version']
        if version is not None and not functions.checks_tables(version):
            return 'amcheck %s in database %s has no verify_heapam' % (version, entry['database'])
    return None


def heap_limitation(database, version):
    """Pure: why the tables and TOAST of `database` cannot be checked with amcheck `version` (None when they can)."""
    if functions.checks_tables(version):
        return None
    return ('amcheck %s in database %s has no verify_heapam (amcheck 1.3, PostgreSQL 14 and later): only its btree '
            'indexes were checked, not its tables and TOAST (on PostgreSQL 14 or later, ALTER EXTENSION amcheck '
            'UPDATE)' % (version, database))


def allow_listed(setting):
    """Pure: whether amcheck is in Azure's azure.extensions allow-list (None when the server has no such list)."""
    if setting is None:
        return None
    return 'amcheck' in [x.strip().lower() for x in setting.split(',') if x.strip()]


EXTENSION_SQL = ("SELECT x.extversion AS version, n.nspname::text AS schema, "
                 "EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'amcheck') AS available "
                 "FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_extension x ON x.extname = 'amcheck' "
                 "LEFT JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace")


class IntegrityCheck(SessionOperation):
    programs = True

    def __init__(self, params, ctx):
        super(IntegrityCheck, self).__init__(params, ctx)
        self.program = None
        self.method = None
        self.targets = {}

    # ------------------------------------------------------------ plan
    def plan(self):
        params = self.params
        session = self.open()
        server = session.row("SELECT current_setting('server_version_num')::int AS version_num, "
                             "pg_is_in_recovery() AS in_recovery, current_setting('data_checksums') AS data_checksums, "
                             "current_setting('azure.extensions', true) AS azure_extensions")
        check_options(params, server['in_recovery'])
        databases = params.get('databases') or [params.get('login_db') or 'postgres']
        databases = list(dict.fromkeys(databases))
        found = dict((r['datname'], r) for r in session.rows(
            'SELECT datname, datallowconn FROM pg_database WHERE datname = ANY(%s)', [databases]))
        for name in databases:
            if name not in found:
                raise IntegrityError('database %r does not exist' % name)
            if not found[name]['datallowconn']:
                raise IntegrityError('database %r does not allow connections' % name)
        listed = allow_listed(server['azure_extensions'])
        min_major = max(MIN_MAJOR, server_major(server['version_num']))
        self.method, self.program, reason = choose_method(
            params['method'], lambda: self.runner.find('pg_amcheck', min_major=min_major))
        if self.method == 'functions' and params['jobs'] > 1:
            self.warn('jobs applies to pg_amcheck: the extension\'s functions check one relation at a time, in one '
                      'session')
        entries, to_create = [], []
        for name in databases:
            entry = self._inspect(name)
            if entry['amcheck_version'] is None:
                if not params['create_extension']:
                    entry['reason'] = ('amcheck is not installed in this database: set create_extension: true, or '
                                       'CREATE EXTENSION amcheck')
                    self.warn('%s not checked: %s' % (name, entry['reason']))
                elif listed is False:
                    raise IntegrityError('amcheck is not in Azure\'s allow-list (azure.extensions = %s): add it to '
                                         'the server parameter azure.extensions, then run again' %
                                         server['azure_extensions'])
                elif not entry['amcheck_available']:
                    raise IntegrityError('amcheck is not available on the server (contrib not installed): install '
                                         'the PostgreSQL contrib package')
                elif server['in_recovery']:
                    raise IntegrityError('amcheck is missing in %r and a standby cannot create it: create it on the '
                                         'primary' % name)
                else:
                    to_create.append(name)
            entries.append(entry)
        if self.method == 'pg_amcheck':
            old = old_amcheck(entries)
            if old and params['method'] == 'pg_amcheck':
                raise IntegrityError('%s; pg_amcheck calls it on every table and would report each as failing: use '
                                     'method: functions (then only the indexes are checked there), or ALTER EXTENSION '
                                     'amcheck UPDATE (PostgreSQL 14 and later)' % old)
            if old:
                self.method, self.program, reason = 'functions', None, '%s (pg_amcheck needs it)' % old
        result = dict(changed=bool(to_create), create_extension_in=to_create,
                      data_checksums=server['data_checksums'] == 'on', in_recovery=server['in_recovery'],
                      azure=dict(extensions=server['azure_extensions'], amcheck_allow_listed=listed),
                      checks=dict(heapallindexed=params['heapallindexed'], parent_check=params['parent_check'],
                                  rootdescend=params['rootdescend'], jobs=params['jobs']),
                      databases=entries, problems=[], method=self.method, method_reason=reason)
        for entry in entries:
            if entry['amcheck_version'] is not None:
                self._check(entry, result)
        return self._finish(result)

    def _inspect(self, name):
        """amcheck in the database, the tables and schemas named there (refused when missing), and its relations
        whose names hold a dot (to read pg_amcheck's unquoted names)."""
        params = self.params
        session = open_session(params, database=name, log=self.log)
        try:
            ext = session.row(EXTENSION_SQL)
            tables, oids = [], []
            if params.get('tables'):
                try:
                    rows = resolve_tables(session, params['tables'], partitions=True)
                except CatalogError as exc:
                    raise IntegrityError('database %s: %s' % (name, exc))
                # a partitioned table has no storage: its partitions are checked (all levels)
                rows = [r for r in rows if r['relkind'] != 'p']
                if not rows:
                    raise IntegrityError('database %s: the tables named are partitioned tables without partitions '
                                         '(nothing to check)' % name)
                tables = [(r['schema'], r['name']) for r in rows]
                oids = [r['oid'] for r in rows]
            schemas = list(dict.fromkeys(params.get('schemas') or []))
            if schemas:
                have = set(r['nspname'] for r in session.rows(
                    'SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)', [schemas]))
                missing = [s for s in schemas if s not in have]
                if missing:
                    raise IntegrityError('database %s has no schema %s' % (name, ', '.join(missing)))
            dotted = [(r['schema'], r['name']) for r in session.rows(
                "SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE strpos(n.nspname, '.') > 0 OR strpos(c.relname, '.') > 0")]
        finally:
            session.close()
        self.targets[name] = dict(tables=tables, table_oids=oids, schemas=schemas, known=dotted,
                                  amcheck_schema=ext['schema'])
        return dict(database=name, amcheck_version=ext['version'], amcheck_available=ext['available'],
                    extension_created=False, checked=False, tables_checked=False, relations=None, reason=None,
                    problems=0)

    def _check(self, entry, result):
        """The database's chosen relations (their indexes and TOAST included) checked by the method chosen."""
        if self.method == 'functions':
            self._check_functions(entry, result)
        else:
            self._check_program(entry, result)

    def _check_functions(self, entry, result):
        """The extension's functions over the database's chosen relations, in a session of the module's own."""
        name, target = entry['database'], self.targets[entry['database']]
        done = functions.check_database(self.params, name, target, target['amcheck_schema'], entry['amcheck_version'],
                                        self.log)
        entry.update(checked=True, tables_checked=done['tables_checked'], relations=done['relations'],
                     problems=len(done['problems']))
        if not done['tables_checked']:
            entry['reason'] = heap_limitation(name, entry['amcheck_version'])
            self.warn(entry['reason'])
        result['problems'].extend(done['problems'])

    def _check_program(self, entry, result):
        """pg_amcheck over the database's chosen relations (their indexes and TOAST included)."""
        name, target, params = entry['database'], self.targets[entry['database']], self.params
        argv = amcheck.build_argv(self.program, name, jobs=params['jobs'], heapallindexed=params['heapallindexed'],
                                  parent_check=params['parent_check'], rootdescend=params['rootdescend'],
                                  schemas=target['schemas'], tables=target['tables'])
        rc, out, err = self.runner.run(argv, database=name, check=False)
        problems = amcheck.parse_report(out, name, target['known'])
        if rc not in (0, 2) or (rc == 2 and not problems):
            raise ClientError('pg_amcheck failed on database %s (exit %s): %s' % (
                name, rc, (err or out or '').strip()[-2000:]), command=argv, rc=rc, stderr=err)
        entry.update(checked=True, tables_checked=True, problems=len(problems))
        result['problems'].extend(problems)

    def _finish(self, result):
        """The checksum failures the server counted (after the check: a damaged page it read counts), and the
        verdict."""
        names = [e['database'] for e in result['databases']]
        rows = self.session.rows(
            'SELECT datname AS database, checksum_failures AS failures, checksum_last_failure AS last_failure '
            'FROM pg_stat_database WHERE datname = ANY(%s) OR checksum_failures > 0 ORDER BY datname NULLS FIRST',
            [names])
        for row in rows:
            if row['last_failure'] is not None:
                row['last_failure'] = row['last_failure'].isoformat()
            row['database'] = row['database'] if row['database'] is not None else '(shared objects)'
        result['checksum_failures'] = rows
        # the chosen databases' own failures (and the shared catalogs'); other databases' are listed, not judged
        result['corrupt'] = bool(result['problems']) or any(
            r['failures'] for r in rows if r['database'] in names or r['database'] == '(shared objects)')
        result['duration_s'] = self.elapsed()
        return result

    # ------------------------------------------------------------ apply
    def apply(self, plan):
        for entry in plan['databases']:
            if entry['database'] not in plan['create_extension_in']:
                continue
            session = open_session(self.params, database=entry['database'], log=self.log)
            try:
                session.execute(sql.SQL('CREATE EXTENSION IF NOT EXISTS {}').format(sql.Identifier('amcheck')))
                ext = session.row(EXTENSION_SQL)
                entry['amcheck_version'] = ext['version']
                self.targets[entry['database']]['amcheck_schema'] = ext['schema']
            finally:
                session.close()
            entry['extension_created'] = True
            entry['reason'] = None
            self._check(entry, plan)
        return self._finish(plan)
