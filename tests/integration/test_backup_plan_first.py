"""Issue 19, backup side: what the plan step checks is checked before anything changes, and in check mode too.
Through ansible-playbook against the lab's real primary."""

from __future__ import annotations

import json
import os

from tests.conftest import node_params

DB = 'procgenie'


def task(lab, module, task_name, **args):
    return dict(name=task_name, ignore_errors=True,
                **{'procgenie.dbops.' + module: dict(node_params(lab, db=DB), **args)})


def test_check_mode_refuses_a_folder_the_backup_cannot_make(lab, play, tmp_path):
    blocker = tmp_path / 'not-a-folder'
    blocker.write_text('x')
    dest = str(blocker / 'sub')
    res = play([task(lab, 'pg_backup', 'check', dest=dest, kind='tables', tables=['tenants'])],
               check=True).result('check')
    assert res['failed'] is True and 'Cannot create the backup folder' in res['msg'], res
    assert 'queries' in res and 'commands' in res
    good = str(tmp_path / 'new' / 'deeper')
    res = play([task(lab, 'pg_backup', 'check', dest=good, kind='tables', tables=['tenants'])],
               check=True).result('check')
    assert res.get('failed') is not True and res['changed'] is True, res
    assert not os.path.exists(str(tmp_path / 'new'))  # the plan checks the folder, it does not make it


def test_verify_finds_its_programs_before_a_scratch_database_exists(lab, play, tmp_path):
    dest = str(tmp_path / 'backups')
    empty = tmp_path / 'no-programs'
    empty.mkdir()
    run = play([task(lab, 'pg_backup', 'backup', dest=dest, kind='tables', tables=['tenants'])])
    path = run.result('backup')['path']
    before = lab.psql('primary', "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_verify_%'")
    run = play([dict(task(lab, 'pg_backup_verify', 'check', path=path, pg_bindir=str(empty)), check_mode=True),
                task(lab, 'pg_backup_verify', 'verify', path=path, pg_bindir=str(empty))])
    for name in ('check', 'verify'):
        res = run.result(name)
        assert res['failed'] is True, res
        assert 'Cannot find the PostgreSQL client program pg_restore' in res['msg'], res['msg']
        assert res['scratch_database'] is None and res['commands'] == []
        assert not any('CREATE DATABASE' in q for q in res['queries'])
    assert lab.psql('primary', "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_verify_%'") == before
    with open(path + '.manifest.json') as handle:
        assert json.load(handle)['verifications'] == []  # nothing was verified, so nothing is recorded
