"""pg_backup and pg_backup_verify against the lab's real primary, run through ansible-playbook."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import threading
import time

import pytest

from tests.conftest import node_params

DB = 'bk_main'
ODD = '"Odd ""Name"" ; x"'  # a table name with quotes, a space and a semicolon


def backup(lab, dest, task='backup', db=DB, **args):
    return dict(name=task, ignore_errors=True, **{'procgenie.dbops.pg_backup': dict(
        node_params(lab, db=db), dest=dest, **args)})


def verify_task(lab, task='verify', **args):
    return dict(name=task, ignore_errors=True, **{'procgenie.dbops.pg_backup_verify': dict(
        node_params(lab, db='postgres'), **args)})


def lab_env(lab):
    state = lab.state
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
    env.update(PGHOST=state['nodes']['primary']['host'], PGPORT=str(state['nodes']['primary']['port']),
               PGUSER=state['superuser'], PGPASSWORD=state['password'])
    return env


def stock(lab, argv, check=True):
    """Run a stock PostgreSQL client program of the lab against the primary."""
    proc = subprocess.run([os.path.join(lab.state['bindir'], argv[0])] + argv[1:], env=lab_env(lab),
                          capture_output=True, text=True, check=False, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def fresh_db(lab, name):
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    lab.psql('primary', 'CREATE DATABASE "%s"' % name)
    return name


def drop_db(lab, name):
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def digest(lab, db, qname, where=''):
    """Count and an order-independent digest of a table's rows (independent SQL)."""
    return lab.psql('primary', "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                               "FROM %s t %s" % (qname, where), db=db)


def files_in(dest):
    return sorted(os.listdir(dest)) if os.path.isdir(dest) else []


def sha256(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture(scope='module')
def source(lab):
    lab.seed(db=DB)
    lab.psql('primary', 'CREATE TABLE public.%s (id int PRIMARY KEY, "Weird Col" text); '
                        "INSERT INTO public.%s SELECT g, 'v' || g FROM generate_series(1, 25) g; "
                        'ALTER TABLE vendors ENABLE ROW LEVEL SECURITY; '
                        "CREATE POLICY tenant_isolation ON vendors USING (tenant_id = "
                        "current_setting('app.current_tenant', true)::uuid);" % (ODD, ODD), db=DB)
    yield DB
    drop_db(lab, DB)


@pytest.fixture
def dest(workdir, request):
    path = os.path.join(workdir, 'backups', request.node.name.replace('[', '_').replace(']', ''))
    shutil.rmtree(path, ignore_errors=True)
    return path


@pytest.mark.parametrize('fmt', ['custom', 'directory', 'plain'])
def test_full_backup_restores_with_stock_tools_and_equals_the_source(lab, play, source, dest, fmt):
    args = dict(format=fmt)
    if fmt == 'directory':
        args['jobs'] = 2
    run = play([backup(lab, dest, **args)])
    assert run.rc == 0, run
    res = run.result('backup')
    assert res['changed'] is True
    ext = {'custom': '.dump', 'directory': '.dir', 'plain': '.sql'}[fmt]
    name = os.path.basename(res['path'])
    assert name.startswith('backup_') and name.endswith(ext) and len(name) == len('backup_YYYYMMDD_HHMMSS') + len(ext)
    assert files_in(dest) == sorted([name, name + '.manifest.json'])
    with open(res['manifest']) as handle:
        manifest = json.load(handle)
    for key in ('database', 'server_version', 'pg_dump_version', 'kind', 'format', 'tables', 'start_time',
                'end_time', 'size_bytes', 'sha256', 'row_counts'):
        assert key in manifest, key
    assert manifest['database'] == DB and manifest['kind'] == 'full' and manifest['format'] == fmt
    if fmt == 'directory':
        assert set(manifest['files']) == set(os.listdir(res['path']))
        for rel, digest_ in manifest['files'].items():
            assert sha256(os.path.join(res['path'], rel)) == digest_
        assert '--jobs=2' in res['commands'][-1]
    else:
        assert sha256(res['path']) == res['sha256'] == manifest['sha256']
        assert os.path.getsize(res['path']) == res['size_bytes']
    # the counts are the source's
    counts = lab.row_counts(DB)
    for table, count in counts.items():
        assert res['row_counts']['public.' + table] == count
    assert res['row_counts']['public.' + ODD] == 25
    # no password on any command line
    assert lab.state['password'] not in json.dumps(res['commands'])
    # stock tools restore it, and every table equals the source
    target = fresh_db(lab, 'bk_restored_%s' % fmt)
    try:
        if fmt == 'plain':
            stock(lab, ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', target, '-f', res['path']])
        else:
            stock(lab, ['pg_restore', '--exit-on-error', '-d', target, res['path']])
        for qname in manifest['row_counts']:
            assert digest(lab, target, qname) == digest(lab, DB, qname), qname
        assert lab.psql('primary', "SELECT relrowsecurity FROM pg_class WHERE relname = 'vendors'", db=target) == 't'
    finally:
        drop_db(lab, target)


def test_schema_only_tables_and_tenant_kinds(lab, play, source, dest):
    tenant = lab.psql('primary', "SELECT md5('tenant-2')::uuid", db=DB)
    run = play([backup(lab, dest, 'schema', kind='schema_only'),
                backup(lab, dest, 'tables', kind='tables', tables=['requisitions', 'public.request_items', ODD]),
                backup(lab, dest, 'tenant', kind='tenant', tenant=tenant.upper())])
    assert run.rc == 0, run
    schema, tables, tenant_res = run.result('schema'), run.result('tables'), run.result('tenant')
    assert os.path.basename(schema['path']).startswith('schema_') and schema['path'].endswith('.sql')
    assert '--schema-only' in schema['commands'][-1]
    assert sorted(tables['tables']) == sorted(['public.requisitions', 'public.request_items', 'public.' + ODD])
    assert tables['row_counts']['public.' + ODD] == 25
    listing = stock(lab, ['pg_restore', '--list', tables['path']]).stdout
    data = [line for line in listing.splitlines() if 'TABLE DATA' in line]
    assert len(data) == 3 and not any(' vendors ' in line for line in data)

    target = fresh_db(lab, 'bk_kinds')
    try:
        # schema-only: every table, no rows
        stock(lab, ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', target, '-f', schema['path']])
        assert lab.row_counts(target) == dict((t, 0) for t in lab.row_counts(DB))
        # tenant: exactly the tenant's rows of every tenant table, nothing of any other tenant
        stock(lab, ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', target, '-f', tenant_res['path']])
        assert tenant_res['tables'][0] == 'public.tenants'  # FK order: the tenant before its rows
        for table in ('vendors', 'contracts', 'requisitions', 'request_items', 'audit_events'):
            where = "WHERE tenant_id = '%s'" % tenant
            assert digest(lab, target, table) == digest(lab, DB, table, where), table
            assert lab.psql('primary', "SELECT count(*) FROM %s WHERE tenant_id <> '%s'" % (table, tenant),
                            db=target) == '0'
            assert tenant_res['row_counts']['public.' + table] == int(digest(lab, DB, table, where).split('|')[0])
        assert lab.psql('primary', 'SELECT id FROM tenants', db=target) == tenant
        # tables: data only into the schema, the three tables equal the source
        lab.psql('primary', 'TRUNCATE requisitions, request_items CASCADE; TRUNCATE %s' % ODD, db=target)
        stock(lab, ['pg_restore', '--exit-on-error', '--data-only', '--disable-triggers', '-d', target,
                    tables['path']])
        for qname in ('requisitions', 'request_items', ODD):
            assert digest(lab, target, qname) == digest(lab, DB, qname)
    finally:
        drop_db(lab, target)


def test_counts_are_of_the_dumped_snapshot_while_inserts_continue(lab, play, source, dest):
    import psycopg2
    stop = threading.Event()
    inserted = []

    def writer():
        conn = psycopg2.connect(**dict(lab.conninfo('primary', DB), dbname=DB))
        conn.autocommit = True
        cur = conn.cursor()
        while not stop.is_set():
            cur.execute("INSERT INTO audit_events (tenant_id, occurred_at, actor, action) "
                        "SELECT id, now(), 'bench', 'insert' FROM tenants; "
                        "INSERT INTO vendors (tenant_id, name, country, risk_rating) "
                        "SELECT id, 'v', 'DE', 1 FROM tenants")
            inserted.append(1)
        conn.close()

    lab.psql('primary', "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), 1000000); "
                        "SELECT setval(pg_get_serial_sequence('vendors', 'id'), 1000000)", db=DB)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.5)
        run = play([backup(lab, dest, format='directory', jobs=2)])
        before = len(inserted)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert run.rc == 0, run
    res = run.result('backup')
    assert len(inserted) > before > 0  # rows were being inserted during the dump
    target = fresh_db(lab, 'bk_concurrent')
    try:
        stock(lab, ['pg_restore', '--exit-on-error', '-j', '2', '-d', target, res['path']])
        for qname, count in res['row_counts'].items():
            assert int(lab.psql('primary', 'SELECT count(*) FROM %s' % qname, db=target)) == count, qname
        live = int(lab.psql('primary', 'SELECT count(*) FROM audit_events', db=DB))
        assert live > res['row_counts']['public.audit_events']
    finally:
        drop_db(lab, target)
        lab.psql('primary', "DELETE FROM audit_events WHERE actor = 'bench'; DELETE FROM vendors WHERE id > 1000000",
                 db=DB)


def test_bad_input_fails_clearly_and_leaves_nothing(lab, play, source, dest, workdir):
    blocker = os.path.join(workdir, 'not-a-folder')
    with open(blocker, 'w') as handle:
        handle.write('x')
    run = play([
        backup(lab, dest, 'missing', kind='tables', tables=['requisitions', 'no_such_table']),
        backup(lab, dest, 'injection1', kind='tables', tables=['vendors; DROP TABLE tenants; --']),
        backup(lab, dest, 'injection2', kind='tables', tables=['tenants" ; DROP TABLE vendors; --']),
        backup(lab, dest, 'injection3', kind='tables', tables=['"; DROP TABLE vendors; --']),
        backup(lab, dest, 'bad_tenant', kind='tenant', tenant="x' OR '1'='1"),
        backup(lab, os.path.join(blocker, 'sub'), 'unwritable'),
        backup(lab, dest, 'jobs_custom', jobs=2),
        backup(lab, dest, 'tenant_custom', kind='tenant', format='custom',
               tenant='e000342e-22c2-b525-5299-b35c4d538065'),
        backup(lab, dest, 'bad_template', name='../escape_{timestamp}'),
    ])
    expect = dict(missing='no_such_table does not exist', injection1='not a valid table name|does not exist',
                  injection2='not a valid table name|does not exist',
                  injection3='not a valid table name|does not exist', bad_tenant='is not a UUID', unwritable='Cannot create the backup folder',
                  jobs_custom='needs format=directory', tenant_custom='plain SQL script',
                  bad_template='not a plain file name')
    for task, text in expect.items():
        res = run.result(task)
        assert res['failed'] is True, task
        assert any(t in res['msg'] for t in text.split('|')), (task, res['msg'])
        assert 'Traceback' not in json.dumps(res), task
        assert 'commands' in res and 'queries' in res
    assert files_in(dest) == []
    # the injections did nothing
    assert lab.psql('primary', "SELECT count(*) FROM pg_class WHERE relname IN ('tenants', 'vendors')", db=DB) == '2'
    assert lab.state['password'] not in run.text


@contextlib.contextmanager
def blocked_dump(lab, play, dest):
    """A pg_backup run whose pg_dump waits for a lock on contracts: yields (pid of pg_dump, outcome), where
    outcome['run'] is the finished run once the block ends (the lock is released on the way out)."""
    import psycopg2
    lock = psycopg2.connect(**dict(lab.conninfo('primary', DB), dbname=DB))
    lock.cursor().execute('LOCK TABLE contracts IN ACCESS EXCLUSIVE MODE')  # pg_dump waits for its lock here
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(run=play([backup(lab, dest)])))
    thread.start()
    try:
        dump_pid = None
        for _i in range(300):
            found = subprocess.run(['pgrep', '-f', 'pg_dump.*%s' % dest], capture_output=True, text=True,
                                   check=False).stdout.split()
            if found:
                dump_pid = int(found[0])
                break
            time.sleep(0.1)
        assert dump_pid, 'pg_dump never started'
        time.sleep(0.5)
        yield dump_pid, outcome
    finally:
        lock.rollback()
        lock.close()
        thread.join()


def test_killed_pg_dump_fails_with_its_error_and_leaves_nothing(lab, play, source, dest):
    with blocked_dump(lab, play, dest) as (dump_pid, outcome):
        os.kill(dump_pid, signal.SIGKILL)
    res = outcome['run'].result('backup')
    assert res['failed'] is True
    assert 'pg_dump' in res['msg'] and ('signal 9' in res['msg'] or 'exit code -9' in res['msg']), res['msg']
    assert files_in(dest) == []


def test_cancelled_module_stops_pg_dump_and_leaves_nothing(lab, play, source, dest):
    """SIGTERM to the module (an AWX job cancelled) while pg_dump runs: pg_dump is killed, no file is left."""
    with blocked_dump(lab, play, dest) as (dump_pid, outcome):
        with open('/proc/%d/stat' % dump_pid) as handle:
            module_pid = int(handle.read().rsplit(')', 1)[1].split()[1])  # pg_dump's parent: the module
        os.kill(module_pid, signal.SIGTERM)
        # pg_dump goes with the module, while the table is still locked
        for _i in range(100):
            if not os.path.exists('/proc/%d' % dump_pid):
                break
            time.sleep(0.1)
        assert not os.path.exists('/proc/%d' % dump_pid), 'pg_dump survived the cancelled module'
    res = outcome['run'].result('backup')
    assert res.get('failed') is True, res
    assert files_in(dest) == []


def test_full_disk_fails_and_leaves_nothing(lab, play, source, dest):
    lab.psql('primary', "CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 20) AS pad "
                        "FROM generate_series(1, 12000) g", db=DB)  # about 8 MB as plain SQL
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 * 1024 * 1024, hard))  # children inherit it
    try:
        run = play([backup(lab, dest, 'plain', format='plain'), backup(lab, dest, 'custom', compress=0)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        lab.psql('primary', 'DROP TABLE filler', db=DB)
    for task in ('plain', 'custom'):
        res = run.result(task)
        assert res['failed'] is True, task
        assert 'pg_dump' in res['msg'] and ('SIGXFSZ' in res['msg'] or 'File too large' in res['msg']), res['msg']
    assert files_in(dest) == []


def test_check_mode_makes_and_deletes_nothing(lab, play, source, dest):
    run = play([backup(lab, dest, 'first', name='a_{timestamp}{ext}')])
    assert run.rc == 0, run
    before = files_in(dest)
    run = play([backup(lab, dest, keep_last=1)], check=True)
    res = run.result('backup')
    assert res['changed'] is True and not res.get('failed')
    assert res['path'].startswith(dest) and not os.path.exists(res['path'])
    assert res['deleted'] == [os.path.join(dest, before[0])]
    assert res['commands'] == []
    assert files_in(dest) == before


def test_retention_never_deletes_the_newest_verified_and_is_idempotent(lab, play, source, dest):
    tasks = [backup(lab, dest, 'r%d' % i, name='r%d_{timestamp}{ext}' % i) for i in (1, 2, 3)]
    run = play(tasks)
    assert run.rc == 0, run
    paths = [run.result('r%d' % i)['path'] for i in (1, 2, 3)]
    run = play([verify_task(lab, path=paths[0])])
    assert run.rc == 0, run
    assert run.result('verify')['passed'] is True
    run = play([backup(lab, dest, 'r4', name='r4_{timestamp}{ext}', keep_last=1),
                backup(lab, dest, 'prune', keep_last=1, prune_only=True),
                backup(lab, dest, 'prune_age', max_age_days=0, prune_only=True)])
    assert run.rc == 0, run
    r4 = run.result('r4')
    assert sorted(r4['deleted']) == sorted(paths[1:])
    assert os.path.exists(paths[0]) and os.path.exists(r4['path'])  # newest verified and newest kept
    assert run.result('prune')['changed'] is False and run.result('prune')['deleted'] == []
    assert run.result('prune_age')['deleted'] == []
    assert files_in(dest) == sorted([os.path.basename(p) for p in (paths[0], r4['path'])]
                                    + [os.path.basename(p) + '.manifest.json' for p in (paths[0], r4['path'])])


def test_verify_passes_records_and_drops_the_scratch_database(lab, play, source, dest):
    # a scratch database left behind by a killed run (its pid is gone) is dropped
    lab.psql('primary', 'CREATE DATABASE dbops_verify_leftover')
    lab.psql('primary', "COMMENT ON DATABASE dbops_verify_leftover IS '%s'" % json.dumps(dict(
        tool='procgenie.dbops.pg_backup_verify', host=os.uname()[1], pid=2 ** 22 + 7,
        started='2026-01-01T00:00:00Z')))
    tenant = lab.psql('primary', "SELECT md5('tenant-3')::uuid", db=DB)
    run = play([backup(lab, dest, 'full', format='directory', jobs=2),
                backup(lab, dest, 'schema', kind='schema_only'),
                backup(lab, dest, 'tenant', kind='tenant', tenant=tenant),
                backup(lab, dest, 'tables', kind='tables', tables=['request_items', ODD])])
    assert run.rc == 0, run
    lab.psql('primary', "INSERT INTO vendors (tenant_id, name, country, risk_rating) "
                        "SELECT id, 'late', 'DE', 1 FROM tenants", db=DB)
    run = play([verify_task(lab, 'newest', dest=dest, kind='full', compare_live=True),
                verify_task(lab, 'tenant', path=run.result('tenant')['path']),
                verify_task(lab, 'tables', path=run.result('tables')['path']),
                verify_task(lab, 'check', dest=dest, kind='full')], check=False)
    lab.psql('primary', "DELETE FROM vendors WHERE name = 'late'", db=DB)
    assert run.rc == 0, run
    res = run.result('newest')
    assert res['passed'] is True and res['checksum_ok'] is True and res['mismatches'] == []
    assert res['rls_problems'] == []
    assert res['path'].endswith('.dir')
    assert all(t['match'] for t in res['tables']) and len(res['tables']) >= 10
    assert res['drift'] == {'public.vendors': 3}
    assert any('pg_restore' in c[0] and '--jobs=2' in c for c in res['commands'])
    assert run.result('tenant')['passed'] is True
    assert run.result('tables')['passed'] is True
    with open(res['manifest']) as handle:
        manifest = json.load(handle)
    assert manifest['verifications'][-1]['result'] == 'passed'
    assert manifest['rls']['public.vendors']['enabled'] is True
    assert [p['name'] for p in manifest['rls']['public.vendors']['policies']] == ['tenant_isolation']
    assert lab.psql('primary', "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_verify_%'") == '0'


def test_verify_fails_on_a_tampered_artifact_and_a_lost_policy(lab, play, source, dest):
    run = play([backup(lab, dest, 'custom'), backup(lab, dest, 'dir', format='directory', name='d_{timestamp}{ext}'),
                backup(lab, dest, 'plain', format='plain', name='p_{timestamp}{ext}')])
    assert run.rc == 0, run
    custom, directory, plain = (run.result(t)['path'] for t in ('custom', 'dir', 'plain'))
    with open(custom, 'r+b') as handle:  # flip one byte in the middle
        handle.seek(os.path.getsize(custom) // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.unlink(os.path.join(directory, sorted(f for f in os.listdir(directory) if f != 'toc.dat')[0]))
    with open(plain + '.manifest.json') as handle:  # the manifest says vendors had a policy it does not have
        manifest = json.load(handle)
    manifest['rls']['public.vendors']['policies'].append(dict(name='ghost', cmd='*', permissive=True,
                                                              roles=['public'], using_expr='true', check_expr=None))
    manifest['row_counts']['public.contracts'] += 1
    with open(plain + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)
    run = play([verify_task(lab, 'custom', path=custom), verify_task(lab, 'dir', path=directory),
                verify_task(lab, 'plain', path=plain),
                verify_task(lab, 'report_only', path=plain, fail_on_mismatch=False)])
    res = run.result('custom')
    assert res['failed'] is True and 'does not match its manifest' in res['msg'] and 'SHA-256' in res['msg']
    res = run.result('dir')
    assert res['failed'] is True and 'is missing' in res['msg']
    res = run.result('plain')
    assert res['failed'] is True
    assert 'public.contracts: 90 rows restored, the manifest says 91' in res['msg']
    assert 'policy ghost missing after restore' in res['msg']
    report = run.result('report_only')
    assert report.get('failed') is not True and report['passed'] is False
    with open(custom + '.manifest.json') as handle:
        assert json.load(handle)['verifications'][-1]['result'] == 'failed'
    assert lab.psql('primary', "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_verify_%'") == '0'
