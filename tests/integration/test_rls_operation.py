"""pg_rls_policy and pg_rls_info on the operation shape (plan, then apply), through ansible-playbook: check mode
reports exactly what the run then does, `diff` only in diff mode, a failed tenant index after the committed
policies reports them, and pg_rls_info gives the same facts, audit and proof in check mode."""

from __future__ import annotations

import pytest

from tests.conftest import node_params

DB = 'rls_shape'
APP = 'rls_shape_app'
TENANTS = ('a0000000-0000-0000-0000-00000000000a', 'b0000000-0000-0000-0000-00000000000b')
PLANNED = ('changed', 'tables', 'managed_tables', 'indexes')


def policy(lab, name, **args):
    return {'name': name, 'procgenie.dbops.pg_rls_policy': dict(node_params(lab, db=DB), **args), 'register': 'out'}


def info(lab, name, **args):
    return {'name': name, 'procgenie.dbops.pg_rls_info': dict(node_params(lab, db=DB), **args), 'register': 'out'}


def sq(lab, text):
    return lab.psql('primary', text, db=DB).strip()


@pytest.fixture(scope='module')
def db(lab):
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'CREATE DATABASE %s' % DB)
    lab.psql('primary', "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
                        "CREATE ROLE %s NOLOGIN; END IF; END $$;" % (APP, APP))
    sq(lab, "CREATE TABLE items (id int PRIMARY KEY, tenant_id uuid NOT NULL, note text);"
            "INSERT INTO items SELECT g, CASE WHEN g %% 2 = 0 THEN '%s'::uuid ELSE '%s'::uuid END, 'n' "
            "FROM generate_series(1, 10) g;"
            # a tenant column btree cannot index: the tenant index fails after the policies are committed
            "CREATE TABLE docs (id int PRIMARY KEY, tenant_id json);"
            "GRANT SELECT, INSERT, UPDATE ON items TO %s;" % (TENANTS[0], TENANTS[1], APP))
    yield DB
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'DROP ROLE IF EXISTS %s' % APP)


def test_check_mode_reports_what_the_run_does_and_diff_only_in_diff_mode(lab, db, play):
    tasks = [policy(lab, 'p', tables=['items'], create_indexes=True)]
    check_diff = play(tasks, check=True, diff=True).result('p')
    check = play(tasks, check=True).result('p')
    assert sq(lab, "SELECT relrowsecurity FROM pg_class WHERE relname = 'items'") == 'f'
    assert sq(lab, "SELECT count(*) FROM pg_policy") == '0'
    assert sq(lab, "SELECT count(*) FROM pg_indexes WHERE tablename = 'items'") == '1'  # the primary key only
    applied = play(tasks).result('p')
    for key in PLANNED:
        assert check[key] == applied[key] == check_diff[key], key
    assert applied['changed'] is True and applied['tables'][0]['actions'] == [
        'enable row level security', 'force row level security', 'create policy tenant_isolation']
    assert applied['indexes'] == [dict(schema='public', table='items', columns=['tenant_id', 'id'],
                                       name='items_tenant_id_rls_idx')]
    assert 'diff' not in check and 'diff' not in applied
    assert check_diff['diff']['before']['public.items'] == dict(rls_enabled=False, rls_forced=False, policies={})
    assert check_diff['diff']['after']['public.items']['policies']['tenant_isolation']['command'] == 'ALL'
    assert sq(lab, "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = 'items'") == 't'
    assert sq(lab, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_tenant_id_rls_idx'::regclass") == 't'
    again = play(tasks, diff=True).result('p')
    assert again['changed'] is False and again['tables'] == [] and again['indexes'] == []
    assert again['diff'] == dict(before={}, after={})
    assert again['commands'] == [] and again['queries']


def test_a_failed_tenant_index_reports_the_committed_policies(lab, db, play):
    run = play([policy(lab, 'p', tables=['docs'], tenant_policy=False, create_indexes=True,
                       policies=[dict(name='docs_all', using='true')])])
    result = run.result('p')
    assert result['failed'] is True
    assert result['msg'].startswith('Creating a tenant index failed: '), result['msg']
    assert 'Traceback' not in result['msg']
    assert result['tables'] == [dict(schema='public', name='docs', actions=[
        'enable row level security', 'force row level security', 'create policy docs_all'])]
    assert result['commands'] == [] and any('CREATE INDEX CONCURRENTLY' in q for q in result['queries'])
    # the policies were committed before the index build
    assert sq(lab, "SELECT string_agg(polname, ',') FROM pg_policy WHERE polrelid = 'docs'::regclass") == 'docs_all'
    assert sq(lab, "SELECT count(*) FROM pg_indexes WHERE tablename = 'docs'") == '1'


def test_info_gives_the_same_facts_audit_and_proof_in_check_mode(lab, db, play):
    tasks = [info(lab, 'i', schemas=['public'], app_roles=[APP], verify=True, verify_role=APP,
                  verify_tables=['items'], verify_bypass_settings=[])]
    checked = play(tasks, check=True).result('i')
    ran = play(tasks).result('i')
    assert checked.get('failed') is not True, checked
    for key in ('policies', 'tables', 'audit'):
        assert checked[key] == ran[key], key
    assert checked['changed'] is False and ran['changed'] is False
    for result in (checked, ran):
        proof = result['verification']
        assert proof['isolated'] is True, proof['leaks']
        assert sorted(proof['tenants']) == sorted(TENANTS) and proof['sequences_advanced'] == []
        assert proof['tables']['public.items']['tenants'][TENANTS[0]]['visible'] == 5
    assert ran['commands'] == [] and ran['queries']
