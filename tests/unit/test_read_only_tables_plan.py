"""read_only.plan for scope=tables: options, grant-option chains (revoke deepest first), the combinations refused,
the state before, the lock holders picked."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.read_only import plan


def params(**extra):
    base = dict(state='on', scope='tables', database='app', tables=['orders'], sessions=None,
                session_selection='all', session_timeout=30, revoke_writes=None)
    base.update(extra)
    return base


def grant(grantee, grantor, privilege='INSERT', grantable=False, attnum=None, relid=10):
    return dict(relid=relid, schema='public', table='t', attnum=attnum, column='c' if attnum else None,
                grantee_oid=grantee, grantee='r%d' % grantee if grantee else 'PUBLIC', grantor_oid=grantor,
                grantor='r%d' % grantor, privilege=privilege, grantable=grantable)


def test_check_options_for_tables():
    assert plan.check_options(params())['tables'] == ['orders']
    with pytest.raises(plan.ReadOnlyError, match='needs the tables'):
        plan.check_options(params(tables=None))
    assert plan.check_options(params(state='off', tables=None))['tables'] == []  # off: every recorded table
    with pytest.raises(plan.ReadOnlyError, match='scope=tables only'):
        plan.check_options(params(scope='database'))
    with pytest.raises(plan.ReadOnlyError, match='revoke_writes'):
        plan.check_options(params(revoke_writes=['app']))
    with pytest.raises(plan.ReadOnlyError, match='empty table name'):
        plan.check_options(params(tables=['orders', ' ']))


def test_grant_option_chains_are_revoked_deepest_first_and_restored_the_other_way():
    owner, app, helper, other = 1, 2, 3, 4
    grants = [grant(owner, owner), grant(app, owner, grantable=True), grant(helper, app, grantable=True),
              grant(other, helper), grant(0, owner, 'DELETE'), grant(other, owner, 'UPDATE', attnum=2)]
    deep = plan.grant_depths(grants, {10: owner})
    assert [g['depth'] for g in deep] == [0, 0, 1, 2, 0, 0]
    revokes = plan.grant_statements(deep, [], revoke=True)
    order = [(s[0], s[4]) for s in revokes]
    assert order.index(('r3', 'r4')) < order.index(('r2', 'r3')) < order.index(('r1', 'r2'))
    restores = plan.grant_statements(deep, [], revoke=False)
    order = [(s[0], s[4]) for s in restores]
    assert order.index(('r1', 'r2')) < order.index(('r2', 'r3')) < order.index(('r3', 'r4'))
    public = [s for s in revokes if s[6] == ['DELETE']]
    assert public[0][4] is None  # PUBLIC: no identifier
    assert plan.public_grant(grant(0, owner))['grantee'] == 'PUBLIC'


def test_a_chain_that_cannot_be_followed_counts_as_deep():
    deep = plan.grant_depths([grant(3, 2)], {10: 1})
    assert deep[0]['depth'] >= 1


def test_combinations_that_would_confuse_off_are_refused():
    assert plan.combination_problem('tables', True, [], None, []) is None
    assert plan.combination_problem('tables', True, [], dict(roles=[], revoked=[]), []) is None  # default only
    assert 'revoke_writes' in plan.combination_problem('tables', True, [], dict(roles=['app'], revoked=[{}]), [])
    assert 'scope=tables' in plan.combination_problem('database', True, ['app'], None, [dict(relid=1)])
    assert plan.combination_problem('database', True, [], None, [dict(relid=1)]) is None
    assert plan.combination_problem('tables', False, [], dict(roles=['app'], revoked=[{}]), []) is None


def test_table_state_and_lock_holders():
    assert plan.table_state([1, 2], {1: {}, 2: {}}, True) == 'on'
    assert plan.table_state([1, 2], {1: {}}, True) == 'off'
    assert plan.table_state([], {1: {}}, False) == 'on'
    assert plan.table_state([3], {1: {}}, False) == 'off'
    lock = dict(mode='RowExclusiveLock', relation='public.t')
    holders = [dict(pid=1, application_name='api', user='app', locks=[lock]),
               dict(pid=2, application_name='batch', user='app', locks=[dict(lock, mode='ShareLock')])]
    picked = plan.select_lock_holders(holders, application_names=['api'])
    assert [p['pid'] for p in picked] == [1] and 'RowExclusiveLock on public.t' in picked[0]['reason']
    assert plan.tables_diff(['a'], ['a']) is None
    assert plan.tables_diff([], ['a'])['after'] == dict(stopped_tables=['a'])
