"""rls.model: the wanted policy model, input checks and the comparison with catalog rows."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.rls import model as _rls

PARAMS = dict(tenant_column='tenant_id', tenant_setting='app.current_tenant_id', tenant_type='uuid',
              policy_name='tenant_isolation', command='ALL', roles=None, permissive=True, tenant_policy=True,
              bypass='none', bypass_roles=None, bypass_setting='app.is_superadmin', bypass_policy_name=None,
              policies=[])


def test_default_expression_survives_unset_and_reset():
    expr = _rls.tenant_expression('tenant_id', 'app.current_tenant_id', 'uuid')
    assert expr == '"tenant_id" = NULLIF(current_setting(\'app.current_tenant_id\', true), \'\')::uuid'


def test_setting_bypass_treats_empty_as_off():
    assert "COALESCE(NULLIF(current_setting('app.is_superadmin', true), ''), 'off')::boolean" == \
        _rls.setting_bypass_expression('app.is_superadmin')


@pytest.mark.parametrize('name', ["app.x', true) OR true OR ('", 'nodot', 'app.', '.x', 'app.x;drop', ''])
def test_bad_setting_names(name):
    with pytest.raises(_rls.RlsError):
        _rls.check_setting(name)


@pytest.mark.parametrize('text', ['true); DROP TABLE t; --', 'a = 1 -- x', 'a /* x */', '(a', 'a)', "'x",
                                  '$$x$$ = a', 'a = 1; select 1', ''])
def test_bad_expressions(text):
    with pytest.raises(_rls.RlsError):
        _rls.check_expression(text)


@pytest.mark.parametrize('text', ["a = ';('", '"we;ird" = 1', "(x = (y))", 'price$ > 1', "a = 'it''s'"])
def test_good_expressions(text):
    assert _rls.check_expression(text) == text


def test_identifier_tokens_fold_case_and_skip_literals():
    assert _rls.identifier_tokens('"Tenant" = x AND y = \'zz\'') == {'Tenant', 'x', 'and', 'y'}


def test_wanted_policies_with_bypass_and_custom():
    params = dict(PARAMS, bypass='role', bypass_roles=['admin'],
                  policies=[dict(name='ro', command='select', using='true', with_check='true')])
    got = _rls.wanted_policies(params)
    assert [p['name'] for p in got] == ['tenant_isolation', 'admin_bypass', 'ro']
    assert got[1]['roles'] == ['admin'] and got[0]['roles'] == ['public']
    assert got[2]['command'] == 'SELECT' and got[2]['with_check'] is None  # SELECT takes no WITH CHECK
    with pytest.raises(_rls.RlsError):
        _rls.wanted_policies(dict(PARAMS, policies=[dict(name='tenant_isolation', using='true')]))
    with pytest.raises(_rls.RlsError):
        _rls.wanted_policies(dict(PARAMS, bypass='role'))


@pytest.mark.parametrize('name', ['p"x', "p'x", 'p;x', 'a' * 64, '', 'p\nx'])
def test_bad_policy_names(name):
    with pytest.raises(_rls.RlsError):
        _rls.make_policy(name, using='true')


def test_parse_table():
    assert _rls.parse_table('vendors') == ('public', 'vendors')
    assert _rls.parse_table('s.Mixed Case') == ('s', 'Mixed Case')
    assert _rls.parse_table({'schema': 's', 'name': 'a.b'}) == ('s', 'a.b')
    with pytest.raises(_rls.RlsError):
        _rls.parse_table('')


def wanted(**kw):
    base = dict(name='p', command='ALL', roles=['public'], permissive=True, using='(a = 1)', with_check='(a = 1)')
    base.update(kw)
    return base


def test_differences():
    assert _rls.differences(wanted(), None) == 'create'
    assert _rls.differences(wanted(), wanted()) is None
    assert _rls.differences(wanted(), wanted(roles=['app'])) == 'alter'
    assert _rls.differences(wanted(), wanted(using='true')) == 'alter'
    assert _rls.differences(wanted(), wanted(command='SELECT')) == 'replace'
    assert _rls.differences(wanted(), wanted(permissive=False)) == 'replace'
    assert _rls.differences(wanted(with_check=None), wanted()) == 'replace'  # ALTER cannot drop WITH CHECK


def test_plan_table_flags_and_exclusive():
    table = dict(rowsecurity=False, forcerowsecurity=False)
    actions, flags = _rls.plan_table(table, [wanted()], [wanted(), wanted(name='old')], exclusive=True)
    assert actions == [('drop', 'old')] and flags == {'enable': True, 'force': True}
    actions, flags = _rls.plan_table(dict(rowsecurity=True, forcerowsecurity=True), [wanted()], [wanted()],
                                     force=False)
    assert actions == [] and flags == {'force': False}


def test_self_grantable():
    pol = dict(permissive=True, using="(COALESCE(NULLIF(current_setting('app.is_superadmin'::text, true), ''::text)"
                                      ", 'off'::text))::boolean", with_check=None)
    assert _rls.self_grantable(pol, ['app.current_tenant_id']) == ['app.is_superadmin']
    assert _rls.self_grantable(dict(pol, permissive=False), []) == []
    tenant = dict(permissive=True, using="(tenant_id = current_setting('app.current_tenant_id'::text))", with_check=None)
    assert _rls.self_grantable(tenant, ['app.current_tenant_id']) == []


def test_signature_and_index_name():
    pol = wanted(using='"tenant_id" = x', with_check=None)
    assert _rls.signature({'tenant_id': 'uuid', 'other': 'text'}, pol) == (('tenant_id', 'uuid'),)
    assert _rls.index_name('contracts', 'tenant_id') == 'contracts_tenant_id_rls_idx'
    long = _rls.index_name('t' * 60, 'tenant_id')
    assert len(long) <= 63 and long == _rls.index_name('t' * 60, 'tenant_id')


@pytest.mark.parametrize('name', ['uuid OR true', 'uuid) OR (true', 'uuid; DROP TABLE t', "uuid'", 'text OR 1=1',
                                  '', 'uuid\x00', 'uuid -- x'])
def test_pure_type_names_refuse_expressions(name):
    with pytest.raises(_rls.RlsError):
        _rls.tenant_expression('tenant_id', 'app.current_tenant_id', name)


@pytest.mark.parametrize('name, expected', [('uuid', 'uuid'), ('pg_catalog.uuid', 'pg_catalog.uuid'),
                                            ('int[]', 'int[]'), ('Double   Precision', 'Double Precision'),
                                            ('character varying', 'character varying')])
def test_pure_type_names(name, expected):
    assert _rls.check_type(name) == expected


@pytest.mark.parametrize('name', ['', '   ', 'uuid\x00', 'uu\nid', 'x' * 600, None, 5])
def test_type_text_before_the_server(name):
    with pytest.raises(_rls.RlsError):
        _rls.check_type_text(name)


@pytest.mark.parametrize('roles', [['PUBLIC'], ['public'], ['Public'], ['"PUBLIC"'], [' public '], ['a', '"public"'],
                                   []])
def test_public_is_never_a_bypass_role(roles):
    with pytest.raises(_rls.RlsError):
        _rls.wanted_policies(dict(PARAMS, bypass='role', bypass_roles=roles))


def test_public_like_names_are_not_public():
    assert not _rls.is_public('publicity') and not _rls.is_public('pub lic') and _rls.is_public('"Public"')
    assert _rls.check_bypass_roles(['admin', 'public_admin']) == ['admin', 'public_admin']


def test_given_empty_names_are_refused_not_defaulted():
    for key in ('policy_name', 'tenant_setting', 'tenant_type'):
        with pytest.raises(_rls.RlsError):
            _rls.wanted_policies(dict(PARAMS, **{key: ''}))
    with pytest.raises(_rls.RlsError):
        _rls.wanted_policies(dict(PARAMS, bypass='setting', bypass_setting=''))


def test_no_nul_anywhere():
    _rls.check_no_nul(dict(a='x', b=['y', {'k': 'v'}], c=None, d=3), ['a', 'b', 'c', 'd', 'missing'])
    for value in ('a\x00', ['ok', 'a\x00'], [{'name': 'a\x00'}], {'k\x00': 1}):
        with pytest.raises(_rls.RlsError) as err:
            _rls.check_no_nul(dict(p=value), ['p'])
        assert 'NUL' in str(err.value)
