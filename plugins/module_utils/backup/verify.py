# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup_verify: the runbook's weekly verification, made exact.

Checksum first; then a restore into a scratch database with a unique name, which is always dropped (also when the
restore fails or the module is interrupted; scratch databases of killed runs are dropped by the next run); the
restored row count of every table against the manifest (exact), the RLS flags and policies against the manifest,
optionally the live source's counts as drift; the result recorded in the manifest."""

from __future__ import annotations

import os
import time

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art
from ansible_collections.procgenie.dbops.plugins.module_utils import _psql_script as script
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, database_error_message, open_session, psycopg2)
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import catalog
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import restore as rst


class VerifyFailure(Exception):
    """Verification could not run; `result` holds what is known so far."""

    def __init__(self, msg, result=None):
        super(VerifyFailure, self).__init__(msg)
        self.result = result or {}


def verify_argument_spec():
    return dict(
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
    )


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
    """The artifact to verify: `path`, or the newest complete one in `dest` (of `kind` when given)."""
    if params.get('path'):
        return params['path'].rstrip('/')
    if not params.get('dest'):
        raise VerifyFailure('give path (an artifact) or dest (a backup folder: its newest artifact is verified)')
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


def verify(params, runner, log, check_mode=False, warn=None):
    """Verify one artifact; returns the result fields (passed, tables, mismatches, ...). Raises VerifyFailure."""
    validate(params)
    started = time.monotonic()
    now = art.utc_now()
    path = pick_artifact(params)
    try:
        manifest = art.read_manifest(path, 'logical')
    except art.ArtifactError as exc:
        raise VerifyFailure(str(exc), dict(path=path))
    result = dict(path=path, manifest=art.manifest_path(path), kind=manifest.get('kind'),
                  format=manifest.get('format'), database=manifest.get('database'), scratch_database=None,
                  tables=[], mismatches=[], rls_problems=[], checksum_ok=False, passed=False, drift={})
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
        if not check_mode:
            _record(path, result, now, started)
        raise VerifyFailure('%s does not match its manifest: %s' % (path, '; '.join(problems)), result)
    # a plain artifact is run by psql: before it goes anywhere near psql, it must hold nothing but SQL and COPY data
    unsafe = script_problems(path, manifest)
    if schema_path:
        unsafe += ['schema artifact: %s' % p for p in script_problems(schema_path, schema_manifest)]
    result['script_ok'] = not unsafe
    if unsafe:
        result['mismatches'] = unsafe
        if not check_mode:
            _record(path, result, now, started)
        raise VerifyFailure('%s is not restored: it holds what psql would run as meta-commands (shell commands, '
                            'file writes); only SQL and COPY data may be in a backup: %s' % (path, '; '.join(unsafe)),
                            result)
    if check_mode:
        result.update(changed=True, duration_s=round(time.monotonic() - started, 3))
        return result

    try:
        admin = open_session(params, database=params.get('login_db') or 'postgres', autocommit=True, log=log)
    except ConnectionFailure as exc:
        raise VerifyFailure(str(exc), result)
    scratch = None
    try:
        try:
            major = server_major(admin.server_version_num)
            for stale in rst.stale_scratch_databases(admin, params['scratch_prefix'], now):
                warn('dropping %s, left behind by an interrupted verification' % stale)
                rst.drop_database(admin, stale)
            scratch = rst.scratch_name(params['scratch_prefix'], now)
            rst.create_scratch(admin, scratch, now)
            result['scratch_database'] = scratch
        except psycopg2.Error as exc:
            raise VerifyFailure('Preparing the scratch database failed: %s' % database_error_message(exc), result)
        jobs = params.get('jobs') or 1
        try:
            if schema_path:
                rst.run_restore(runner, major, schema_path, schema_manifest, scratch,
                                no_owner=params.get('no_owner'), timeout=params.get('timeout'))
            rst.run_restore(runner, major, path, manifest, scratch, jobs=jobs, no_owner=params.get('no_owner'),
                            skip_fk=manifest.get('kind') == 'tables', timeout=params.get('timeout'))
        except (rst.RestoreFailure, ClientError) as exc:
            result['mismatches'] = ['restore failed: %s' % exc]
            _record(path, result, now, started)
            raise VerifyFailure('Restoring %s into %s failed: %s' % (path, scratch, exc), result)
        expected = manifest.get('row_counts') or {}
        try:
            restored_session = open_session(params, database=scratch, autocommit=True, log=log)
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
            live = _live_counts(params, manifest, log, warn)
        rows, mismatches = rst.compare_counts(expected, restored, live)
        result['tables'] = rows
        result['mismatches'] = mismatches
        result['rls_problems'] = catalog.rls_differences(manifest.get('rls') or {}, rls_now)
        if live is not None:
            result['drift'] = dict((r['table'], r['drift']) for r in rows if r.get('drift'))
        result['passed'] = not mismatches and not result['rls_problems']
    finally:
        if scratch is not None:
            try:
                rst.drop_database(admin, scratch)
            except psycopg2.Error as exc:
                warn('could not drop the scratch database %s: %s' % (scratch, database_error_message(exc)))
        admin.close()
    result['verification'] = _record(path, result, now, started)
    result.update(changed=True, duration_s=round(time.monotonic() - started, 3))
    return result


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


def _record(path, result, now, started):
    record = dict(time=art.iso(now), result='passed' if result.get('passed') else 'failed',
                  checksum_ok=result.get('checksum_ok'), mismatches=len(result.get('mismatches') or []),
                  rls_problems=len(result.get('rls_problems') or []),
                  scratch_database=result.get('scratch_database'),
                  duration_s=round(time.monotonic() - started, 3))
    try:
        art.record_verification(path, record)
    except (OSError, art.ArtifactError):
        record['recorded'] = False
    return record
