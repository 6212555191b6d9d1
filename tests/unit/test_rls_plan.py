"""rls.policy and rls.info: the pure plan steps (what one table comes to, what state=absent drops, which tenant
indexes, the request checks, the info result)."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import info, policy
from ansible_collections.procgenie.dbops.plugins.module_utils.rls.model import RlsError

PARAMS = dict(tables=['vendors'], schemas=[], schema='public', tenant_column='tenant_id', tenant_policy=True,
              policy_name='tenant_isolation', bypass='none', bypass_policy_name=None, policies=[], exclusive=False,
              disable=False)
TABLE = dict(oid=1, schema='public', name='vendors', relkind='r', rowsecurity=False, forcerowsecurity=False,
             has_tenant_column=True, has_tenant_index=False, primary_key=['id'])
EXPR = "(tenant_id = (NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid)"
WANTED = dict(name='tenant_isolation', command='ALL', roles=['public'], permissive=True,
              using="tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid",
              with_check="tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid")
DEPARSED = dict(WANTED, using=EXPR, with_check=EXPR)


def test_argument_specs_carry_their_constraints_and_merge_with_the_connection_options():
    spec = postgres_spec().merge(policy.argument_spec())
    assert ('bypass', 'role', ['bypass_roles']) in spec.required_if and 'login_db' in spec.options
    spec = postgres_spec().merge(info.argument_spec())
    assert ('verify', True, ['verify_role']) in spec.required_if and 'verify_tables' in spec.options


def test_table_change_of_a_new_table():
    statements, done, before, after = policy.table_change(
        TABLE, [('create', DEPARSED)], dict(enable=True, force=True), [WANTED], [])
    assert done == ['enable row level security', 'force row level security', 'create policy tenant_isolation']
    assert len(statements) == 3
    assert "Identifier('public')" in repr(statements[0]) and "Identifier('vendors')" in repr(statements[0])
    assert 'ENABLE ROW LEVEL SECURITY' in repr(statements[0]) and 'CREATE POLICY' in repr(statements[2])
    # the statement carries the text given, the diff what the catalog will show (PostgreSQL's deparse)
    assert WANTED['using'] in repr(statements[2])
    assert before == dict(rls_enabled=False, rls_forced=False, policies={})
    assert after['rls_enabled'] is True and after['rls_forced'] is True
    assert after['policies']['tenant_isolation']['using'] == EXPR


def test_table_change_replace_drops_then_creates_and_drop_removes():
    have = [dict(DEPARSED, name='tenant_isolation', permissive=False), dict(DEPARSED, name='old')]
    table = dict(TABLE, rowsecurity=True, forcerowsecurity=True)
    statements, done, before, after = policy.table_change(
        table, [('replace', DEPARSED), ('drop', 'old')], {}, [WANTED], have)
    assert done == ['replace policy tenant_isolation', 'drop policy old']
    assert ['DROP POLICY' in repr(s) for s in statements] == [True, False, True]
    assert set(before['policies']) == {'tenant_isolation', 'old'} and set(after['policies']) == {'tenant_isolation'}
    assert before['policies']['tenant_isolation']['permissive'] is False
    assert after['policies']['tenant_isolation']['permissive'] is True


def test_table_change_alter_and_unforce():
    statements, done, _before, after = policy.table_change(
        dict(TABLE, rowsecurity=True, forcerowsecurity=True), [('alter', DEPARSED)], dict(force=False), [WANTED],
        [dict(DEPARSED, roles=['app'])])
    assert done == ['alter policy tenant_isolation', 'no force row level security']
    assert 'ALTER POLICY' in repr(statements[0]) and 'NO FORCE' in repr(statements[1])
    assert after['rls_forced'] is False and after['rls_enabled'] is True


def test_absent_drops_only_the_named_policies_unless_exclusive():
    have = [dict(name='tenant_isolation'), dict(name='admin_bypass'), dict(name='other')]
    actions, flags = policy.absent_actions(TABLE, have, dict(PARAMS, bypass='role'))
    assert actions == [('drop', 'tenant_isolation'), ('drop', 'admin_bypass')] and flags == {}
    actions, _flags = policy.absent_actions(TABLE, have, dict(PARAMS, exclusive=True))
    assert [name for _a, name in actions] == ['tenant_isolation', 'admin_bypass', 'other']
    table = dict(TABLE, rowsecurity=True, forcerowsecurity=True)
    assert policy.absent_actions(table, [], dict(PARAMS, disable=True)) == ([], dict(enable=False, force=False))
    assert policy.absent_actions(TABLE, [], dict(PARAMS, disable=True)) == ([], {})


def test_managed_names():
    assert policy.managed_names(dict(PARAMS, bypass='setting', policies=[dict(name='ro')])) == [
        'tenant_isolation', 'superadmin_bypass', 'ro']
    assert policy.managed_names(dict(PARAMS, tenant_policy=False, bypass='role', bypass_policy_name='b')) == ['b']


def test_tenant_indexes_skip_indexed_and_partitioned_tables():
    tables = [TABLE, dict(TABLE, oid=2, name='indexed', has_tenant_index=True),
              dict(TABLE, oid=3, name='parent', relkind='p'), dict(TABLE, oid=4, name='plain', has_tenant_column=False),
              dict(TABLE, oid=5, name='keyed', primary_key=['tenant_id', 'id'])]
    assert policy.tenant_indexes(tables, 'tenant_id') == [
        dict(schema='public', table='vendors', columns=['tenant_id', 'id'], name='vendors_tenant_id_rls_idx'),
        dict(schema='public', table='keyed', columns=['tenant_id', 'id'], name='keyed_tenant_id_rls_idx')]


@pytest.mark.parametrize('params, message', [
    (dict(tables=[], schemas=[]), 'give tables or schemas'),
    (dict(tenant_column=''), 'tenant_column must not be empty'),
    (dict(tables=['ven\x00dors']), 'NUL'),
    (dict(tables=['']), 'invalid table'),
])
def test_check_request_refuses_before_connecting(params, message):
    with pytest.raises(RlsError, match=message):
        policy.check_request(dict(PARAMS, **params))


def test_check_request_takes_names_literally():
    assert policy.check_request(dict(PARAMS, tables=['vendors', 's.Mixed Case', {'schema': 'x', 'name': 'a.b'}])) == [
        ('public', 'vendors'), ('s', 'Mixed Case'), ('x', 'a.b')]


def test_info_result_changed_only_when_a_sequence_moved():
    facts = dict(policies=[], tables=[])
    assert info.info_result(facts) == dict(policies=[], tables=[], changed=False)
    quiet = dict(isolated=True, sequences_advanced=[])
    assert info.info_result(facts, quiet)['changed'] is False
    moved = dict(isolated=True, sequences_advanced=['public.s'])
    result = info.info_result(facts, moved)
    assert result['changed'] is True and result['verification'] is moved and 'verification' not in facts
