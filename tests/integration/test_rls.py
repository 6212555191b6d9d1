"""pg_rls_policy and pg_rls_info against a real cluster, through ansible-playbook, checked with independent SQL."""

from __future__ import annotations

import pytest

from tests.conftest import node_params

DB = 'rls_main'
TABLES = ['requisitions', 'request_items', 'vendors', 'contracts', 'audit_events']
TENANT_A = 'tenant-1'
TENANT_B = 'tenant-2'


def task(module, name='t', **args):
    return {'name': name, 'procgenie.dbops.' + module: args, 'register': 'out'}


def policy(lab, name='t', **args):
    return task('pg_rls_policy', name, **dict(node_params(lab, db=DB), **args))


def info(lab, name='i', **args):
    return task('pg_rls_info', name, **dict(node_params(lab, db=DB), **args))


def sq(lab, text, db=DB):
    return lab.psql('primary', text, db=db).strip()


def uuid_of(lab, tenant):
    return sq(lab, "SELECT md5('%s')::uuid" % tenant)


def as_role(lab, role, body):
    """Run statements as `role` in one psql session; returns the output."""
    return sq(lab, 'SET ROLE %s;\n%s' % (role, body))


def policies(lab, table):
    return sq(lab, "SELECT string_agg(polname, ',' ORDER BY polname) FROM pg_policy WHERE polrelid = '%s'::regclass"
              % table)


@pytest.fixture(scope='module')
def db(lab):
    lab.seed(db=DB, tenants=3, scale=1)
    lab.psql('primary', "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rls_test_admin') THEN "
                        "CREATE ROLE rls_test_admin NOLOGIN; END IF; END $$;")
    yield DB
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'DROP ROLE IF EXISTS rls_test_admin')


@pytest.fixture(scope='module')
def applied(lab, db, collections_root, home):
    """Check mode first, then the real run with diff, then the same again (must change nothing)."""
    from tests.harness.playbook import run_playbook
    check = run_playbook([dict(name='c', hosts='localhost', gather_facts=False,
                               tasks=[policy(lab, 'check', tables=TABLES)])], collections_root, home, check=True)
    assert check.rc == 0, check.results
    untouched = sq(lab, "SELECT count(*) FROM pg_class WHERE relrowsecurity AND relname = ANY('{%s}')"
                   % ','.join(TABLES))
    first = run_playbook([dict(name='a', hosts='localhost', gather_facts=False,
                               tasks=[policy(lab, 'apply', tables=TABLES, create_indexes=True)])],
                         collections_root, home, diff=True)
    second = run_playbook([dict(name='b', hosts='localhost', gather_facts=False,
                                tasks=[policy(lab, 'again', tables=TABLES, create_indexes=True)])],
                          collections_root, home)
    return dict(check=check, untouched=untouched, first=first, second=second)


def test_check_mode_changes_nothing(applied):
    result = applied['check'].result('check')
    assert result['changed'] is True
    assert {t['name'] for t in result['tables']} >= set(TABLES)
    assert applied['untouched'] == '0'
    assert result['commands'] == []


def test_apply_enables_forces_and_creates_policies(applied, lab):
    assert applied['first'].rc == 0, applied['first']
    result = applied['first'].result('apply')
    assert result['changed'] is True
    for table in TABLES:
        assert sq(lab, "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = '%s'::regclass"
                  % table) == 't'
        assert policies(lab, table) == 'tenant_isolation'
    # partitions of audit_events carry the policy too (a query on a partition checks only its own policies)
    assert policies(lab, 'audit_events_2025_01') == 'tenant_isolation'
    assert sq(lab, "SELECT relforcerowsecurity FROM pg_class WHERE relname = 'audit_events_default'") == 't'
    qual = sq(lab, "SELECT qual FROM pg_policies WHERE tablename = 'vendors'")
    assert "NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text)" in qual
    # diff: before/after per table
    diff = result['diff']
    assert diff['before']['public.vendors']['rls_enabled'] is False
    assert diff['after']['public.vendors']['rls_enabled'] is True
    assert 'tenant_isolation' in diff['after']['public.vendors']['policies']
    # the missing tenant index (contracts has none in the sample), built concurrently, leading with tenant_id
    assert [ix['table'] for ix in result['indexes']] == ['contracts']
    assert sq(lab, "SELECT indexdef FROM pg_indexes WHERE indexname = 'contracts_tenant_id_rls_idx'").endswith(
        '(tenant_id, id)')


def test_second_run_changes_nothing_with_constant_queries(applied):
    result = applied['second'].result('again')
    assert result['changed'] is False, result['tables']
    assert result['tables'] == [] and result['indexes'] == []
    assert not any(q.startswith(('ALTER', 'DROP', 'CREATE INDEX')) or (q.startswith('CREATE') and 'pg_temp' not in q)
                   for q in result['queries'])
    # resolve, roles-free, policies, columns, savepoint, temp table, probe policy, read back, rollback
    assert len(result['queries']) <= 10, result['queries']


def test_adversarial_sessions_see_and_write_nothing_of_other_tenants(applied, lab):
    a, b = uuid_of(lab, TENANT_A), uuid_of(lab, TENANT_B)
    for role in ('procgenie_app', 'procgenie_owner'):  # the owner is held by FORCE
        # tenant A sees only its rows
        out = as_role(lab, role, "SET app.current_tenant_id = '%s';\n"
                                 "SELECT count(*) FILTER (WHERE tenant_id <> '%s') FROM requisitions;" % (a, a))
        assert out == '0'
        # a self-granted "superadmin" setting opens nothing (no setting bypass by default)
        out = as_role(lab, role, "SET app.current_tenant_id = '%s'; SET app.is_superadmin = true;\n"
                                 "SELECT count(*) FILTER (WHERE tenant_id <> '%s') FROM vendors;" % (a, a))
        assert out == '0'
        # no tenant set: nothing visible, no error
        assert as_role(lab, role, 'SELECT count(*) FROM contracts;') == '0'
        # pooled connection after RESET: the setting reads as '' -> nothing visible, no error
        out = as_role(lab, role, "SET app.current_tenant_id = '%s'; RESET app.current_tenant_id;\n"
                                 "SELECT count(*) FROM request_items;" % a)
        assert out == '0'
        # tenant A writing a row for tenant B is refused by WITH CHECK
        with pytest.raises(Exception) as err:
            as_role(lab, role, "SET app.current_tenant_id = '%s';\n"
                               "INSERT INTO vendors (tenant_id, name, country, risk_rating) "
                               "VALUES ('%s', 'x', 'US', 1);" % (a, b))
        assert 'row-level security' in str(err.value)
    assert sq(lab, "SELECT count(*) FROM vendors WHERE name = 'x'") == '0'


def test_verify_proves_isolation_as_app_and_owner(applied, lab, play):
    run = play([info(lab, 'app', app_roles=['procgenie_app'], verify=True, verify_role='procgenie_app'),
                info(lab, 'owner', audit=False, verify=True, verify_role='procgenie_owner',
                     verify_tenants=[uuid_of(lab, TENANT_A).upper(), uuid_of(lab, TENANT_B)])])
    assert run.rc == 0, run
    app = run.result('app')
    ver = app['verification']
    assert ver['isolated'] is True, ver['leaks']
    assert len(ver['tenants']) == 3
    vendors = ver['tables']['public.vendors']
    for tenant in ver['tenants']:
        res = vendors['tenants'][tenant]
        assert res['foreign'] == 0 and res['visible'] == res['expected'] == 20 and res['complete']
        assert res['insert']['outcome'] == 'rejected' and res['update']['outcome'] == 'rejected'
        assert res['bypass'][0]['foreign'] == 0
    assert vendors['no_tenant_unset']['visible'] == 0 and vendors['no_tenant_reset']['error'] is None
    assert 'public.audit_events_2025_01' in ver['tables']
    assert app['audit']['no_rls'] == [] and app['audit']['bypass_roles'] == []
    assert app['audit']['no_tenant_index'] == [] or 'public.contracts' not in app['audit']['no_tenant_index']
    assert {p['table'] for p in app['policies']} >= set(TABLES)
    assert any(t['name'] == 'vendors' and t['relforcerowsecurity'] for t in app['tables'])
    assert run.result('owner')['verification']['isolated'] is True
    # the proof rolled everything back
    assert sq(lab, 'SELECT count(*) FROM vendors') == '60'


def test_verify_and_audit_catch_a_superuser_and_an_unforced_owner(applied, lab, play):
    sq(lab, 'ALTER TABLE vendors NO FORCE ROW LEVEL SECURITY')
    try:
        run = play([info(lab, 'owner', app_roles=['procgenie_owner', 'postgres'], verify=True,
                         verify_role='procgenie_owner', verify_tables=['vendors']),
                    info(lab, 'su', audit=False, verify=True, verify_role='postgres')])
    finally:
        sq(lab, 'ALTER TABLE vendors FORCE ROW LEVEL SECURITY')
    assert run.rc == 0, run
    owner = run.result('owner')
    assert owner['verification']['isolated'] is False
    assert owner['audit']['not_forced'] == ['public.vendors']
    reasons = {r['role']: r['reasons'] for r in owner['audit']['bypass_roles']}
    assert 'superuser' in reasons['postgres'] and any('owner' in x for x in reasons['procgenie_owner'])
    assert run.result('su')['verification']['isolated'] is False


def test_setting_bypass_warns_and_is_caught(applied, lab, play):
    run = play([policy(lab, 'bypass', tables=['vendors'], bypass='setting'),
                info(lab, 'audit', verify=True, verify_role='procgenie_app', verify_tables=['vendors']),
                policy(lab, 'remove', tables=['vendors'], tenant_policy=False, bypass='setting', state='absent')])
    assert run.rc == 0, run
    result = run.result('bypass')
    assert result['changed'] is True and 'SET app.is_superadmin' in result['bypass_warning']
    assert 'SET app.is_superadmin' in run.text  # the warning
    audit = run.result('audit')
    assert [f['policy'] for f in audit['audit']['self_grantable_bypass']] == ['superadmin_bypass']
    ver = audit['verification']
    assert ver['isolated'] is False and any('app.is_superadmin' in leak for leak in ver['leaks'])
    # the bypass itself survives RESET: '' is off, not an error
    assert ver['tables']['public.vendors']['no_tenant_reset']['error'] is None
    assert run.result('remove')['changed'] is True
    assert policies(lab, 'vendors') == 'tenant_isolation'


def test_expressions_written_differently_are_not_changes(applied, lab, play):
    odd = ("((\"tenant_id\" = (NULLIF(CURRENT_SETTING('app.current_tenant_id'::TEXT, TRUE), ''))::UUID))")
    custom = [dict(name='tenant_read', command='select', using=odd)]
    run = play([policy(lab, 'create', tables=['contracts'], policies=custom),
                policy(lab, 'same', tables=['contracts'],
                       policies=[dict(name='tenant_read', command='SELECT',
                                      using="tenant_id = nullif(current_setting('app.current_tenant_id', true), "
                                            "'')::uuid")]),
                policy(lab, 'restrictive', tables=['contracts'],
                       policies=[dict(name='tenant_read', command='SELECT', permissive=False, using=odd)]),
                policy(lab, 'drop', tables=['contracts'], tenant_policy=False, policies=custom, state='absent')])
    assert run.rc == 0, run
    assert run.result('create')['changed'] is True
    assert run.result('same')['changed'] is False
    assert run.result('restrictive')['tables'][0]['actions'] == ['replace policy tenant_read']
    assert run.result('drop')['changed'] is True
    assert policies(lab, 'contracts') == 'tenant_isolation'


def test_drift_is_repaired(applied, lab, play):
    sq(lab, 'ALTER POLICY tenant_isolation ON vendors USING (true)')
    sq(lab, 'ALTER POLICY tenant_isolation ON requisitions TO procgenie_app')
    run = play([policy(lab, 'repair', tables=TABLES, create_indexes=True)], diff=True)
    assert run.rc == 0, run
    result = run.result('repair')
    assert sorted(t['name'] for t in result['tables']) == ['requisitions', 'vendors']
    assert all(t['actions'] == ['alter policy tenant_isolation'] for t in result['tables'])
    assert result['diff']['before']['public.vendors']['policies']['tenant_isolation']['using'] == 'true'
    assert 'NULLIF' in sq(lab, "SELECT qual FROM pg_policies WHERE tablename = 'vendors'")
    assert sq(lab, "SELECT roles::text FROM pg_policies WHERE tablename = 'requisitions'") == '{public}'


def test_role_bypass_and_quoted_mixed_case_names(applied, lab, play):
    sq(lab, 'CREATE TABLE "Vendor Notes" (id int PRIMARY KEY, "tenant_id" uuid NOT NULL, note text);'
            'ALTER TABLE "Vendor Notes" OWNER TO procgenie_owner;'
            'GRANT SELECT, INSERT ON "Vendor Notes" TO procgenie_app, rls_test_admin;'
            "INSERT INTO \"Vendor Notes\" SELECT g, md5('tenant-' || (g % 3 + 1))::uuid, 'n' FROM generate_series(1, 9) g")
    args = dict(tables=['public.Vendor Notes'], bypass='role', bypass_roles=['rls_test_admin'], create_indexes=True)
    run = play([policy(lab, 'one', **args), policy(lab, 'two', **args)])
    assert run.rc == 0, run
    assert run.result('one')['changed'] is True and run.result('two')['changed'] is False
    assert policies(lab, '"Vendor Notes"') == 'admin_bypass,tenant_isolation'
    assert sq(lab, "SELECT roles::text FROM pg_policies WHERE policyname = 'admin_bypass'") == '{rls_test_admin}'
    assert as_role(lab, 'rls_test_admin', 'SELECT count(*) FROM "Vendor Notes";') == '9'
    assert as_role(lab, 'procgenie_app', 'SELECT count(*) FROM "Vendor Notes";') == '0'


def test_removal_disables(lab, play, applied):
    sq(lab, 'CREATE TABLE rls_gone (tenant_id uuid)')
    run = play([policy(lab, 'on', tables=['rls_gone']),
                policy(lab, 'off', tables=['rls_gone'], state='absent', disable=True),
                policy(lab, 'off again', tables=['rls_gone'], state='absent', disable=True)])
    assert run.rc == 0, run
    assert run.result('off')['changed'] is True and run.result('off again')['changed'] is False
    assert sq(lab, "SELECT relrowsecurity OR relforcerowsecurity FROM pg_class WHERE relname = 'rls_gone'") == 'f'
    assert policies(lab, 'rls_gone') == ''


@pytest.mark.parametrize('args, message', [
    (dict(tables=['vendors; DROP TABLE contracts']), 'tables not found'),
    (dict(tables=['vendors'], tenant_column='tenant_id" = tenant_id OR true OR "x'), 'without the tenant column'),
    (dict(tables=['vendors'], tenant_setting="app.x', true) OR true OR current_setting('y"), 'invalid setting'),
    (dict(tables=['vendors'], tenant_type='uuid); DROP TABLE contracts; --'), 'invalid type'),
    (dict(tables=['vendors'], policy_name='p"; DROP TABLE contracts; --'), 'invalid policy name'),
    (dict(tables=['vendors'], roles=['procgenie_app; DROP TABLE contracts']), 'roles do not exist'),
    (dict(tables=['vendors'], policies=[dict(name='x', using='true) WITH CHECK (true); DROP TABLE contracts; --')]),
     'unbalanced parentheses'),
    (dict(tables=['vendors'], policies=[dict(name='x', using="tenant_id IS NULL; DROP TABLE contracts")]),
     'must not contain'),
    (dict(tables=['vendors'], policies=[dict(name='x', using='no_such_column = 1')]), 'PostgreSQL refused'),
])
def test_injection_attempts_fail_cleanly(applied, lab, play, args, message):
    run = play([policy(lab, 'bad', **args)])
    assert run.rc != 0
    result = run.result('bad')
    assert result['failed'] is True and message in result['msg'], result['msg']
    assert 'Traceback' not in result['msg']
    assert sq(lab, "SELECT count(*) FROM pg_class WHERE relname = 'contracts'") == '1'
    assert policies(lab, 'vendors') == 'tenant_isolation'


def test_schema_discovery_and_exclusive(applied, lab, play):
    sq(lab, 'CREATE SCHEMA rls_disc; CREATE TABLE rls_disc.a (tenant_id uuid); CREATE TABLE rls_disc.b (tenant_id uuid);'
            'CREATE TABLE rls_disc.no_tenant (id int); ALTER TABLE rls_disc.a ENABLE ROW LEVEL SECURITY;'
            'CREATE POLICY stray ON rls_disc.a USING (true)')
    run = play([policy(lab, 'discover', schemas=['rls_disc'], exclusive=True),
                policy(lab, 'again', schemas=['rls_disc'], exclusive=True)])
    assert run.rc == 0, run
    result = run.result('discover')
    assert result['managed_tables'] == ['rls_disc.a', 'rls_disc.b']
    actions = {t['name']: t['actions'] for t in result['tables']}
    assert 'drop policy stray' in actions['a'] and 'enable row level security' not in actions['a']
    assert run.result('again')['changed'] is False
    assert policies(lab, 'rls_disc.a') == 'tenant_isolation' and policies(lab, 'rls_disc.no_tenant') == ''
