"""pg_azure_backup_policy through ansible-playbook against the HTTPS Azure double (spec-validated).

The double validates the Servers_Update PATCH against the spec: geoRedundantBackup is read-only there, so sending
it would be a recorded violation and fail the test."""

from __future__ import annotations

import json

from tests.azure_double import fixtures
from tests.azure_double.fixtures import (  # noqa: F401 pylint: disable=unused-import
    DEV, DEV_RG, PROD, PROD_RG, SECRET, SUBSCRIPTION, checked_double, module_double, new_calls, options, writes)


def task(args, name='policy'):
    return dict(name=name, **{'procgenie.dbops.pg_azure_backup_policy': args}, register='out', ignore_errors=True)


def args(double, **extra):
    values = options(double, **extra)
    values.pop('provider')
    return values


def backup(double, rg=PROD_RG, name=PROD):
    return double.state.server(SUBSCRIPTION, rg, name)['properties']['backup']


def clean_failure(run_, name='policy'):
    return fixtures.clean_failure(run_, name)


def test_matching_servers_are_unchanged(checked_double, play):
    start = len(checked_double.state.requests)
    result = play([task(args(checked_double, environment='production'), 'prod'),
                   task(args(checked_double, environment='development', resource_group=DEV_RG, server_name=DEV),
                        'dev')], env=checked_double.env)
    assert result.rc == 0, result
    prod = result.result('prod')
    assert prod['changed'] is False and prod['compliant'] is True and prod['drift'] == []
    assert prod['desired'] == {'retention_days': 35, 'geo_redundant_backup': 'Enabled'}
    assert prod['backup']['retention_days'] == 35 and prod['backup']['geo_redundant_backup'] == 'Enabled'
    assert prod['queries'] == [] and prod['commands'] == []
    dev = result.result('dev')
    assert dev['changed'] is False and dev['desired'] == {'retention_days': 7, 'geo_redundant_backup': 'Disabled'}
    assert writes(checked_double, start) == []


def test_retention_drift_is_fixed_then_unchanged(checked_double, play):
    checked_double.state.set_outcome('Servers_Update', 'Succeeded', polls=2)
    start = len(checked_double.state.requests)
    # the development server is asked to keep 14 days (explicit override of the environment's 7)
    values = args(checked_double, environment='development', retention_days=14, resource_group=DEV_RG,
                  server_name=DEV)
    result = play([task(values, 'fix'), task(values, 'again')], env=checked_double.env, diff=True)
    assert result.rc == 0, result
    fix = result.result('fix')
    assert fix['changed'] is True and fix['compliant'] is False
    assert fix['drift'] == [{'setting': 'retention_days', 'current': 7, 'desired': 14, 'fixable': True,
                             'fixed': True}]
    assert fix['patch'] == {'properties': {'backup': {'backupRetentionDays': 14}}}
    assert fix['backup']['retention_days'] == 14
    assert fix['diff'] == {'before': {'retention_days': 7, 'geo_redundant_backup': 'Disabled'},
                           'after': {'retention_days': 14, 'geo_redundant_backup': 'Disabled'}}
    again = result.result('again')
    assert again['changed'] is False and again['drift'] == [] and 'diff' not in again
    patches = writes(checked_double, start)
    assert [(c['operation_id'], c['status']) for c in patches] == [('Servers_Update', 202)]
    assert json.loads(patches[0]['body']) == {'properties': {'backup': {'backupRetentionDays': 14}}}
    assert backup(checked_double, DEV_RG, DEV)['backupRetentionDays'] == 14
    assert checked_double.state.server(SUBSCRIPTION, DEV_RG, DEV)['properties']['state'] == 'Ready'


def test_geo_drift_is_unfixable(checked_double, play):
    # production policy on the development server: retention is fixed, geo-redundancy cannot be
    start = len(checked_double.state.requests)
    values = args(checked_double, environment='production', resource_group=DEV_RG, server_name=DEV)
    result = play([task(values, 'fail'), task(dict(values, fail_on_unfixable=False), 'report')],
                  env=checked_double.env)
    failed = clean_failure(result, 'fail')
    assert failed['msg'].startswith('Backup policy drift on server psql-procgenie-dev that cannot be fixed in '
                                    'place: geo_redundant_backup is Disabled, the policy wants Enabled.')
    assert 'The fixable drift (retention_days) was fixed.' in failed['msg']
    assert failed['changed'] is True and failed['unfixable'] == ['geo_redundant_backup']
    report = result.result('report')
    assert report.get('failed') is not True, report
    assert report['changed'] is False  # the retention was fixed by the first task
    assert report['drift'] == [{'setting': 'geo_redundant_backup', 'current': 'Disabled', 'desired': 'Enabled',
                                'fixable': False, 'fixed': False}]
    assert report['unfixable'] == ['geo_redundant_backup']
    patches = writes(checked_double, start)
    assert len(patches) == 1
    assert json.loads(patches[0]['body']) == {'properties': {'backup': {'backupRetentionDays': 35}}}
    dev = backup(checked_double, DEV_RG, DEV)
    assert (dev['backupRetentionDays'], dev['geoRedundantBackup']) == (35, 'Disabled')


def test_check_mode_sends_no_patch(checked_double, play):
    checked_double.state.server(SUBSCRIPTION, PROD_RG, PROD)['properties']['backup']['backupRetentionDays'] = 14
    start = len(checked_double.state.requests)
    result = play([task(args(checked_double, environment='production'))], env=checked_double.env, check=True,
                  diff=True)
    assert result.rc == 0, result
    out = result.result('policy')
    assert out['changed'] is True
    assert out['drift'] == [{'setting': 'retention_days', 'current': 14, 'desired': 35, 'fixable': True,
                             'fixed': False}]
    assert out['diff']['after']['retention_days'] == 35 and 'duration_s' not in out
    assert writes(checked_double, start) == []
    assert backup(checked_double)['backupRetentionDays'] == 14


def test_failed_update_and_bad_input(checked_double, play):
    checked_double.state.set_outcome('Servers_Update', 'Failed', code='ServerIsBusy',
                                     message='Another operation is in progress.')
    start = len(checked_double.state.requests)
    result = play([task(args(checked_double, retention_days=30), 'failed'),
                   task(args(checked_double, retention_days=90), 'too long'),
                   task(args(checked_double), 'nothing')], env=checked_double.env)
    assert clean_failure(result, 'failed')['msg'] == (
        'Update of the backup retention of server psql-procgenie-prod ended Failed: (ServerIsBusy) Another '
        'operation is in progress.')
    assert 'retention_days must be between 7 and 35' in clean_failure(result, 'too long')['msg']
    assert 'one of the following is required' in clean_failure(result, 'nothing')['msg']
    assert len(writes(checked_double, start)) == 1
    assert backup(checked_double)['backupRetentionDays'] == 35


def test_throttled_update_is_retried(checked_double, play):
    checked_double.state.inject(429, 'Servers_Update', times=1, headers={'Retry-After': '1'},
                                message='Number of write requests for subscription exceeded the limit.')
    start = len(checked_double.state.requests)
    result = play([task(args(checked_double, environment='production', retention_days=28))],
                  env=checked_double.env)
    assert result.rc == 0, result
    assert result.result('policy')['backup']['retention_days'] == 28
    assert [c['status'] for c in writes(checked_double, start)] == [429, 202]
    assert backup(checked_double)['backupRetentionDays'] == 28
