"""pg_base_backup against a lab of its own: plain format checked by pg_verifybackup, check mode, retention,
a failed backup leaves nothing under a final name."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import node_params


@pytest.fixture(scope='module')
def blab(workdir):
    import pglab
    instance = pglab.Lab(os.path.join(workdir, 'pitr-bb'))
    instance.start(standby=False, seed=False)
    yield instance
    instance.destroy()


def bb_task(lab, dest, **extra):
    return dict(name='bb', register='out', ignore_errors=True, **{'procgenie.dbops.pg_base_backup': dict(
        node_params(lab, db='postgres'), dest=dest, **extra)})


def visible(dest):
    return sorted(n for n in os.listdir(dest)) if os.path.isdir(dest) else []


def test_plain_backup_is_verified_and_described(blab, play, workdir):
    dest = os.path.join(workdir, 'bb-plain')
    run = play([bb_task(blab, dest, format='plain', checkpoint='spread', wal_method='fetch')], diff=True)
    result = run.result('bb')
    assert result.get('failed') is not True, result.get('msg')
    assert result['verify']['result'] == 'passed'
    assert os.path.isfile(os.path.join(result['path'], 'PG_VERSION'))
    with open(result['manifest']) as handle:
        manifest = json.load(handle)
    assert manifest['verified'] is True and manifest['format'] == 'plain' and manifest['major'] == blab.state['major']
    assert manifest['system_identifier'] == blab.psql('primary', 'SELECT system_identifier FROM pg_control_system()')
    assert manifest['start_lsn'] <= manifest['end_lsn'] or len(manifest['start_lsn']) < len(manifest['end_lsn'])
    assert manifest['start_time'] <= manifest['end_time']
    assert any(c[0].endswith('pg_verifybackup') for c in result['commands'])
    assert result['diff']['after'].startswith(result['path'])


def test_check_mode_and_retention(blab, play, workdir):
    dest = os.path.join(workdir, 'bb-retention')
    run = play([bb_task(blab, dest)], check=True)
    result = run.result('bb')
    assert result.get('failed') is not True, result.get('msg')
    assert result['changed'] is True and not os.path.exists(dest)
    paths = []
    for number in range(3):
        run = play([bb_task(blab, dest, keep_last=2, name='{prefix}_%d' % number)])
        result = run.result('bb')
        assert result.get('failed') is not True, result.get('msg')
        paths.append(result['path'])
    assert result['deleted'] == [paths[0]]
    assert visible(dest) == sorted([os.path.basename(p) for p in paths[1:]]
                                   + [os.path.basename(p) + '.manifest.json' for p in paths[1:]])
    # check mode with retention reports what it would delete and deletes nothing
    result = play([bb_task(blab, dest, keep_last=1, name='{prefix}_x')], check=True).result('bb')
    assert sorted(result['deleted']) == paths[1:] and os.path.isdir(paths[1])


def test_failed_backup_leaves_nothing(blab, play, workdir):
    dest = os.path.join(workdir, 'bb-fail')
    os.makedirs(dest)
    blab.psql('primary', "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bb_norepl') THEN "
                         "CREATE ROLE bb_norepl LOGIN PASSWORD 'pw'; END IF; END$$")
    task = bb_task(blab, dest)
    task['procgenie.dbops.pg_base_backup'].update(login_user='bb_norepl', login_password='pw')
    result = play([task]).result('bb')
    assert result['failed'] is True and 'pg_basebackup failed' in result['msg']
    assert visible(dest) == []
    result = play([bb_task(blab, dest, format='plain', compress=5)]).result('bb')
    assert result['failed'] is True and 'compress' in result['msg']


def mode(path):
    return os.stat(path).st_mode & 0o777


BASE_DAMAGE = {
    'no_end_lsn': ('end_lsn', None),
    'garbage_lsn': ('end_lsn', 'garbage'),
    'garbage_time': ('end_time', 'garbage'),
    'number_time': ('end_time', 12345),
    'timeline_one': ('timeline', 'one'),
    'major_fifteen': ('major', 'fifteen'),
}


def test_private_modes_bad_input_and_damaged_manifests(blab, play, workdir):
    dest = os.path.join(workdir, 'bb-safety', 'nested')
    result = play([bb_task(blab, dest, format='plain', name='{prefix}_good')]).result('bb')
    assert result.get('failed') is not True, result.get('msg')
    assert mode(os.path.dirname(dest)) == 0o700 and mode(dest) == 0o700
    assert mode(result['path']) == 0o700 and mode(result['manifest']) == 0o600
    for root, dirs, files in os.walk(result['path']):
        assert all(mode(os.path.join(root, d)) == 0o700 for d in dirs), root
        assert all(mode(os.path.join(root, f)) == 0o600 for f in files), root
    with open(result['manifest']) as handle:
        good = json.load(handle)
    damaged = {}
    for name, (field, value) in BASE_DAMAGE.items():
        path = os.path.join(dest, 'base_' + name)
        os.makedirs(path)
        manifest = dict(good)
        if value is None:
            del manifest[field]
        else:
            manifest[field] = value
        with open(path + '.manifest.json', 'w') as handle:
            json.dump(manifest, handle)
        damaged[path] = field
    # retention (check mode, then for real) goes on with the others and names what it skipped
    for check in (True, False):
        run = play([bb_task(blab, dest, format='plain', keep_last=1, name='{prefix}_new_%s' % check)], check=check)
        result = run.result('bb')
        assert result.get('failed') is not True, result.get('msg')
        assert sorted(result['skipped_manifests']) == sorted(p + '.manifest.json' for p in damaged)
        for path, field in damaged.items():
            assert any(path in w and 'field %s' % field in w for w in result['warnings']), (field, result['warnings'])
    assert all(os.path.isdir(p) for p in damaged)
    # a point-in-time restore from a damaged manifest names the manifest and the field
    tasks = [dict(name='pitr_' + os.path.basename(p), ignore_errors=True, **{'procgenie.dbops.pg_restore_pitr': dict(
        base_backup=p, wal_archive=blab.state.get('archive') or dest, data_directory=os.path.join(workdir, 'bb-never'),
        restore_port=1, target='immediate')}) for p in damaged]
    run = play(tasks, check=True)
    for path, field in damaged.items():
        result = run.result('pitr_' + os.path.basename(path))
        assert result['failed'] is True and 'Traceback' not in json.dumps(result)
        assert path + '.manifest.json' in result['msg'] and 'field %s' % field in result['msg'], result['msg']
    assert not os.path.exists(os.path.join(workdir, 'bb-never'))
    # bad options fail before anything runs
    run = play([dict(bb_task(blab, dest, name='{timestamp.x}'), name='attr'),
                dict(bb_task(blab, ''), name='empty'),
                dict(bb_task(blab, dest, timeout=-5), name='timeout')])
    for name, text in (('attr', 'name template'), ('empty', 'current directory'),
                       ('timeout', 'timeout must be 1 second or more')):
        result = run.result(name)
        assert result['failed'] is True and text in result['msg'], (name, result['msg'])
        assert result['commands'] == [] and 'Traceback' not in json.dumps(result)
