"""The backup and backup_verify roles through their playbooks (the AWX job templates), against the lab."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.conftest import REPO, node_params
from tests.harness.playbook import run_playbook

DB = 'bk_roles'


@pytest.fixture(scope='module')
def setup(lab, workdir):
    lab.seed(db=DB)
    dest = os.path.join(workdir, 'role-backups')
    shutil.rmtree(dest, ignore_errors=True)
    yield dest
    for name in (DB, 'bk_roles_tenant'):
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def playbook(name, collections_root, home, check=False, **extravars):
    return run_playbook(os.path.join(REPO, 'playbooks', name), collections_root, home, check=check,
                        extravars=dict(target='localhost', **extravars))


def test_backup_verify_and_restore_playbooks(lab, setup, collections_root, home):
    dest = setup
    tenant = lab.psql('primary', "SELECT md5('tenant-2')::uuid", db=DB)
    conn = node_params(lab, db=DB)
    items = [dict(kind='full'), dict(kind='schema_only'),
             dict(kind='tables', tables=['requisitions', 'request_items'], name='requisitions_{timestamp}{ext}'),
             dict(kind='tenant', tenant=tenant)]
    # check mode makes nothing
    run = playbook('backup.yml', collections_root, home, check=True, dbops_connection=conn, backup_dest=dest,
                   backup_items=items)
    assert run.rc == 0, run.stdout[-3000:]
    assert not os.path.exists(dest) or os.listdir(dest) == []
    run = playbook('backup.yml', collections_root, home, dbops_connection=conn, backup_dest=dest,
                   backup_items=items, backup_environment='production')
    assert run.rc == 0, run.stdout[-3000:]
    results = run.result('procgenie.dbops.backup : Take the listed backups')['results']
    assert [r['kind'] for r in results] == ['full', 'schema_only', 'tables', 'tenant']
    assert all(os.path.exists(r['path']) for r in results)
    assert 'full backup of bk_roles' in run.stdout
    # an invalid input is refused by the argument spec
    bad = playbook('backup.yml', collections_root, home, dbops_connection=conn, backup_dest=dest,
                   backup_environment='staging')
    assert bad.rc != 0 and 'backup_environment' in bad.text
    # the weekly verification of the newest full and tenant backups, with a report
    run = playbook('verify_backup.yml', collections_root, home, dbops_connection=node_params(lab, db='postgres'),
                   backup_verify_dest=dest, backup_verify_kinds=['full', 'tenant'])
    assert run.rc == 0, run.stdout[-3000:]
    verified = run.result('procgenie.dbops.backup_verify : Verify the backups')['results']
    assert [v['passed'] for v in verified] == [True, True]
    assert 'PASSED  full custom backup of bk_roles' in run.stdout
    assert 'public.request_items' in run.stdout
    # the tenant artifact into an empty database: the schema first, then the tenant's rows
    target = 'bk_roles_tenant'
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % target)
    schema_path, tenant_path = results[1]['path'], results[3]['path']
    for path in (schema_path, tenant_path):
        run = playbook('restore_dump.yml', collections_root, home, dbops_connection=node_params(lab, db=target),
                       backup_dest=dest, backup_restore_path=path, backup_restore_database=target,
                       backup_restore_create_database=True)
        assert run.rc == 0, run.stdout[-3000:]
    restored = run.result('procgenie.dbops.backup : Restore the dump')
    for table in ('vendors', 'requisitions', 'audit_events'):
        want = int(lab.psql('primary', "SELECT count(*) FROM %s WHERE tenant_id = '%s'" % (table, tenant), db=DB))
        assert restored['row_counts']['public.' + table] == want
        assert int(lab.psql('primary', 'SELECT count(*) FROM %s' % table, db=target)) == want
    assert restored['pre_restore_backup'] and os.path.exists(restored['pre_restore_backup'])
    with open(results[0]['path'] + '.manifest.json') as handle:
        assert json.load(handle)['verifications'][-1]['result'] == 'passed'
