"""The backup and failover roles' Azure paths, through their playbooks, against the spec-validated Azure double."""

from __future__ import annotations

import copy
import datetime
import os
import subprocess
import sys

import pytest

from tests.azure_double.fixtures import (  # noqa: F401 pylint: disable=unused-import
    CLIENT_ID, DEV, DEV_RG, PROD, PROD_RG, SECRET, SUBSCRIPTION, TENANT, checked_double, module_double, new_calls,
    writes)
from tests.harness.tree import REPO


def azure_host(double, group, server):
    return {'ansible_connection': 'local', 'dbops_provider': 'azure', 'dbops_azure': {
        'cloud_environment': double.url, 'subscription_id': SUBSCRIPTION, 'client_id': CLIENT_ID, 'secret': SECRET,
        'tenant': TENANT, 'resource_group': group, 'server_name': server}}


def playbook(name):
    return os.path.join(REPO, 'playbooks', name)


def test_backup_role_checks_and_fixes_the_azure_policy(checked_double, play):
    start = len(checked_double.state.requests)
    extravars = dict(azure_host(checked_double, DEV_RG, DEV), target='localhost', backup_environment='production',
                     backup_items=[], backup_azure_fail_on_unfixable=False)
    run = play(playbook=playbook('backup.yml'), extravars=extravars, env=checked_double.env)
    assert run.rc == 0, [(r["task"], r["result"].get("msg")) for r in run.results if r["status"] == "failed"]
    result = run.result('Check the Azure automated backup policy (runbook section 1)')
    assert result['changed'] is True
    fixed = {d['setting']: d for d in result['drift']}
    assert fixed['retention_days']['desired'] == 35 and fixed['retention_days']['fixed'] is True
    assert fixed['geo_redundant_backup']['fixable'] is False
    server = checked_double.state.server(SUBSCRIPTION, DEV_RG, DEV)['properties']
    assert server['backup']['backupRetentionDays'] == 35
    assert [c['operation_id'] for c in new_calls(checked_double, start) if c['method'] != 'GET'
            and c.get('operation_id') != 'token'] == ['Servers_Update']
    assert SECRET not in run.text


def test_backup_role_fails_on_unfixable_geo_redundancy(checked_double, play):
    extravars = dict(azure_host(checked_double, DEV_RG, DEV), target='localhost', backup_environment='production',
                     backup_items=[])
    run = play(playbook=playbook('backup.yml'), extravars=extravars, env=checked_double.env)
    assert run.rc != 0
    result = run.result('Check the Azure automated backup policy (runbook section 1)')
    assert result['failed'] is True and 'geo' in result['msg'].lower()


def test_failover_role_azure_path_swaps_zones(checked_double, play):
    before = checked_double.state.server(SUBSCRIPTION, PROD_RG, PROD)['properties']['availabilityZone']
    extravars = dict(azure_host(checked_double, PROD_RG, PROD), target='localhost', failover_mode='planned')
    run = play(playbook=playbook('failover.yml'), extravars=extravars, env=checked_double.env)
    assert run.rc == 0, [(r["task"], r["result"].get("msg")) for r in run.results if r["status"] == "failed"]
    result = run.result('Restart the Azure server with failover')
    assert result['changed'] is True
    assert result['primary_zone_before'] == before != result['primary_zone_after']
    after = checked_double.state.server(SUBSCRIPTION, PROD_RG, PROD)['properties']
    assert after['availabilityZone'] == result['primary_zone_after']
    assert after['highAvailability']['state'] == 'Healthy'
    assert SECRET not in run.text


def test_pitr_restore_role_azure_path_makes_a_new_server(checked_double, play):
    props = checked_double.state.server(SUBSCRIPTION, PROD_RG, PROD)['properties']
    earliest = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=7)
    props['backup']['earliestRestoreDate'] = earliest.isoformat().replace('+00:00', 'Z')
    moment = (earliest + datetime.timedelta(days=3)).isoformat().replace('+00:00', 'Z')
    extravars = dict(azure_host(checked_double, PROD_RG, PROD), target='localhost', pitr_restore_target_time=moment)
    start = len(checked_double.state.requests)
    run = play(playbook=playbook('pitr_restore.yml'), extravars=extravars, env=checked_double.env)
    assert run.rc == 0, [(r["task"], r["result"].get("msg")) for r in run.results if r["status"] == "failed"]
    result = run.result('Restore the Azure server into a new server')
    assert result['changed'] is True and result['server_name'] == PROD + '-restored'
    assert result['fqdn'] == PROD + '-restored.postgres.database.azure.com'
    new = checked_double.state.server(SUBSCRIPTION, PROD_RG, PROD + '-restored')
    assert new['properties']['state'] == 'Ready'
    shown = run.result('Show the restored server')['msg']
    assert 'NEW server' in shown[1] and moment[:19] in shown[0]
    assert [c['operation_id'] for c in new_calls(checked_double, start) if c['method'] == 'PUT'] == \
        ['Servers_CreateOrUpdate']
    assert SECRET not in run.text


def test_server_info_role_azure_path_reports_problems(checked_double, play):
    checked_double.state.set_high_availability(SUBSCRIPTION, PROD_RG, PROD, state='ReplicatingData')
    extravars = dict(azure_host(checked_double, PROD_RG, PROD), target='localhost',
                     server_info_fail_on_problems=True)
    run = play(playbook=playbook('server_info.yml'), extravars=extravars, env=checked_double.env)
    assert run.rc != 0
    summary = run.result('Show the summary')['msg']
    assert summary[0].startswith('localhost: Azure flexible server %s (%s.postgres.database.azure.com), Ready'
                                 % (PROD, PROD))
    assert summary[1] == 'High availability: ZoneRedundant, ReplicatingData, primary zone 1, standby zone 2'
    assert 'retention 35 days, geo-redundant Enabled' in summary[2]
    assert 'PROBLEM: high availability is ReplicatingData' in summary
    assert run.result('Check the findings')['msg'] == 'high availability is ReplicatingData'
    # the development server has no HA: a problem only when HA is required
    extravars = dict(azure_host(checked_double, DEV_RG, DEV), target='localhost', server_info_fail_on_problems=True)
    assert play(playbook=playbook('server_info.yml'), extravars=extravars, env=checked_double.env).rc == 0
    extravars['server_info_require_high_availability'] = True
    run = play(playbook=playbook('server_info.yml'), extravars=extravars, env=checked_double.env)
    assert run.rc != 0 and run.result('Check the findings')['msg'] == 'high availability is not enabled'


# Azure check jobs (AWX job templates of type Check, extra variables only): each asks for a change the role would make.
AZURE_CHECK_JOBS = {
    'backup.yml': (DEV_RG, DEV, dict(dbops_environment='production', backup_items=[],
                                     backup_azure_fail_on_unfixable=False)),
    'tune.yml': (DEV_RG, DEV, dict(dbops_environment='production', tuning_allow_restart=True,
                                   tuning_maintenance_window=True)),
    'failover.yml': (PROD_RG, PROD, dict(failover_mode='planned')),
    'pitr_restore.yml': (PROD_RG, PROD, dict(pitr_restore_target='latest')),
    'server_info.yml': (PROD_RG, PROD, {}),
}


@pytest.mark.parametrize('name', sorted(AZURE_CHECK_JOBS))
def test_azure_check_jobs_write_nothing_and_say_what_they_would_do(checked_double, play, name):
    group, server, extra = AZURE_CHECK_JOBS[name]
    before = copy.deepcopy(checked_double.state.server(SUBSCRIPTION, group, server))
    start = len(checked_double.state.requests)
    extravars = dict(azure_host(checked_double, group, server), target='localhost', **extra)
    run = play(playbook=playbook(name), extravars=extravars, env=checked_double.env, check=True)
    assert run.rc == 0, [(r["task"], r["result"].get("msg")) for r in run.results if r["status"] == "failed"]
    assert writes(checked_double, start) == []
    assert checked_double.state.server(SUBSCRIPTION, group, server) == before
    last = run.results[-1]
    assert last['task'].endswith(' : Summary') and last['status'] == 'ok', last
    assert '\n' not in last['result']['msg'].strip()
    if name != 'server_info.yml':
        assert 'would' in last['result']['msg'], last['result']['msg']
    assert SECRET not in run.text


def test_azure_demo_runs(tmp_path):
    """`make demo-azure`: the Azure paths of the playbooks against a double of its own, as a user runs it."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'AZURE_', 'PG')))
    env.update(HOME=str(tmp_path), ANSIBLE_HOME=str(tmp_path / 'ansible'))
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'demo'), '--azure'], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert 'retention_days: 14 -> 7 (fixed)' in out
    assert 'psql-procgenie-prod-restored (psql-procgenie-prod-restored.postgres.database.azure.com)' in out
    assert 'primary zone 1 -> 2, HA Healthy' in out
    assert 'max_connections: 1718 -> 800 (needs a restart)' in out
    assert 'Every request was checked against the Azure REST specification' in out
    assert SECRET not in out
