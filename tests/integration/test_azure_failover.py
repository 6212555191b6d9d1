"""pg_failover provider azure through ansible-playbook against the HTTPS Azure double (spec-validated).

The double's restart with failover puts HA in FailingOver, then swaps the primary and standby zones and reports
HA Healthy (or the settling states a test asks for)."""

from __future__ import annotations

import json

from tests.azure_double import fixtures
from tests.azure_double.fixtures import (  # noqa: F401 pylint: disable=unused-import
    DEV, DEV_RG, PROD, PROD_RG, SECRET, SUBSCRIPTION, checked_double, module_double, new_calls, options)


def task(args, name='failover'):
    return dict(name=name, **{'procgenie.dbops.pg_failover': args}, register='out', ignore_errors=True)


def run(play, double, tasks, **kwargs):
    return play(tasks, env=double.env, **kwargs)


def prod(double):
    return double.state.server(SUBSCRIPTION, PROD_RG, PROD)['properties']


def zones(double):
    props = prod(double)
    return props['availabilityZone'], props['highAvailability']['standbyAvailabilityZone']


def restarts(double, start):
    return new_calls(double, start, 'Servers_Restart')


def clean_failure(run_, name='failover'):
    return fixtures.clean_failure(run_, name)


def test_status_reports_zones_and_ha(checked_double, play):
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, mode='status'))])
    assert result.rc == 0, result
    out = result.result('failover')
    assert out['changed'] is False and out['provider'] == 'azure' and out['mode'] == 'status'
    assert out['queries'] == [] and out['commands'] == []
    assert out['server_state'] == 'Ready'
    assert out['high_availability'] == {'mode': 'ZoneRedundant', 'enabled': True, 'state': 'Healthy',
                                        'standby_availability_zone': '2'}
    assert out['primary_zone_before'] == out['primary_zone_after'] == '1'
    assert [c['method'] for c in new_calls(checked_double, start) if c.get('operation_id') != 'token'] == ['GET']


def test_planned_failover_swaps_zones_and_waits_for_healthy(checked_double, play):
    # after the restart ends, Azure rebuilds the standby: two reads show ReplicatingData before Healthy
    checked_double.state.settle(SUBSCRIPTION, PROD_RG, PROD, ['ReplicatingData', 'ReplicatingData'])
    checked_double.state.set_outcome('Servers_Restart', 'Succeeded', polls=2)
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, mode='planned'))], diff=True)
    assert result.rc == 0, result
    out = result.result('failover')
    assert out['changed'] is True
    assert out['failover_mode'] == 'PlannedFailover'
    assert out['primary_zone_before'] == '1' and out['primary_zone_after'] == '2'
    assert out['high_availability_after'] == {'mode': 'ZoneRedundant', 'enabled': True, 'state': 'Healthy',
                                              'standby_availability_zone': '1'}
    assert out['diff'] == {'before': {'primary_zone': '1', 'standby_zone': '2'},
                           'after': {'primary_zone': '2', 'standby_zone': '1'}}
    assert all(c['ok'] for c in out['checks'])
    assert out['duration_s'] > 0
    posts = restarts(checked_double, start)
    assert len(posts) == 1
    assert json.loads(posts[0]['body']) == {'restartWithFailover': True, 'failoverMode': 'PlannedFailover'}
    # the module read the server until the settling states were over
    gets = [c for c in new_calls(checked_double, start, 'Servers_Get') if c['time'] > posts[0]['time']]
    assert len(gets) >= 3
    assert zones(checked_double) == ('2', '1')
    assert prod(checked_double)['highAvailability']['state'] == 'Healthy'
    assert prod(checked_double)['state'] == 'Ready'


def test_forced_failover_twice_goes_back(checked_double, play):
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, mode='forced'), 'one'),
                                        task(options(checked_double, mode='forced'), 'two')])
    assert result.rc == 0, result
    assert (result.result('one')['primary_zone_before'], result.result('one')['primary_zone_after']) == ('1', '2')
    assert (result.result('two')['primary_zone_before'], result.result('two')['primary_zone_after']) == ('2', '1')
    bodies = [json.loads(c['body']) for c in restarts(checked_double, start)]
    assert bodies == [{'restartWithFailover': True, 'failoverMode': 'ForcedFailover'}] * 2
    assert zones(checked_double) == ('1', '2')


def test_check_mode_sends_no_post(checked_double, play):
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, mode='forced'))], check=True, diff=True)
    assert result.rc == 0, result
    out = result.result('failover')
    assert out['changed'] is True
    assert out['primary_zone_after'] == '1'
    assert out['diff']['after'] == {'primary_zone': '2', 'standby_zone': '1'}
    assert out['plan'] and 'ForcedFailover' in out['plan'][0]
    assert [c['method'] for c in new_calls(checked_double, start) if c.get('operation_id') != 'token'] == ['GET']
    assert zones(checked_double) == ('1', '2')


def test_ha_disabled_is_refused_even_when_forced(checked_double, play):
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, resource_group=DEV_RG, server_name=DEV,
                                                     mode='forced', force=True))])
    out = clean_failure(result)
    assert 'has no standby to fail over to (high availability mode is Disabled)' in out['msg']
    assert [c['name'] for c in out['checks'] if c['blocking']] == ['high_availability_enabled']
    assert restarts(checked_double, start) == []


def test_ha_not_healthy_is_refused_unless_forced(checked_double, play):
    checked_double.state.set_high_availability(SUBSCRIPTION, PROD_RG, PROD, state='ReplicatingData')
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, mode='planned'), 'refused'),
                                        task(options(checked_double, mode='planned', force=True), 'forced')])
    out = clean_failure(result, 'refused')
    assert 'Refusing to fail over server psql-procgenie-prod: high availability state is ReplicatingData' \
        in out['msg'] and 'force=true' in out['msg']
    assert out['primary_zone_before'] == '1'
    forced = result.result('forced')
    assert forced.get('failed') is not True, forced
    assert forced['changed'] is True and forced['primary_zone_after'] == '2'
    assert [c['name'] for c in forced['checks'] if not c['ok']] == ['high_availability_healthy']
    assert len(restarts(checked_double, start)) == 1  # only the forced one


def test_failed_restart_names_azure_error(checked_double, play):
    checked_double.state.set_outcome('Servers_Restart', 'Failed', code='StandbyNotReady',
                                     message='The standby server is not ready for failover.')
    result = run(play, checked_double, [task(options(checked_double, mode='planned'))])
    out = clean_failure(result)
    assert out['msg'] == ('Restart with failover (PlannedFailover) of server psql-procgenie-prod ended Failed: '
                          '(StandbyNotReady) The standby server is not ready for failover.')
    assert out['changed'] is True and out['primary_zone_before'] == '1'
    assert zones(checked_double) == ('1', '2')
    assert prod(checked_double)['highAvailability']['state'] == 'Healthy'


def test_throttled_restart_is_retried(checked_double, play):
    checked_double.state.inject(429, 'Servers_Restart', times=1, headers={'Retry-After': '1'},
                                message='Number of write requests for subscription exceeded the limit.')
    start = len(checked_double.state.requests)
    result = run(play, checked_double, [task(options(checked_double, mode='forced'))])
    assert result.rc == 0, result
    assert result.result('failover')['primary_zone_after'] == '2'
    assert [c['status'] for c in restarts(checked_double, start)] == [429, 202]


def test_missing_server_options_fail_cleanly(checked_double, play):
    result = run(play, checked_double, [task(dict(provider='azure', mode='status', server_name=PROD))])
    assert 'resource_group' in clean_failure(result)['msg']


def test_double_shows_failing_over_during_the_restart(checked_double, monkeypatch):
    """The double's HA transitions, seen through the SDK: FailingOver while the restart runs, then Healthy with the
    zones swapped."""
    from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
    for key, value in checked_double.env.items():
        monkeypatch.setenv(key, value)
    checked_double.state.set_outcome('Servers_Restart', 'Succeeded', polls=1)
    connection = _azure.Azure(options(checked_double), environ={})
    try:
        poller = connection.client.servers.begin_restart(
            PROD_RG, PROD, parameters={'restartWithFailover': True, 'failoverMode': 'PlannedFailover'},
            polling_interval=1)
        during = connection.client.servers.get(PROD_RG, PROD)
        assert (during.state, during.high_availability.state) == ('Restarting', 'FailingOver')
        _azure.wait(poller, 30, 'Restart')
        after = connection.client.servers.get(PROD_RG, PROD)
    finally:
        connection.close()
    assert (after.state, after.high_availability.state) == ('Ready', 'Healthy')
    assert (after.availability_zone, after.high_availability.standby_availability_zone) == ('2', '1')
