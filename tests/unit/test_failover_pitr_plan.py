"""The plan steps of pg_failover and pg_restore_pitr that need no server: option checks, the fence and rewind
decisions, refusals, diffs, the provider tables' specs, and the Azure failover's plan over a stand-in client."""

from __future__ import annotations

import datetime
import time
from types import SimpleNamespace

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _server as server
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Context
from ansible_collections.procgenie.dbops.plugins.module_utils.failover import azure as fo_azure
from ansible_collections.procgenie.dbops.plugins.module_utils.failover import postgres as fo
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import azure as pitr_azure
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import postgres as pitr
from ansible_collections.procgenie.dbops.plugins.modules import pg_failover, pg_restore_pitr

NODE = dict(host='db1', port=5432, data_directory='/d/p')
OTHER = dict(host='db2', port=5432, data_directory=None)


def fo_params(**changes):
    return dict(dict(mode='planned', primary=NODE, candidate=OTHER, timeout=60, max_lag_bytes=0,
                     rewind='auto'), **changes)


@pytest.mark.parametrize('changes, message', [
    (dict(candidate=None), 'mode is planned but all of the following are missing: candidate'),
    (dict(mode='forced', candidate=None), 'mode is forced but all of the following are missing: candidate'),
    (dict(candidate=dict(NODE, data_directory=None)), 'primary and candidate are the same server'),
    (dict(timeout=0), 'timeout must be positive and max_lag_bytes not negative'),
    (dict(max_lag_bytes=-1), 'timeout must be positive and max_lag_bytes not negative'),
])
def test_failover_options_refused_with_the_messages_of_main(changes, message):
    with pytest.raises(fo.FailoverError) as exc:
        fo.check_options(fo_params(**changes))
    assert str(exc.value) == message


def test_failover_options_accepted():
    fo.check_options(fo_params())
    fo.check_options(fo_params(mode='status', candidate=None))
    fo.check_options(fo_params(candidate=dict(NODE, port=5433)))


def test_fence_and_rewind_decisions():
    up = dict(reachable=True, in_recovery=False)
    assert fo.fence_of('planned', {}, None) == 'stop'
    assert fo.fence_of('forced', up, '/d/p') == 'stop'
    assert fo.fence_of('forced', up, None) == 'sql'
    assert fo.fence_of('forced', dict(reachable=False), '/d/p') == 'none'
    assert fo.fence_of('forced', dict(reachable=True, in_recovery=True), '/d/p') == 'none'
    assert fo.rewinds(dict(rewind='auto', mode='forced')) and not fo.rewinds(dict(rewind='auto', mode='planned'))
    assert fo.rewinds(dict(rewind='always', mode='planned')) and not fo.rewinds(dict(rewind='never', mode='forced'))


def test_refusal_names_every_failed_check():
    assert fo.refusal([]) is None
    failed = [fo.check('a', False, 'x'), fo.check('b', False, 'y')]
    assert fo.refusal(failed) == 'Safety checks failed, nothing was changed: a (x); b (y)'


def test_failover_error_carries_the_result():
    exc = fo.FailoverError('no', dict(checks=[1]))
    assert str(exc) == 'no' and exc.result == dict(checks=[1])
    assert fo.FailoverError('no').result == {}


def test_lsn_diff_uses_the_wal_parser():
    assert fo.lsn_diff('1/0', '0/FFFFFFFF') == 1
    assert fo.lsn_diff('0/10', '0/20') == 0 and fo.lsn_diff('0/10', None) is None


def test_wait_for_returns_the_first_true_value_or_the_last_after_the_timeout():
    values = iter([0, None, 'x'])
    assert server.wait_for(lambda: next(values), 5, interval=0.001) == 'x'
    started = time.monotonic()
    assert server.wait_for(lambda: False, 0.05, interval=0.01) is False
    assert time.monotonic() - started < 2


def test_server_tools_refuses_a_folder_without_pg_version(tmp_path):
    with pytest.raises(server.ServerError, match='is not a PostgreSQL data directory'):
        server.ServerTools({}, str(tmp_path))


@pytest.mark.parametrize('changes', [dict(timeout=0), dict(restore_port=0), dict(restore_port=65536)])
def test_pitr_options_refused_with_the_message_of_main(changes):
    with pytest.raises(pitr.PitrError, match='^timeout must be positive and restore_port a TCP port$'):
        pitr.check_options(dict(dict(timeout=300, restore_port=5499), **changes))
    pitr.check_options(dict(timeout=1, restore_port=65535))


def test_azure_restore_diff_has_nothing_before():
    diff = pitr_azure.restore_diff(dict(server='new', location='westeurope'))
    assert diff == dict(before={}, after=dict(server='new', location='westeurope'))


@pytest.mark.parametrize('module', [pg_failover, pg_restore_pitr])
def test_provider_tables_build_one_spec(module):
    spec = module.provider_spec(module.PROVIDERS)
    assert spec.options['provider']['choices'] == ['postgres', 'azure']
    assert all(rule[0] == 'provider' for rule in spec.required_if)
    assert module.PROVIDERS['postgres'].defaults['timeout'] < module.PROVIDERS['azure'].defaults['timeout']
    assert spec.options['timeout'] == dict(type='int')  # no default: the provider's default applies


# ---------------------------------------------------------------- the Azure failover's plan over a stand-in client
def azure_server(state='Ready', ha_mode='ZoneRedundant', ha_state='Healthy'):
    return SimpleNamespace(state=state, availability_zone='1', high_availability=SimpleNamespace(
        mode=ha_mode, state=ha_state, standby_availability_zone='2'))


class StandIn(object):
    """What Failover.plan() reads of the Azure connection; any change (begin_restart) would fail the test."""

    def __init__(self, found):
        self.resource_group, self.server_name, self.subscription_id = 'rg', 'psql', 'sub'
        self.client = SimpleNamespace(servers=SimpleNamespace(get=lambda group, name: found))


def azure_plan(found, **params):
    ctx = Context(check_mode=True)
    ctx.azure = StandIn(found)
    return fo_azure.Failover(dict(dict(mode='planned', force=False, timeout=60), **params), ctx).plan()


def test_azure_failover_plan_swaps_the_zones():
    plan = azure_plan(azure_server())
    assert plan['changed'] is True and plan['failover_mode'] == 'PlannedFailover'
    assert plan['diff'] == {'before': {'primary_zone': '1', 'standby_zone': '2'},
                            'after': {'primary_zone': '2', 'standby_zone': '1'}}


def test_azure_failover_status_plans_no_change():
    plan = azure_plan(azure_server(ha_mode='Disabled'), mode='status')
    assert plan['changed'] is False and 'diff' not in plan and plan['primary_zone_after'] == '1'


def test_azure_failover_plan_refuses_with_what_it_read():
    with pytest.raises(fo_azure.AzureFailoverError) as exc:
        azure_plan(azure_server(ha_state='Degraded'))
    assert 'force=true' in str(exc.value) and exc.value.result['checks'][1]['ok'] is False
    assert azure_plan(azure_server(ha_state='Degraded'), force=True)['changed'] is True


def test_azure_restore_plans_nothing_for_its_own_earlier_server():
    moment = datetime.datetime(2026, 2, 8, 12, tzinfo=datetime.timezone.utc)
    rid = '/subscriptions/sub/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/psql'
    source = SimpleNamespace(id=rid, name='psql', location='westeurope', state='Ready',
                             backup=SimpleNamespace(earliest_restore_date=moment, geo_redundant_backup='Disabled'))
    ours = SimpleNamespace(id=rid + '-new', name='psql-new', location='westeurope', state='Ready',
                           fully_qualified_domain_name='psql-new.example', administrator_login='admin', sku=None,
                           version='16', availability_zone='1',
                           tags=pitr_azure.restore_tags(rid, moment, 'point_in_time'))
    ctx = Context(check_mode=False)
    servers = SimpleNamespace(get=lambda group, name: source if name == 'psql' else ours)
    ctx.azure = SimpleNamespace(resource_group='rg', server_name='psql-new', subscription_id='sub',
                                client=SimpleNamespace(servers=servers))
    operation = pitr_azure.Restore(dict(restore_mode='point_in_time', source_server='psql', source_resource_group=None,
                                        target_time='2026-02-08T12:00:00Z', location=None, tags=None,
                                        availability_zone=None, timeout=60), ctx)
    plan = operation.plan()
    assert plan['changed'] is False and plan['plan'][0].endswith('nothing to do') and 'diff' not in plan
    assert operation.apply(plan)['fqdn'] == 'psql-new.example'
