# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_base_backup: pg_basebackup into a hidden temporary folder, pg_verifybackup, our manifest, rename, retention.

The artifact is a folder (PostgreSQL's plain data directory, or base.tar[.gz] and pg_wal.tar[.gz] for the tar
format) with PostgreSQL's own backup_manifest in it. Beside it, _artifacts' manifest (kind=base) records the WAL
range the backup needs (start/end LSN and timeline from backup_manifest's WAL-Ranges), the system identifier, the
server version and start/end times: pg_restore_pitr chooses base backups from these manifests.
"""

from __future__ import annotations

import datetime
import json
import os
import time

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art
from ansible_collections.procgenie.dbops.plugins.module_utils import _wal as wal
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, database_error_message, open_session, psycopg2)

KIND = 'base'
FORMATS = ('tar', 'plain')
DEFAULT_NAME = 'base_{timestamp}{ext}'


class BaseBackupFailure(Exception):
    """The base backup failed; the message says why."""


def argument_spec():
    return dict(
        dest=dict(type='path', required=True),
        format=dict(type='str', default='tar', choices=list(FORMATS)),
        compress=dict(type='int'),
        checkpoint=dict(type='str', default='fast', choices=['fast', 'spread']),
        wal_method=dict(type='str', default='stream', choices=['stream', 'fetch', 'none']),
        name=dict(type='str'),
        verify=dict(type='bool', default=True),
        keep_last=dict(type='int'),
        max_age_days=dict(type='float'),
        timeout=dict(type='int'),
    )


def validate(params):
    compress = params.get('compress')
    if compress is not None:
        if not 0 <= compress <= 9:
            raise BaseBackupFailure('compress must be between 0 and 9 (gzip level)')
        if params.get('format') == 'plain' and compress:
            raise BaseBackupFailure('compress applies to format=tar only (a plain backup is a data directory)')
    if params.get('keep_last') is not None and params['keep_last'] < 1:
        raise BaseBackupFailure('keep_last must be 1 or more (the newest base backup is always kept)')
    if params.get('max_age_days') is not None and params['max_age_days'] < 0:
        raise BaseBackupFailure('max_age_days must not be negative')
    if params.get('timeout') is not None and params['timeout'] < 1:
        raise BaseBackupFailure('timeout must be 1 second or more (it was %s)' % params['timeout'])
    if 'dest' in params and not str(params.get('dest') or '').strip():
        raise BaseBackupFailure('dest must name the backup folder; an empty dest would write into the current '
                                'directory')


def backup_name(when, template=None):
    """Folder name of a base backup: base_YYYYMMDD_HHMMSS by default (fields {timestamp}, {prefix}, {ext})."""
    template = template or DEFAULT_NAME
    try:
        name = art.format_template(template, dict(prefix='base', timestamp=when.strftime('%Y%m%d_%H%M%S'), ext=''),
                                   ('prefix', 'timestamp', 'ext'))
    except art.ArtifactError as exc:
        raise BaseBackupFailure(str(exc))
    if not art.plain_name(name) or name.endswith(art.MANIFEST_SUFFIX):
        raise BaseBackupFailure('name template %r gives %r, which is not a plain folder name' % (template, name))
    return name


def pg_basebackup_argv(program, out, fmt, checkpoint, wal_method, compress=None, label=None):
    """Pure: the pg_basebackup command (connection and password come from the libpq environment)."""
    argv = [program, '--pgdata=%s' % out, '--format=%s' % fmt[0], '--checkpoint=%s' % checkpoint,
            '--wal-method=%s' % wal_method, '--no-password', '--manifest-checksums=CRC32C']
    if compress:
        argv.append('--compress=%d' % compress)
    if label:
        argv.append('--label=%s' % label)
    return argv


def wal_range(manifest_text):
    """(timeline, start_lsn, end_lsn) from a backup_manifest's WAL-Ranges (the first timeline and the last LSN)."""
    try:
        data = json.loads(manifest_text)
        ranges = data['WAL-Ranges']
    except (ValueError, KeyError, TypeError) as exc:
        raise BaseBackupFailure('backup_manifest has no WAL-Ranges: %s' % exc)
    if not ranges:
        raise BaseBackupFailure('backup_manifest has an empty WAL-Ranges')
    try:
        start = min(ranges, key=lambda r: wal.parse_lsn(r['Start-LSN']))
        end = max(ranges, key=lambda r: wal.parse_lsn(r['End-LSN']))
        return int(end['Timeline']), wal.format_lsn(wal.parse_lsn(start['Start-LSN'])), \
            wal.format_lsn(wal.parse_lsn(end['End-LSN']))
    except (KeyError, TypeError, ValueError, wal.WalError) as exc:
        raise BaseBackupFailure('backup_manifest has a WAL-Ranges entry that is not valid: %s' % exc)


def list_base_backups(folder, skipped=None):
    """(artifact path, manifest) of every complete base backup in folder, oldest first by end LSN.

    Manifests that are damaged (no end_lsn, a timeline that is not a number, ...) or of another kind are left out;
    with skipped a list, (manifest path, reason) of each damaged one is appended to it (see
    _artifacts.list_manifests)."""
    found = [(art.artifact_of_manifest(p), m) for p, m in art.list_manifests(folder, skipped)
             if m.get('kind') == KIND]
    found.sort(key=lambda item: (wal.parse_lsn(item[1]['end_lsn']), item[0]))
    return found


def pitr_retention(entries, now, keep_last=None, max_age_days=None):
    """Pure retention of base backups. entries: dicts path, end_time (datetime), verified.

    As for logical backups (art.select_for_deletion), plus: the newest base backup that ended at or before the
    start of the oldest kept PITR window (now - max_age_days, or the oldest base backup kept otherwise) is kept,
    because restoring to the earliest moment of that window needs it."""
    delete, keep = art.select_for_deletion(entries, now, keep_last=keep_last, max_age_days=max_age_days)
    if not delete:
        return delete, keep
    by_path = dict((e['path'], e) for e in entries)
    kept = [by_path[p] for p in keep]
    if max_age_days is not None:
        window_start = now - datetime.timedelta(days=max_age_days)
    else:
        window_start = min(e['end_time'] for e in kept)
    older = [by_path[p] for p in delete if by_path[p]['end_time'] <= window_start]
    if older and not any(e['end_time'] <= window_start for e in kept):
        needed = max(older, key=lambda e: e['end_time'])['path']
        delete = [p for p in delete if p != needed]
        keep = sorted(keep + [needed], key=lambda p: by_path[p]['end_time'], reverse=True)
    return delete, keep


def _server_facts(params, log):
    try:
        session = open_session(params, log=log)
    except ConnectionFailure as exc:
        raise BaseBackupFailure(str(exc))
    try:
        row = session.row('SELECT current_setting(%s)::int AS version_num, current_setting(%s) AS version, '
                          '(SELECT system_identifier::text FROM pg_control_system()) AS system_identifier, '
                          'pg_is_in_recovery() AS in_recovery', ['server_version_num', 'server_version'])
    except psycopg2.Error as exc:
        raise BaseBackupFailure(database_error_message(exc))
    finally:
        session.close()
    return row


def make_base_backup(params, runner, log, check_mode=False, warn=None):
    """One base backup; returns the result fields. Raises BaseBackupFailure.

    Folders it creates are 0700, the backup's files 0600 (pg_basebackup runs with umask 077)."""
    validate(params)
    with art.private_files():
        return _make_base_backup(params, runner, log, check_mode, warn or (lambda msg: None))


def _retention(dest, series, now, keep_last, max_age, warn, new_path=None):
    """(delete, skipped manifest paths) of a retention run; damaged manifests are skipped and warned about."""
    skipped = []
    if not keep_last and max_age is None:
        return [], []
    entries = [dict(path=p, end_time=art.parse_iso(m['end_time']), verified=bool(m.get('verified')))
               for p, m in list_base_backups(dest, skipped) if m.get('series') == series]
    for message in art.skipped_messages(skipped):
        warn('retention left alone a manifest it cannot use: %s' % message)
    if new_path:
        entries.append(dict(path=new_path, end_time=now, verified=False))
    delete, _keep = pitr_retention(entries, now, keep_last, max_age)
    return [p for p in delete if p != new_path], [p for p, _r in skipped]


def _make_base_backup(params, runner, log, check_mode, warn):
    started = time.monotonic()
    start = art.utc_now()
    dest = os.path.abspath(params['dest'])
    name = backup_name(start, params.get('name'))
    final = os.path.join(dest, name)
    facts = _server_facts(params, log)
    major = server_major(facts['version_num'])
    host = params.get('login_unix_socket') or params.get('login_host') or ''
    series = 'base|%s|%s' % (facts['system_identifier'], params.get('format'))
    keep_last, max_age = params.get('keep_last'), params.get('max_age_days')
    result = dict(path=final, manifest=art.manifest_path(final), format=params['format'],
                  system_identifier=facts['system_identifier'], server_version=facts['version'],
                  start_lsn=None, end_lsn=None, timeline=None, start_time=None, end_time=None,
                  size_bytes=None, sha256=None, verify=None, deleted=[], changed=True)
    try:
        program = runner.find('pg_basebackup', major)
        verifier = runner.find('pg_verifybackup', major) if params.get('verify') else None
    except ClientError as exc:
        raise BaseBackupFailure(str(exc))
    # retention is planned before anything is written: a damaged manifest is skipped and reported, never fatal
    result['deleted'], result['skipped_manifests'] = _retention(dest, series, start, keep_last, max_age, warn,
                                                                new_path=final)
    if check_mode:
        result['diff'] = dict(before='', after='%s\n' % final)
        result['duration_s'] = round(time.monotonic() - started, 3)
        return result
    try:
        art.check_writable_folder(dest)
    except art.ArtifactError as exc:
        raise BaseBackupFailure(str(exc))
    for stale in art.stale_partials(dest):
        art.remove_path(stale)
    if os.path.lexists(final):
        raise BaseBackupFailure('%s already exists; refusing to overwrite it (use another name template)' % final)
    tmp = art.temp_path(final)
    try:
        argv = pg_basebackup_argv(program, tmp, params['format'], params['checkpoint'], params['wal_method'],
                                  params.get('compress'), label='procgenie.dbops %s' % name)
        try:
            runner.run(argv, timeout=params.get('timeout'))
        except ClientError as exc:
            raise BaseBackupFailure(str(exc))
        end = art.utc_now()
        with open(os.path.join(tmp, 'backup_manifest')) as handle:
            timeline, start_lsn, end_lsn = wal_range(handle.read())
        verify = dict(tool='pg_verifybackup', result='skipped', detail=None)
        if verifier and params['format'] == 'plain':
            argv = [verifier, '--quiet'] + (['--no-parse-wal'] if params['wal_method'] == 'none' else []) + [tmp]
            rc, out, err = runner.run(argv, check=False, timeout=params.get('timeout'))
            verify = dict(tool='pg_verifybackup', result='passed' if rc == 0 else 'failed',
                          detail=(err or out).strip() or None)
            if rc != 0:
                raise BaseBackupFailure('pg_verifybackup found problems in the new base backup: %s'
                                        % verify['detail'])
        elif verifier and major < 18:
            verify['detail'] = 'pg_verifybackup of PostgreSQL %d reads plain-format backups only' % major
        elif verifier:
            rc, out, err = runner.run([verifier, '--quiet', '--no-parse-wal', tmp], check=False,
                                      timeout=params.get('timeout'))
            verify = dict(tool='pg_verifybackup', result='passed' if rc == 0 else 'failed',
                          detail=(err or out).strip() or None)
            if rc != 0:
                raise BaseBackupFailure('pg_verifybackup found problems: %s' % verify['detail'])
        digest, files, size = art.checksum(tmp)
        manifest = dict(tool=art.MANIFEST_TOOL, manifest_version=art.MANIFEST_VERSION, kind=KIND,
                        format=params['format'], compress=params.get('compress'), checkpoint=params['checkpoint'],
                        wal_method=params['wal_method'], series=series, host=host, port=params.get('login_port'),
                        server_version=facts['version'], server_version_num=facts['version_num'], major=major,
                        system_identifier=facts['system_identifier'], from_standby=facts['in_recovery'],
                        timeline=timeline, start_lsn=start_lsn, end_lsn=end_lsn,
                        start_segment=wal.segment_name(timeline, wal.segno(start_lsn)),
                        start_time=art.iso(start), end_time=art.iso(end), size_bytes=size, sha256=digest,
                        files=files, pg_verifybackup=verify, verified=verify['result'] == 'passed',
                        pg_basebackup=runner.versions.get('pg_basebackup'))
        art.publish(tmp, final, manifest)
    except BaseException:
        art.remove_path(tmp)
        raise
    result.update(start_lsn=start_lsn, end_lsn=end_lsn, timeline=timeline, start_time=art.iso(start),
                  end_time=art.iso(end), size_bytes=size, sha256=digest, verify=verify)
    deleted = []
    delete, _skipped = _retention(dest, series, end, keep_last, max_age, lambda msg: None)
    for path in delete:
        if path != final:
            art.delete_artifact(path)
            deleted.append(path)
    result['deleted'] = deleted
    result['diff'] = dict(before='', after='%s\n' % final + ''.join('- %s\n' % p for p in deleted))
    result['duration_s'] = round(time.monotonic() - started, 3)
    return result
