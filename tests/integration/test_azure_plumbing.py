"""The Azure plumbing (module_utils/_azure.py) against the HTTPS double with the real SDK, azure-identity and
azure-core: long-running operations (Succeeded, Failed, Canceled, timeout), retries, cloud metadata, and the
double's own specification checks."""

from __future__ import annotations

import time

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
from tests.azure_double.fixtures import PROD, PROD_RG, SECRET, options, start_double, take_violations


@pytest.fixture(scope='module')
def double(tmp_path_factory):
    instance = start_double(str(tmp_path_factory.mktemp('azure-plumbing')))
    yield instance
    instance.stop()


@pytest.fixture
def azure(double, monkeypatch):
    """An _azure.Azure connected to the double; the test fails if a request broke the specification."""
    for key, value in double.env.items():
        monkeypatch.setenv(key, value)
    take_violations(double)
    connection = _azure.Azure(options(double), environ={})
    yield connection
    connection.close()
    assert take_violations(double) == []


def restart(azure, **parameters):
    return azure.client.servers.begin_restart(PROD_RG, PROD, parameters=parameters or None, polling_interval=1)


def test_cloud_metadata_of_a_url(azure, double):
    assert azure.cloud == dict(name=double.url + '/', resource_manager=double.url + '/', authority=double.url + '/',
                               audience=double.url + '/', private=True)


def test_restart_with_failover_waits_for_success(azure, double):
    server = double.state.server(azure.subscription_id, PROD_RG, PROD)
    zones = (server['properties']['availabilityZone'], server['properties']['highAvailability']['standbyAvailabilityZone'])
    double.state.set_outcome('Servers_Restart', 'Succeeded', polls=2)
    before = len(double.state.requests)
    started = time.monotonic()
    assert _azure.wait(restart(azure, restartWithFailover=True, failoverMode='ForcedFailover'), 60, 'Restart') is None
    assert time.monotonic() - started >= 1.9  # Retry-After: 1 between status reads
    props = server['properties']
    assert (props['availabilityZone'], props['highAvailability']['standbyAvailabilityZone']) == zones[::-1]
    posts = [r for r in double.state.requests[before:] if r.get('operation_id') == 'Servers_Restart']
    assert len(posts) == 1 and '"failoverMode": "ForcedFailover"' in posts[0]['body']
    _azure.wait(restart(azure, restartWithFailover=True, failoverMode='ForcedFailover'), 60, 'Restart back')
    assert (props['availabilityZone'], props['highAvailability']['standbyAvailabilityZone']) == zones


@pytest.mark.parametrize('outcome', ['Failed', 'Canceled'])
def test_failed_or_canceled_operation_names_azure_error(azure, double, outcome):
    double.state.set_outcome('Servers_Restart', outcome, code='ServerIsBusy',
                             message='Another operation is in progress on server psql-procgenie-prod.')
    with pytest.raises(_azure.AzureModuleError) as caught:
        _azure.wait(restart(azure), 60, 'Restart of psql-procgenie-prod')
    assert str(caught.value) == ('Restart of psql-procgenie-prod ended %s: (ServerIsBusy) Another operation is in '
                                 'progress on server psql-procgenie-prod.' % outcome)


def test_operation_that_outlives_the_timeout(azure, double):
    double.state.set_outcome('Servers_Restart', 'Succeeded', polls=100)
    started = time.monotonic()
    with pytest.raises(_azure.AzureModuleError) as caught:
        _azure.wait(restart(azure), 2, 'Restart of psql-procgenie-prod')
    assert time.monotonic() - started < 10
    assert 'Restart of psql-procgenie-prod did not finish within 2 s (status InProgress)' in str(caught.value)
    assert 'goes on in Azure' in str(caught.value)


def test_transient_errors_are_retried_until_success(azure, double):
    double.state.inject(500, 'Servers_Get', times=1)
    double.state.inject(503, 'Servers_Get', times=1, headers={'Retry-After': '1'})
    before = len(double.state.calls('Servers_Get'))
    assert azure.client.servers.get(PROD_RG, PROD).name == PROD
    assert [c['status'] for c in double.state.calls('Servers_Get')[before:]] == [500, 503, 200]


def test_client_errors_are_not_retried(azure, double):
    double.state.inject(400, 'Servers_Get', times=1, code='InvalidParameter', message='Bad parameter.')
    before = len(double.state.calls('Servers_Get'))
    with pytest.raises(Exception) as caught:
        azure.client.servers.get(PROD_RG, PROD)
    assert _azure.error_message(caught.value) == 'Azure returned 400: (InvalidParameter) Bad parameter.'
    assert len(double.state.calls('Servers_Get')[before:]) == 1


def test_the_double_records_what_the_spec_does_not_allow(double, monkeypatch):
    """The validator works: a restart with a failover mode the spec does not know is a violation."""
    for key, value in double.env.items():
        monkeypatch.setenv(key, value)
    take_violations(double)
    connection = _azure.Azure(options(double), environ={})
    try:
        _azure.wait(restart(connection, restartWithFailover=True, failoverMode='Sideways'), 60, 'Restart')
    finally:
        connection.close()
    found = take_violations(double)
    assert len(found) == 1 and "'Sideways' is not one of ['PlannedFailover', 'ForcedFailover'" in found[0]
    assert 'Servers_Restart: body' in found[0]


def test_unreachable_metadata_endpoint(double, monkeypatch):
    for key, value in double.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(_azure, 'RETRY', dict(retry_total=0))
    with pytest.raises(_azure.AzureModuleError) as caught:
        _azure.Azure(options(double, cloud_environment='https://127.0.0.1:1'), environ={})
    assert 'Could not read the cloud metadata at https://127.0.0.1:1/metadata/endpoints' in str(caught.value)
    assert SECRET not in str(caught.value)
