"""read_only.plan: state normalisation, catalog parsing, the writer rule and the server plan."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.read_only import plan as ro


@pytest.mark.parametrize('value,expected', [
    ('on', 'on'), ('off', 'off'), (True, 'on'), (False, 'off'), ('ON', 'on'), ('yes', 'on'), ('no', 'off'),
    ('True', 'on'), ('false', 'off')])
def test_normalize_state(value, expected):
    assert ro.normalize_state(value) == expected


def test_normalize_state_refuses_other_words():
    with pytest.raises(ValueError, match='on or off'):
        ro.normalize_state('maybe')


@pytest.mark.parametrize('value,expected', [
    ('on', True), ('off', False), ('true', True), ('tr', True), ('fa', False), ("'on'", True), (None, None),
    ('1', True), ('0', False), ('x', None)])
def test_parse_bool_setting(value, expected):
    assert ro.parse_bool_setting(value) is expected


def test_setting_from_setconfig():
    assert ro.setting_from_setconfig(['work_mem=4MB', 'default_transaction_read_only=on']) == 'on'
    assert ro.setting_from_setconfig(['work_mem=4MB']) is None
    assert ro.setting_from_setconfig(None) is None


@pytest.mark.parametrize('query,word', [
    ('select 1', 'SELECT'), ('  /* c */ -- x\n insert into t values (1)', 'INSERT'), ('', ''), (None, ''),
    ('WITH x AS (DELETE FROM t RETURNING *) SELECT 1', 'WITH')])
def test_first_keyword(query, word):
    assert ro.first_keyword(query) == word


def test_write_reason_rule():
    assert 'transaction ID 7' in ro.write_reason(dict(backend_xid='7', state='idle in transaction', query='x'))
    assert 'UPDATE' in ro.write_reason(dict(backend_xid=None, state='active', query='UPDATE t SET x = 1'))
    assert ro.write_reason(dict(backend_xid=None, state='active', query='SELECT * FROM t')) is None
    assert ro.write_reason(dict(backend_xid=None, state='idle', query='UPDATE t SET x = 1')) is None


SESSIONS = [
    dict(pid=1, user='app', application_name='api', backend_xid='10', state='idle in transaction', query='INSERT'),
    dict(pid=2, user='app', application_name='api', backend_xid=None, state='idle', query='SELECT 1'),
    dict(pid=3, user='batch', application_name='etl', backend_xid=None, state='active', query='COPY t FROM STDIN'),
    dict(pid=4, user='report', application_name='bi', backend_xid=None, state='active', query='SELECT 1'),
]


def pids(picked):
    return [s['pid'] for s in picked]


def test_select_writers_with_filters():
    assert pids(ro.select_sessions(SESSIONS)) == [1, 3]
    assert pids(ro.select_sessions(SESSIONS, application_names=['api'])) == [1]
    assert pids(ro.select_sessions(SESSIONS, users=['batch'])) == [3]
    assert pids(ro.select_sessions(SESSIONS, state='off')) == []


def test_select_all_only_when_the_setting_changes_now():
    assert pids(ro.select_sessions(SESSIONS, 'all', changed_now=True)) == [1, 2, 3, 4]
    assert pids(ro.select_sessions(SESSIONS, 'all', changed_now=False)) == [1, 3]
    assert pids(ro.select_sessions(SESSIONS, 'all', changed_now=True, state='off')) == [1, 2, 3, 4]


def row(setting, auto=True, applied=True):
    return dict(sourcefile='/d/postgresql.auto.conf' if auto else '/d/postgresql.conf', setting=setting,
                applied=applied)


def test_server_plan():
    assert ro.server_plan(True, []) == 'set_on'
    assert ro.server_plan(True, [row('on')]) is None
    assert ro.server_plan(False, []) is None
    assert ro.server_plan(False, [row('on')]) == 'reset'
    assert ro.server_plan(False, [row('off')]) is None
    assert ro.server_plan(False, [row('on', auto=False)]) == 'set_off'
    assert ro.server_plan(False, [row('on', auto=False, applied=False), row('off')]) is None
    assert ro.server_plan(True, [row('on', auto=False, applied=False), row('off')]) == 'set_on'


def test_select_all_picks_sessions_not_known_to_have_started_read_only():
    sessions = [dict(s, started_before=before) for s, before in zip(SESSIONS, (False, True, False, False))]
    sessions.append(dict(pid=5, user='batch', application_name='etl', backend_xid=None, state='idle', query='',
                         started_before=False))
    sessions.append(dict(pid=6, user='app', application_name='api', backend_xid=None, state='idle', query='',
                         started_before=None))
    # 1 writes anyway (turned the default off for itself), 2 is old, 3 runs COPY; 4 and 5 started read-only;
    # 6: unknown moment counts as old in the database scope only
    assert pids(ro.select_sessions(sessions, 'all', unknown_is_old=True)) == [1, 2, 3, 6]
    assert pids(ro.select_sessions(sessions, 'all', unknown_is_old=False)) == [1, 2, 3]
    assert pids(ro.select_sessions(sessions, 'all', override_roles={'batch'})) == [1, 2, 3, 5]
    assert pids(ro.select_sessions(sessions, 'writing')) == [1, 3]
    # off: the sessions that connected while the mode was on (or at an unknown moment), in the changing run only
    assert pids(ro.select_sessions(sessions, 'all', changed_now=True, state='off')) == [1, 3, 4, 5, 6]
    assert pids(ro.select_sessions(sessions, 'all', changed_now=False, state='off')) == []


def grant(relid, privilege, grantee_oid=20, grantor_oid=10, attnum=None, grantable=False, table='t', column=None,
          grantee='app', grantor='owner'):
    return dict(relid=relid, schema='public', table=table, attnum=attnum, column=column, grantor_oid=grantor_oid,
                grantor=grantor, grantee_oid=grantee_oid, grantee=grantee, privilege=privilege, grantable=grantable)


def test_merge_revoked_is_a_union_by_identity():
    first = [grant(1, 'INSERT'), grant(1, 'UPDATE', attnum=2, column='note')]
    renamed = dict(grant(1, 'INSERT'), table='t_renamed')  # same oid: the same grant
    merged = ro.merge_revoked(first, [renamed, grant(2, 'DELETE')])
    assert [(g['relid'], g['privilege'], g['table']) for g in merged] == [
        (1, 'INSERT', 't'), (1, 'UPDATE', 't'), (2, 'DELETE', 't')]
    assert ro.merge_revoked(merged, merged) == merged


def test_revoke_order_and_groups():
    by_app = grant(1, 'INSERT', grantee_oid=30, grantee='other', grantor_oid=20, grantor='app')
    own = grant(1, 'INSERT', grantable=True)
    ordered = ro.revoke_order([own, by_app], [20, 30])
    assert ordered == [by_app, own]  # grants made by a listed role go first
    groups = ro.group_grants([grant(1, 'INSERT'), grant(1, 'DELETE'), grant(1, 'UPDATE', attnum=2, column='c'),
                              grant(1, 'TRUNCATE', grantable=True)])
    assert groups == [(('owner', 'public', 't', None, 'app', False), ['INSERT', 'DELETE']),
                      (('owner', 'public', 't', 'c', 'app', False), ['UPDATE']),
                      (('owner', 'public', 't', None, 'app', True), ['TRUNCATE'])]


def test_strict_gaps_name_the_way_round():
    warnings = ro.strict_gaps([dict(role='app', via='PUBLIC', tables=3)], ['app'], [dict(role='app', tables=2)])
    assert 'through privileges granted to PUBLIC' in warnings[0]
    assert 'owns 2 table(s)' in warnings[1]
