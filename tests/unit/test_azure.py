"""Pure logic of the Azure plumbing: where credentials come from, clouds, error messages, and the facts read
from SDK models (real azure-mgmt-postgresqlflexibleservers models built from Microsoft's examples)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
from ansible_collections.procgenie.dbops.plugins.module_utils.server_info import azure as facts

SUB = '11111111-2222-4333-8444-555555555555'
SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'azure_double', 'spec', '2025-08-01',
                    'examples')


def params(**kwargs):
    base = dict(auth_source='auto', subscription_id=None, client_id=None, secret=None, tenant=None,
                cloud_environment=None, profile=None)
    base.update(kwargs)
    return base


ENV = {'AZURE_SUBSCRIPTION_ID': SUB, 'AZURE_CLIENT_ID': 'env-app', 'AZURE_SECRET': 'env-secret',
       'AZURE_TENANT': 'env-tenant'}


def write_credentials(home, text):
    os.makedirs(os.path.join(str(home), '.azure'))
    with open(os.path.join(str(home), '.azure', 'credentials'), 'w') as handle:
        handle.write(text)


def test_parameters_come_first(tmp_path):
    auth = _azure.resolve_auth(params(subscription_id='sub-p', client_id='app', secret='s', tenant='t'), ENV,
                               str(tmp_path))
    assert (auth['kind'], auth['source'], auth['client_id'], auth['subscription_id']) == ('secret', 'parameters',
                                                                                          'app', 'sub-p')
    assert auth['cloud_environment'] == 'AzureCloud'


def test_environment_then(tmp_path):
    auth = _azure.resolve_auth(params(), dict(ENV, AZURE_CLOUD_ENVIRONMENT='AzureChinaCloud'), str(tmp_path))
    assert (auth['source'], auth['client_id'], auth['secret'], auth['tenant'], auth['subscription_id']) == (
        'env', 'env-app', 'env-secret', 'env-tenant', SUB)
    assert auth['cloud_environment'] == 'AzureChinaCloud'


def test_credential_file_profile(tmp_path):
    write_credentials(tmp_path, '[default]\nsubscription_id=%s\nclient_id=f-app\nsecret=f-s\ntenant=f-t\n'
                      '[other]\nsubscription_id=x\nclient_id=o-app\nsecret=o-s\ntenant=o-t\n'
                      'cloud_environment=AzureUSGovernment\n' % SUB)
    auth = _azure.resolve_auth(params(), {}, str(tmp_path))
    assert (auth['source'], auth['client_id'], auth['subscription_id']) == ('credential_file', 'f-app', SUB)
    other = _azure.resolve_auth(params(auth_source='credential_file', profile='other'), {}, str(tmp_path))
    assert (other['client_id'], other['cloud_environment']) == ('o-app', 'AzureUSGovernment')
    by_env = _azure.resolve_auth(params(), {'AZURE_PROFILE': 'other'}, str(tmp_path))
    assert by_env['client_id'] == 'o-app'
    with pytest.raises(_azure.AzureModuleError, match="No profile 'nope'"):
        _azure.resolve_auth(params(auth_source='credential_file', profile='nope'), {}, str(tmp_path))


def test_env_source_ignores_the_credential_file(tmp_path):
    write_credentials(tmp_path, '[default]\nsubscription_id=%s\nclient_id=f\nsecret=f\ntenant=f\n' % SUB)
    with pytest.raises(_azure.AzureModuleError, match='auth_source=env found no credentials'):
        _azure.resolve_auth(params(auth_source='env'), {}, str(tmp_path))


def test_cli_falls_back_to_its_default_subscription(tmp_path):
    os.makedirs(os.path.join(str(tmp_path), '.azure'))
    with open(os.path.join(str(tmp_path), '.azure', 'azureProfile.json'), 'w', encoding='utf-8-sig') as handle:
        json.dump({'subscriptions': [{'id': 'a', 'isDefault': False}, {'id': SUB, 'isDefault': True}]}, handle)
    auth = _azure.resolve_auth(params(), {}, str(tmp_path))
    assert (auth['kind'], auth['subscription_id']) == ('cli', SUB)
    auth = _azure.resolve_auth(params(auth_source='cli', subscription_id='explicit'), {}, str(tmp_path))
    assert auth['subscription_id'] == 'explicit'


def test_msi_needs_a_subscription(tmp_path):
    with pytest.raises(_azure.AzureModuleError, match='No subscription: set subscription_id'):
        _azure.resolve_auth(params(auth_source='msi'), {}, str(tmp_path))
    auth = _azure.resolve_auth(params(auth_source='msi', client_id='uami'), {'AZURE_SUBSCRIPTION_ID': SUB},
                               str(tmp_path))
    assert (auth['kind'], auth['client_id'], auth['subscription_id']) == ('msi', 'uami', SUB)


def test_cloud_names():
    assert _azure.resolve_cloud(None)['resource_manager'] == 'https://management.azure.com/'
    gov = _azure.resolve_cloud('AzureUSGovernment')
    assert (gov['authority'], gov['private']) == ('https://login.microsoftonline.us/', False)
    assert _azure.resolve_cloud('azurechinacloud')['name'] == 'AzureChinaCloud'
    with pytest.raises(_azure.AzureModuleError, match="Unknown cloud_environment 'AzureGermanCloud'"):
        _azure.resolve_cloud('AzureGermanCloud')


def test_cloud_url_reads_metadata():
    seen = []

    def fetch(url):
        seen.append(url)
        return {'authentication': {'loginEndpoint': 'https://adfs.local/adfs', 'audiences': ['https://arm/x']}}
    cloud = _azure.resolve_cloud('https://management.local.azurestack.external', fetch=fetch)
    assert seen == ['https://management.local.azurestack.external/metadata/endpoints?api-version=2015-01-01']
    assert cloud == dict(name='https://management.local.azurestack.external/',
                         resource_manager='https://management.local.azurestack.external/',
                         authority='https://adfs.local/adfs', audience='https://arm/x', private=True)
    with pytest.raises(_azure.AzureModuleError, match='must be an https URL'):
        _azure.resolve_cloud('http://management.local')
    with pytest.raises(_azure.AzureModuleError, match='does not name a loginEndpoint'):
        _azure.resolve_cloud('https://x.example', fetch=lambda url: {})


def test_error_messages_never_hold_the_secret():
    from azure.core.exceptions import ClientAuthenticationError
    exc = ClientAuthenticationError(message='Authentication failed: AADSTS7000215: secret hunter2 is wrong\nmore')
    assert _azure.error_message(exc, ['hunter2']) == \
        'Azure authentication failed: AADSTS7000215: secret ******** is wrong more'
    assert _azure.error_message(_azure.AzureModuleError('x hunter2'), ['hunter2']) == 'x ********'


def example(name):
    with open(os.path.join(SPEC, name + '.json')) as handle:
        return json.load(handle)['responses']['200']['body']


def test_server_facts_from_the_sdk_model():
    from azure.mgmt.postgresqlflexibleservers import models
    server = models.Server(example('ServersGet'))
    got = facts.server_facts(server)
    assert got['state'] == 'Ready' and repr(got['state']) == "'Ready'"
    assert got['version'] == {'server_version': '17.5', 'major': 17, 'minor': 5}
    assert got['sku'] == {'name': 'Standard_D4ds_v5', 'tier': 'GeneralPurpose'}
    assert got['fqdn'] == 'exampleserver.postgres.database.azure.com'
    assert got['high_availability'] == {'mode': 'Disabled', 'enabled': False, 'state': 'NotEnabled',
                                        'standby_availability_zone': None}
    assert got['backup'] == {'retention_days': 7, 'geo_redundant_backup': 'Enabled',
                             'earliest_restore_date': '2025-06-01T18:35:22.123456+00:00'}
    assert got['storage'] == {'size_gb': 128, 'tier': 'P10', 'auto_grow': 'Disabled'}
    assert got['replication_role'] == 'Primary'
    listing = example('BackupsAutomaticAndOnDemandListByServer')['value']
    items = [facts.backup_item(models.BackupAutomaticAndOnDemand(item)) for item in listing]
    assert items[1] == {'name': 'ondemandbackup-20250601T183022', 'id': listing[1]['id'],
                        'backup_type': 'Customer On-Demand', 'source': 'Customer Initiated',
                        'completed_time': '2025-06-01T18:30:22.123456+00:00'}


def test_facts_of_a_sparse_server():
    from azure.mgmt.postgresqlflexibleservers import models
    got = facts.server_facts(models.Server({'location': 'westeurope', 'properties': {'version': '16'}}))
    assert got['version'] == {'server_version': '16', 'major': 16, 'minor': None}
    assert got['sku'] is None and got['storage'] is None
    assert got['backup'] == {'retention_days': None, 'geo_redundant_backup': None, 'earliest_restore_date': None}
    assert got['high_availability']['enabled'] is False
