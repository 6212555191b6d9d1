"""The safety checks and the settling wait of pg_failover provider azure."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
from ansible_collections.procgenie.dbops.plugins.module_utils.failover.azure import (
    refusal, restart_parameters, safety_checks, settled, wait_settled)

HEALTHY = dict(state='Ready', primary_zone='1', ha_mode='ZoneRedundant', ha_state='Healthy', standby_zone='2')


def snap(**changes):
    return dict(HEALTHY, **changes)


def blocking(checks):
    return [c['name'] for c in checks if c['blocking']]


def test_healthy_server_passes():
    checks = safety_checks(HEALTHY, force=False)
    assert all(c['ok'] for c in checks) and blocking(checks) == []
    assert refusal('psql', checks) is None


def test_ha_disabled_blocks_even_when_forced():
    checks = safety_checks(snap(ha_mode='Disabled', ha_state='NotEnabled', standby_zone=None), force=True)
    assert blocking(checks) == ['high_availability_enabled']
    assert refusal('psql', checks).startswith('Server psql has no standby to fail over to')


@pytest.mark.parametrize('changes, names', [
    (dict(ha_state='ReplicatingData'), ['high_availability_healthy']),
    (dict(ha_state='FailingOver', state='Restarting'), ['high_availability_healthy', 'server_ready']),
    (dict(state='Updating'), ['server_ready']),
])
def test_unhealthy_blocks_unless_forced(changes, names):
    checks = safety_checks(snap(**changes), force=False)
    assert blocking(checks) == names
    assert 'force=true' in refusal('psql', checks)
    assert blocking(safety_checks(snap(**changes), force=True)) == []


def test_restart_parameters():
    assert restart_parameters('planned') == {'restartWithFailover': True, 'failoverMode': 'PlannedFailover'}
    assert restart_parameters('forced') == {'restartWithFailover': True, 'failoverMode': 'ForcedFailover'}


class FakeAzure(object):
    server_name = 'psql'


def test_wait_settled_backs_off_until_healthy():
    reads = [snap(ha_state='ReplicatingData')] * 4 + [HEALTHY]
    sleeps = []
    now = [0.0]

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds
    assert wait_settled(FakeAzure(), 100, read=lambda: reads.pop(0), sleep=sleep, clock=lambda: now[0]) == HEALTHY
    assert sleeps == [1, 2, 4, 8]
    assert settled(HEALTHY) and not settled(snap(state='Updating'))


def test_wait_settled_times_out():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
    with pytest.raises(_azure.AzureModuleError, match='not back to Ready with high availability Healthy.*'
                                                      'high availability ReplicatingData'):
        wait_settled(FakeAzure(), 30, read=lambda: snap(ha_state='ReplicatingData'), sleep=sleep,
                     clock=lambda: now[0])
    assert now[0] == 30
