# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_restore_pitr, provider postgres: a base backup plus the WAL archive restored into a NEW data directory.

Order of work: everything is validated first (target, destination, port, binaries, base backup, WAL archive
continuity, where recovery will stop), and only then is a file written. The commit times and restore points come
from pg_waldump (run with TZ=UTC) over the archived segments from the chosen base backup's start segment onwards,
walked along the timeline history without a hole: a time target must have a COMMIT/ABORT record later than it after
the base backup's end (else recovery would end before reaching it), an xid its COMMIT/ABORT record, a name its
RESTORE_POINT record, an LSN must lie before the last archived record.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import tarfile

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art
from ansible_collections.procgenie.dbops.plugins.module_utils import _wal as wal
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, ClientRunner, find_program
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, open_session, psycopg2)
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import text_diff
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation
from ansible_collections.procgenie.dbops.plugins.module_utils._server import (
    ServerError, ServerTools, debian_bindir, wait_for)
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import base_backup as bb
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr.options import target_spec

MARKER = 'dbops_pitr.json'
TARGET_KEYS = ('target_time', 'target_lsn', 'target_xid', 'target_name')


class PitrError(Exception):
    """The restore was refused or failed; the message says why (and the restorable window when relevant)."""


def argument_spec():
    """The options of provider postgres (besides the connection and client-program options)."""
    return target_spec().merge(ArgumentSpec(dict(
        backup_dir=dict(type='path'),
        base_backup=dict(type='path'),
        wal_archive=dict(type='path'),
        data_directory=dict(type='path'),
        restore_port=dict(type='int'),
        target_inclusive=dict(type='bool', default=True),
        os_user=dict(type='str'),
    ), mutually_exclusive=[('backup_dir', 'base_backup')],
        required_if=[('provider', 'postgres', ('wal_archive', 'data_directory', 'restore_port')),
                     ('provider', 'postgres', ('backup_dir', 'base_backup'), True)]))


def check_options(params):
    """What the argument spec cannot say: a positive timeout, restore_port a TCP port. Raises PitrError."""
    if params['timeout'] < 1 or not 0 < params['restore_port'] < 65536:
        raise PitrError('timeout must be positive and restore_port a TCP port')


# ---------------------------------------------------------------- pure helpers
def parse_target(params):
    """dict(kind, value, text) of the one target given. Raises PitrError."""
    given = [k for k in TARGET_KEYS if params.get(k) not in (None, '')]
    if params.get('target'):
        given.append('target')
    if len(given) != 1:
        raise PitrError('Give exactly one of target (immediate or latest), target_time, target_lsn, target_xid, '
                        'target_name; got %s' % (', '.join(given) or 'none'))
    key = given[0]
    if key == 'target':
        return dict(kind=params['target'], value=None, text=params['target'])
    raw = params[key]
    if key == 'target_time':
        try:
            value = art.parse_iso(str(raw).strip().replace(' ', 'T', 1))
        except ValueError:
            raise PitrError('target_time %r is not an ISO-8601 time (e.g. 2026-02-08T12:00:00Z; without a zone '
                            'it is UTC)' % raw)
        return dict(kind='time', value=value, text=art.iso(value))
    if key == 'target_lsn':
        try:
            value = wal.parse_lsn(raw)
        except wal.WalError as exc:
            raise PitrError(str(exc))
        return dict(kind='lsn', value=value, text=wal.format_lsn(value))
    if key == 'target_xid':
        if raw < 3:
            raise PitrError('target_xid must be a normal transaction ID (3 or more)')
        return dict(kind='xid', value=raw, text=str(raw))
    return dict(kind='name', value=raw, text=raw)


def pg_time(moment):
    """A recovery_target_time value PostgreSQL parses unambiguously."""
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f+00')


def recovery_settings(target, inclusive, archive, port, timeline):
    """postgresql.auto.conf settings of the restored cluster (None removes a setting)."""
    settings = {
        'port': str(port),
        'archive_mode': 'off',  # never write into the source's archive
        'restore_command': 'cp %s%%f "%%p"' % shlex.quote(archive.rstrip('/') + '/'),
        'recovery_target_action': 'promote',
        'recovery_target_timeline': str(timeline),
        'recovery_target': None, 'recovery_target_time': None, 'recovery_target_lsn': None,
        'recovery_target_xid': None, 'recovery_target_name': None, 'recovery_target_inclusive': None,
        'primary_conninfo': None, 'primary_slot_name': None, 'synchronous_standby_names': None,
    }
    kind = target['kind']
    if kind == 'immediate':
        settings['recovery_target'] = 'immediate'
    elif kind == 'time':
        settings['recovery_target_time'] = pg_time(target['value'])
    elif kind == 'lsn':
        settings['recovery_target_lsn'] = wal.format_lsn(target['value'])
    elif kind == 'xid':
        settings['recovery_target_xid'] = str(target['value'])
    elif kind == 'name':
        settings['recovery_target_name'] = target['value']
    if kind in ('time', 'lsn', 'xid'):
        settings['recovery_target_inclusive'] = 'on' if inclusive else 'off'
    return settings


def choose_backup(backups, target, stop_lsn=None):
    """The newest base backup (path, manifest) that ends before the target, or None. backups: oldest first."""
    fitting = []
    for path, manifest in backups:
        end_lsn = wal.parse_lsn(manifest['end_lsn'])
        if target['kind'] == 'time':
            ok = art.parse_iso(manifest['end_time']) < target['value']
        elif target['kind'] == 'lsn':
            ok = end_lsn <= target['value']
        elif target['kind'] in ('xid', 'name'):
            ok = stop_lsn is not None and end_lsn <= stop_lsn
        else:
            ok = True
        if ok:
            fitting.append((path, manifest))
    return fitting[-1] if fitting else None


def request_key(target, inclusive, backup_path):
    return dict(target=target['kind'], value=target['text'], inclusive=inclusive if target['kind'] in
                ('time', 'lsn', 'xid') else None, base_backup=backup_path)


def port_in_use(port, host='127.0.0.1'):
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        return probe.connect_ex((host, port)) == 0
    finally:
        probe.close()


# ---------------------------------------------------------------- the restore
class Restore(Operation):
    """pg_restore_pitr, provider postgres. plan() checks everything (target, destination and an earlier restore's
    marker, base backups, the WAL archive and where recovery will stop, OS user, binaries, port) and changes
    nothing; apply() copies the base backup, writes the recovery settings, starts the server and waits until it
    has left recovery. A cancel (SIGTERM) during apply stops that server and removes what was restored."""

    def __init__(self, params, ctx):
        super(Restore, self).__init__(params, ctx)
        self.archive = os.path.abspath(params['wal_archive'])
        self.dest = os.path.abspath(params['data_directory'])
        self.port = params['restore_port']
        self.scans = {}
        self.done = False  # the destination holds this restore, finished by an earlier run
        self.recovery = self.user = self.bindir = self.key = None

    @classmethod
    def make_runner(cls, params):
        """pg_waldump (and, through ServerTools, pg_ctl) run without any connection option."""
        return ClientRunner(dict(connect_params={}), pg_bindir=params.get('pg_bindir'))

    # -------------------------------------------------------- inputs
    def backups(self):
        if self.params.get('base_backup'):
            path = os.path.abspath(self.params['base_backup'])
            try:
                manifest = art.read_manifest(path)
            except art.ArtifactError as exc:
                raise PitrError(str(exc))
            if manifest.get('kind') != bb.KIND or not os.path.isdir(path):
                raise PitrError('%s is not a base backup made by pg_base_backup' % path)
            return [(path, manifest)], True
        if not self.params.get('backup_dir'):
            raise PitrError('Give base_backup (one base backup) or backup_dir (the folder pg_base_backup writes to)')
        found = bb.list_base_backups(os.path.abspath(self.params['backup_dir']))
        if not found:
            raise PitrError('No base backup made by pg_base_backup in %s' % self.params['backup_dir'])
        system = found[-1][1].get('system_identifier')
        return [item for item in found if item[1].get('system_identifier') == system], False

    def archive_names(self):
        if not os.path.isdir(self.archive):
            raise PitrError('The WAL archive %s is not a folder' % self.archive)
        return set(os.listdir(self.archive))

    def read_history(self, tli):
        path = os.path.join(self.archive, wal.history_name(tli))
        try:
            with open(path) as handle:
                return wal.parse_history(handle.read())
        except OSError as exc:
            raise PitrError('Cannot read the timeline history %s: %s' % (path, exc.strerror or exc))
        except wal.WalError as exc:
            raise PitrError('%s: %s' % (path, exc))

    def path_for(self, manifest, names):
        """Recovery target timeline and its path: the newest timeline in the archive descending from the backup's
        timeline after the backup's end (what recovery_target_timeline=latest would follow)."""
        tli = int(manifest['timeline'])
        if tli > 1 and wal.history_name(tli) not in names:
            raise PitrError('The WAL archive %s lacks %s, the history of the base backup\'s timeline %d' % (
                self.archive, wal.history_name(tli), tli))
        best = wal.timeline_path(tli, self.read_history(tli) if tli > 1 else [])
        end_lsn = wal.parse_lsn(manifest['end_lsn'])
        newer = sorted((int(n[:8], 16) for n in names if wal.HISTORY_RE.match(n) and int(n[:8], 16) > tli),
                       reverse=True)
        for candidate in newer:
            path = wal.timeline_path(candidate, self.read_history(candidate))
            if any(p['tli'] == tli and (p['end'] is None or p['end'] >= end_lsn) for p in path):
                best = path
                break
        return best

    def waldump(self, major):
        try:
            return find_program('pg_waldump', self.params.get('pg_bindir') or debian_bindir(major), major)[0]
        except ClientError as exc:
            raise PitrError(str(exc))

    def scan(self, manifest, names):
        """pg_waldump summary of the contiguous archived WAL from the backup's start (cached per backup)."""
        key = manifest['start_lsn'] + manifest['end_lsn']
        if key in self.scans:
            return self.scans[key]
        path = self.path_for(manifest, names)
        present, missing = wal.contiguous_segments(names, manifest['start_lsn'], path)
        needed = wal.required_segments(manifest['start_lsn'], manifest['end_lsn'], path)
        absent = [n for n in needed if n not in present]
        if absent:
            raise PitrError('The WAL archive %s lacks %s, which the base backup itself needs (from %s to %s)' % (
                self.archive, absent[0], manifest['start_lsn'], manifest['end_lsn']))
        major = int(manifest['major'])
        program = self.waldump(major)
        # Only the Transaction (commits, aborts) and XLOG (restore points) records matter; pg_waldump filters them
        # far faster than Python could (PostgreSQL 15+ takes several --rmgr). The last record's LSN comes from an
        # unfiltered read of the last segment.
        filters = ['--rmgr=Transaction', '--rmgr=XLOG'] if major >= 15 else []
        lines = []
        for tli, first, last in wal.ranges_by_timeline(present):
            lines.extend(self._waldump(program, tli, first, last, filters))
        summary = wal.scan_waldump(lines)
        if filters and present:
            tail = wal.scan_waldump(self._waldump(program, wal.parse_segment_name(present[-1])[0], present[-1],
                                                  present[-1], []))
            known = [x for x in (summary['last_lsn'], tail['last_lsn']) if x is not None]
            summary['last_lsn'] = max(known) if known else None
        summary.update(path=path, present=present, missing=missing,
                       last_segment=present[-1] if present else None)
        self.scans[key] = summary
        return summary

    def _waldump(self, program, tli, first, last, filters):
        rc, out, err = self.runner.run([program, '--path=%s' % self.archive, '--timeline=%d' % tli] + filters
                                       + [first, last], check=False, env_extra={'TZ': 'UTC', 'LC_ALL': 'C'})
        if rc != 0 and not out:
            raise PitrError('pg_waldump cannot read the archived WAL: %s' % err.strip())
        return out.splitlines()

    def window(self, backups, names):
        """(earliest, latest) restorable times: the oldest base backup's end, the last commit in the archive
        reachable from the newest base backup without a gap."""
        earliest = backups[0][1]['end_time']
        summary = self.scan(backups[-1][1], names)
        latest = art.iso(summary['last_commit_time']) if summary['last_commit_time'] else backups[-1][1]['end_time']
        return earliest, latest

    def window_text(self, backups, names):
        try:
            earliest, latest = self.window(backups, names)
        except PitrError as exc:
            return '(the restorable window is unknown: %s)' % exc
        return 'restorable window: earliest %s (end of the oldest base backup), latest %s (last commit in the ' \
               'archived WAL)' % (earliest, latest)

    # -------------------------------------------------------- where recovery stops
    def recovery_plan(self):
        """The base backup, the timeline and where recovery stops; PitrError (with the restorable window) when the
        backups and the archived WAL cannot reach the target."""
        params = self.params
        target = parse_target(params)
        inclusive = params.get('target_inclusive', True)
        backups, named = self.backups()
        names = self.archive_names()
        chosen_path = chosen = None
        # 1. the base backup
        if target['kind'] in ('xid', 'name'):
            summary = self.scan(backups[0][1], names)
            stop = wal.find_stop(target, summary['records'], wal.parse_lsn(backups[0][1]['start_lsn']), None)
            pick = choose_backup(backups, target, stop['lsn'] if stop else None)
            if stop is None:
                raise PitrError('%s %s is not in the archived WAL reachable from %s (%s); %s' % (
                    'Transaction' if target['kind'] == 'xid' else 'Restore point', target['text'],
                    backups[0][0], self.gap_text(summary), self.window_text(backups, names)))
            if pick is None:
                raise PitrError('%s %s lies before the end of every base backup; %s' % (
                    target['kind'], target['text'], self.window_text(backups, names)))
        else:
            pick = choose_backup(backups, target)
            if pick is None:
                raise PitrError('The target %s lies before the end of %s base backup (%s at %s); %s' % (
                    target['text'], 'the' if named else 'the oldest', backups[0][1]['end_time'],
                    backups[0][1]['end_lsn'], self.window_text(backups, names)))
        chosen_path, chosen = pick[0], pick[1]
        # 2. the WAL from it to the target
        summary = self.scan(chosen, names)
        end_lsn = wal.parse_lsn(chosen['end_lsn'])
        if target['kind'] == 'immediate':
            stop = dict(kind='consistent', lsn=end_lsn, xid=None, time=None, name=None)
        elif target['kind'] == 'latest':
            if summary['missing']:
                raise PitrError('The WAL archive has a gap: %s is missing after %s, so "latest" would silently stop '
                                'there; %s' % (summary['missing'], summary['last_segment'],
                                               self.window_text(backups, names)))
            stop = dict(kind='end of archive', lsn=summary['last_lsn'], xid=None, time=summary['last_commit_time'],
                        name=None)
        else:
            stop = wal.find_stop(target, summary['records'], end_lsn, summary['last_lsn'], inclusive)
            if stop is None:
                raise PitrError('The target %s %s lies after the end of the archived WAL reachable from %s (%s); %s'
                                % (target['kind'], target['text'], chosen_path, self.gap_text(summary),
                                   self.window_text(backups, names)))
        timeline = summary['path'][-1]['tli']
        major = int(chosen['major'])
        return dict(target=target, inclusive=inclusive, base_backup=chosen_path, manifest=chosen, stop=stop,
                    timeline=timeline, major=major, segments=len(summary['present']),
                    last_segment=summary['last_segment'], window=self.window(backups, names))

    def gap_text(self, summary):
        if summary['missing']:
            return 'WAL segment %s is missing from the archive after %s' % (summary['missing'],
                                                                            summary['last_segment'])
        return 'the archive ends with %s' % summary['last_segment']

    # -------------------------------------------------------- destination
    def existing_marker(self):
        """The marker of an earlier restore when the destination holds one; PitrError when it is not empty."""
        if not os.path.lexists(self.dest):
            return None
        if not os.path.isdir(self.dest):
            raise PitrError('%s exists and is not a folder' % self.dest)
        entries = os.listdir(self.dest)
        if not entries:
            return None
        marker = os.path.join(self.dest, MARKER)
        if os.path.isfile(marker):
            try:
                with open(marker) as handle:
                    return json.load(handle)
            except (OSError, ValueError) as exc:
                raise PitrError('Cannot read %s: %s' % (marker, exc))
        raise PitrError('The destination %s is not empty: pg_restore_pitr restores into a new, empty data '
                        'directory only, never over an existing cluster' % self.dest)

    def os_user(self):
        user = self.params.get('os_user')
        if not user:
            user = pwd.getpwuid(os.stat(self.archive).st_uid).pw_name
            if user == 'root':
                raise PitrError('The WAL archive belongs to root: set os_user, the unprivileged OS user the '
                                'restored server runs as (PostgreSQL refuses to run as root)')
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise PitrError('OS user %s does not exist' % user)
        if user == 'root':
            raise PitrError('os_user must not be root: PostgreSQL refuses to run as root')
        if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != user:
            raise PitrError('Run the module as root or as os_user %s' % user)
        return user

    def check_binaries(self, major):
        bindir = self.params.get('pg_bindir') or debian_bindir(major)
        for name in ('pg_ctl', 'postgres'):
            try:
                path, version = find_program(name, bindir, major)
            except ClientError as exc:
                raise PitrError(str(exc))
            if int(version.split('.')[0]) != major:
                raise PitrError('%s is of PostgreSQL %s but the base backup is of %d: set pg_bindir to the '
                                'binaries of major version %d' % (path, version, major, major))
        return bindir

    # -------------------------------------------------------- plan
    def plan(self):
        try:
            return self._plan()
        except wal.WalError as exc:
            raise PitrError('Cannot read the WAL archive: %s' % exc)

    def _plan(self):
        check_options(self.params)
        target = parse_target(self.params)
        marker = self.existing_marker()
        if marker is not None:
            self.done = True
            return self.already_done(marker, target)
        recovery = self.recovery = self.recovery_plan()
        self.user = self.os_user()
        self.bindir = self.check_binaries(recovery['major'])
        if port_in_use(self.port):
            raise PitrError('Port %d is in use on this host: choose a free restore_port' % self.port)
        self.key = request_key(recovery['target'], recovery['inclusive'], recovery['base_backup'])
        result = self.result_base(recovery, self.key)
        result['plan'] = self.plan_steps(recovery, self.user)
        result['diff'] = text_diff([], [self.describe(recovery)])
        result['duration_s'] = self.elapsed()
        return result

    # -------------------------------------------------------- apply
    def apply(self, plan):
        if self.done:
            return plan
        recovery, user, key = self.recovery, self.user, self.key
        created = not os.path.lexists(self.dest)
        try:
            self.extract(recovery, user)
            tools = ServerTools(dict(pg_bindir=self.bindir), self.dest, os_user=user, commands=self.runner.commands)
            tools.update_auto_conf(recovery_settings(recovery['target'], recovery['inclusive'], self.archive,
                                                     self.port, recovery['timeline']))
            tools.write_signal('recovery.signal')
            self.write_marker(tools, dict(key, status='restoring', started=art.iso(art.utc_now())))
            try:
                tools.start(self.params['timeout'])
            except ServerError as exc:
                raise PitrError('The restored server did not start: %s%s' % (exc, self.log_tail()))
            facts = self.wait_promoted(tools)
        except (SystemExit, KeyboardInterrupt):  # cancelled (SIGTERM): nothing of the restore outlives the module
            self.abandon(created)
            raise
        result = dict(plan)
        result.update(facts)
        self.write_marker(tools, dict(key, status='done', finished=art.iso(art.utc_now()), **facts))
        result['duration_s'] = self.elapsed()
        return result

    def abandon(self, created):
        """A cancelled restore: stop the server it started at once (an immediate shutdown: pg_ctl detached it from
        the module, so the cancel of the module's programs does not reach it) and remove the half-restored data
        directory."""
        pidfile = os.path.join(self.dest, 'postmaster.pid')
        try:
            with open(pidfile) as handle:
                pid = int(handle.readline())
            os.kill(pid, signal.SIGQUIT)
            wait_for(lambda: not os.path.exists(pidfile), 10, interval=0.02, first=0.005)  # the server removes it last
        except (OSError, ValueError):
            pass
        if created:  # out of its final name at once, then removed
            doomed = '%s.dbops-cancelled-%d' % (self.dest, os.getpid())
            try:
                os.rename(self.dest, doomed)
            except OSError:
                doomed = self.dest
            shutil.rmtree(doomed, ignore_errors=True)
        elif os.path.isdir(self.dest):  # it was empty before: empty again
            for name in os.listdir(self.dest):
                art.remove_path(os.path.join(self.dest, name))

    def already_done(self, marker, target):
        if marker.get('status') != 'done':
            raise PitrError('%s holds an unfinished restore (status %s): remove the folder and run again' % (
                self.dest, marker.get('status')))
        if marker.get('target') != target['kind'] or marker.get('value') != target['text'] or (
                self.params.get('base_backup') and marker.get('base_backup') != os.path.abspath(
                    self.params['base_backup'])) or (
                target['kind'] in ('time', 'lsn', 'xid') and marker.get('inclusive') != self.params.get(
                    'target_inclusive', True)):
            raise PitrError('The destination %s was restored to another target (%s %s from %s): restore into an '
                            'empty folder' % (self.dest, marker.get('target'), marker.get('value'),
                                              marker.get('base_backup')))
        running = port_in_use(self.port)
        result = dict(changed=False, data_directory=self.dest, restore_port=self.port,
                      connection=self.connection(), base_backup=marker.get('base_backup'),
                      target=dict(kind=marker.get('target'), value=marker.get('value'),
                                  inclusive=marker.get('inclusive')),
                      reached_lsn=marker.get('reached_lsn'), timeline=marker.get('timeline'),
                      running=running, plan=[], window=None, stop=None, provider='postgres')
        result['duration_s'] = self.elapsed()
        return result

    def connection(self):
        return dict(login_host=self.params.get('login_host') or '127.0.0.1', login_port=self.port,
                    login_user=self.params.get('login_user'), login_db='postgres')

    def result_base(self, plan, key):
        stop = plan['stop']
        return dict(changed=True, provider='postgres', data_directory=self.dest, restore_port=self.port,
                    connection=self.connection(),
                    base_backup=plan['base_backup'],
                    target=dict(kind=key['target'], value=key['value'], inclusive=key['inclusive']),
                    stop=dict(kind=stop['kind'], lsn=wal.format_lsn(stop['lsn']) if stop.get('lsn') is not None
                              else None, xid=stop.get('xid'), time=art.iso(stop.get('time')), name=stop.get('name')),
                    window=dict(earliest=plan['window'][0], latest=plan['window'][1]),
                    timeline=plan['timeline'], reached_lsn=None, running=not self.ctx.check_mode)

    def describe(self, plan):
        return 'restore %s to %s %s into %s (port %d)' % (
            plan['base_backup'], plan['target']['kind'], plan['target']['text'] or '', self.dest, self.port)

    def plan_steps(self, plan, user):
        return ['create %s (mode 0700, owner %s)' % (self.dest, user),
                'copy base backup %s (end LSN %s, timeline %s)' % (
                    plan['base_backup'], plan['manifest']['end_lsn'], plan['manifest']['timeline']),
                'write recovery settings (port %d, archive_mode off, restore_command from %s, target %s %s, '
                'action promote) and recovery.signal' % (
                    self.port, self.archive, plan['target']['kind'], plan['target']['text'] or ''),
                'replay %d archived segments up to %s' % (plan['segments'], plan['last_segment']),
                'start the server as %s and wait until it has left recovery' % user]

    def extract(self, plan, user):
        source = plan['base_backup']
        os.makedirs(self.dest, mode=0o700, exist_ok=True)
        fmt = plan['manifest'].get('format')
        try:
            if fmt == 'plain':
                for name in os.listdir(source):
                    if name == 'backup_manifest':
                        continue
                    src, dst = os.path.join(source, name), os.path.join(self.dest, name)
                    if os.path.isdir(src):
                        shutil.copytree(src, dst, symlinks=True)
                    else:
                        shutil.copy2(src, dst)
            else:
                for name, sub in (('base', ''), ('pg_wal', 'pg_wal')):
                    archive = [n for n in os.listdir(source) if n.startswith(name + '.tar')]
                    if not archive:
                        continue
                    with tarfile.open(os.path.join(source, archive[0])) as tar:
                        members = tar.getmembers()
                        for member in members:
                            if member.name.startswith('/') or '..' in member.name.split('/'):
                                raise PitrError('%s holds an unsafe path %s' % (archive[0], member.name))
                        # the 'tar' filter (where Python has it) refuses absolute paths and links leading out
                        safe = {'filter': 'tar'} if hasattr(tarfile, 'tar_filter') else {}
                        tar.extractall(os.path.join(self.dest, sub), members=members, **safe)  # noqa: S202
        except (OSError, tarfile.TarError) as exc:
            raise PitrError('Cannot copy the base backup into %s: %s' % (self.dest, exc))
        for stale in ('postmaster.pid', 'postmaster.opts', 'standby.signal', 'backup_manifest'):
            art.remove_path(os.path.join(self.dest, stale))
        entry = pwd.getpwnam(user)
        if os.geteuid() == 0:
            for root, dirs, files in os.walk(self.dest):
                for name in dirs + files:
                    os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
            os.chown(self.dest, entry.pw_uid, entry.pw_gid)
        os.chmod(self.dest, 0o700)

    def write_marker(self, tools, data):
        tools.write_file(os.path.join(self.dest, MARKER), json.dumps(data, indent=2, sort_keys=True) + '\n', 0o600)

    def log_tail(self):
        lines = []
        for path in (os.path.join(self.dest, 'log', 'pg_ctl.log'), os.path.join(self.dest, 'pg_ctl.log'),
                     os.path.join(self.dest, 'log', 'postgresql.log')):
            if os.path.isfile(path):
                with open(path, errors='replace') as handle:
                    lines += [line.rstrip() for line in handle.readlines()[-8:]]
        return ('; server log: ' + ' | '.join(lines)) if lines else ''

    def wait_promoted(self, tools):
        params = dict(self.params, login_port=self.port, login_db='postgres',
                      login_host=self.params.get('login_host') or '127.0.0.1')

        def promoted():
            try:
                session = open_session(params, log=self.log)
            except ConnectionFailure:
                return None
            try:
                if session.scalar('SELECT pg_is_in_recovery()'):
                    return None
                return session.row('SELECT pg_last_wal_replay_lsn()::text AS reached_lsn, '
                                   '(SELECT timeline_id FROM pg_control_checkpoint()) AS timeline, '
                                   'pg_current_wal_lsn()::text AS current_lsn')
            except psycopg2.Error:
                return None
            finally:
                session.close()

        facts = wait_for(promoted, self.params['timeout'], interval=0.1, first=0.02)
        if not facts:
            alive = tools.running()
            raise PitrError('The restored server %s did not leave recovery within %s seconds%s%s' % (
                'is running but' if alive else 'stopped and', self.params['timeout'],
                '' if alive else ' (see its log)', self.log_tail()))
        return facts
