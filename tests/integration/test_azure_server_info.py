"""pg_server_info provider azure through ansible-playbook against the HTTPS Azure double (spec-validated).

azure-identity, azure-core and the SDK run for real; the double checks every request against the published
2025-08-01 specification and every test fails if a violation was recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.azure_double.fixtures import (CLIENT_ID, DEV, DEV_RG, PROD, PROD_RG, SECRET, SUBSCRIPTION, TENANT,
                                         options, start_double, take_violations)


@pytest.fixture(scope='module')
def double(tmp_path_factory):
    instance = start_double(str(tmp_path_factory.mktemp('azure-double')))
    yield instance
    instance.stop()


@pytest.fixture
def azure(double):
    """The double, with the promise that the test made no request the specification does not allow."""
    take_violations(double)
    start = len(double.state.requests)
    yield double
    new = double.state.requests[start:]
    assert not [r for r in new if SECRET in json.dumps(r, default=str) and r.get('operation_id') != 'token'], \
        'the secret reached Azure Resource Manager'
    assert take_violations(double) == []


def task(args, name='info'):
    return dict(name=name, **{'procgenie.dbops.pg_server_info': args}, register='out', ignore_errors=True)


def run(play, azure, tasks, **kwargs):
    env = dict(azure.env, **kwargs.pop('env', {}))
    return play(tasks, env=env, **kwargs)


def test_production_server_facts(azure, play):
    azure.state.page_size = 1  # the backups list comes in pages: the SDK must follow nextLink
    try:
        result = run(play, azure, [task(options(azure))])
    finally:
        azure.state.page_size = 1000
    assert result.rc == 0, result
    facts = result.result('info')
    server = azure.state.server(SUBSCRIPTION, PROD_RG, PROD)
    props = server['properties']
    assert facts['changed'] is False
    assert facts['provider'] == 'azure'
    assert facts['queries'] == [] and facts['commands'] == []
    assert facts['id'] == server['id'] and facts['name'] == PROD
    assert facts['subscription_id'] == SUBSCRIPTION and facts['resource_group'] == PROD_RG
    assert facts['state'] == props['state'] == 'Ready'
    assert facts['version'] == {'server_version': '16.9', 'major': 16, 'minor': 9}
    assert facts['sku'] == {'name': 'Standard_D4ds_v5', 'tier': 'GeneralPurpose'}
    assert facts['fqdn'] == 'psql-procgenie-prod.postgres.database.azure.com'
    assert facts['high_availability'] == {'mode': 'ZoneRedundant', 'enabled': True, 'state': 'Healthy',
                                          'standby_availability_zone': '2'}
    assert facts['availability_zone'] == '1'
    assert facts['backup'] == {'retention_days': 35, 'geo_redundant_backup': 'Enabled',
                               'earliest_restore_date': '2026-10-20T02:11:09.512000+00:00'}
    expected = sorted(azure.state.backups[server['id'].lower()], key=lambda b: b['properties']['completedTime'],
                      reverse=True)
    assert [b['name'] for b in facts['backups']] == [b['name'] for b in expected]
    assert [b['backup_type'] for b in facts['backups']] == ['Customer On-Demand', 'Full']
    assert [b['source'] for b in facts['backups']] == ['Customer Initiated', 'Automatic']
    assert facts['backups'][1]['completed_time'] == '2025-06-01T14:30:22.123456+00:00'
    lists = azure.state.calls('BackupsAutomaticAndOnDemand_ListByServer')[-2:]
    assert [c['query'].get('$skipToken') for c in lists] == [None, '1']
    assert SECRET not in result.text


def test_development_server_in_check_mode(azure, play):
    result = run(play, azure, [task(options(azure, resource_group=DEV_RG, server_name=DEV))], check=True)
    assert result.rc == 0, result
    facts = result.result('info')
    assert facts['changed'] is False
    assert facts['high_availability'] == {'mode': 'Disabled', 'enabled': False, 'state': 'NotEnabled',
                                          'standby_availability_zone': None}
    assert facts['backup']['retention_days'] == 7 and facts['backup']['geo_redundant_backup'] == 'Disabled'
    assert facts['sku']['tier'] == 'Burstable'
    assert facts['backups'] == []


def test_environment_variables_authenticate(azure, play):
    env = {'AZURE_CLIENT_ID': CLIENT_ID, 'AZURE_SECRET': SECRET, 'AZURE_TENANT': TENANT,
           'AZURE_SUBSCRIPTION_ID': SUBSCRIPTION, 'AZURE_CLOUD_ENVIRONMENT': azure.url,
           'ANSIBLE_AZURE_AUTH_SOURCE': 'env'}
    result = run(play, azure, [task(dict(provider='azure', resource_group=PROD_RG, server_name=PROD))], env=env)
    assert result.rc == 0, result
    assert result.result('info')['state'] == 'Ready'
    assert SECRET not in result.text


def test_credential_file_profile(azure, play, tmp_path):
    folder = tmp_path / '.azure'
    folder.mkdir()
    (folder / 'credentials').write_text(
        '[default]\nsubscription_id=00000000-0000-0000-0000-000000000000\n\n'
        '[procgenie]\nsubscription_id=%s\nclient_id=%s\nsecret=%s\ntenant=%s\ncloud_environment=%s\n'
        % (SUBSCRIPTION, CLIENT_ID, SECRET, TENANT, azure.url))
    args = dict(provider='azure', auth_source='credential_file', profile='procgenie', resource_group=PROD_RG,
                server_name=PROD)
    result = run(play, azure, [task(args)], env={'HOME': str(tmp_path)})
    assert result.rc == 0, result
    assert result.result('info')['fqdn'] == 'psql-procgenie-prod.postgres.database.azure.com'
    assert SECRET not in result.text


def test_throttling_and_transient_errors_are_retried(azure, play):
    azure.state.inject(429, 'Servers_Get', times=2, headers={'Retry-After': '1'},
                       message='Number of read requests for subscription exceeded the limit.')
    azure.state.inject(503, 'BackupsAutomaticAndOnDemand_ListByServer', times=1)
    before = len(azure.state.calls('Servers_Get'))
    result = run(play, azure, [task(options(azure))])
    assert result.rc == 0, result
    assert result.result('info')['state'] == 'Ready'
    gets = azure.state.calls('Servers_Get')[before:]
    assert [c['status'] for c in gets] == [429, 429, 200]
    assert gets[1]['time'] - gets[0]['time'] >= 0.95 and gets[2]['time'] - gets[1]['time'] >= 0.95  # Retry-After
    lists = azure.state.calls('BackupsAutomaticAndOnDemand_ListByServer')[-2:]
    assert [c['status'] for c in lists] == [503, 200]


@pytest.fixture(scope='module')
def failures(double, collections_root, home):
    """One playbook of failing reads: forbidden, wrong subscription, resource group and server, wrong secret."""
    from tests.harness.playbook import run_playbook
    take_violations(double)
    denied = 'a1b2c3d4-0000-4000-8000-00000000d0d0'
    double.state.add_client(TENANT, denied, SECRET)
    double.state.deny(denied, 'Microsoft.DBforPostgreSQL/flexibleServers/read')
    tasks = [
        task(options(double, client_id=denied), 'forbidden'),
        task(options(double, subscription_id='0a0a0a0a-1b1b-4c2c-8d3d-4e4e4e4e4e4e'), 'wrong subscription'),
        task(options(double, resource_group='rg-nope'), 'wrong resource group'),
        task(options(double, server_name='psql-nope'), 'missing server'),
        task(options(double, secret='Wr0ng-S3cret-%d' % os.getpid()), 'wrong secret'),
        task(options(double, tenant='no-such-tenant'), 'wrong tenant'),
        task(dict(provider='azure', server_name=PROD), 'missing resource group'),
        task(options(double, cloud_environment='AzureMoonCloud'), 'unknown cloud'),
    ]
    plays = [dict(name='t', hosts='localhost', gather_facts=False, tasks=tasks)]
    outcome = run_playbook(plays, collections_root, home, env=double.env)
    outcome.violations = take_violations(double)
    return outcome


def _clean_failure(run, name):
    result = run.result(name)
    assert result['failed'] is True, result
    assert 'Traceback' not in json.dumps(result) and 'module_stderr' not in result, result
    assert SECRET not in run.text
    return result


def test_forbidden_surfaces_azure_message(failures):
    msg = _clean_failure(failures, 'forbidden')['msg']
    assert 'Azure returned 403: (AuthorizationFailed)' in msg
    assert "does not have authorization to perform action 'Microsoft.DBforPostgreSQL/flexibleServers/read'" in msg
    assert failures.violations == []


def test_wrong_subscription_resource_group_and_server(failures):
    assert "(SubscriptionNotFound) The subscription '0a0a0a0a-1b1b-4c2c-8d3d-4e4e4e4e4e4e' could not be found." \
        in _clean_failure(failures, 'wrong subscription')['msg']
    assert "(ResourceGroupNotFound) Resource group 'rg-nope' could not be found." \
        in _clean_failure(failures, 'wrong resource group')['msg']
    msg = _clean_failure(failures, 'missing server')['msg']
    assert 'Azure returned 404: (ResourceNotFound)' in msg and 'psql-nope' in msg


def test_wrong_secret_and_tenant_fail_cleanly(failures):
    msg = _clean_failure(failures, 'wrong secret')['msg']
    assert 'Azure authentication failed' in msg and 'AADSTS7000215' in msg
    assert 'Wr0ng-S3cret-%d' % os.getpid() not in failures.text
    assert 'AADSTS90002' in _clean_failure(failures, 'wrong tenant')['msg']


def test_bad_options_fail_cleanly(failures):
    assert 'resource_group' in _clean_failure(failures, 'missing resource group')['msg']
    msg = _clean_failure(failures, 'unknown cloud')['msg']
    assert "Unknown cloud_environment 'AzureMoonCloud'" in msg and 'AzureUSGovernment' in msg


def test_missing_sdk_gives_a_clean_message(azure, play, workdir):
    bare = os.path.join(workdir, 'bare-venv')
    if not os.path.exists(bare):
        subprocess.run([sys.executable, '-m', 'venv', '--without-pip', bare], check=True)
    result = run(play, azure, [task(options(azure))],
                 env={'ANSIBLE_PYTHON_INTERPRETER': os.path.join(bare, 'bin', 'python')})
    facts = result.result('info')
    assert facts['failed'] is True
    assert 'Failed to import the required Python library' in facts['msg']
    assert 'azure-mgmt-postgresqlflexibleservers' in facts['msg'] and 'azure-identity' in facts['msg']
    assert 'module_stderr' not in facts
    assert SECRET not in result.text
