"""pg_restore_pitr provider azure through ansible-playbook against the HTTPS Azure double (spec-validated).

The double refuses like Azure a restore outside the source's window, a geo-restore without geo-redundant backups and
a taken name; the module must refuse all of them itself before it sends the PUT, which these tests check in the
double's record of requests."""

from __future__ import annotations

import datetime
import json

from tests.azure_double import fixtures
from tests.azure_double.fixtures import (  # noqa: F401 pylint: disable=unused-import
    DEV, DEV_RG, PROD, PROD_RG, SECRET, SUBSCRIPTION, checked_double, module_double, new_calls, options, writes)
from tests.azure_double.state import server_id

NEW = 'psql-procgenie-prod-restored'
ADMIN = 'exampleadministratorlogin'  # administratorLogin of Microsoft's ServersGet example, copied by the restore
TAGS = ('procgenie-dbops-restore-source', 'procgenie-dbops-restore-time', 'procgenie-dbops-restore-mode')


def utc(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%f') + 'Z'


def window(double, days=7):
    """Set the production server's earliest restore date `days` ago; return it."""
    earliest = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=days)
    double.state.server(SUBSCRIPTION, PROD_RG, PROD)['properties']['backup']['earliestRestoreDate'] = utc(earliest)
    return earliest


def task(args, name='restore'):
    return dict(name=name, **{'procgenie.dbops.pg_restore_pitr': args}, register='out', ignore_errors=True)


def args(double, **extra):
    values = options(double, server_name=NEW, source_server=PROD, timeout=120)
    values.update(extra)
    return dict((k, v) for k, v in values.items() if v is not None)


def restored(double, group=PROD_RG, name=NEW):
    return double.state.server(SUBSCRIPTION, group, name)


def clean_failure(run_, name='restore'):
    return fixtures.clean_failure(run_, name)


def test_restore_inside_the_window_then_unchanged(checked_double, play):
    earliest = window(checked_double)
    moment = earliest + datetime.timedelta(days=2, hours=3, seconds=7)
    start = len(checked_double.state.requests)
    run = play([task(args(checked_double, restore_time=utc(moment)), 'first'),
                task(args(checked_double, restore_time=moment.isoformat()), 'again')],
               env=checked_double.env, diff=True)
    assert run.rc == 0, run
    first = run.result('first')
    assert first['changed'] is True and first['provider'] == 'azure'
    assert first['fqdn'] == NEW + '.postgres.database.azure.com'
    assert first['id'] == server_id(SUBSCRIPTION, PROD_RG, NEW)
    assert first['server']['state'] == 'Ready' and first['server']['name'] == NEW
    assert first['connection'] == {'login_host': first['fqdn'], 'login_port': 5432, 'login_user': ADMIN,
                                   'login_db': 'postgres', 'ssl_mode': 'require'}
    assert 'NEW server' in first['warning'] and 'connection strings' in first['warning']
    assert any('NEW server' in w for w in first.get('warnings', [])), first.get('warnings')
    assert first['window']['earliest'] == utc(earliest).replace('.000000', '')
    assert first['restore_time'] == utc(moment)
    assert first['queries'] == [] and first['commands'] == []
    assert first['diff']['after']['restore_time'] == utc(moment)
    puts = writes(checked_double, start)
    assert [c['operation_id'] for c in puts] == ['Servers_CreateOrUpdate']
    body = json.loads(puts[0]['body'])
    assert body['properties'] == {'createMode': 'PointInTimeRestore', 'pointInTimeUTC': utc(moment),
                                  'sourceServerResourceId': server_id(SUBSCRIPTION, PROD_RG, PROD)}
    assert body['location'] == 'westeurope'
    server = restored(checked_double)
    assert server['properties']['state'] == 'Ready'
    assert server['tags'][TAGS[0]].lower() == server_id(SUBSCRIPTION, PROD_RG, PROD).lower()
    assert server['tags'][TAGS[1]] == utc(moment) and server['tags'][TAGS[2]] == 'point_in_time'
    # the same restore again (the time written another way): unchanged, no second PUT
    again = run.result('again')
    assert again['changed'] is False and again['fqdn'] == first['fqdn']
    assert len(writes(checked_double, start)) == 1


def test_window_edges(checked_double, play):
    earliest = window(checked_double, days=3)
    start = len(checked_double.state.requests)
    run = play([task(args(checked_double, restore_time=utc(earliest)), 'earliest')],
               env=checked_double.env)
    assert run.rc == 0, run.result('earliest')
    assert run.result('earliest')['changed'] is True
    assert len(writes(checked_double, start)) == 1
    # just before the window and in the future: refused before any PUT, with the window in the message
    start = len(checked_double.state.requests)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)
    run = play([task(args(checked_double, server_name='psql-early', restore_time=utc(
        earliest - datetime.timedelta(seconds=1))), 'early'),
        task(args(checked_double, server_name='psql-future', restore_time=utc(future)), 'future')],
        env=checked_double.env)
    early = clean_failure(run, 'early')
    assert 'before the earliest restore date' in early['msg'] and utc(earliest).replace('.000000', '') in early['msg']
    assert early['window']['earliest'] == utc(earliest).replace('.000000', '')
    late = clean_failure(run, 'future')
    assert 'in the future' in late['msg'] and 'restorable window' in late['msg']
    assert writes(checked_double, start) == []
    assert restored(checked_double, name='psql-early') is None and restored(checked_double, name='psql-future') is None


def test_latest_restores_to_now(checked_double, play):
    window(checked_double)
    start = len(checked_double.state.requests)
    before = datetime.datetime.now(datetime.timezone.utc)
    run = play([task(args(checked_double, target='latest'), 'latest'),
                task(args(checked_double, target='latest'), 'again')], env=checked_double.env)
    assert run.rc == 0, run
    result = run.result('latest')
    moment = datetime.datetime.fromisoformat(result['restore_time'].replace('Z', '+00:00'))
    assert before - datetime.timedelta(seconds=1) <= moment <= datetime.datetime.now(datetime.timezone.utc)
    assert run.result('again')['changed'] is False
    assert len(writes(checked_double, start)) == 1


def test_check_mode_sends_no_put(checked_double, play):
    earliest = window(checked_double)
    moment = earliest + datetime.timedelta(days=1)
    start = len(checked_double.state.requests)
    run = play([task(args(checked_double, restore_time=utc(moment)))], env=checked_double.env, check=True,
               diff=True)
    assert run.rc == 0, run
    result = run.result('restore')
    assert result['changed'] is True
    assert result['request']['properties']['createMode'] == 'PointInTimeRestore'
    assert result['diff']['after']['server'] == NEW and result['diff']['before'] == {}
    assert any('create server %s' % NEW in step for step in result['plan'])
    assert writes(checked_double, start) == []
    assert restored(checked_double) is None


def test_a_foreign_server_of_the_same_name_is_an_error(checked_double, play):
    earliest = window(checked_double)
    moment = earliest + datetime.timedelta(days=1)
    start = len(checked_double.state.requests)
    # the development server exists and was never restored by us
    run = play([task(args(checked_double, resource_group=DEV_RG, server_name=DEV, source_resource_group=PROD_RG,
                          restore_time=utc(moment)), 'taken')], env=checked_double.env)
    result = clean_failure(run, 'taken')
    assert 'already exists' in result['msg'] and 'no restore tags' in result['msg']
    # a restore to another time under the same name is not this restore either
    run = play([task(args(checked_double, restore_time=utc(moment)), 'first'),
                task(args(checked_double, restore_time=utc(moment + datetime.timedelta(hours=1))), 'other')],
               env=checked_double.env)
    assert run.result('first')['changed'] is True
    other = clean_failure(run, 'other')
    assert 'already exists' in other['msg'] and utc(moment) in other['msg']
    assert [c['operation_id'] for c in writes(checked_double, start)] == ['Servers_CreateOrUpdate']


def test_geo_restore(checked_double, play):
    start = len(checked_double.state.requests)
    run = play([task(args(checked_double, restore_mode='geo', location='northeurope', resource_group=DEV_RG,
                          source_resource_group=PROD_RG, server_name='psql-procgenie-prod-ne'), 'geo'),
                task(args(checked_double, restore_mode='geo', location='northeurope', resource_group=DEV_RG,
                          source_resource_group=PROD_RG, server_name='psql-procgenie-prod-ne'), 'again')],
               env=checked_double.env)
    assert run.rc == 0, run
    result = run.result('geo')
    assert result['changed'] is True and result['restore_mode'] == 'geo'
    assert result['server']['location'] == 'northeurope'
    body = json.loads(writes(checked_double, start)[0]['body'])
    assert body['properties']['createMode'] == 'GeoRestore' and body['location'] == 'northeurope'
    assert run.result('again')['changed'] is False
    assert len(writes(checked_double, start)) == 1
    assert restored(checked_double, DEV_RG, 'psql-procgenie-prod-ne')['properties']['state'] == 'Ready'


def test_geo_restore_refusals_before_any_put(checked_double, play):
    start = len(checked_double.state.requests)
    run = play([
        # the development server has no geo-redundant backups
        task(args(checked_double, restore_mode='geo', location='northeurope', source_server=DEV,
                  source_resource_group=DEV_RG, server_name='psql-dev-ne'), 'no_geo'),
        # a geo-restore into the source's own region, and one with a chosen time
        task(args(checked_double, restore_mode='geo', location='westeurope', server_name='psql-same'), 'same'),
        task(args(checked_double, restore_mode='geo', location='northeurope', server_name='psql-time',
                  restore_time='2026-11-01T00:00:00Z'), 'timed'),
        # a point-in-time restore into another region
        task(args(checked_double, location='northeurope', server_name='psql-region', target='latest'), 'region'),
    ], env=checked_double.env)
    assert 'geo-redundant' in clean_failure(run, 'no_geo')['msg']
    assert 'another region' in clean_failure(run, 'same')['msg']
    assert 'latest geo-replicated backup' in clean_failure(run, 'timed')['msg']
    assert "source's region" in clean_failure(run, 'region')['msg']
    assert writes(checked_double, start) == []


def test_failed_restore_operation(checked_double, play):
    earliest = window(checked_double)
    checked_double.state.set_outcome('Servers_CreateOrUpdate', 'Failed', code='RestoreFailed',
                                     message='The restore of the backup failed.', polls=2)
    run = play([task(args(checked_double, restore_time=utc(earliest + datetime.timedelta(days=1))))],
               env=checked_double.env)
    result = clean_failure(run)
    assert 'ended Failed' in result['msg'] and '(RestoreFailed) The restore of the backup failed.' in result['msg']
    assert 'No server %s was left behind' % NEW in result['msg']
    assert result['changed'] is True
    assert restored(checked_double) is None


def test_throttled_put_is_retried(checked_double, play):
    earliest = window(checked_double)
    checked_double.state.inject(429, 'Servers_CreateOrUpdate', headers={'Retry-After': '1'})
    start = len(checked_double.state.requests)
    run = play([task(args(checked_double, restore_time=utc(earliest + datetime.timedelta(hours=5))))],
               env=checked_double.env)
    assert run.rc == 0, run.result('restore')
    assert run.result('restore')['changed'] is True
    assert [c['status'] for c in writes(checked_double, start)] == [429, 202]


def test_bad_input_fails_cleanly(checked_double, play):
    start = len(checked_double.state.requests)
    run = play([
        task(args(checked_double, target_lsn='0/3000148'), 'lsn'),
        task(args(checked_double, restore_time='yesterday noon'), 'garbage'),
        task(args(checked_double, server_name=PROD, target='latest'), 'self'),
        task(args(checked_double, source_server='psql-missing', target='latest'), 'missing'),
        task(args(checked_double, source_server=None, target='latest'), 'no_source'),
    ], env=checked_double.env)
    assert 'Azure restores to a time only' in clean_failure(run, 'lsn')['msg']
    assert 'not an ISO-8601 time' in clean_failure(run, 'garbage')['msg']
    assert 'NEW server' in clean_failure(run, 'self')['msg']
    assert 'psql-missing not found' in clean_failure(run, 'missing')['msg']
    assert 'source_server' in clean_failure(run, 'no_source')['msg']
    assert writes(checked_double, start) == []


def test_timeout_then_a_rerun_picks_up_the_restore(checked_double, play):
    earliest = window(checked_double)
    moment = utc(earliest + datetime.timedelta(days=4))
    checked_double.state.set_outcome('Servers_CreateOrUpdate', 'Succeeded', polls=1000)
    start = len(checked_double.state.requests)
    run = play([task(args(checked_double, restore_time=moment, timeout=3))], env=checked_double.env)
    result = clean_failure(run)
    assert 'did not finish within 3 s' in result['msg'] and 'goes on in Azure' in result['msg']
    assert 'exists in state Provisioning' in result['msg'] and 'waits for it' in result['msg']
    # Azure finishes the restore meanwhile; the same run again adopts the server without a second PUT
    restored(checked_double)['properties']['state'] = 'Ready'
    run = play([task(args(checked_double, restore_time=moment))], env=checked_double.env)
    assert run.rc == 0, run.result('restore')
    again = run.result('restore')
    assert again['changed'] is False and again['server']['state'] == 'Ready' and again['restore_time'] == moment
    assert len(writes(checked_double, start)) == 1
