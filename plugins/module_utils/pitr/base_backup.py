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

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art
from ansible_collections.procgenie.dbops.plugins.module_utils import _wal as wal
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, database_error_message, open_session, psycopg2)
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import text_diff
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation

KIND = 'base'
FORMATS = ('tar', 'plain')
DEFAULT_NAME = 'base_{timestamp}{ext}'


class BaseBackupFailure(Exception):
    """The base backup failed; the message says why."""


def argument_spec():
    """pg_base_backup's own options (the connection and client options: _argspec.postgres_spec(), client_spec());
    what they mean together is checked by validate()."""
    return ArgumentSpec(dict(
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
    ))


def validate(params):
    """The options checked together (what the argument spec cannot say). Raises BaseBackupFailure."""
    compress = params.get('compress')
    if compress is not None:
        if not 0 <= compress <= 9:
            raise BaseBackupFailure('compress must be between 0 and 9 (gzip level)')
        if params.get('format') == 'plain' and compress:
            raise BaseBackupFailure('compress applies to format=tar only (a plain backup is a data directory)')
    problem = art.option_problem(params, 'base backup')
    if problem:
        raise BaseBackupFailure(problem)


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


def verify_argv(verifier, path, fmt, wal_method, major):
    """Pure: the pg_verifybackup command for a new base backup, or (None, why) when it cannot check it: a
    pg_verifybackup older than PostgreSQL 18 reads plain-format backups only."""
    if fmt == 'plain':
        return [verifier, '--quiet'] + (['--no-parse-wal'] if wal_method == 'none' else []) + [path], None
    if major < 18:
        return None, 'pg_verifybackup of PostgreSQL %d reads plain-format backups only' % major
    return [verifier, '--quiet', '--no-parse-wal', path], None


def backup_diff(final, deleted):
    """Pure: the diff of a base backup: the folder made and the folders retention deletes (``- path``)."""
    return text_diff([], [final] + ['- %s' % p for p in deleted])


class BaseBackup(Operation):
    """pg_base_backup. plan() checks the options and the name, reads the server (version, system identifier),
    finds pg_basebackup and pg_verifybackup (not older than the server), checks the folder and plans retention
    (damaged manifests skipped and reported); apply() runs pg_basebackup into a temporary name (umask 077),
    verifies it, publishes it with its manifest and deletes what retention planned."""

    def __init__(self, params, ctx):
        super(BaseBackup, self).__init__(params, ctx)
        self.facts = {}

    # ------------------------------------------------------------ plan: read and check everything, change nothing
    def plan(self):
        params = self.params
        validate(params)
        start = art.utc_now()
        dest = os.path.abspath(params['dest'])
        name = backup_name(start, params.get('name'))
        final = os.path.join(dest, name)
        try:
            art.check_folder_can_be_written(dest)
        except art.ArtifactError as exc:
            raise BaseBackupFailure(str(exc))
        if os.path.lexists(final):
            raise BaseBackupFailure('%s already exists; refusing to overwrite it (use another name template)' % final)
        server = self.read_server()
        major = server_major(server['version_num'])
        try:
            program = self.runner.find('pg_basebackup', major)
            verifier = self.runner.find('pg_verifybackup', major) if params.get('verify') else None
        except ClientError as exc:
            raise BaseBackupFailure(str(exc))
        series = 'base|%s|%s' % (server['system_identifier'], params.get('format'))
        # retention is planned before anything is written: a damaged manifest is skipped and reported, never fatal
        deleted, skipped = self.retention(dest, series, start, new_path=final)
        self.facts = dict(start=start, dest=dest, name=name, final=final, server=server, major=major,
                          program=program, verifier=verifier, series=series)
        return dict(path=final, manifest=art.manifest_path(final), format=params['format'],
                    system_identifier=server['system_identifier'], server_version=server['version'],
                    start_lsn=None, end_lsn=None, timeline=None, start_time=None, end_time=None,
                    size_bytes=None, sha256=None, verify=None, deleted=deleted, skipped_manifests=skipped,
                    changed=True, diff=backup_diff(final, deleted), duration_s=self.elapsed())

    def read_server(self):
        """version_num, version, system_identifier and in_recovery of the server backed up."""
        try:
            session = open_session(self.params, log=self.log)
        except ConnectionFailure as exc:
            raise BaseBackupFailure(str(exc))
        try:
            return session.row('SELECT current_setting(%s)::int AS version_num, current_setting(%s) AS version, '
                               '(SELECT system_identifier::text FROM pg_control_system()) AS system_identifier, '
                               'pg_is_in_recovery() AS in_recovery', ['server_version_num', 'server_version'])
        except psycopg2.Error as exc:
            raise BaseBackupFailure(database_error_message(exc))
        finally:
            session.close()

    def retention(self, dest, series, now, new_path):
        """(delete, skipped manifest paths) of retention with a new backup at new_path; damaged manifests are skipped
        and warned about."""
        keep_last, max_age = self.params.get('keep_last'), self.params.get('max_age_days')
        if not keep_last and max_age is None:
            return [], []
        skipped = []
        entries = [dict(path=p, end_time=art.parse_iso(m['end_time']), verified=bool(m.get('verified')))
                   for p, m in list_base_backups(dest, skipped) if m.get('series') == series]
        for message in art.skipped_messages(skipped):
            self.warn('retention left alone a manifest it cannot use: %s' % message)
        entries.append(dict(path=new_path, end_time=now, verified=False))
        delete, _keep = pitr_retention(entries, now, keep_last, max_age)
        return [p for p in delete if p != new_path], [p for p, _r in skipped]

    # ------------------------------------------------------------ apply: the validated plan
    def apply(self, plan):
        """Folders it creates are 0700, the backup's files 0600 (pg_basebackup runs with umask 077)."""
        facts = self.facts
        with art.private_files():
            try:
                art.prepare_folder(facts['dest'])
            except art.ArtifactError as exc:
                raise BaseBackupFailure(str(exc))
            result = dict(plan, **self.make())
            deleted = []
            for path in plan['deleted']:
                art.delete_artifact(path)
                deleted.append(path)
        result.update(deleted=deleted, diff=backup_diff(facts['final'], deleted), duration_s=self.elapsed())
        return result

    def make(self):
        """pg_basebackup into the temporary name, pg_verifybackup, the manifest, the rename; the result fields."""
        params, facts, runner = self.params, self.facts, self.runner
        tmp = art.temp_path(facts['final'])
        try:
            argv = pg_basebackup_argv(facts['program'], tmp, params['format'], params['checkpoint'],
                                      params['wal_method'], params.get('compress'),
                                      label='procgenie.dbops %s' % facts['name'])
            try:
                runner.run(argv, timeout=params.get('timeout'))
            except ClientError as exc:
                raise BaseBackupFailure(str(exc))
            end = art.utc_now()
            with open(os.path.join(tmp, 'backup_manifest')) as handle:
                timeline, start_lsn, end_lsn = wal_range(handle.read())
            verify = self.verify(tmp)
            digest, files, size = art.checksum(tmp)
            server, start = facts['server'], facts['start']
            manifest = dict(tool=art.MANIFEST_TOOL, manifest_version=art.MANIFEST_VERSION, kind=KIND,
                            format=params['format'], compress=params.get('compress'), checkpoint=params['checkpoint'],
                            wal_method=params['wal_method'], series=facts['series'],
                            host=params.get('login_unix_socket') or params.get('login_host') or '',
                            port=params.get('login_port'), server_version=server['version'],
                            server_version_num=server['version_num'], major=facts['major'],
                            system_identifier=server['system_identifier'], from_standby=server['in_recovery'],
                            timeline=timeline, start_lsn=start_lsn, end_lsn=end_lsn,
                            start_segment=wal.segment_name(timeline, wal.segno(start_lsn)),
                            start_time=art.iso(start), end_time=art.iso(end), size_bytes=size, sha256=digest,
                            files=files, pg_verifybackup=verify, verified=verify['result'] == 'passed',
                            pg_basebackup=runner.versions.get('pg_basebackup'))
            art.publish(tmp, facts['final'], manifest)
        except BaseException:
            art.remove_path(tmp)
            raise
        return dict(start_lsn=start_lsn, end_lsn=end_lsn, timeline=timeline, start_time=art.iso(start),
                    end_time=art.iso(end), size_bytes=size, sha256=digest, verify=verify)

    def verify(self, tmp):
        """pg_verifybackup of the new backup (when asked for and able to read it); its record. Raises
        BaseBackupFailure when it finds problems."""
        params, facts = self.params, self.facts
        verify = dict(tool='pg_verifybackup', result='skipped', detail=None)
        if not facts['verifier']:
            return verify
        argv, why = verify_argv(facts['verifier'], tmp, params['format'], params['wal_method'], facts['major'])
        if argv is None:
            return dict(verify, detail=why)
        rc, out, err = self.runner.run(argv, check=False, timeout=params.get('timeout'))
        verify = dict(tool='pg_verifybackup', result='passed' if rc == 0 else 'failed',
                      detail=(err or out).strip() or None)
        if rc != 0:
            raise BaseBackupFailure('pg_verifybackup found problems%s: %s' % (
                ' in the new base backup' if params['format'] == 'plain' else '', verify['detail']))
        return verify
