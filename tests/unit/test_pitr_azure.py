"""Pure helpers of pg_restore_pitr's Azure provider: source references, targets, the window, tags, the request."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import azure as pitr

SUB = '5b0c2f1e-7d3a-4c8e-9f61-2a4b6c8d0e1f'
RID = '/subscriptions/%s/resourceGroups/rg-prod/providers/Microsoft.DBforPostgreSQL/flexibleServers/psql-prod' % SUB
UTC = datetime.timezone.utc


def at(*args):
    return datetime.datetime(*args, tzinfo=UTC)


def test_source_by_name_or_resource_id():
    assert pitr.source_reference('psql-prod', SUB, 'rg-prod') == (SUB, 'rg-prod', 'psql-prod', RID)
    other = RID.replace(SUB, 'other-sub').replace('rg-prod', 'rg-x')
    assert pitr.source_reference(other, SUB, 'rg-prod') == ('other-sub', 'rg-x', 'psql-prod', other)
    for bad in ('', 'rg/psql', '/subscriptions/x/resourceGroups/y/providers/Microsoft.Sql/servers/z'):
        with pytest.raises(pitr.AzurePitrError, match='source_server must be'):
            pitr.source_reference(bad, SUB, 'rg-prod')


@pytest.mark.parametrize('params, kind, text', [
    (dict(target_time='2026-02-08T12:00:00Z'), 'time', '2026-02-08T12:00:00Z'),
    (dict(target_time='2026-02-08 13:00:00+01:00'), 'time', '2026-02-08T12:00:00Z'),
    (dict(target_time='2026-02-08T12:00:00'), 'time', '2026-02-08T12:00:00Z'),  # no zone: UTC
    (dict(target='latest'), 'latest', 'latest'),
    (dict(restore_mode='geo'), 'latest', 'latest'),
    (dict(restore_mode='geo', target='latest'), 'latest', 'latest'),
])
def test_restore_targets(params, kind, text):
    target = pitr.restore_target(dict(dict(restore_mode='point_in_time'), **params))
    assert (target['kind'], target['text']) == (kind, text)


@pytest.mark.parametrize('params, message', [
    (dict(), 'exactly one of restore_time'),
    (dict(target_time='2026-02-08T12:00:00Z', target='latest'), 'exactly one of restore_time'),
    (dict(target='immediate'), 'target=immediate'),
    (dict(target_lsn='0/3000148'), 'target_lsn'),
    (dict(target_xid=1234), 'target_xid'),
    (dict(target_name='before_release'), 'target_name'),
    (dict(target_time='noon'), 'not an ISO-8601 time'),
    (dict(restore_mode='geo', target_time='2026-02-08T12:00:00Z'), 'latest geo-replicated backup'),
])
def test_restore_target_refusals(params, message):
    with pytest.raises(pitr.AzurePitrError, match=message):
        pitr.restore_target(dict(dict(restore_mode='point_in_time'), **params))


def test_window_is_inclusive_at_both_ends():
    earliest, now = at(2026, 11, 1, 2, 11, 9), at(2026, 11, 24, 16, 0, 0)
    assert pitr.check_window(earliest, earliest, now) is None
    assert pitr.check_window(now, earliest, now) is None
    early = pitr.check_window(earliest - datetime.timedelta(microseconds=1), earliest, now)
    assert 'before the earliest restore date' in early and '2026-11-01T02:11:09Z to 2026-11-24T16:00:00Z' in early
    assert 'in the future' in pitr.check_window(now + datetime.timedelta(seconds=1), earliest, now)
    assert 'does not report the earliest restore date' in pitr.check_window(now, None, now)


def test_tags_record_the_restore_and_match_it_only():
    moment = at(2026, 2, 8, 12, 0, 0)
    tags = pitr.restore_tags(RID, moment, 'point_in_time', {'owner': 'dba'})
    assert tags == {'owner': 'dba', pitr.TAG_SOURCE: RID, pitr.TAG_TIME: '2026-02-08T12:00:00.000000Z',
                    pitr.TAG_MODE: 'point_in_time'}
    assert pitr.matches(tags, RID.upper(), moment, 'point_in_time')  # resource IDs compare case-insensitively
    assert pitr.matches(tags, RID, None, 'point_in_time')  # latest: any recorded time
    assert not pitr.matches(tags, RID, moment + datetime.timedelta(seconds=1), 'point_in_time')
    assert not pitr.matches(tags, RID, moment, 'geo')
    assert not pitr.matches(tags, RID.replace('psql-prod', 'psql-dev'), moment, 'point_in_time')
    assert not pitr.matches({}, RID, None, 'point_in_time')
    assert not pitr.matches(dict(tags, **{pitr.TAG_TIME: 'garbage'}), RID, moment, 'point_in_time')


def test_tags_are_strings_and_regions_compare_like_azure():
    tags = pitr.restore_tags(RID, at(2026, 2, 8, 12, 0, 0), 'geo', {'cost_center': 4711, 'temporary': True, 'x': None})
    assert tags['cost_center'] == '4711' and tags['temporary'] == 'True' and tags['x'] == ''
    assert pitr.region('West Europe') == pitr.region('westeurope') != pitr.region('northeurope')


def test_request_body():
    moment = at(2026, 2, 8, 12, 0, 0, 123456)
    body = pitr.create_body('westeurope', RID, moment, 'geo', {'a': 'b'}, zone='2')
    assert body == {'location': 'westeurope', 'tags': {'a': 'b'}, 'properties': {
        'createMode': 'GeoRestore', 'sourceServerResourceId': RID, 'pointInTimeUTC': '2026-02-08T12:00:00.123456Z',
        'availabilityZone': '2'}}
