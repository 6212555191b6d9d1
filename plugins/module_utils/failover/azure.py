# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_failover, provider azure: the high-availability failover of an Azure Database for PostgreSQL flexible server.

Azure's failover is a restart with failover (Servers_Restart with restartWithFailover and failoverMode
PlannedFailover or ForcedFailover): the standby in the other zone becomes the primary. The module checks that HA is
enabled and Healthy first, waits for the long-running operation, then until the server is Ready and HA Healthy
again (Azure rebuilds the standby after a failover), and returns the primary's zone before and after.
"""

from __future__ import annotations

import time

from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._azure import AzureOperation, text
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.procgenie.dbops.plugins.module_utils.failover.options import shared_spec

FAILOVER_MODES = {'planned': 'PlannedFailover', 'forced': 'ForcedFailover'}
MAX_POLL_INTERVAL = 10


class AzureFailoverError(Exception):
    """The failover was refused or stopped; `result` holds what is known (checks, zones)."""

    def __init__(self, message, result=None):
        super(AzureFailoverError, self).__init__(message)
        self.result = result or {}


def argument_spec():
    """The options of provider azure (besides the Azure options)."""
    return shared_spec().merge(ArgumentSpec(required_if=[('provider', 'azure', ('resource_group', 'server_name'))]))


# ---------------------------------------------------------------- pure helpers

def snapshot(server):
    """What matters for a failover, from an SDK Server: state, HA mode/state and the zones."""
    ha = server.high_availability
    return dict(state=text(server.state), primary_zone=server.availability_zone,
                ha_mode=text(ha.mode) if ha is not None else None,
                ha_state=text(ha.state) if ha is not None else None,
                standby_zone=(ha.standby_availability_zone or None) if ha is not None else None)


def high_availability(snap):
    mode = snap['ha_mode']
    return dict(mode=mode, enabled=mode not in (None, 'Disabled'), state=snap['ha_state'],
                standby_availability_zone=snap['standby_zone'])


def safety_checks(snap, force):
    """The checks before a failover, each dict(name, ok, detail, blocking). HA must be enabled (always blocking);
    a server not Ready or HA not Healthy blocks unless `force`."""
    enabled = snap['ha_mode'] not in (None, 'Disabled')
    return [
        dict(name='high_availability_enabled', ok=enabled, blocking=not enabled,
             detail='high availability mode is %s' % (snap['ha_mode'] or 'not reported')),
        dict(name='high_availability_healthy', ok=snap['ha_state'] == 'Healthy',
             blocking=snap['ha_state'] != 'Healthy' and not force,
             detail='high availability state is %s' % (snap['ha_state'] or 'not reported')),
        dict(name='server_ready', ok=snap['state'] == 'Ready', blocking=snap['state'] != 'Ready' and not force,
             detail='server state is %s' % (snap['state'] or 'not reported')),
    ]


def refusal(name, checks):
    """The fail_json message for blocking checks, or None."""
    blocking = [c for c in checks if c['blocking']]
    if not blocking:
        return None
    if blocking[0]['name'] == 'high_availability_enabled':
        return ('Server %s has no standby to fail over to (%s): enable zone-redundant or same-zone high '
                'availability first.' % (name, blocking[0]['detail']))
    return ('Refusing to fail over server %s: %s. Wait until it is Ready with high availability Healthy, or set '
            'force=true.' % (name, '; '.join(c['detail'] for c in blocking)))


def settled(snap):
    return snap['state'] == 'Ready' and snap['ha_state'] == 'Healthy'


def restart_parameters(mode):
    return {'restartWithFailover': True, 'failoverMode': FAILOVER_MODES[mode]}


# ---------------------------------------------------------------- Azure

def _read(azure):
    return snapshot(azure.client.servers.get(azure.resource_group, azure.server_name))


def wait_settled(azure, deadline, read=None, sleep=time.sleep, clock=time.monotonic):
    """Read the server until it is Ready with HA Healthy (1, 2, 4... up to 10 s apart); raise on the deadline."""
    read = read or (lambda: _read(azure))
    interval = 1
    while True:
        snap = read()
        if settled(snap):
            return snap
        left = deadline - clock()
        if left <= 0:
            raise _azure.AzureModuleError(
                'Server %s is not back to Ready with high availability Healthy within the timeout (state %s, high '
                'availability %s).' % (azure.server_name, snap['state'], snap['ha_state']))
        sleep(min(interval, left))
        interval = min(interval * 2, MAX_POLL_INTERVAL)


def zones_diff(before, after):
    """The diff of a failover: the primary's and the standby's zone."""
    tracker = DifferenceTracker()
    tracker.add('primary_zone', before['primary_zone'], after['primary_zone'])
    tracker.add('standby_zone', before['standby_zone'], after['standby_zone'])
    return tracker.diff()


class Failover(AzureOperation):
    """Status, or a planned/forced failover. plan() reads the server and refuses (AzureFailoverError) what the
    safety checks block; apply() restarts with failover and waits until the server has settled. Raises
    AzureFailoverError, AzureModuleError or an azure-core AzureError."""

    def __init__(self, params, ctx):
        super(Failover, self).__init__(params, ctx)
        self.before = None

    def plan(self):
        params = self.params
        azure = self.azure
        mode = params['mode']
        name = azure.server_name
        self.before = before = _read(azure)
        result = dict(changed=False, provider='azure', mode=mode, server_name=name,
                      resource_group=azure.resource_group, subscription_id=azure.subscription_id,
                      server_state=before['state'], high_availability=high_availability(before),
                      primary_zone_before=before['primary_zone'], primary_zone_after=before['primary_zone'])
        if mode == 'status':
            return result
        checks = safety_checks(before, params['force'])
        failover_mode = FAILOVER_MODES[mode]
        plan = ['restart server %s with failover (%s): the standby in zone %s becomes the primary'
                % (name, failover_mode, before['standby_zone']),
                'wait until the server is Ready and high availability Healthy again']
        result.update(checks=checks, plan=plan, failover_mode=failover_mode)
        message = refusal(name, checks)
        if message:
            raise AzureFailoverError(message, result)
        swapped = dict(primary_zone=before['standby_zone'], standby_zone=before['primary_zone'])
        result.update(changed=True, diff=zones_diff(before, swapped))
        return result

    def apply(self, plan):
        if not plan['changed']:
            return plan
        result = dict(plan, changed=False)
        result.pop('diff', None)
        params = self.params
        azure = self.azure
        name = azure.server_name
        started = time.monotonic()
        deadline = started + params['timeout']
        what = 'Restart with failover (%s) of server %s' % (plan['failover_mode'], name)
        try:
            poller = azure.client.servers.begin_restart(azure.resource_group, name,
                                                        parameters=restart_parameters(params['mode']))
        except _azure.AzureError as exc:
            raise AzureFailoverError('%s was refused: %s' % (what, _azure.error_message(exc, azure.secrets)), result)
        result['changed'] = True  # Azure accepted the restart: the server may have failed over whatever comes next
        try:
            _azure.wait(poller, max(1, int(deadline - time.monotonic())), what, budget=params['timeout'])
            after = wait_settled(azure, deadline)
        except _azure.AzureModuleError as exc:
            raise AzureFailoverError(azure.scrub(str(exc)), result)
        except _azure.AzureError as exc:
            raise AzureFailoverError('%s failed: %s' % (what, _azure.error_message(exc, azure.secrets)), result)
        result.update(changed=True, duration_s=round(time.monotonic() - started, 3), server_state=after['state'],
                      high_availability_after=high_availability(after), primary_zone_after=after['primary_zone'],
                      diff=zones_diff(self.before, after))
        return result
