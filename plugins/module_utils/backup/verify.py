# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup_verify: the runbook's weekly verification, made exact.

Checksum first; then a restore into a scratch database with a unique name, which is always dropped (also when the
restore fails or the module is interrupted; scratch databases of killed runs are dropped by the next run); the
restored row count of every table against the manifest (exact), the RLS flags and policies against the manifest,
optionally the live source's counts as drift; the result recorded in the manifest.

`Verify.plan()` reads and checks everything a verification needs (manifest, checksums, the scan of plain scripts,
the server, the client programs, leftover scratch databases); `Verify.apply()` restores, counts, compares and
records. A verification that fails on the artifact (checksum, script, restore) is recorded in the manifest too,
except in check mode."""

from __future__ import annotations

import os

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art
from ansible_collections.procgenie.dbops.plugins.module_utils import _psql_script as script
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, database_error_message, open_session, psycopg2)
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import catalog
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import restore as rst


class VerifyFailure(Exception):
    """Verification could not run or did not pass; `result` holds what is known so far. `record`: a finding about
    the artifact (checksum, script, restore), recorded in its manifest before the module fails."""

    def __init__(self, msg, result=None, record=False):
        super(VerifyFailure, self).__init__(msg)
        self.result = result or {}
        self.record = record


def argument_spec():
    """pg_backup_verify's own options and their constraints (the connection and client options:
    _argspec.postgres_spec(), client_spec())."""
    return ArgumentSpec(dict(
        path=dict(type='path'),
        dest=dict(type='path'),
        kind=dict(type='str', choices=['full', 'schema_only', 'tables', 'tenant']),
        scratch_prefix=dict(type='str', default='dbops_verify_'),
        jobs=dict(type='int', default=2),
        compare_live=dict(type='bool', default=False),
        fail_on_mismatch=dict(type='bool', default=True),
        no_owner=dict(type='bool', default=False),
        schema_from=dict(type='path'),
        timeout=dict(type='int'),
    ), required_one_of=[('path', 'dest')], mutually_exclusive=[('path', 'dest')])


def validate(params):
    """Option checks made before anything is read or run. Raises VerifyFailure."""
    if params.get('jobs') is not None and params['jobs'] < 1:
        raise VerifyFailure('jobs must be 1 or more (it was %s)' % params['jobs'])
    if params.get('timeout') is not None and params['timeout'] < 1:
        raise VerifyFailure('timeout must be 1 second or more (it was %s)' % params['timeout'])
    for option in ('path', 'dest', 'schema_from'):
        if option in params and params[option] is not None and not str(params[option]).strip():
            raise VerifyFailure('%s must not be empty' % option)
    if not params.get('scratch_prefix'):
        raise VerifyFailure('scratch_prefix must not be empty (databases with it are dropped as leftovers)')


def program_of(manifest):
    """Pure: the client program that restores an artifact of the manifest's format, and whether it must be of the
    server's major version or newer (pg_restore) or may be any (psql reads plain SQL)."""
    return ('pg_restore', True) if rst.uses_pg_restore(manifest.get('format')) else ('psql', False)


def first_result(path, manifest):
    """Pure: the result of a verification before it ran (nothing passed yet)."""
    return dict(path=path, manifest=art.manifest_path(path), kind=manifest.get('kind'), format=manifest.get('format'),
                database=manifest.get('database'), scratch_database=None, tables=[], mismatches=[], rls_problems=[],
                checksum_ok=False, passed=False, drift={})


def failure_message(result):
    """Pure: the message of a verification that ran and did not pass."""
    return 'Verification of %s failed: %s' % (result['path'], '; '.join(result['mismatches'] + result['rls_problems']))


def script_problems(path, manifest):
    """What makes a plain artifact unsafe to hand to psql (see _psql_script.scan_script); [] for the other
    formats, which pg_restore reads."""
    if manifest.get('format') != 'plain' or os.path.isdir(path):
        return []
    try:
        return script.scan_script(path)
    except OSError as exc:
        return ['cannot read %s: %s' % (path, exc)]


def pick_artifact(params):
    """The artifact to verify: `path`, or the newest complete one in `dest` (of `kind` when given; the argument
    spec makes sure one of them is given)."""
    if params.get('path'):
        return params['path'].rstrip('/')
    entries = [(p, m) for p, m in art.list_manifests(params['dest'], kind='logical')
               if not params.get('kind') or m.get('kind') == params['kind']]
    if not entries:
        raise VerifyFailure('no pg_backup artifact%s in %s' % (
            ' of kind %s' % params['kind'] if params.get('kind') else '', params['dest']))
    return art.artifact_of_manifest(entries[-1][0])


def schema_for_tenant(params, path, manifest):
    """A tenant artifact is data only: the schema artifact to restore first (schema_from, or the newest
    schema_only artifact of the same database beside it)."""
    if params.get('schema_from'):
        return params['schema_from'].rstrip('/')
    entries = [(p, m) for p, m in art.list_manifests(os.path.dirname(path), kind='logical')
               if m.get('kind') == 'schema_only' and m.get('database') == manifest.get('database')]
    if not entries:
        raise VerifyFailure('%s holds tenant rows only; verifying it needs the schema: set schema_from to a '
                            'schema_only artifact of %s' % (path, manifest.get('database')))
    return art.artifact_of_manifest(entries[-1][0])


class Verify(Operation):
    """pg_backup_verify: one artifact checked (plan) and restored into a scratch database that is always dropped
    (apply)."""

    def __init__(self, params, ctx):
        super(Verify, self).__init__(params, ctx)
        self.now = art.utc_now()
        self.admin = None
        self.restores = []  # (path, manifest, program path), the schema artifact of a tenant artifact first
        self.manifest = None
        self.stale = []

    def close(self):
        if self.admin is not None:
            self.admin.close()
            self.admin = None

    def run(self):
        """plan() and apply(); a finding about the artifact is recorded in its manifest (not in check mode)."""
        try:
            return super(Verify, self).run()
        except VerifyFailure as exc:
            if exc.record and not self.ctx.check_mode:
                self.record(exc.result)
            raise

    # ------------------------------------------------------------ plan: read and check everything, change nothing
    def plan(self):
        params = self.params
        validate(params)
        path = pick_artifact(params)
        try:
            manifest = art.read_manifest(path, 'logical')
        except art.ArtifactError as exc:
            raise VerifyFailure(str(exc), dict(path=path))
        result = first_result(path, manifest)
        problems = art.verify_checksum(path, manifest)
        schema_path = schema_manifest = None
        if not problems and manifest.get('kind') == 'tenant':
            schema_path = schema_for_tenant(params, path, manifest)
            try:
                schema_manifest = art.read_manifest(schema_path, 'logical')
            except art.ArtifactError as exc:
                raise VerifyFailure(str(exc), result)
            problems += ['schema artifact: %s' % p for p in art.verify_checksum(schema_path, schema_manifest)]
        result['checksum_ok'] = not problems
        if problems:
            result['mismatches'] = problems
            raise VerifyFailure('%s does not match its manifest: %s' % (path, '; '.join(problems)), result, record=True)
        # a plain artifact is run by psql: before it goes anywhere near psql, it must hold nothing but SQL and COPY data
        unsafe = script_problems(path, manifest)
        if schema_path:
            unsafe += ['schema artifact: %s' % p for p in script_problems(schema_path, schema_manifest)]
        result['script_ok'] = not unsafe
        if unsafe:
            result['mismatches'] = unsafe
            raise VerifyFailure('%s is not restored: it holds what psql would run as meta-commands (shell commands, '
                                'file writes); only SQL and COPY data may be in a backup: %s'
                                % (path, '; '.join(unsafe)), result, record=True)
        self.manifest = manifest
        self.read_server(result, [(schema_path, schema_manifest)] if schema_path else [], path)
        result.update(changed=True, duration_s=self.elapsed())
        return result

    def read_server(self, result, schema, path):
        """The server that hosts the scratch database: its major version, the client programs of it (found now, so a
        missing one fails before a scratch database exists), the scratch databases earlier killed runs left."""
        params = self.params
        try:
            self.admin = open_session(params, database=params.get('login_db') or 'postgres', autocommit=True,
                                      log=self.log)
        except ConnectionFailure as exc:
            raise VerifyFailure(str(exc), result)
        self.major = server_major(self.admin.server_version_num)
        try:
            for artifact, manifest in schema + [(path, self.manifest)]:
                name, of_server = program_of(manifest)
                program = self.runner.find(name, min_major=self.major if of_server else None)
                self.restores.append((artifact, manifest, program))
        except ClientError as exc:
            raise VerifyFailure(str(exc), result)
        try:
            self.stale = rst.stale_scratch_databases(self.admin, params['scratch_prefix'], self.now)
        except psycopg2.Error as exc:
            raise VerifyFailure('Preparing the scratch database failed: %s' % database_error_message(exc), result)

    # ------------------------------------------------------------ apply: restore, count, compare, record
    def apply(self, plan):
        result = dict(plan)
        params, admin = self.params, self.admin
        scratch = None
        try:
            try:
                for stale in self.stale:
                    self.warn('dropping %s, left behind by an interrupted verification' % stale)
                    rst.drop_database(admin, stale)
                scratch = rst.scratch_name(params['scratch_prefix'], self.now)
                rst.create_scratch(admin, scratch, self.now)
                result['scratch_database'] = scratch
            except psycopg2.Error as exc:
                raise VerifyFailure('Preparing the scratch database failed: %s' % database_error_message(exc), result)
            self.restore(scratch, result)
            self.compare(scratch, result)
        finally:
            if scratch is not None:
                try:
                    rst.drop_database(admin, scratch)
                except psycopg2.Error as exc:
                    self.warn('could not drop the scratch database %s: %s' % (scratch, database_error_message(exc)))
            self.close()
        result['verification'] = self.record(result)
        result.update(changed=True, duration_s=self.elapsed())
        if not result['passed'] and params['fail_on_mismatch']:
            raise VerifyFailure(failure_message(result), result)
        return result

    def restore(self, scratch, result):
        """The schema artifact (for a tenant artifact), then the artifact, into the scratch database."""
        params = self.params
        path = result['path']
        try:
            for artifact, manifest, program in self.restores:
                main = artifact == path
                rst.run_restore(self.runner, self.major, artifact, manifest, scratch,
                                jobs=(params.get('jobs') or 1) if main else 1, no_owner=params.get('no_owner'),
                                skip_fk=main and manifest.get('kind') == 'tables', timeout=params.get('timeout'),
                                program=program)
        except (rst.RestoreFailure, ClientError) as exc:
            result['mismatches'] = ['restore failed: %s' % exc]
            raise VerifyFailure('Restoring %s into %s failed: %s' % (path, scratch, exc), result, record=True)

    def compare(self, scratch, result):
        """Counts and RLS state of the scratch database against the manifest (and the live source's, as drift)."""
        params, manifest = self.params, self.manifest
        expected = manifest.get('row_counts') or {}
        try:
            restored_session = open_session(params, database=scratch, autocommit=True, log=self.log)
        except ConnectionFailure as exc:
            raise VerifyFailure(str(exc), result)
        try:
            restored = rst.count_tables(restored_session, list(expected))
            rls_now = catalog.rls_state(restored_session, [t for t in rst.resolve_in(
                restored_session, list(manifest.get('rls') or {})).values() if t])
        except psycopg2.Error as exc:
            raise VerifyFailure('Counting the restored rows failed: %s' % database_error_message(exc), result)
        finally:
            restored_session.close()
        live = None
        if params.get('compare_live') and manifest.get('kind') != 'schema_only':
            live = _live_counts(params, manifest, self.log, self.warn)
        rows, mismatches = rst.compare_counts(expected, restored, live)
        result['tables'] = rows
        result['mismatches'] = mismatches
        result['rls_problems'] = catalog.rls_differences(manifest.get('rls') or {}, rls_now)
        if live is not None:
            result['drift'] = dict((r['table'], r['drift']) for r in rows if r.get('drift'))
        result['passed'] = not mismatches and not result['rls_problems']

    def record(self, result):
        """The verification recorded in the artifact's manifest; the record (recorded=False when it could not be
        written)."""
        record = verification_record(result, self.now, self.elapsed())
        try:
            art.record_verification(result['path'], record)
        except (OSError, art.ArtifactError):
            record['recorded'] = False
        return record


def _live_counts(params, manifest, log, warn):
    try:
        session = open_session(params, database=manifest.get('database'), autocommit=True, log=log)
    except ConnectionFailure as exc:
        warn('cannot compare with the live source: %s' % exc)
        return None
    try:
        if manifest.get('kind') == 'tenant':
            live = {}
            for qname in manifest.get('row_counts') or {}:
                table = rst.resolve_in(session, [qname])[qname]
                if table is None:
                    live[qname] = None
                    continue
                column = (manifest.get('tenant_filters') or {}).get(qname) or manifest.get('tenant_column')
                live.update(catalog.count_rows(session, [table], column, manifest.get('tenant')))
            return live
        return rst.count_tables(session, list(manifest.get('row_counts') or {}))
    except psycopg2.Error as exc:
        warn('cannot compare with the live source: %s' % database_error_message(exc))
        return None
    finally:
        session.close()


def verification_record(result, now, duration_s):
    """Pure: what a verification records in the manifest."""
    return dict(time=art.iso(now), result='passed' if result.get('passed') else 'failed',
                checksum_ok=result.get('checksum_ok'), mismatches=len(result.get('mismatches') or []),
                rls_problems=len(result.get('rls_problems') or []),
                scratch_database=result.get('scratch_database'), duration_s=duration_s)
