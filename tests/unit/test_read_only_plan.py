"""read_only.plan: the decisions of pg_read_only's plan step (options, actions, record, grants, warnings, result)."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils.read_only import plan
from ansible_collections.procgenie.dbops.plugins.module_utils.read_only import postgres as backend


def params(**extra):
    base = dict(state='on', scope='database', database='app', sessions=None, session_selection='all',
                session_timeout=30, revoke_writes=None, session_application_names=None, session_users=None)
    base.update(extra)
    return base


def test_argument_spec_carries_its_constraint_and_merges_with_the_connection_options():
    spec = postgres_spec().merge(backend.argument_spec())
    assert ('scope', 'database', ['database']) in spec.required_if
    assert spec.options['state'] == dict(type='raw', required=True)
    assert spec.options['session_timeout']['default'] == 30
    assert 'login_host' in spec.options


def test_check_options_defaults_by_state():
    on = plan.check_options(params())
    assert (on['state'], on['want_on'], on['sessions'], on['selection'], on['timeout']) == (
        'on', True, 'terminate', 'all', 30)
    off = plan.check_options(params(state=False, sessions=None))
    assert (off['state'], off['want_on'], off['sessions']) == ('off', False, 'keep')
    assert plan.check_options(params(sessions='cancel', revoke_writes=['app']))['roles'] == ['app']


@pytest.mark.parametrize('extra,message', [
    (dict(state='maybe'), 'state must be on or off'),
    (dict(session_timeout=0), 'session_timeout must be a positive number of seconds'),
    (dict(session_timeout=-5), 'session_timeout must be a positive number of seconds'),
    (dict(scope='server', revoke_writes=['app']), 'use it with scope=database'),
])
def test_check_options_refuses(extra, message):
    with pytest.raises(plan.ReadOnlyError, match=message):
        plan.check_options(params(**extra))


def test_database_action():
    assert plan.database_action(False, True) == 'database_on'
    assert plan.database_action(None, True) == 'database_on'
    assert plan.database_action(True, False) == 'database_off'
    assert plan.database_action(True, True) is None
    assert plan.database_action(False, False) is None


def test_known_since_only_while_the_stamped_setting_holds():
    since = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    record = dict(since=since, setting_xmin='123')
    assert plan.known_since(record, '123', True, None) == since
    assert plan.known_since(record, '124', True, None) is None  # set again by hand: the moment is unknown
    assert plan.known_since(record, '123', True, 'database_off') is None
    assert plan.known_since(record, '123', False, 'database_on') is None
    assert plan.known_since(dict(record, since=None), '123', True, None) is None
    assert plan.known_since(None, '123', True, None) is None


def test_blocking_overrides_and_their_warning():
    found = [dict(database=None, role='batch', value='off'), dict(database='app', role=None, value='off'),
             dict(database=None, role='report', value='on')]
    assert plan.blocking_overrides(found, 'database') == found[:1]
    assert plan.blocking_overrides(found, 'server') == found[:2]
    message = plan.override_warning(found[0], 'database')
    assert 'role batch' in message and 'database-level' in message and 'stay read-write' in message


def test_selection_args():
    blocking = [dict(role='batch', database=None, value='off'), dict(role=None, database='app', value='off')]
    on = plan.selection_args(params(session_users=['app']), plan.check_options(params()), 'database', None, blocking)
    assert on == dict(selection='all', application_names=None, users=['app'], changed_now=False, state='on',
                      override_roles={'batch'}, unknown_is_old=True)
    server = plan.selection_args(params(), plan.check_options(params()), 'server', None, [])
    assert server['unknown_is_old'] is False
    assert plan.selection_args(params(), plan.check_options(params()), 'server', 'set_on', [])['unknown_is_old']
    off = plan.selection_args(params(state='off'), plan.check_options(params(state='off')), 'database',
                              'database_off', [])
    assert off['changed_now'] is True and 'unknown_is_old' not in off


def test_session_warnings():
    kept = [dict(pid=11), dict(pid=12)]
    assert plan.session_warnings(True, 'terminate', 'all', []) == []
    [keep] = plan.session_warnings(True, 'keep', 'all', kept)
    assert 'sessions=keep' in keep and 'can still commit writes' in keep and '11, 12' in keep
    assert plan.session_warnings(True, 'keep', 'all', []) == []
    [keep_off] = plan.session_warnings(False, 'keep', 'all', kept)
    assert 'stay read-only until they reconnect' in keep_off
    [cancel] = plan.session_warnings(True, 'cancel', 'all', [])
    assert 'sessions=cancel only cancels' in cancel
    assert len(plan.session_warnings(True, 'cancel', 'writing', [])) == 2
    assert 'session_selection=writing' in plan.session_warnings(True, 'terminate', 'writing', [])[0]
    assert plan.session_warnings(False, 'terminate', 'writing', []) == []


def grant(relid, privilege, grantor_oid=10, grantor='owner', column=None, grantable=False):
    return dict(relid=relid, schema='public', table='t%d' % relid, attnum=2 if column else None, column=column,
                grantor_oid=grantor_oid, grantor=grantor, grantee_oid=20, grantee='app', privilege=privilege,
                grantable=grantable)


def test_grant_statements_order_and_grouping():
    by_app = dict(grant(1, 'INSERT', grantor_oid=20, grantor='app'), grantee_oid=30, grantee='other')
    grants = [grant(1, 'INSERT'), grant(1, 'DELETE'), by_app, grant(2, 'UPDATE', column='note')]
    revokes = plan.grant_statements(grants, [20], revoke=True)
    assert revokes == [('app', 'public', 't1', None, 'other', False, ['INSERT']),
                       ('owner', 'public', 't1', None, 'app', False, ['DELETE', 'INSERT']),
                       ('owner', 'public', 't2', 'note', 'app', False, ['UPDATE'])]
    restores = plan.grant_statements(grants, [20], revoke=False)
    assert [s[:5] for s in restores] == [('owner', 'public', 't2', 'note', 'app'),
                                         ('owner', 'public', 't1', None, 'app'),
                                         ('app', 'public', 't1', None, 'other')]
    assert plan.grant_statements([], [20], revoke=True) == []


@pytest.mark.parametrize('bad', [grant(1, 'SELECT'), grant(1, 'DELETE', column='note'), grant(1, 'INSERT); DROP')])
def test_grant_statements_refuse_what_is_not_a_write_privilege(bad):
    """The record lives in the database: a privilege there that is not a write privilege is refused in the plan,
    before anything changes (and never becomes SQL)."""
    with pytest.raises(plan.ReadOnlyError, match='Unexpected privilege in the record'):
        plan.grant_statements([grant(2, 'INSERT'), bad], [20], revoke=False)


def test_record_steps():
    since = datetime.datetime(2026, 1, 1)
    record = dict(has_table=True, since=since, revoked=[])
    assert plan.record_steps('server', True, None, None, []) == (False, False)
    assert plan.record_steps('server', False, record, since, []) == (False, False)
    assert plan.record_steps('database', True, None, None, []) == (True, False)
    assert plan.record_steps('database', True, dict(record, has_table=False), None, []) == (True, False)
    assert plan.record_steps('database', True, record, None, []) == (True, False)  # moment unknown
    assert plan.record_steps('database', True, record, since, []) == (False, False)  # nothing new
    assert plan.record_steps('database', True, record, since, [grant(1, 'INSERT')]) == (True, False)
    assert plan.record_steps('database', False, record, since, []) == (False, True)
    assert plan.record_steps('database', False, None, None, []) == (False, False)
    assert plan.record_roles(dict(roles=['b', 'a']), ['c', 'a']) == ['a', 'b', 'c']
    assert plan.record_roles(None, []) == []


def test_is_changed_planned_and_applied():
    session = dict(pid=1, signalled=False)
    assert plan.is_changed('database_on', [], [], False, False, [], planned=True) is True
    assert plan.is_changed(None, [], [], True, False, [], planned=False) is True
    assert plan.is_changed(None, [], [], False, False, [session], planned=True) is True  # would be signalled
    assert plan.is_changed(None, [], [], False, False, [session], planned=False) is False  # was already gone
    assert plan.is_changed(None, [], [], False, False, [dict(session, signalled=True)], planned=False) is True
    assert plan.is_changed(None, [], [], False, False, [], planned=True) is False


def test_result_diff():
    assert plan.result_diff(None, 'database', 'app', 'on', 'on', None, [], []) is None
    diff = plan.result_diff('database_on', 'database', 'app', 'off', 'on', None, [], [])
    assert diff == dict(before=dict(default_transaction_read_only='off', scope='database', database='app'),
                        after=dict(default_transaction_read_only='on', scope='database', database='app'))
    record = dict(revoked=[grant(1, 'INSERT')])
    more = plan.result_diff(None, 'database', 'app', 'on', 'on', record, [grant(1, 'INSERT'), grant(2, 'DELETE')], [])
    assert (more['before']['revoked_privileges'], more['after']['revoked_privileges']) == (1, 2)
    back = plan.result_diff('database_off', 'database', 'app', 'on', 'off', record, [], [grant(1, 'INSERT')])
    assert (back['before']['revoked_privileges'], back['after']['revoked_privileges']) == (1, 0)
    server = plan.result_diff('set_on', 'server', None, 'off', 'on', None, [], [])
    assert 'revoked_privileges' not in server['after'] and server['after']['scope'] == 'server'


def test_missing_grant_warning_and_public_grant():
    gone = grant(7, 'UPDATE', column='note')
    message = plan.missing_grant_warning(gone)
    assert message.startswith('Not restored') and 'UPDATE column note on relation 7' in message
    assert plan.public_grant(gone) == dict(schema='public', table='t7', column='note', grantee='app',
                                           grantor='owner', privilege='UPDATE', grantable=False)
