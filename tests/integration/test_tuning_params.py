"""pg_tune_params and the tuning role against real clusters, through ansible-playbook.

Cluster-wide changes (ALTER SYSTEM, restarts) happen in this file's OWN lab; per-role settings use the shared lab with
roles and a database prefixed tuning_test_, dropped at the end.
"""

from __future__ import annotations

import json
import os

import psycopg2
import pytest

from tests.conftest import REPO, node_params
from tests.harness.playbook import run_playbook

MODULE = 'procgenie.dbops.pg_tune_params'
TUNE_TASK = 'procgenie.dbops.tuning : Tune the server parameters and session settings'
SUMMARY_TASK = 'procgenie.dbops.tuning : Show the summary'


def tune_task(params, name='tune', **extra):
    return {'name': name, MODULE: dict(params, **extra), 'register': 'out'}


@pytest.fixture(scope='module')
def own_lab(workdir):
    import pglab
    lab = pglab.Lab(os.path.join(workdir, 'tuning'))
    lab.start(standby=False, seed=False)
    yield lab
    lab.destroy()


def restart_params(lab):
    """Module options for a pg_ctl restart of a lab node: the lab's binaries, as the data directory's owner."""
    return dict(pg_bindir=lab.state['bindir'], os_user=lab.state['os_user'], restart_timeout=60)


def show(lab, name, db='postgres'):
    return lab.psql('primary', 'SHOW %s' % name, db=db)


def auto_conf(lab):
    """{name: value} of postgresql.auto.conf, read independently of the module."""
    rows = lab.psql('primary', "SELECT name || '=' || setting FROM pg_file_settings "
                               "WHERE sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno")
    return dict(line.split('=', 1) for line in rows.splitlines() if line)


def pending(lab):
    return lab.psql('primary', 'SELECT string_agg(name, \',\' ORDER BY name) FROM pg_settings WHERE pending_restart')


def start_time(lab):
    return lab.psql('primary', 'SELECT pg_postmaster_start_time()')


# ------------------------------------------------------------------------------------------- own lab: ALTER SYSTEM

def test_recommend_for_a_machine_changes_nothing(own_lab, play):
    run = play([tune_task(node_params(own_lab, db='postgres'), mode='recommend', memory='1GB', cpus=4,
                          workload='oltp', storage='ssd')])
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is False
    rec = result['recommendation']
    assert rec['shared_buffers']['value'] in ('256MB', '128MB')  # 128MB when the (tiny) data caps it
    assert rec['effective_cache_size']['value'] == '768MB'
    assert rec['max_parallel_workers_per_gather']['value'] == '2'
    assert all(item['reason'] for item in rec.values())
    assert result['inputs']['memory_bytes'] == 1024 ** 3 and result['inputs']['cpus'] == 4
    assert result['inputs']['database_size_bytes'] > 0
    assert result['parameters']['effective_cache_size']['before'] == show(own_lab, 'effective_cache_size')
    assert auto_conf(own_lab) == {}
    assert result['commands'] == [] and result['queries']


def test_recommend_returns_an_empty_diff(own_lab, play):
    run = play([tune_task(node_params(own_lab, db='postgres'), mode='recommend', profile='none',
                          parameters={'work_mem': '12MB'})], diff=True)
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is False and result['parameters']['work_mem']['changed'] is True
    assert result['diff'] == {'before': {}, 'after': {}}


def test_check_mode_shows_the_diff_and_changes_nothing(own_lab, play):
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none',
                          parameters={'work_mem': '8MB', 'shared_buffers': '256MB'})], check=True, diff=True)
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is True
    assert result['diff']['before']['parameters'] == {'work_mem': '4MB', 'shared_buffers': '128MB'}
    assert result['diff']['after']['parameters'] == {'work_mem': '8MB', 'shared_buffers': '256MB'}
    assert result['pending_restart'] == ['shared_buffers']
    assert show(own_lab, 'work_mem') == '4MB'
    assert auto_conf(own_lab) == {}
    assert not any(q.upper().startswith('ALTER') for q in result['queries'])


def test_invalid_names_and_values_are_rejected_before_any_change(own_lab, play):
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none', parameters={
        'work_mem': '16MB', 'no_such_parameter': 1, 'shared_buffers': '64kB', 'max_connections': 0,
        'huge_pages': 'sometimes', 'random_page_cost': 'cheap', 'server_version': '99'})])
    assert run.rc != 0
    result = run.result('tune')
    assert result['failed'] is True
    msg = result['msg']
    for text in ('nothing was changed', 'no_such_parameter: unknown parameter', 'shared_buffers: \'64kB\' is below',
                 'max_connections: 0 is below', 'huge_pages: \'sometimes\' is not one of',
                 'random_page_cost: \'cheap\' is not a number', 'server_version: cannot be changed'):
        assert text in msg, (text, msg)
    assert 'Traceback' not in json.dumps(result)
    assert show(own_lab, 'work_mem') == '4MB'
    assert auto_conf(own_lab) == {}
    assert not any(q.upper().startswith('ALTER') for q in result['queries'])


def test_apply_reports_what_waits_for_a_restart(own_lab, play):
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none',
                          parameters={'work_mem': '8MB', 'shared_buffers': '256MB', 'random_page_cost': 1.1,
                                      'statement_timeout': '1min', 'track_io_timing': 'off'})], diff=True)
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is True
    assert sorted(result['changed_parameters']) == ['random_page_cost', 'shared_buffers', 'statement_timeout',
                                                    'track_io_timing', 'work_mem']
    assert result['pending_restart'] == ['shared_buffers']
    assert result['restarted'] is False
    assert result['parameters']['shared_buffers']['running'] == '128MB'
    assert result['parameters']['work_mem']['running'] == '8MB'
    assert any(q.startswith('ALTER SYSTEM SET "shared_buffers" = \'256MB\'') for q in result['queries'])
    # independently: reloaded values in a new session, shared_buffers written but waiting
    assert show(own_lab, 'work_mem') == '8MB'
    assert show(own_lab, 'random_page_cost') == '1.1'
    assert show(own_lab, 'statement_timeout') == '1min'
    assert show(own_lab, 'track_io_timing') == 'off'
    assert show(own_lab, 'shared_buffers') == '128MB'
    assert pending(own_lab) == 'shared_buffers'
    assert auto_conf(own_lab)['shared_buffers'] == '256MB'


def test_second_run_in_other_units_is_idempotent(own_lab, play):
    before = start_time(own_lab)
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none',
                          parameters={'work_mem': '8192kB', 'shared_buffers': 32768, 'random_page_cost': '1.10',
                                      'statement_timeout': '60000ms', 'track_io_timing': 'false'})])
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is False, result['changed_parameters']
    assert result['changed_parameters'] == []
    assert result['pending_restart'] == ['shared_buffers']
    assert not any(q.upper().startswith('ALTER') for q in result['queries'])
    assert start_time(own_lab) == before


def test_check_mode_with_allow_restart_only_says_it_would_restart(own_lab, play):
    before = start_time(own_lab)
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none',
                          parameters={'shared_buffers': '256MB'}, allow_restart=True, **restart_params(own_lab))],
               check=True)
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['would_restart'] is True and result['restarted'] is False and result['changed'] is True
    assert result['commands'] == []
    assert start_time(own_lab) == before
    assert show(own_lab, 'shared_buffers') == '128MB'


def test_allowed_restart_takes_effect(own_lab, play):
    before = start_time(own_lab)
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none',
                          parameters={'shared_buffers': '256MB', 'max_worker_processes': 6},
                          allow_restart=True, **restart_params(own_lab))])
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is True and result['restarted'] is True
    assert result['changed_parameters'] == ['max_worker_processes']
    assert result['pending_restart'] == []
    assert result['parameters']['shared_buffers']['running'] == '256MB'
    assert result['commands'] and os.path.basename(result['commands'][0][0]) == 'pg_ctl'
    assert result['commands'][0][1] == 'restart'
    assert start_time(own_lab) != before
    assert show(own_lab, 'shared_buffers') == '256MB'
    assert show(own_lab, 'max_worker_processes') == '6'
    assert pending(own_lab) == ''
    # nothing left to do: no restart either
    again = play([tune_task(node_params(own_lab, db='postgres'), profile='none',
                            parameters={'shared_buffers': '0.25GB', 'max_worker_processes': '6'},
                            allow_restart=True, **restart_params(own_lab))])
    assert again.result('tune')['changed'] is False and again.result('tune')['restarted'] is False


def test_restart_command_failure_is_reported(own_lab, play):
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none', parameters={'shared_buffers': '128MB'},
                          allow_restart=True, restart_command=['/bin/false'])])
    assert run.rc != 0
    result = run.result('tune')
    assert 'Restart with false failed' in result['msg']
    assert result['commands'] == [['/bin/false']]
    # the value was written (ALTER SYSTEM) but the server still runs with the old one
    assert auto_conf(own_lab)['shared_buffers'] == '128MB'
    assert show(own_lab, 'shared_buffers') == '256MB'


def test_null_resets_what_alter_system_wrote(own_lab, play):
    params = dict(node_params(own_lab, db='postgres'), profile='none', parameters={
        'work_mem': None, 'random_page_cost': None, 'statement_timeout': None, 'track_io_timing': None,
        'shared_buffers': None, 'max_worker_processes': None, 'effective_cache_size': None})
    run = play([tune_task(params)], diff=True)
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is True
    assert sorted(result['changed_parameters']) == ['max_worker_processes', 'random_page_cost', 'shared_buffers',
                                                    'statement_timeout', 'track_io_timing', 'work_mem']
    assert result['parameters']['effective_cache_size']['changed'] is False  # never written by ALTER SYSTEM
    assert result['parameters']['track_io_timing']['after'] == 'on'  # back to the lab's postgresql.conf
    assert sorted(result['pending_restart']) == ['max_worker_processes', 'shared_buffers']
    assert auto_conf(own_lab) == {}
    assert show(own_lab, 'work_mem') == '4MB'
    assert show(own_lab, 'track_io_timing') == 'on'
    again = play([tune_task(params)])
    assert again.result('tune')['changed'] is False
    # restart so the lab is back to its own configuration
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none', allow_restart=True,
                          parameters={'shared_buffers': None}, **restart_params(own_lab))])
    assert run.result('tune')['restarted'] is True, run
    assert show(own_lab, 'shared_buffers') == '128MB'


def auto_conf_bytes(lab):
    """postgresql.auto.conf as it is on disk (the test runs as root, the data directory belongs to the lab user)."""
    with open(os.path.join(lab.psql('primary', 'SHOW data_directory'), 'postgresql.auto.conf'), 'rb') as handle:
        return handle.read()


def file_settings(lab):
    """Every row of pg_file_settings, in order, as the server reads the configuration files now."""
    return lab.psql('primary', "SELECT string_agg(concat_ws('|', sourcefile, sourceline, seqno, name, setting, "
                               "applied, error), E'\\n' ORDER BY seqno) FROM pg_file_settings")


@pytest.fixture
def written_before(own_lab):
    """postgresql.auto.conf holding one value written earlier (checkpoint_timeout), removed afterwards."""
    own_lab.psql('primary', "ALTER SYSTEM SET checkpoint_timeout = '10min'")
    yield
    own_lab.psql('primary', 'ALTER SYSTEM RESET ALL')
    own_lab.psql('primary', 'SELECT pg_reload_conf()')


def assert_untouched(lab, run, before_bytes, before_settings):
    assert auto_conf_bytes(lab) == before_bytes
    assert file_settings(lab) == before_settings
    assert 'Traceback' not in json.dumps(run.result('tune'))


def test_newline_in_a_value_is_refused_before_any_alter_system(own_lab, play, written_before):
    # issue 11: log_min_duration_statement was written, then search_path failed
    before = auto_conf_bytes(own_lab), file_settings(own_lab)
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none', parameters={
        'log_min_duration_statement': '5s', 'search_path': 'public\nx'})])
    assert run.rc != 0
    result = run.result('tune')
    assert 'nothing was changed' in result['msg'] and 'search_path' in result['msg'], result['msg']
    assert 'control character' in result['msg'], result['msg']
    assert not any(q.upper().startswith('ALTER') for q in result['queries'])
    assert_untouched(own_lab, run, *before)
    assert show(own_lab, 'log_min_duration_statement') == '-1'


def test_the_server_parses_every_value_before_the_first_alter_system(own_lab, play, written_before):
    # TimeZone passes the pg_settings check (a string) but not the server's parser; it sorts after the others
    before = auto_conf_bytes(own_lab), file_settings(own_lab)
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none', parameters={
        'checkpoint_timeout': '7min', 'log_min_duration_statement': '5s', 'timezone': 'Mars/Phobos',
        'search_path': ['public', 'My Schema']})])
    assert run.rc != 0
    result = run.result('tune')
    assert "timezone: the server refuses 'Mars/Phobos'" in result['msg'], result['msg']
    assert 'nothing was changed' in result['msg'] and 'search_path' not in result['msg'], result['msg']
    assert not any(q.upper().startswith('ALTER') for q in result['queries'])
    assert any('set_config' in q for q in result['queries']) and result['queries'][-1] == 'ROLLBACK'
    assert_untouched(own_lab, run, *before)


def test_alter_system_failing_half_way_sets_back_what_it_wrote(own_lab, play, written_before):
    # log_destination (reloadable, so not SET-able by a session) is refused only by ALTER SYSTEM's own check,
    # after bgwriter_delay (new) and checkpoint_timeout (already in postgresql.auto.conf) were written
    before = auto_conf_bytes(own_lab), file_settings(own_lab)
    run = play([tune_task(node_params(own_lab, db='postgres'), profile='none', parameters={
        'bgwriter_delay': '100ms', 'checkpoint_timeout': '15min', 'log_destination': 'nonsense'})])
    assert run.rc != 0
    result = run.result('tune')
    msg = result['msg']
    assert 'ALTER SYSTEM for log_destination failed' in msg, msg
    assert 'set back to their earlier values' in msg and 'bgwriter_delay, checkpoint_timeout' in msg, msg
    alters = [q for q in result['queries'] if q.upper().startswith('ALTER SYSTEM')]
    assert alters[-2:] == ['ALTER SYSTEM SET "checkpoint_timeout" = \'10min\'', 'ALTER SYSTEM RESET "bgwriter_delay"']
    assert 'SELECT pg_reload_conf()' not in result['queries']
    assert_untouched(own_lab, run, *before)
    assert show(own_lab, 'checkpoint_timeout') == '5min' and show(own_lab, 'bgwriter_delay') == '200ms'


def test_the_restart_is_checked_before_any_alter_system(own_lab, play, written_before):
    # issue 19: a missing pg_ctl or os_user used to fail only after ALTER SYSTEM had written the values
    before = auto_conf_bytes(own_lab), file_settings(own_lab)
    params = dict(node_params(own_lab, db='postgres'), profile='none', allow_restart=True,
                  parameters={'shared_buffers': '384MB', 'bgwriter_delay': '150ms'})
    restart = dict(restart_params(own_lab))
    restart['os_user'] = 'no_such_user_p19'
    run = play([dict(tune_task(params, name='tune', **restart), ignore_errors=True),
                dict(tune_task(params, name='pg_ctl', pg_ctl='/nonexistent/bin/pg_ctl', restart_timeout=60),
                     ignore_errors=True)])
    for name, text in (('tune', 'os_user no_such_user_p19 does not exist on this host'),
                       ('pg_ctl', 'Cannot run /nonexistent/bin/pg_ctl: not found or not executable')):
        result = run.result(name)
        assert result.get('failed') is True, result
        assert text in result['msg'] and 'nothing was changed' in result['msg'], result['msg']
        assert not any(q.upper().startswith('ALTER') for q in result['queries']), result['queries']
        assert result['commands'] == []
    assert_untouched(own_lab, run, *before)
    assert show(own_lab, 'bgwriter_delay') == '200ms'


def test_list_values_are_written_element_by_element(own_lab, play, written_before):
    params = dict(node_params(own_lab, db='postgres'), profile='none',
                  parameters={'search_path': '"$user", public, "My Schema"'})
    run = play([tune_task(params)])
    assert run.rc == 0, run
    assert auto_conf(own_lab)['search_path'] == '"$user", public, "My Schema"'
    again = play([tune_task(dict(params, parameters={'search_path': ['$user', 'public', 'My Schema']}))])
    assert again.result('tune')['changed'] is False, again.result('tune')['parameters']


BAD_INPUTS = [
    (dict(cpus=-4), 'cpus must be at least 1, got -4'),
    (dict(cpus=0, max_connections=-10), 'max_connections must be at least 1, got -10'),
    (dict(pool={'db_max_connections': -5, 'replicas': 0, 'reserved': -1}),
     'pool.db_max_connections must be at least 1, got -5; pool.replicas must be at least 1, got 0; '
     'pool.reserved must be at least 0, got -1'),
    (dict(restart_timeout=-5), 'restart_timeout must be at least 1, got -5'),
    (dict(memory='lots'), "memory: 'lots' is not a size"),
    (dict(database_size='0GB'), "database_size must be more than 0"),
    (dict(parameters={'work_mem': {'size': '8MB'}}), 'parameters: work_mem takes a value'),
    (dict(parameters={' ': 1}), "parameters: ' ' is not a parameter name"),
    (dict(role_settings=[{'role': 'postgres', 'settings': {'statement_timeout': {'a': 1}}}]),
     'role_settings[0].settings: statement_timeout takes a value'),
    (dict(provider='azure', resource_group='rg', server_name='db', cpus=-4), 'cpus must be at least 1, got -4'),
    (dict(cpus='many'), "cpus"),
    (dict(parameters='work_mem'), 'parameters'),
    (dict(parameters={'no_such_parameter': 1, 'work_mem': []}), 'no_such_parameter: unknown parameter'),
]


def test_bad_inputs_fail_cleanly_before_anything(own_lab, play):
    before = auto_conf_bytes(own_lab)
    tasks = [dict(tune_task(node_params(own_lab, db='postgres'), name='bad%d' % i, profile='none', **args),
                  ignore_errors=True) for i, (args, _unused) in enumerate(BAD_INPUTS)]
    tasks.append(tune_task(node_params(own_lab, db='postgres'), name='empty', profile='none', parameters={}))
    run = play(tasks)
    for i, (args, text) in enumerate(BAD_INPUTS):
        result = run.result('bad%d' % i)
        assert result.get('failed') is True, (args, result)
        assert text in result['msg'], (args, text, result['msg'])
        assert 'Traceback' not in json.dumps(result) and 'Module failed' not in result['msg'], result
        assert not any(q.upper().startswith('ALTER') for q in result.get('queries', []))
    empty = run.result('empty')
    assert empty['changed'] is False and empty['parameters'] == {}
    assert auto_conf_bytes(own_lab) == before


@pytest.fixture(scope='module')
def tuning_collections(workdir):
    """A copy of the collection whose action group surely holds pg_tune_params (the role passes the connection
    through module_defaults of group/procgenie.dbops.dbops)."""
    import yaml
    from tests.harness.tree import make_tree
    root = os.path.join(workdir, 'tuning-collections')
    tree = make_tree(root)
    path = os.path.join(tree, 'meta', 'runtime.yml')
    with open(path) as handle:
        runtime = yaml.safe_load(handle)
    group = runtime.setdefault('action_groups', {}).setdefault('dbops', [])
    if 'pg_tune_params' not in group:
        group.append('pg_tune_params')
        with open(path, 'w') as handle:
            yaml.safe_dump(runtime, handle)
    return root


def test_development_profile_through_the_playbook(own_lab, tuning_collections, home):
    collections_root = tuning_collections
    params = node_params(own_lab, db='postgres')
    extravars = dict(target='localhost', dbops_connection=params, tuning_environment='development',
                     tuning_parameters={'max_connections': None})
    playbook = os.path.join(REPO, 'playbooks', 'tune.yml')
    run = run_playbook(playbook, collections_root, home, extravars=dict(extravars, tuning_check_only=True))
    assert run.rc == 0, run
    result = run.result(TUNE_TASK)
    assert result['changed'] is True
    assert 'effective_cache_size' in result['changed_parameters']
    assert auto_conf(own_lab) == {}
    summary = run.result(SUMMARY_TASK)['msg']
    assert any(line.startswith('Would change') for line in summary), summary
    run = run_playbook(playbook, collections_root, home, extravars=extravars)
    assert run.rc == 0, run
    result = run.result(TUNE_TASK)
    assert result['changed'] is True
    assert show(own_lab, 'effective_cache_size') == '512MB'
    assert show(own_lab, 'checkpoint_completion_target') == '0.9'
    assert 'max_connections' not in result['parameters'] or result['parameters']['max_connections']['changed'] is False
    assert result['pending_restart'] == []  # wal_buffers=-1 resolves to what the server already runs with
    run = run_playbook(playbook, collections_root, home, extravars=extravars)
    assert run.result(TUNE_TASK)['changed'] is False
    # the window flag: restarts only inside it
    restart = dict(extravars, tuning_parameters={'max_connections': None, 'shared_buffers': '256MB'},
                   tuning_allow_restart=True, tuning_os_user=own_lab.state['os_user'],
                   tuning_pg_bindir=own_lab.state['bindir'])
    run = run_playbook(playbook, collections_root, home, extravars=restart)
    result = run.result(TUNE_TASK)
    assert result['restarted'] is False and result['pending_restart'] == ['shared_buffers']
    summary = run.result(SUMMARY_TASK)['msg']
    assert any('Waiting for a restart: shared_buffers' in line for line in summary), summary
    run = run_playbook(playbook, collections_root, home, extravars=dict(restart, tuning_maintenance_window=True))
    result = run.result(TUNE_TASK)
    assert result['restarted'] is True, run
    assert show(own_lab, 'shared_buffers') == '256MB'
    # leave the lab's own configuration behind
    run = run_playbook(playbook, collections_root, home, extravars=dict(
        extravars, tuning_profile='none', tuning_parameters={}, tuning_reset=[
            'shared_buffers', 'effective_cache_size', 'work_mem', 'maintenance_work_mem', 'random_page_cost',
            'effective_io_concurrency', 'wal_buffers', 'checkpoint_completion_target']))
    assert run.rc == 0, run
    assert auto_conf(own_lab) == {}


# ------------------------------------------------------------------------------- shared lab: per-role settings

@pytest.fixture(scope='module')
def test_role(lab):
    password = lab.state['password']
    lab.psql('primary', "DROP DATABASE IF EXISTS tuning_test_db; DROP ROLE IF EXISTS tuning_test_app")
    lab.psql('primary', "CREATE ROLE tuning_test_app LOGIN PASSWORD '%s'" % password.replace("'", "''"))
    lab.psql('primary', 'CREATE DATABASE tuning_test_db')
    yield 'tuning_test_app'
    lab.psql('primary', 'DROP DATABASE IF EXISTS tuning_test_db')
    lab.psql('primary', 'DROP ROLE IF EXISTS tuning_test_app')


def session_value(lab, role, db, name):
    """SHOW in a brand-new session of that role."""
    node = lab.state['nodes']['primary']
    conn = psycopg2.connect(host=node['host'], port=node['port'], user=role, password=lab.state['password'],
                            dbname=db)
    try:
        with conn.cursor() as cur:
            cur.execute('SHOW %s' % name)
            return cur.fetchone()[0]
    finally:
        conn.close()


ROLE_SETTINGS = [
    {'role': 'tuning_test_app', 'settings': {'statement_timeout': '15s', 'idle_in_transaction_session_timeout': '30s'}},
    {'role': 'tuning_test_app', 'database': 'tuning_test_db', 'settings': {'statement_timeout': '20s'}},
    {'database': 'tuning_test_db', 'settings': {'idle_session_timeout': '1h'}},
]


def test_role_settings_check_mode_then_apply_then_idempotent(lab, play, test_role):
    params = dict(node_params(lab, db='postgres'), profile='none', role_settings=ROLE_SETTINGS)
    run = play([tune_task(params)], check=True, diff=True)
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is True
    assert result['diff']['after']['role_settings']['role tuning_test_app: statement_timeout'] == '15s'
    assert session_value(lab, test_role, 'postgres', 'statement_timeout') == '0'

    run = play([tune_task(params)])
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is True
    assert len([i for i in result['role_settings'] if i['changed']]) == 4
    assert result['parameters'] == {} and result['pending_restart'] == []
    assert any(q.startswith('ALTER ROLE "tuning_test_app" IN DATABASE "tuning_test_db" SET "statement_timeout"')
               for q in result['queries'])
    assert session_value(lab, test_role, 'postgres', 'statement_timeout') == '15s'
    assert session_value(lab, test_role, 'postgres', 'idle_in_transaction_session_timeout') == '30s'
    assert session_value(lab, test_role, 'tuning_test_db', 'statement_timeout') == '20s'
    assert session_value(lab, test_role, 'tuning_test_db', 'idle_session_timeout') == '1h'
    assert session_value(lab, lab.state['superuser'], 'postgres', 'statement_timeout') == '0'  # others untouched

    other_units = [
        {'role': 'tuning_test_app', 'settings': {'statement_timeout': 15000, 'idle_in_transaction_session_timeout':
                                                 '0.5min'}},
        {'role': 'tuning_test_app', 'database': 'tuning_test_db', 'settings': {'statement_timeout': '20000ms'}},
        {'database': 'tuning_test_db', 'settings': {'idle_session_timeout': '60min'}},
    ]
    run = play([tune_task(dict(params, role_settings=other_units))])
    assert run.result('tune')['changed'] is False, run.result('tune')['role_settings']

    # null removes a setting
    run = play([tune_task(dict(params, role_settings=[{'database': 'tuning_test_db',
                                                       'settings': {'idle_session_timeout': None}}]))])
    assert run.result('tune')['changed'] is True
    assert session_value(lab, test_role, 'tuning_test_db', 'idle_session_timeout') == '0'


def test_profile_gives_the_pool_table_session_settings(lab, play, test_role):
    # check mode only: the production profile would also ALTER SYSTEM the shared lab
    params = dict(node_params(lab, db='postgres'), profile='production', memory='8GB',
                  parameters={'max_connections': None},
                  role_settings=[{'role': test_role, 'database': 'tuning_test_db'}])
    run = play([tune_task(params)], check=True)
    assert run.rc == 0, run
    planned = dict((i['name'], i['after']) for i in run.result('tune')['role_settings'])
    assert planned == {'statement_timeout': '15s', 'idle_session_timeout': '1h',
                       'idle_in_transaction_session_timeout': '30s'}


def test_role_settings_are_validated(lab, play, test_role):
    params = dict(node_params(lab, db='postgres'), profile='none', role_settings=[
        {'role': 'tuning_test_nobody', 'settings': {'statement_timeout': '1s'}},
        {'role': test_role, 'settings': {'shared_buffers': '1GB', 'statement_timeout': 'soon'}},
        {'database': 'tuning_test_db', 'settings': {'no_such_parameter': 1}},
        {'settings': {'work_mem': '8MB'}},
    ])
    run = play([tune_task(params)])
    assert run.rc != 0
    msg = run.result('tune')['msg']
    for text in ('role tuning_test_nobody does not exist', 'shared_buffers: cannot be set per role',
                 "statement_timeout: 'soon' is not a number", 'no_such_parameter: unknown parameter',
                 'needs a role, a database or both'):
        assert text in msg, (text, msg)
    assert not any(q.upper().startswith('ALTER') for q in run.result('tune')['queries'])


def test_pool_check(lab, play):
    params = dict(node_params(lab, db='postgres'), profile='none')
    run = play([tune_task(params, pool={'db_max_connections': 20, 'replicas': 3, 'reserved': 10})])
    assert run.rc == 0, run
    pool = run.result('tune')['pool']
    max_connections = int(show(lab, 'max_connections'))
    reserved = int(show(lab, 'superuser_reserved_connections'))
    assert pool['needed'] == 70 and pool['max_connections'] == max_connections
    assert pool['available'] <= max_connections - reserved and pool['fits'] is True
    run = play([tune_task(params, pool={'db_max_connections': 50, 'replicas': 3})])
    assert run.rc != 0
    assert 'does not fit' in run.result('tune')['msg'] and '150 connections' in run.result('tune')['msg']
    # the pool is checked against the max_connections being set, before anything changes
    run = play([tune_task(params, parameters={'max_connections': 100}, mode='recommend',
                          pool={'db_max_connections': 100, 'replicas': 1})])
    assert run.rc != 0 and 'does not fit' in run.result('tune')['msg']


def test_raising_max_connections_on_a_primary_with_standbys_warns(lab, play):
    # check mode: nothing is written to the shared lab
    run = play([tune_task(node_params(lab, db='postgres'), profile='none',
                          parameters={'max_connections': int(show(lab, 'max_connections')) + 50})], check=True)
    assert run.rc == 0, run
    result = run.result('tune')
    assert result['changed'] is True and result['pending_restart'] == ['max_connections']
    assert any('raise max_connections on the standbys first' in w for w in result.get('warnings', []))
    assert auto_conf(lab) == {} or 'max_connections' not in auto_conf(lab)
