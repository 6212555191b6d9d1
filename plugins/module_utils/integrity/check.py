# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_integrity_check: its options (argument_spec) and the operation `IntegrityCheck`.

plan() reads the server (recovery, data_checksums, Azure's extension allow-list), the databases (their amcheck,
the tables and schemas named), finds pg_amcheck, refuses what cannot run, and checks the databases that have
amcheck (pg_amcheck only reads; the parent check's ShareLock is why it needs `maintenance_window`). apply() creates
amcheck where `create_extension` asked for it and checks those databases too; it is the only change."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec, client_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, resolve_tables
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import open_session, sql
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.integrity import amcheck


class IntegrityError(Exception):
    """Options that cannot run (a parent check outside a maintenance window, a missing database or table)."""


ERRORS = (IntegrityError, CatalogError)
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


def allow_listed(setting):
    """Pure: whether amcheck is in Azure's azure.extensions allow-list (None when the server has no such list)."""
    if setting is None:
        return None
    return 'amcheck' in [x.strip().lower() for x in setting.split(',') if x.strip()]


class IntegrityCheck(SessionOperation):
    programs = True

    def __init__(self, params, ctx):
        super(IntegrityCheck, self).__init__(params, ctx)
        self.program = None
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
        self.program = self.runner.find('pg_amcheck', min_major=max(MIN_MAJOR, server_major(server['version_num'])))
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
        result = dict(changed=bool(to_create), create_extension_in=to_create,
                      data_checksums=server['data_checksums'] == 'on', in_recovery=server['in_recovery'],
                      azure=dict(extensions=server['azure_extensions'], amcheck_allow_listed=listed),
                      checks=dict(heapallindexed=params['heapallindexed'], parent_check=params['parent_check'],
                                  rootdescend=params['rootdescend'], jobs=params['jobs']),
                      databases=entries, problems=[])
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
            ext = session.row("SELECT (SELECT extversion FROM pg_extension WHERE extname = 'amcheck') AS version, "
                              "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck') AS available")
            tables = []
            if params.get('tables'):
                try:
                    rows = resolve_tables(session, params['tables'], partitions=False)
                except CatalogError as exc:
                    raise IntegrityError('database %s: %s' % (name, exc))
                tables = [(r['schema'], r['name']) for r in rows]
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
        self.targets[name] = dict(tables=tables, schemas=schemas, known=dotted)
        return dict(database=name, amcheck_version=ext['version'], amcheck_available=ext['available'],
                    extension_created=False, checked=False, reason=None, problems=0)

    def _check(self, entry, result):
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
        entry['checked'] = True
        entry['problems'] = len(problems)
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
                entry['amcheck_version'] = session.scalar("SELECT extversion FROM pg_extension WHERE extname = 'amcheck'")
            finally:
                session.close()
            entry['extension_created'] = True
            entry['reason'] = None
            self._check(entry, plan)
        return self._finish(plan)
