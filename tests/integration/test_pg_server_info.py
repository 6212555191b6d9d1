"""pg_server_info against the lab's real primary and standby, run through ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import node_params


def info_task(params, name='info', **extra):
    args = dict(params, **extra)
    return dict(name=name, **{'procgenie.dbops.pg_server_info': args}, register='out')


@pytest.fixture(scope='module')
def primary_run(lab, collections_root, home):
    from tests.harness.playbook import run_playbook
    # Make sure something was archived and the standby caught up, so the facts have something to show.
    lab.psql('primary', "CREATE TABLE IF NOT EXISTS info_probe(x int); INSERT INTO info_probe VALUES (1); "
                        "SELECT pg_switch_wal();", db='procgenie')
    lab.wait_replay()
    plays = [dict(name='t', hosts='localhost', gather_facts=False,
                  tasks=[info_task(node_params(lab, 'primary')), info_task(node_params(lab, 'standby'), 'standby')])]
    return run_playbook(plays, collections_root, home)


def test_primary_facts_match_the_catalogs(primary_run, lab):
    assert primary_run.rc == 0, primary_run
    facts = primary_run.result('info')
    assert facts['changed'] is False
    assert facts['provider'] == 'postgres'
    assert facts['in_recovery'] is False
    assert facts['version']['server_version_num'] == int(lab.psql('primary', 'SHOW server_version_num'))
    assert facts['version']['major'] == lab.state['major']
    assert facts['timeline'] == 1
    assert facts['current_wal_lsn']
    assert facts['wal_receiver'] is None
    # WAL archiving: on, healthy, and the counters are pg_stat_archiver's own
    archiving = facts['archiving']
    assert archiving['enabled'] is True and archiving['healthy'] is True
    assert archiving['archived_count'] >= 1
    # the standby, streaming, with its lag in bytes
    assert len(facts['replication']) == 1
    standby = facts['replication'][0]
    assert standby['state'] == 'streaming'
    assert isinstance(standby['lag_bytes'], int) and standby['lag_bytes'] >= 0
    assert standby['replay_lsn']
    slots = {s['slot_name']: s for s in facts['replication_slots']}
    assert lab.state['nodes']['standby']['slot'] in slots
    # databases with sizes, independently measured
    dbs = {d['name']: d for d in facts['databases']}
    size = int(lab.psql('primary', "SELECT pg_database_size('procgenie')"))
    assert abs(dbs['procgenie']['size_bytes'] - size) < 1024 * 1024
    assert 'plpgsql' in [e['name'] for e in facts['extensions']]
    # the runbook's settings, with their source and pending_restart
    settings = facts['settings']
    for name in ('shared_buffers', 'work_mem', 'max_connections', 'random_page_cost', 'wal_buffers',
                 'checkpoint_completion_target', 'effective_io_concurrency', 'maintenance_work_mem',
                 'effective_cache_size'):
        assert name in settings, name
        assert settings[name]['pending_restart'] is False
        assert settings[name]['source']
    assert settings['shared_buffers']['value'] == lab.psql('primary', 'SHOW shared_buffers')
    assert settings['shared_buffers']['context'] == 'postmaster'
    assert facts['queries'] and all(isinstance(q, str) for q in facts['queries'])
    assert facts['commands'] == []


def test_standby_reports_recovery(primary_run, lab):
    facts = primary_run.result('standby')
    assert facts['in_recovery'] is True
    assert facts['current_wal_lsn'] is None
    assert facts['timeline'] == 1
    assert facts['wal_receiver']['status'] == 'streaming'
    assert facts['wal_receiver']['sender_port'] == lab.state['nodes']['primary']['port']
    assert facts['replay']['replay_lsn']
    assert facts['replay']['replay_pending_bytes'] >= 0
    assert facts['archiving']['enabled'] is False  # archive_mode=on does not archive during recovery
    assert facts['replication'] == []


def test_check_mode_reports_the_same(lab, play):
    run = play([info_task(node_params(lab), settings=['work_mem', 'no_such_setting'])], check=True)
    assert run.rc == 0, run
    facts = run.result('info')
    assert facts['changed'] is False
    assert list(facts['settings']) == ['work_mem']
    assert facts['unknown_settings'] == ['no_such_setting']


def test_wrong_password_fails_cleanly_without_the_password(lab, play):
    secret = 'Wr0ng-Pa55-%s' % os.getpid()
    run = play([info_task(node_params(lab, password=secret))])
    assert run.rc != 0
    result = run.result('info')
    assert result['failed'] is True
    assert 'password authentication failed' in result['msg']
    assert 'Traceback' not in json.dumps(result)
    assert secret not in run.text
    assert lab.state['password'] not in run.text


def test_unreachable_server_fails_with_the_libpq_reason(lab, play):
    params = node_params(lab)
    params['login_port'] = lab.free_port() if hasattr(lab, 'free_port') else 1
    params['connect_params'] = {'connect_timeout': 5}
    run = play([info_task(params)])
    result = run.result('info')
    assert result['failed'] is True
    assert 'Connection refused' in result['msg'] or 'could not connect' in result['msg']
    assert 'Traceback' not in json.dumps(result)
    assert lab.state['password'] not in run.text


def test_missing_psycopg2_gives_a_clean_message(lab, play, workdir):
    bare = os.path.join(workdir, 'bare-venv')
    if not os.path.exists(bare):
        subprocess.run([sys.executable, '-m', 'venv', '--without-pip', bare], check=True)
    run = play([info_task(node_params(lab))], env={'ANSIBLE_PYTHON_INTERPRETER': os.path.join(bare, 'bin', 'python')})
    result = run.result('info')
    assert result['failed'] is True
    assert 'psycopg2' in result['msg']
    assert 'Failed to import the required Python library' in result['msg']
    assert 'module_stderr' not in result


def test_environment_variables_are_the_defaults(lab, play):
    state = lab.state
    env = {'PGHOST': state['nodes']['standby']['host'], 'PGPORT': str(state['nodes']['standby']['port']),
           'PGUSER': state['superuser'], 'PGPASSWORD': state['password'], 'PGDATABASE': 'procgenie'}
    run = play([dict(name='info', **{'procgenie.dbops.pg_server_info': {}})], env=env)
    assert run.rc == 0, run
    assert run.result('info')['in_recovery'] is True
    assert state['password'] not in run.text
