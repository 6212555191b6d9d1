"""Inputs that would turn tenant isolation off are refused before any change; the isolation proof leaves every
sequence as it was (or says it did not); odd input is a clean failure. Through ansible-playbook on the lab's sample
database, checked with independent SQL."""

from __future__ import annotations

import pytest

from tests.conftest import node_params

DB = 'rls_safety'
TABLES = ['requisitions', 'request_items', 'vendors', 'contracts', 'audit_events']
ROLES = ('rls_safety_bypass', 'rls_safety_mid', 'rls_safety_other')


def task(module, name='t', **args):
    return {'name': name, 'procgenie.dbops.' + module: args, 'register': 'out'}


def policy(lab, name='t', **args):
    return task('pg_rls_policy', name, **dict(node_params(lab, db=DB), **args))


def info(lab, name='i', **args):
    return task('pg_rls_info', name, **dict(node_params(lab, db=DB), **args))


def sq(lab, text):
    return lab.psql('primary', text, db=DB).strip()


def catalog_state(lab):
    """Every policy (name, command, roles, expressions) and every table's RLS flags of the database."""
    return sq(lab, "SELECT string_agg(format('%s|%s|%s|%s|%s|%s', schemaname, tablename, policyname, cmd, roles, "
                   "coalesce(qual, '') || '/' || coalesce(with_check, '')), E'\\n' ORDER BY 1) FROM pg_policies") + \
        '\n' + sq(lab, "SELECT string_agg(format('%s %s %s', oid::regclass, relrowsecurity, relforcerowsecurity), "
                       "E'\\n' ORDER BY oid::regclass::text) FROM pg_class WHERE relkind IN ('r', 'p') "
                       "AND relnamespace = 'public'::regnamespace")


def foreign_rows(lab, role='procgenie_app'):
    """Rows of other tenants the application role sees, summed over the tenant tables, with tenant 1 set."""
    body = ' + '.join("(SELECT count(*) FROM %s WHERE tenant_id <> md5('tenant-1')::uuid)" % t for t in TABLES)
    tenant = sq(lab, "SELECT md5('tenant-1')::uuid")
    return int(sq(lab, "SET ROLE %s; SET app.current_tenant_id = '%s'; SELECT %s;" % (role, tenant, body)))


def sequence_state(lab):
    """last_value and is_called of every sequence of the database, read from the sequences themselves."""
    names = sq(lab, "SELECT string_agg(format('%I.%I', schemaname, sequencename), ',' ORDER BY 1) FROM pg_sequences")
    return dict((name, sq(lab, 'SELECT last_value, is_called FROM %s' % name)) for name in names.split(','))


@pytest.fixture(scope='module')
def db(lab, collections_root, home):
    """The sample database with the tenant policies in place (the state an attack must not change)."""
    from tests.harness.playbook import run_playbook
    lab.seed(db=DB, tenants=3, scale=1)
    lab.psql('primary', ''.join(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN CREATE ROLE %s NOLOGIN; "
        "END IF; END $$;" % (r, r) for r in ROLES))
    # procgenie_app -> rls_safety_mid -> rls_safety_bypass: the app is a member of the bypass role, indirectly
    lab.psql('primary', 'GRANT rls_safety_bypass TO rls_safety_mid; GRANT rls_safety_mid TO procgenie_app')
    run = run_playbook([dict(name='base', hosts='localhost', gather_facts=False,
                             tasks=[policy(lab, 'base', tables=TABLES)])], collections_root, home)
    assert run.rc == 0, run
    assert foreign_rows(lab) == 0
    yield DB
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'REVOKE rls_safety_mid FROM procgenie_app')
    for role in ROLES:
        lab.psql('primary', 'DROP ROLE IF EXISTS %s' % role)


TENANT_TYPES = [
    ('uuid OR true', 'invalid type name'),                      # the reported leak: "::uuid) OR true"
    ('uuid OR tenant_id IS NOT NULL', 'invalid type name'),
    ('uuid) OR (true', 'invalid type name'),
    ('no_such_type', 'no such type'),
    ('', 'invalid type name'),
    ('uuid\x00', 'NUL'),
]
PUBLIC_BYPASS = [['PUBLIC'], ['public'], ['rls_safety_other', 'Public'], ['"PUBLIC"'], [' public ']]
MEMBER_BYPASS = [
    # the tenant policy's roles are the application roles
    (dict(roles=['procgenie_app'], bypass_roles=['rls_safety_bypass']), 'member of the bypass role rls_safety_bypass'),
    (dict(app_roles=['procgenie_app'], bypass_roles=['rls_safety_other', 'rls_safety_bypass']),
     'procgenie_app is a member of the bypass role rls_safety_bypass'),
    (dict(app_roles=['procgenie_app'], bypass_roles=['rls_safety_mid']), 'member of the bypass role rls_safety_mid'),
    (dict(app_roles=['procgenie_app'], bypass_roles=['procgenie_app']), 'procgenie_app is the bypass role'),
    (dict(app_roles=['postgres'], bypass_roles=['rls_safety_other']), 'superuser'),
    (dict(app_roles=['no_such_app_role'], bypass_roles=['rls_safety_other']), 'roles do not exist'),
]


def failing(item):
    return dict(item, ignore_errors=True)


@pytest.fixture(scope='module')
def attacks(db, lab, collections_root, home):
    """Every refused input in one playbook (each task may fail; the play goes on), with the catalog and what the
    application role sees before and after."""
    from tests.harness.playbook import run_playbook
    tasks = [failing(policy(lab, 'type %d' % i, tables=TABLES, tenant_type=t, exclusive=True))
             for i, (t, _m) in enumerate(TENANT_TYPES)]
    tasks += [failing(policy(lab, 'public %d' % i, tables=TABLES, bypass='role', bypass_roles=r))
              for i, r in enumerate(PUBLIC_BYPASS)]
    tasks += [failing(policy(lab, 'member %d' % i, tables=TABLES, bypass='role', **a))
              for i, (a, _m) in enumerate(MEMBER_BYPASS)]
    before = catalog_state(lab)
    run = run_playbook([dict(name='attacks', hosts='localhost', gather_facts=False, tasks=tasks)],
                       collections_root, home)
    return dict(run=run, before=before, after=catalog_state(lab), foreign=foreign_rows(lab))


def refused(attacks, name, message):
    result = attacks['run'].result(name)
    assert result.get('failed') is True and message in result['msg'], result.get('msg')
    assert 'Traceback' not in result['msg'] and 'Module failed' not in result['msg']
    assert not any(q.startswith(('ALTER', 'DROP', 'CREATE POLICY')) for q in result['queries']), result['queries']


def test_refused_inputs_change_nothing(attacks):
    assert attacks['after'] == attacks['before']
    assert attacks['foreign'] == 0
    assert 'Traceback' not in attacks['run'].text


@pytest.mark.parametrize('number', range(len(TENANT_TYPES)))
def test_tenant_type_is_a_type_name_resolved_by_the_server(attacks, number):
    refused(attacks, 'type %d' % number, TENANT_TYPES[number][1])


def test_tenant_type_spelled_otherwise_gives_the_same_policy(db, lab, play):
    before = catalog_state(lab)
    run = play([policy(lab, 'upper', tables=TABLES, tenant_type='UUID'),
                policy(lab, 'qualified', tables=TABLES, tenant_type=' pg_catalog.uuid ')])
    assert run.rc == 0, run
    assert run.result('upper')['changed'] is False and run.result('qualified')['changed'] is False
    assert catalog_state(lab) == before


@pytest.mark.parametrize('number', range(len(PUBLIC_BYPASS)))
def test_public_is_refused_as_bypass_role(attacks, number):
    refused(attacks, 'public %d' % number, 'must not contain PUBLIC')


@pytest.mark.parametrize('number', range(len(MEMBER_BYPASS)))
def test_bypass_role_of_the_application_is_refused(attacks, number):
    refused(attacks, 'member %d' % number, MEMBER_BYPASS[number][1])


def test_bypass_role_the_application_is_not_a_member_of_is_kept(db, lab, play):
    args = dict(tables=['vendors'], bypass='role', bypass_roles=['rls_safety_other'], app_roles=['procgenie_app'])
    run = play([policy(lab, 'bypass', **args), policy(lab, 'again', **args),
                policy(lab, 'remove', tables=['vendors'], tenant_policy=False, bypass='role',
                       bypass_roles=['rls_safety_other'], state='absent')])
    assert run.rc == 0, run
    assert run.result('bypass')['changed'] is True and run.result('again')['changed'] is False
    assert run.result('remove')['changed'] is True
    assert foreign_rows(lab) == 0


def test_verify_flags_a_public_bypass_made_by_hand(db, lab, play):
    """pg_rls_policy refuses them; pg_rls_info verify still catches a PUBLIC bypass and an "OR true" tenant
    policy made otherwise."""
    qual = sq(lab, "SELECT qual FROM pg_policies WHERE tablename = 'contracts' AND policyname = 'tenant_isolation'")
    sq(lab, 'CREATE POLICY hand_bypass ON vendors TO PUBLIC USING (true) WITH CHECK (true);'
            'ALTER POLICY tenant_isolation ON contracts USING (%s OR true) WITH CHECK (%s OR true)' % (qual, qual))
    try:
        run = play([info(lab, 'proof', verify=True, verify_role='procgenie_app', verify_tables=['vendors']),
                    info(lab, 'or true', verify=True, verify_role='procgenie_app', verify_tables=['contracts'])])
    finally:
        sq(lab, 'DROP POLICY hand_bypass ON vendors;'
                'ALTER POLICY tenant_isolation ON contracts USING (%s) WITH CHECK (%s)' % (qual, qual))
    assert run.rc == 0, run
    or_true = run.result('or true')['verification']
    assert or_true['isolated'] is False and any('rows of other tenants' in leak for leak in or_true['leaks'])
    ver = run.result('proof')['verification']
    assert ver['isolated'] is False and any('rows of other tenants' in leak for leak in ver['leaks'])
    # the inserts copy the source row's id: the policies let it through and only the primary key stops it
    outcomes = set(r['insert']['outcome'] for r in ver['tables']['public.vendors']['tenants'].values())
    assert outcomes == {'accepted'}, ver['tables']['public.vendors']
    assert ver['sequences_advanced'] == []


@pytest.mark.parametrize('check', [False, True])
def test_verify_leaves_every_sequence_as_it_was(db, lab, play, check):
    before = sequence_state(lab)
    assert 'public.vendors_id_seq' in before
    run = play([info(lab, 'proof', app_roles=['procgenie_app'], verify=True, verify_role='procgenie_app')],
               check=check)
    assert run.rc == 0, run
    result = run.result('proof')
    ver = result['verification']
    assert ver['isolated'] is True, ver['leaks']
    vendors = ver['tables']['public.vendors']['tenants']
    assert all(r['insert']['outcome'] == 'rejected' for r in vendors.values()), vendors
    assert sequence_state(lab) == before
    assert result['changed'] is False and ver['sequences_advanced'] == []


def test_verify_reports_a_sequence_it_could_not_spare(db, lab, play):
    """A default the verify role may not write runs nextval; sequences are not transactional: say so."""
    sq(lab, 'CREATE TABLE notes (id serial PRIMARY KEY, tenant_id uuid NOT NULL, note text);'
            'ALTER TABLE notes OWNER TO procgenie_owner;'
            'GRANT SELECT, UPDATE ON notes TO procgenie_app; GRANT INSERT (tenant_id, note) ON notes TO procgenie_app;'
            'GRANT USAGE ON SEQUENCE notes_id_seq TO procgenie_app;'
            "INSERT INTO notes (tenant_id, note) SELECT md5('tenant-' || (g % 3 + 1))::uuid, 'n' "
            "FROM generate_series(1, 6) g")
    try:
        run = play([policy(lab, 'protect', tables=['notes']),
                    info(lab, 'proof', verify=True, verify_role='procgenie_app', verify_tables=['notes'])])
        assert run.rc == 0, run
        result = run.result('proof')
        assert result['verification']['isolated'] is True, result['verification']['leaks']
        assert result['verification']['sequences_advanced'] == ['public.notes_id_seq']
        assert result['changed'] is True
        assert 'advanced sequences (public.notes_id_seq)' in run.text
    finally:
        sq(lab, 'DROP TABLE notes')


ODD = [
    ('pg_rls_policy', dict(tables=['no_such_table']), 'tables not found'),
    ('pg_rls_policy', dict(tables=['"public"."vendors"']), 'tables not found'),
    ('pg_rls_policy', dict(tables=['public.vendors.x']), 'tables not found'),
    ('pg_rls_policy', dict(tables=['']), 'invalid table'),
    ('pg_rls_policy', dict(tables=['.vendors']), 'invalid table'),
    ('pg_rls_policy', dict(tables=[dict(schema='public')]), 'invalid table'),
    ('pg_rls_policy', dict(tables=[['vendors']]), 'invalid table'),
    ('pg_rls_policy', dict(schemas=['no_such_schema']), 'schemas not found'),
    ('pg_rls_policy', dict(schemas=['pub\x00lic']), 'NUL'),
    ('pg_rls_policy', dict(tables=['vendors'], tenant_column=''), 'tenant_column'),
    ('pg_rls_policy', dict(tables=['vendors'], tenant_column='tenant\x00id'), 'NUL'),
    ('pg_rls_policy', dict(tables=['vendors'], tenant_setting=''), 'invalid setting'),
    ('pg_rls_policy', dict(tables=['vendors'], policy_name=''), 'invalid policy name'),
    ('pg_rls_policy', dict(tables=['vendors'], roles=['']), 'invalid role'),
    ('pg_rls_policy', dict(tables=['vendors'], bypass='role', bypass_roles=[]), 'bypass_roles'),
    ('pg_rls_policy', dict(tables=['vendors'], bypass='role', bypass_roles=['a\x00b']), 'NUL'),
    ('pg_rls_policy', dict(tables=['vendors'], lock_timeout='soon'), 'invalid value'),
    ('pg_rls_policy', dict(tables=['vendors'], policies=[dict(name='x')]), 'needs a USING'),
    ('pg_rls_info', dict(schemas=['pub\x00lic']), 'NUL'),
    ('pg_rls_info', dict(tenant_column='tenant\x00id'), 'NUL'),
    ('pg_rls_info', dict(app_roles=['app\x00']), 'NUL'),
    ('pg_rls_info', dict(verify=True, verify_role='procgenie_app', verify_tables=['no_such_table']),
     'tables not found'),
    ('pg_rls_info', dict(verify=True, verify_role='procgenie_app', verify_tables=['']), 'invalid table'),
    ('pg_rls_info', dict(verify=True, verify_role='procgenie_app', verify_tables=[dict(name=None)]),
     'invalid table'),
    ('pg_rls_info', dict(verify=True, verify_role='', verify_tables=['vendors']), 'verify_role'),
    ('pg_rls_info', dict(verify=True, verify_role='no_such_role'), 'does not exist'),
    ('pg_rls_info', dict(verify=True, verify_role='procgenie_app', verify_tenants=['x', 'y']), 'not valid uuid'),
    ('pg_rls_info', dict(verify=True, verify_role='procgenie_app', verify_tenants=['a\x00']), 'NUL'),
    ('pg_rls_info', dict(verify=True, verify_role='procgenie_app', verify_bypass_settings=['']),
     'invalid setting'),
    ('pg_rls_info', dict(verify=True, verify_role='procgenie_app', tenant_setting='x'), 'invalid setting'),
]


@pytest.fixture(scope='module')
def odd(db, lab, collections_root, home):
    from tests.harness.playbook import run_playbook
    tasks = [failing(task(module, 'odd %d' % i, **dict(node_params(lab, db=DB), **args)))
             for i, (module, args, _m) in enumerate(ODD)]
    before = catalog_state(lab)
    run = run_playbook([dict(name='odd', hosts='localhost', gather_facts=False, tasks=tasks)], collections_root, home)
    return dict(run=run, before=before, after=catalog_state(lab))


def test_odd_input_changes_nothing(odd):
    assert odd['after'] == odd['before']
    assert 'Traceback' not in odd['run'].text


@pytest.mark.parametrize('number', range(len(ODD)))
def test_odd_input_fails_cleanly(odd, number):
    result = odd['run'].result('odd %d' % number)
    message = ODD[number][2]
    assert result.get('failed') is True and message in result['msg'], result.get('msg')
    assert 'Module failed' not in result['msg'], result['msg']
    assert 'queries' in result
