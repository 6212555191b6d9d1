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
