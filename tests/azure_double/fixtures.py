"""Shared setup for the tests that use the Azure double: a started double with a tenant, service principals, the
runbook's production and development servers, and the module options to reach them."""

from __future__ import annotations

import json

import pytest

from .server import AzureDouble
from .spec import spec_dir
from .state import server_id

SUBSCRIPTION = '5b0c2f1e-7d3a-4c8e-9f61-2a4b6c8d0e1f'
TENANT = '8f7e6d5c-4b3a-4921-8a7b-6c5d4e3f2a1b'
CLIENT_ID = '3c2b1a09-8f7e-4d6c-a5b4-c3d2e1f0a9b8'
SECRET = 'Dbl-S3cret~q7Zx.Kp2'
PROD_RG, PROD = 'rg-procgenie-prod', 'psql-procgenie-prod'
DEV_RG, DEV = 'rg-procgenie-dev', 'psql-procgenie-dev'

# The runbook's Production column: 35 days, geo-redundant; zone-redundant HA (section 7 fails over to a standby).
PRODUCTION = {'location': 'westeurope', 'properties': {
    'backup': {'backupRetentionDays': 35, 'geoRedundantBackup': 'Enabled',
               'earliestRestoreDate': '2026-10-20T02:11:09.512Z'},
    'highAvailability': {'mode': 'ZoneRedundant', 'state': 'Healthy', 'standbyAvailabilityZone': '2'},
    'availabilityZone': '1', 'version': '16', 'minorVersion': '9'},
    'sku': {'name': 'Standard_D4ds_v5', 'tier': 'GeneralPurpose'}}
# Development: 7 days, no geo-redundancy, no HA, burstable.
DEVELOPMENT = {'location': 'westeurope', 'properties': {
    'backup': {'backupRetentionDays': 7, 'geoRedundantBackup': 'Disabled'},
    'highAvailability': {'mode': 'Disabled', 'state': 'NotEnabled'}},
    'sku': {'name': 'Standard_B2s', 'tier': 'Burstable'}}


def start_double(folder):
    """A started double seeded with the ProcGenie subscription (the specification must be there: spec_dir() raises
    when a file is missing, so a test fails instead of skipping)."""
    spec_dir()
    double = AzureDouble(folder).start()
    double.state.add_client(TENANT, CLIENT_ID, SECRET)
    double.state.add_server(SUBSCRIPTION, PROD_RG, PROD, changes=PRODUCTION)
    double.state.add_server(SUBSCRIPTION, DEV_RG, DEV, changes=DEVELOPMENT, backups=False)
    return double


def options(double, **extra):
    """pg_server_info/Azure module options for the production server through the double."""
    args = dict(provider='azure', cloud_environment=double.url, subscription_id=SUBSCRIPTION, client_id=CLIENT_ID,
                secret=SECRET, tenant=TENANT, resource_group=PROD_RG, server_name=PROD)
    args.update(extra)
    return dict((k, v) for k, v in args.items() if v is not None)


def take_violations(double):
    """The violations recorded so far, cleared."""
    with double.state.lock:
        found = list(double.state.violations)
        del double.state.violations[:]
    return found


def reset_servers(double):
    """The production and development servers as start_double() made them (zones, HA, backup), nothing settling
    and no planned outcome or fault left over."""
    with double.state.lock:
        keep = set(server_id(SUBSCRIPTION, group, name).lower() for group, name in ((PROD_RG, PROD), (DEV_RG, DEV)))
        for key in [k for k in double.state.servers if k not in keep]:  # servers made by a test (restores)
            del double.state.servers[key]
            double.state.backups.pop(key, None)
        double.state.configurations.clear()
        double.state.add_server(SUBSCRIPTION, PROD_RG, PROD, changes=PRODUCTION)
        double.state.add_server(SUBSCRIPTION, DEV_RG, DEV, changes=DEVELOPMENT, backups=False)
        double.state.settling.clear()
        double.state.outcomes.clear()
        del double.state.faults[:]


@pytest.fixture(scope='module')
def module_double(tmp_path_factory):
    """A double for the whole test module."""
    instance = start_double(str(tmp_path_factory.mktemp('azure-double')))
    yield instance
    instance.stop()


@pytest.fixture
def checked_double(module_double):
    """The module's double with fresh servers; the test fails if a request broke the specification or the secret
    reached Azure Resource Manager."""
    reset_servers(module_double)
    take_violations(module_double)
    start = len(module_double.state.requests)
    yield module_double
    new = module_double.state.requests[start:]
    assert not [r for r in new if SECRET in json.dumps(r, default=str) and r.get('operation_id') != 'token'], \
        'the secret reached Azure Resource Manager'
    assert take_violations(module_double) == []


def new_calls(double, start, operation_id=None):
    """ARM requests recorded since index `start`, optionally of one operation."""
    with double.state.lock:
        return [r for r in double.state.requests[start:]
                if operation_id is None or r.get('operation_id') == operation_id]


def writes(double, start):
    """The requests since index `start` that could change Azure (PUT, PATCH, POST, DELETE; not the token)."""
    return [c for c in new_calls(double, start) if c['method'] in ('PATCH', 'PUT', 'POST', 'DELETE')
            and c.get('operation_id') != 'token']


def clean_failure(run_, name):
    """The failed result of task `name`: failed, through fail_json (no traceback), the secret nowhere."""
    result = run_.result(name)
    assert result['failed'] is True, result
    assert 'Traceback' not in json.dumps(result) and 'module_stderr' not in result, result
    assert SECRET not in run_.text
    return result
