"""Pure parts of pg_restore_pitr and pg_base_backup: targets, recovery settings, base backup choice, retention."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import base_backup as bb
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import postgres as pitr

UTC = datetime.timezone.utc


def params(**kw):
    base = dict(target=None, target_time=None, target_lsn=None, target_xid=None, target_name=None)
    base.update(kw)
    return base


def test_parse_target():
    assert pitr.parse_target(params(target='latest'))['kind'] == 'latest'
    t = pitr.parse_target(params(target_time='2026-02-08 12:00:00'))
    assert t['value'] == datetime.datetime(2026, 2, 8, 12, tzinfo=UTC) and t['text'] == '2026-02-08T12:00:00Z'
    assert pitr.parse_target(params(target_time='2026-02-08T13:00:00+01:00'))['text'] == '2026-02-08T12:00:00Z'
    assert pitr.parse_target(params(target_lsn='0/3000148'))['value'] == 0x3000148
    assert pitr.parse_target(params(target_xid=900))['value'] == 900
    assert pitr.parse_target(params(target_name='x'))['kind'] == 'name'
    for bad in (params(), params(target='latest', target_name='x'), params(target_time='yesterday'),
                params(target_lsn='nope'), params(target_xid=1)):
        with pytest.raises(pitr.PitrError):
            pitr.parse_target(bad)


def test_recovery_settings():
    target = pitr.parse_target(params(target_time='2026-02-08T12:00:00Z'))
    s = pitr.recovery_settings(target, False, "/srv/wal arch'ive", 5499, 2)
    assert s['recovery_target_time'] == '2026-02-08 12:00:00.000000+00'
    assert s['recovery_target_inclusive'] == 'off' and s['archive_mode'] == 'off' and s['port'] == '5499'
    assert s['recovery_target_action'] == 'promote' and s['recovery_target_timeline'] == '2'
    assert s['restore_command'] == 'cp \'/srv/wal arch\'"\'"\'ive/\'%f "%p"'
    assert s['primary_conninfo'] is None and s['recovery_target_lsn'] is None
    s = pitr.recovery_settings(pitr.parse_target(params(target='immediate')), True, '/a', 1, 1)
    assert s['recovery_target'] == 'immediate' and s['recovery_target_inclusive'] is None
    s = pitr.recovery_settings(pitr.parse_target(params(target='latest')), True, '/a', 1, 1)
    assert s['recovery_target'] is None


def backup(end_lsn, end_time):
    return ('/b/%s' % end_lsn, dict(end_lsn=end_lsn, end_time=end_time))


def test_choose_backup():
    backups = [backup('0/2000100', '2026-02-01T00:00:00Z'), backup('0/9000100', '2026-02-02T00:00:00Z')]
    t = pitr.parse_target(params(target_time='2026-02-01T12:00:00Z'))
    assert pitr.choose_backup(backups, t)[0] == '/b/0/2000100'
    t = pitr.parse_target(params(target_time='2026-02-03T00:00:00Z'))
    assert pitr.choose_backup(backups, t)[0] == '/b/0/9000100'
    assert pitr.choose_backup(backups, pitr.parse_target(params(target_time='2026-01-01T00:00:00Z'))) is None
    assert pitr.choose_backup(backups, pitr.parse_target(params(target_lsn='0/9000100')))[0] == '/b/0/9000100'
    assert pitr.choose_backup(backups, pitr.parse_target(params(target_lsn='0/9000000')))[0] == '/b/0/2000100'
    assert pitr.choose_backup(backups, pitr.parse_target(params(target_name='x')), 0x5000000)[0] == '/b/0/2000100'
    assert pitr.choose_backup(backups, pitr.parse_target(params(target_name='x')), None) is None
    assert pitr.choose_backup(backups, pitr.parse_target(params(target='immediate')))[0] == '/b/0/9000100'


def day(n):
    return datetime.datetime(2026, 2, n, tzinfo=UTC)


def test_pitr_retention_keeps_the_base_of_the_oldest_window():
    entries = [dict(path='/b/%d' % n, end_time=day(n), verified=False) for n in (1, 3, 5, 7, 9)]
    # a 3-day window ending on day 10 starts on day 7: the day-7 backup covers it, older ones go
    delete, keep = bb.pitr_retention(entries, day(10), max_age_days=3)
    assert sorted(delete) == ['/b/1', '/b/3', '/b/5'] and keep == ['/b/9', '/b/7']
    # a 4-day window starts on day 6: the day-5 backup is needed to restore to day 6
    delete, keep = bb.pitr_retention(entries, day(10), max_age_days=4)
    assert sorted(delete) == ['/b/1', '/b/3'] and '/b/5' in keep
    # keep_last alone: the oldest kept backup starts the window, nothing older is needed
    delete, keep = bb.pitr_retention(entries, day(10), keep_last=2)
    assert sorted(delete) == ['/b/1', '/b/3', '/b/5']
    assert bb.pitr_retention(entries, day(10)) == ([], ['/b/9', '/b/7', '/b/5', '/b/3', '/b/1'])


def test_wal_range_and_names():
    manifest = json.dumps({'WAL-Ranges': [{'Timeline': 2, 'Start-LSN': '0/5000028', 'End-LSN': '0/5000100'}]})
    assert bb.wal_range(manifest) == (2, '0/5000028', '0/5000100')
    with pytest.raises(bb.BaseBackupFailure):
        bb.wal_range('{}')
    assert bb.backup_name(day(8)) == 'base_20260208_000000'
    with pytest.raises(bb.BaseBackupFailure):
        bb.backup_name(day(8), '../{timestamp}')
    with pytest.raises(bb.BaseBackupFailure):
        bb.backup_name(day(8), '{nope}')
    argv = bb.pg_basebackup_argv('pg_basebackup', '/t', 'tar', 'fast', 'stream', 6, 'x')
    assert '--format=t' in argv and '--compress=6' in argv and '--wal-method=stream' in argv
    with pytest.raises(bb.BaseBackupFailure):
        bb.validate(dict(format='plain', compress=5))
    with pytest.raises(bb.BaseBackupFailure):
        bb.validate(dict(format='tar', keep_last=0))
