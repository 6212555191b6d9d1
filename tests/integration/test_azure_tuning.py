"""pg_tune_params provider azure and the tuning role's Azure path, through ansible-playbook against the HTTPS Azure
double (every request and response validated against the 2025-08-01 specification; `checked_double` fails a test
on any violation or a leaked secret).

The production server of the double is a Standard_D4ds_v5 (4 vCores, 16 GiB): shared_buffers in 8KB pages, its
allowedValues "16-1073741823" as in Microsoft's list and Azure's 10%-75%-of-memory rule enforced by the double on
update (stated only in the description), max_connections static with Azure's default 1718 for that size."""

from __future__ import annotations

import json
import os

from tests.azure_double import fixtures
from tests.azure_double.fixtures import (  # noqa: F401 pylint: disable=unused-import
    CLIENT_ID, DEV, DEV_RG, PROD, PROD_RG, SECRET, SUBSCRIPTION, TENANT, checked_double, module_double, new_calls, options)
from tests.azure_double.state import server_id
from tests.harness.tree import REPO

WRITES = ('Configurations_Update', 'Configurations_Put', 'Servers_Restart', 'Servers_Update')


def task(args, name='tune'):
    return dict(name=name, **{'procgenie.dbops.pg_tune_params': args}, register='out', ignore_errors=True)


def run(play, double, tasks, **kwargs):
    return play(tasks, env=double.env, **kwargs)


def config(double, name):
    key = server_id(SUBSCRIPTION, PROD_RG, PROD).lower()
    return double.state.configurations[key][name]['properties']


def writes(double, start):
    return [c for c in new_calls(double, start) if c.get('operation_id') in WRITES]


def patches(double, start):
    return [(c['path'].rsplit('/', 1)[-1], json.loads(c['body']))
            for c in new_calls(double, start, 'Configurations_Update')]


def clean_failure(run_, name='tune'):
    return fixtures.clean_failure(run_, name)


def test_recommend_from_the_sku_changes_nothing(checked_double, play):
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, mode='recommend', workload='oltp'))])
    assert result.rc == 0, result.text
    out = result.result('tune')
    assert out['changed'] is False and out['provider'] == 'azure'
    assert out['queries'] == [] and out['commands'] == []
    assert out['inputs']['memory_bytes'] == 16 * 1024 ** 3 and out['inputs']['cpus'] == 4
    assert out['inputs']['memory_source'] == 'SKU Standard_D4ds_v5 (4 vCores, 16GB)'
    assert out['recommendation']['shared_buffers']['value'] == '4GB'
    assert out['parameters']['shared_buffers']['before'] == '4GB'  # Azure's default: 25% of memory
    assert out['parameters']['shared_buffers']['changed'] is False
    assert out['parameters']['max_parallel_workers']['after'] == '4'
    assert writes(checked_double, start) == []
    # one read of the server, one (paged) list of the configurations
    ops = [c['operation_id'] for c in new_calls(checked_double, start) if c.get('operation_id') != 'token']
    assert ops == ['Servers_Get', 'Configurations_ListByServer']


def test_apply_production_profile_then_idempotent_in_other_units(checked_double, play):
    checked_double.state.page_size = 10  # the list comes in pages
    try:
        start = len(checked_double.state.requests)
        result = run(play, checked_double, [task(options(checked_double, profile='production'))], diff=True)
    finally:
        checked_double.state.page_size = 1000
    assert result.rc == 0, result.text
    out = result.result('tune')
    assert out['changed'] is True
    sent = dict(patches(checked_double, start))
    assert sent['shared_buffers'] == {'properties': {'value': '262144', 'source': 'user-override'}}  # 2GB in 8KB
    assert sent['effective_cache_size'] == {'properties': {'value': '1048576', 'source': 'user-override'}}
    assert sent['work_mem'] == {'properties': {'value': '8192', 'source': 'user-override'}}
    assert sent['maintenance_work_mem'] == {'properties': {'value': '524288', 'source': 'user-override'}}
    assert sent['max_connections']['properties']['value'] == '800'
    assert sent['random_page_cost']['properties']['value'] == '1.1'
    assert sent['effective_io_concurrency']['properties']['value'] == '200'
    assert 'wal_buffers' not in sent and 'checkpoint_completion_target' not in sent  # already 16MB and 0.9
    assert sorted(out['changed_parameters']) == sorted(sent)
    assert config(checked_double, 'shared_buffers')['value'] == '262144'
    assert config(checked_double, 'max_connections')['value'] == '800'
    # static parameters wait for a restart; no restart without allow_restart
    assert out['pending_restart'] == ['max_connections', 'shared_buffers']
    assert out['parameters']['shared_buffers']['restart_required'] is True
    assert out['restarted'] is False and out['would_restart'] is False
    assert config(checked_double, 'max_connections')['isConfigPendingRestart'] is True
    assert new_calls(checked_double, start, 'Servers_Restart') == []
    assert out['diff']['before']['parameters']['shared_buffers'] == '4GB'
    assert out['diff']['after']['parameters']['shared_buffers'] == '2GB'
    assert out['pool'] is None and out['role_settings'] == []

    # the same values written in other units: nothing to do, nothing sent; the pending restart is still reported
    start = len(checked_double.state.requests)
    again = run(play, checked_double, [task(options(checked_double, profile='none', parameters=dict(
        shared_buffers='2048MB', effective_cache_size=1048576, work_mem='8MB', maintenance_work_mem='524288kB',
        max_connections=800, random_page_cost='1.10', effective_io_concurrency='200')))])
    assert again.rc == 0, again.text
    out = again.result('tune')
    assert out['changed'] is False and out['changed_parameters'] == []
    assert out['pending_restart'] == ['max_connections', 'shared_buffers']
    assert writes(checked_double, start) == []


def test_allow_restart_restarts_once_and_clears_pending(checked_double, play):
    start = len(checked_double.state.requests)
    args = options(checked_double, profile='none', allow_restart=True,
                   parameters=dict(max_connections=900, work_mem='16MB'))
    result = run(play, checked_double, [task(args)])
    assert result.rc == 0, result.text
    out = result.result('tune')
    assert out['changed'] is True and out['restarted'] is True and out['pending_restart'] == []
    restarts = new_calls(checked_double, start, 'Servers_Restart')
    assert len(restarts) == 1 and json.loads(restarts[0]['body']) == {'restartWithFailover': False}
    assert config(checked_double, 'max_connections')['isConfigPendingRestart'] is False
    assert config(checked_double, 'max_connections')['value'] == '900'
    assert config(checked_double, 'work_mem')['value'] == '16384'
    # nothing pending any more: a second run restarts nothing
    start = len(checked_double.state.requests)
    again = run(play, checked_double, [task(args)])
    assert again.rc == 0 and again.result('tune')['changed'] is False
    assert writes(checked_double, start) == []


def test_invalid_names_values_and_read_only_rejected_before_any_patch(checked_double, play):
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, profile='none', parameters=dict(
        work_mem='1MB', no_such_parameter=1, server_version='17', shared_buffers='64GB', array_nulls='maybe',
        shared_preload_libraries=['pg_stat_statements', 'not_a_library'], log_min_messages='loud',
        statement_timeout='15s')))])
    out = clean_failure(result)
    msg = out['msg']
    assert 'nothing was changed' in msg
    for part in ('no_such_parameter: unknown parameter', 'server_version: read-only', 'work_mem', 'below the minimum',
                 'shared_buffers', 'above the maximum', 'array_nulls', 'not_a_library', 'log_min_messages'):
        assert part in msg, (part, msg)
    assert writes(checked_double, start) == []


def test_check_mode_and_diff_send_nothing(checked_double, play):
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, profile='production', allow_restart=True))],
                 check=True, diff=True)
    assert result.rc == 0, result.text
    out = result.result('tune')
    assert out['changed'] is True and out['would_restart'] is True and out['restarted'] is False
    assert 'shared_buffers' in out['changed_parameters']
    assert out['diff']['after']['parameters']['max_connections'] == '800'
    assert writes(checked_double, start) == []
    assert config(checked_double, 'shared_buffers')['value'] == '524288'


def test_reset_to_default_and_enumeration_and_set(checked_double, play):
    tasks = [task(options(checked_double, profile='none', parameters=dict(
        log_min_messages='ERROR', shared_preload_libraries=['pg_cron', 'pg_stat_statements', 'pgaudit'],
        statement_timeout='15s', array_nulls=False)), name='set'),
        task(options(checked_double, profile='none', parameters=dict(statement_timeout=None)), name='reset'),
        task(options(checked_double, profile='none', parameters=dict(statement_timeout=None)), name='again')]
    start = len(checked_double.state.requests)
    result = run(play, checked_double, tasks)
    assert result.rc == 0, result.text
    sent = patches(checked_double, start)
    assert ('log_min_messages', {'properties': {'value': 'error', 'source': 'user-override'}}) in sent
    assert ('shared_preload_libraries', {'properties': {'value': 'pg_cron,pg_stat_statements,pgaudit',
                                                        'source': 'user-override'}}) in sent
    assert ('statement_timeout', {'properties': {'value': '15000', 'source': 'user-override'}}) in sent
    assert ('array_nulls', {'properties': {'value': 'off', 'source': 'user-override'}}) in sent
    assert ('statement_timeout', {'properties': {'value': '0', 'source': 'system-default'}}) == sent[-1]
    assert result.result('set')['pending_restart'] == ['shared_preload_libraries']
    assert result.result('reset')['changed'] is True
    assert result.result('reset')['parameters']['statement_timeout']['action'] == 'reset'
    assert result.result('again')['changed'] is False
    assert config(checked_double, 'statement_timeout')['source'] == 'system-default'


def test_throttled_update_is_retried(checked_double, play):
    checked_double.state.inject(429, 'Configurations_Update', times=1, headers={'Retry-After': '1'})
    start = len(checked_double.state.requests)
    args = options(checked_double, profile='none', parameters=dict(work_mem='32MB'))
    result = run(play, checked_double, [task(args)])
    assert result.rc == 0, result.text
    assert result.result('tune')['changed'] is True
    assert [c['status'] for c in new_calls(checked_double, start, 'Configurations_Update')] == [429, 202]
    assert config(checked_double, 'work_mem')['value'] == '32768'


def test_failed_update_fails_cleanly(checked_double, play):
    checked_double.state.set_outcome('Configurations_Update', 'Failed', code='ServerParameterUpdateFailed',
                                     message='The server parameter update failed on the server.')
    args = options(checked_double, profile='none', parameters=dict(work_mem='32MB', max_wal_size='8GB'))
    result = run(play, checked_double, [task(args)])
    out = clean_failure(result)
    assert out['msg'] == (
        'Updating server parameter max_wal_size of server psql-procgenie-prod ended Failed: '
        '(ServerParameterUpdateFailed) The server parameter update failed on the server. (already changed before '
        'it: nothing)'), out['msg']
    assert config(checked_double, 'work_mem')['value'] == '4096'  # not tried after the failure


def test_role_settings_refused_and_unknown_sku(checked_double, play):
    checked_double.state.server(SUBSCRIPTION, PROD_RG, PROD)['sku']['name'] = 'Standard_L8as_v3'
    start = len(checked_double.state.requests)
    tasks = [task(options(checked_double, profile='none', role_settings=[
        dict(role='procgenie_app', settings=dict(statement_timeout='15s'))]), name='roles'),
        task(options(checked_double, mode='recommend'), name='sku'),
        task(options(checked_double, mode='recommend', memory='64GB', cpus=8), name='given')]
    result = run(play, checked_double, tasks)
    assert 'role_settings with provider azure' in clean_failure(result, 'roles')['msg']
    assert 'Unknown SKU Standard_L8as_v3' in clean_failure(result, 'sku')['msg']
    given = result.result('given')
    assert 'inputs' in given, given.get('msg')
    assert given['inputs']['memory_source'] == 'memory option' and given['inputs']['cpus'] == 8
    # an unknown SKU: Azure's 10%-75% rule is applied to the memory given (25% of 64GB lies inside it)
    assert given['recommendation']['shared_buffers']['value'] == '16GB'
    assert 'Azure' not in given['recommendation']['shared_buffers']['reason']
    assert given['recommendation']['maintenance_work_mem']['value'] == '2097151kB'
    assert writes(checked_double, start) == []


def test_pool_check_uses_azure_max_connections(checked_double, play):
    start = len(checked_double.state.requests)
    tasks = [task(options(checked_double, profile='none', pool=dict(db_max_connections=100, replicas=4,
                                                                    reserved=20)), name='fits'),
             task(options(checked_double, profile='none', parameters=dict(max_connections=300),
                          pool=dict(db_max_connections=100, replicas=4)), name='too_small')]
    result = run(play, checked_double, tasks)
    pool = result.result('fits')['pool']
    assert pool['fits'] is True and pool['max_connections'] == 1718 and pool['superuser_reserved_connections'] == 3
    assert pool['platform_reserved_connections'] == 15 and pool['available'] == 1718 - 3 - 15
    assert 'does not fit' in clean_failure(result, 'too_small')['msg']
    assert writes(checked_double, start) == []


def test_tuning_role_azure_path(checked_double, play):
    host = {'ansible_connection': 'local', 'dbops_provider': 'azure', 'dbops_azure': {
        'cloud_environment': checked_double.url, 'subscription_id': SUBSCRIPTION, 'client_id': CLIENT_ID,
        'secret': SECRET, 'tenant': TENANT, 'resource_group': PROD_RG, 'server_name': PROD}}
    start = len(checked_double.state.requests)
    extravars = dict(host, target='localhost', tuning_environment='production', tuning_pool={'replicas': 4})
    result = play(playbook=os.path.join(REPO, 'playbooks', 'tune.yml'), extravars=extravars, env=checked_double.env)
    assert result.rc == 0, [(r['task'], r['result'].get('msg')) for r in result.results if r['status'] == 'failed']
    out = result.result('Tune the server parameters and session settings')
    assert out['provider'] == 'azure' and out['changed'] is True
    assert 'max_connections' in out['pending_restart'] and out['restarted'] is False
    assert config(checked_double, 'max_connections')['value'] == '800'
    assert new_calls(checked_double, start, 'Servers_Restart') == []
    assert 'Waiting for a restart: max_connections, shared_buffers' in result.text
    assert SECRET not in result.text


def test_development_table_is_raised_to_azure_minimum_on_burstable(checked_double, play):
    # the runbook's development shared_buffers (128MB) is below Azure's minimum (10% of the B2s' 4 GiB)
    start = len(checked_double.state.requests)
    args = options(checked_double, resource_group=DEV_RG, server_name=DEV, profile='development')
    result = run(play, checked_double, [task(args)], check=True)
    assert result.rc == 0, result.text
    out = result.result('tune')
    assert out['inputs']['memory_source'] == 'SKU Standard_B2s (2 vCores, 4GB)'
    assert out['recommendation']['shared_buffers']['value'] == '419432kB'  # 52429 pages of 8KB: 10% rounded up
    assert "at Azure's minimum" in out['recommendation']['shared_buffers']['reason']
    assert out['parameters']['max_connections']['after'] == '200'
    assert writes(checked_double, start) == []


def test_double_configurations_through_the_sdk(checked_double, monkeypatch):
    """The double's configurations seen through the SDK: Put like Update, a static value pending until a restart,
    Azure's errors for unknown names, read-only parameters and values outside allowedValues."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
    for key, value in checked_double.env.items():
        monkeypatch.setenv(key, value)
    connection = _azure.Azure(options(checked_double), environ={})
    client = connection.client.configurations
    try:
        found = client.get(PROD_RG, PROD, 'wal_buffers')
        assert (found.properties.data_type, found.properties.unit, found.properties.is_dynamic_config) == (
            'Integer', '8KB', False)
        done = _azure.wait(client.begin_put(PROD_RG, PROD, 'wal_buffers', {'properties': {
            'value': '4096', 'source': 'user-override'}}, polling_interval=1), 30, 'Put')
        assert done.properties.value == '4096' and done.properties.is_config_pending_restart is True
        try:
            client.get(PROD_RG, PROD, 'no_such_parameter')
            raise AssertionError('no 404')
        except ResourceNotFoundError:
            pass
        for name, value, code in (('server_version', '17', 'ServerParameterReadOnly'),
                                  ('shared_buffers', '16384', 'InvalidParameterValue'),  # 128MB: below 10%
                                  ('search_path', 'public; drop', 'InvalidParameterValue'),
                                  ('max_connections', '10', 'InvalidParameterValue'),
                                  ('log_min_messages', 'loud', 'InvalidParameterValue')):
            try:
                client.begin_update(PROD_RG, PROD, name, {'properties': {'value': value, 'source': 'user-override'}})
                raise AssertionError('%s accepted' % name)
            except HttpResponseError as exc:
                assert exc.status_code == 400 and exc.error.code == code, (name, exc)
        _azure.wait(connection.client.servers.begin_restart(PROD_RG, PROD, parameters={'restartWithFailover': False},
                                                            polling_interval=1), 30, 'Restart')
        assert client.get(PROD_RG, PROD, 'wal_buffers').properties.is_config_pending_restart is False
        assert connection.client.servers.get(PROD_RG, PROD).state == 'Ready'
    finally:
        connection.close()


def test_shared_buffers_bounds_come_from_the_sku_not_from_allowed_values(checked_double, play):
    # issue 12 item 8: Azure lists shared_buffers as 16-1073741823; its 10%-75% of memory is only in the description
    start = len(checked_double.state.requests)
    tasks = [task(options(checked_double, profile='development'), name='development'),
             task(options(checked_double, profile='none', parameters=dict(shared_buffers='128MB', work_mem='8MB')),
                  name='given'),
             task(options(checked_double, mode='recommend', memory='64GB'), name='memory')]
    result = run(play, checked_double, tasks, check=True)
    development = result.result('development')
    assert 'recommendation' in development, development.get('msg')
    assert config(checked_double, 'shared_buffers')['allowedValues'] == '16-1073741823'
    shared = development['recommendation']['shared_buffers']
    assert shared['value'] == '1677728kB'  # 209716 pages of 8KB: 10% of 16 GiB rounded up
    assert "at Azure's minimum" in shared['reason'] and "10%-75% of the server's 16GB" in shared['reason'], shared
    given = clean_failure(result, 'given')['msg']
    assert 'nothing was changed' in given and "shared_buffers: '128MB' is below the minimum 209716" in given, given
    assert "Azure allows 10%-75% of the server's 16GB" in given, given
    memory = result.result('memory')['recommendation']['shared_buffers']
    assert memory['value'] == '12GB' and "at Azure's maximum" in memory['reason'], memory  # 25% of 64GB > 75% of 16GB
    assert writes(checked_double, start) == []
    # applied, the raised value is one Azure takes
    result = run(play, checked_double, [task(options(checked_double, profile='none', parameters=dict(
        shared_buffers='1677728kB')))])
    assert result.rc == 0 and result.result('tune')['changed'] is True, result.result('tune').get('msg')
    assert config(checked_double, 'shared_buffers')['value'] == '209716'


MICROSOFT_SHAPES = dict(
    log_min_duration_statement='5s', extra_float_digits=-2, max_pred_locks_per_relation=-5, max_wal_size='4GB',
    session_preload_libraries='login_hook', ssl_max_protocol_version='TLSv1.3', search_path=['$user', 'public', 'app'],
    datestyle='ISO, DMY', **{'auto_explain.sample_rate': 0.5, 'azure.extensions': ['pg_trgm', 'vector']})


def test_values_in_the_shapes_of_microsofts_configuration_list(checked_double, play):
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, profile='none', parameters=MICROSOFT_SHAPES))])
    out = result.result('tune')
    assert result.rc == 0 and out['changed'] is True, out.get('msg')
    sent = dict((name, body['properties']['value']) for name, body in patches(checked_double, start))
    assert sent == {'DateStyle': 'ISO, DMY', 'auto_explain.sample_rate': '0.5', 'azure.extensions': 'pg_trgm,vector',
                    'extra_float_digits': '-2', 'log_min_duration_statement': '5000',
                    'max_pred_locks_per_relation': '-5', 'max_wal_size': '4096', 'search_path': '"$user", public, app',
                    'session_preload_libraries': 'login_hook', 'ssl_max_protocol_version': 'TLSv1.3'}, sent
    start = len(checked_double.state.requests)
    again = run(play, checked_double, [task(options(checked_double, profile='none', parameters=dict(
        MICROSOFT_SHAPES, log_min_duration_statement=5000, max_wal_size=4096, search_path='"$user", public, app')))])
    assert again.rc == 0 and again.result('tune')['changed'] is False, again.result('tune')
    assert writes(checked_double, start) == []
    # the empty choice of a Set and of an Enumeration
    empty = run(play, checked_double, [task(options(checked_double, profile='none', parameters=dict(
        session_preload_libraries='', ssl_max_protocol_version='')))])
    assert empty.rc == 0 and empty.result('tune')['changed'] is True, empty.result('tune').get('msg')
    assert config(checked_double, 'session_preload_libraries')['value'] == ''
    assert config(checked_double, 'ssl_max_protocol_version')['value'] == ''
    # refused before any PATCH: a String outside its pattern, a Set choice that is not offered, a newline
    start = len(checked_double.state.requests)
    bad = run(play, checked_double, [task(options(checked_double, profile='none', parameters={
        'search_path': 'public; drop', 'azure.extensions': ['nope'], 'datestyle': 'ISO,\nMDY',
        'extra_float_digits': -16}))])
    msg = clean_failure(bad)['msg']
    for part in ("search_path: 'public; drop' does not match the allowed values", 'nope not among the allowed',
                 'DateStyle', 'control character', "extra_float_digits: -16 is below the minimum -15"):
        assert part in msg, (part, msg)
    assert writes(checked_double, start) == []
