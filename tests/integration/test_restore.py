"""pg_restore against the lab's real primary, run through ansible-playbook."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.conftest import node_params

SRC = 'bk_rsrc'
TARGET = 'bk_rtarget'


def task(lab, module, task_name, db, **args):
    args = dict(node_params(lab, db=db), **args)
    return dict(name=task_name, ignore_errors=True, **{'procgenie.dbops.' + module: args})


def counts(lab, db):
    return lab.row_counts(db)


def drop_db(lab, name):
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture(scope='module')
def artifacts(lab, workdir, collections_root, home):
    from tests.harness.playbook import run_playbook
    lab.seed(db=SRC)
    dest = os.path.join(workdir, 'restore-artifacts')
    shutil.rmtree(dest, ignore_errors=True)
    tenant = lab.psql('primary', "SELECT md5('tenant-1')::uuid", db=SRC)
    tasks = [task(lab, 'pg_backup', 'full', SRC, dest=dest),
             task(lab, 'pg_backup', 'dir', SRC, dest=dest, format='directory', jobs=2),
             task(lab, 'pg_backup', 'schema', SRC, dest=dest, kind='schema_only'),
             task(lab, 'pg_backup', 'tenant', SRC, dest=dest, kind='tenant', tenant=tenant)]
    run = run_playbook([dict(name='a', hosts='localhost', gather_facts=False, tasks=tasks)], collections_root, home)
    assert run.rc == 0, run
    paths = dict((t, run.result(t)['path']) for t in ('full', 'dir', 'schema', 'tenant'))
    paths['tenant_id'] = tenant
    paths['dest'] = dest
    yield paths
    drop_db(lab, SRC)


@pytest.fixture
def target(lab):
    lab.seed(db=TARGET)
    lab.psql('primary', 'DELETE FROM request_items WHERE id % 2 = 0; DELETE FROM audit_events WHERE id < 100',
             db=TARGET)
    yield TARGET
    drop_db(lab, TARGET)


def test_full_restore_cleans_and_equals_the_backup(lab, play, artifacts, target, workdir):
    damaged = counts(lab, TARGET)
    backup_dest = os.path.join(workdir, 'pre-restore')
    shutil.rmtree(backup_dest, ignore_errors=True)
    # check mode: the plan, nothing changed
    run = play([task(lab, 'pg_restore', 'restore', TARGET, path=artifacts['full'], pre_restore_backup=True,
                     backup_dest=backup_dest)], check=True)
    res = run.result('restore')
    assert res['changed'] is True and not res.get('failed'), res
    assert res['plan']['clean'] is True and res['commands'] == []
    assert counts(lab, TARGET) == damaged and not os.path.exists(backup_dest)
    # the restore, after a backup of the current state
    run = play([task(lab, 'pg_restore', 'restore', TARGET, path=artifacts['full'], pre_restore_backup=True,
                     backup_dest=backup_dest, jobs=2)])
    assert run.rc == 0, run
    res = run.result('restore')
    assert counts(lab, TARGET) == counts(lab, SRC), (res.get('msg'), res.get('exception'), res['commands'])
    assert res['mismatches'] == []
    assert res['row_counts']['public.request_items'] == counts(lab, SRC)['request_items']
    restore_cmd = [c for c in res['commands'] if 'pg_restore' in c[0]][-1]
    assert '--clean' in restore_cmd and '--if-exists' in restore_cmd and '--jobs=2' in restore_cmd
    # the pre-restore backup holds the damaged state
    with open(res['pre_restore_backup'] + '.manifest.json') as handle:
        manifest = json.load(handle)
    assert manifest['database'] == TARGET
    assert manifest['row_counts']['public.request_items'] == damaged['request_items']
    assert lab.state['password'] not in run.text


def test_refuses_a_busy_target_unless_told(lab, play, artifacts, target):
    import psycopg2
    conn = psycopg2.connect(**dict(lab.conninfo('primary', TARGET), dbname=TARGET))
    try:
        before = counts(lab, TARGET)
        run = play([task(lab, 'pg_restore', 'busy', TARGET, path=artifacts['dir'])])
        res = run.result('busy')
        assert res['failed'] is True and 'other session' in res['msg'] and 'terminate_connections' in res['msg']
        assert counts(lab, TARGET) == before
        run = play([task(lab, 'pg_restore', 'forced', TARGET, path=artifacts['dir'], terminate_connections=True,
                         jobs=2)])
        assert run.rc == 0, run
        assert run.result('forced')['plan']['terminate']
        assert counts(lab, TARGET) == counts(lab, SRC)
        assert conn.closed or _dead(conn)
    finally:
        conn.close()


def _dead(conn):
    import psycopg2
    try:
        conn.cursor().execute('SELECT 1')
    except psycopg2.Error:
        return True
    return False


def test_tampered_artifact_is_refused_before_anything_changes(lab, play, artifacts, target, workdir):
    copy = os.path.join(workdir, 'tampered.dump')
    shutil.copy(artifacts['full'], copy)
    shutil.copy(artifacts['full'] + '.manifest.json', copy + '.manifest.json')
    with open(copy, 'ab') as handle:
        handle.write(b'x')
    bare = os.path.join(workdir, 'bare.dump')
    shutil.copy(artifacts['full'], bare)
    before = counts(lab, TARGET)
    run = play([task(lab, 'pg_restore', 'tampered', TARGET, path=copy),
                task(lab, 'pg_restore', 'nomanifest', TARGET, path=bare),
                task(lab, 'pg_restore', 'plain_tables', TARGET, path=artifacts['schema'], tables=['vendors']),
                task(lab, 'pg_restore', 'jobs_single', TARGET, path=artifacts['full'], jobs=2,
                     single_transaction=True),
                task(lab, 'pg_restore', 'missing_db', 'bk_no_such_db', path=artifacts['full'])])
    assert 'does not match its manifest' in run.result('tampered')['msg']
    assert 'No manifest' in run.result('nomanifest')['msg']
    assert 'plain SQL script' in run.result('plain_tables')['msg']
    assert 'single_transaction cannot be combined' in run.result('jobs_single')['msg']
    assert 'does not exist; set create_database' in run.result('missing_db')['msg']
    for name in ('tampered', 'nomanifest', 'plain_tables', 'jobs_single', 'missing_db'):
        assert run.result(name)['failed'] is True
        assert 'Traceback' not in json.dumps(run.result(name))
    assert counts(lab, TARGET) == before


def test_table_subset_data_only(lab, play, artifacts, target):
    lab.psql('primary', 'TRUNCATE request_items, requisitions', db=TARGET)
    before = counts(lab, TARGET)
    # the runbook's command (-t requisitions -t request_items --data-only), the child named first: pg_restore alone
    # loads request_items first (archive order) and its foreign key fails; the module loads in foreign-key order
    run = play([task(lab, 'pg_restore', 'tables', TARGET, path=artifacts['full'],
                     tables=['request_items', 'public.requisitions'], data_only=True, single_transaction=True)])
    res = run.result('tables')
    assert res.get('failed') is not True, res.get('msg')
    assert res['plan']['table_order'] == ['public.requisitions', 'public.request_items']
    after = counts(lab, TARGET)
    assert after['requisitions'] == counts(lab, SRC)['requisitions'], res.get('msg')
    assert after['request_items'] == counts(lab, SRC)['request_items']
    assert after['vendors'] == before['vendors'] and after['audit_events'] == before['audit_events']
    assert res['row_counts'] == {'public.requisitions': after['requisitions'],
                                 'public.request_items': after['request_items']}
    cmd = [c for c in res['commands'] if 'pg_restore' in c[0]][-1]
    assert '--data-only' in cmd and '--clean' not in cmd and '--schema=public' in cmd
    assert any(a.startswith('--use-list=') for a in cmd)
    # the tables alone, without the rows they reference (tenants emptied): a clear message, nothing restored
    lab.psql('primary', 'TRUNCATE tenants CASCADE', db=TARGET)
    run = play([task(lab, 'pg_restore', 'orphans', TARGET, path=artifacts['full'],
                     tables=['request_items', 'requisitions'], data_only=True, single_transaction=True)])
    orphans = run.result('orphans')
    assert orphans['failed'] is True and 'foreign-key order' in orphans['msg'] and 'referenced' in orphans['msg']
    assert counts(lab, TARGET)['requisitions'] == 0 and counts(lab, TARGET)['request_items'] == 0


def test_tenant_artifact_into_an_empty_database(lab, play, artifacts):
    empty = 'bk_tenant_copy'
    drop_db(lab, empty)
    try:
        run = play([task(lab, 'pg_restore', 'schema', empty, path=artifacts['schema'], create_database=True),
                    # again, into a fresh copy: the newest schema artifact of the folder
                    task(lab, 'pg_restore', 'schema_again', empty, dest=artifacts['dest'], kind='schema_only',
                         recreate_database=True),
                    task(lab, 'pg_restore', 'tenant', empty, dest=artifacts['dest'], kind='tenant')])
        assert run.rc == 0, run
        assert not run.result('schema_again').get('failed'), run.result('schema_again')['msg']
        assert run.result('schema_again')['plan']['recreate_database'] is True
        assert run.result('tenant')['path'] == artifacts['tenant']
        res = run.result('tenant')
        tenant = artifacts['tenant_id']
        for table in ('vendors', 'contracts', 'requisitions', 'request_items', 'audit_events'):
            want = int(lab.psql('primary', "SELECT count(*) FROM %s WHERE tenant_id = '%s'" % (table, tenant), db=SRC))
            assert res['row_counts']['public.' + table] == want
            assert int(lab.psql('primary', 'SELECT count(*) FROM %s' % table, db=empty)) == want
        assert res['row_counts']['public.tenants'] == 1
        assert any('psql' in c[0] for c in res['commands'])
        # the sequences moved past the restored ids: the application's next rows get new ids
        for table in ('vendors', 'contracts', 'requisitions', 'request_items', 'audit_events'):
            top = int(lab.psql('primary', 'SELECT max(id) FROM %s' % table, db=empty))
            nxt = int(lab.psql('primary', "SELECT nextval(pg_get_serial_sequence('%s', 'id'))" % table, db=empty))
            assert nxt == top + 1, (table, top, nxt)
        lab.psql('primary', "INSERT INTO requisitions (tenant_id, title, status, requested_by) VALUES ('%s', "
                            "'after the restore', 'draft', 'dba')" % tenant, db=empty)
    finally:
        drop_db(lab, empty)
