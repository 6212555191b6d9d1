"""pg_integrity_check on a small cluster of its own (never the shared lab): clean, then a heap page and an index
page damaged on disk while it is stopped; amcheck created only when asked; the parent check only in a maintenance
window; Azure's allow-list read from the server parameter. Each through pg_amcheck and through the extension's
functions (method: functions, and auto without the program), which must find the same."""

from __future__ import annotations

import json
import os

import pytest

DB, NOEXT = 'integ', 'integ_noext'


@pytest.fixture(scope='module')
def cluster(workdir):
    import pglab
    lab = pglab.Lab(os.path.join(workdir, 'integrity'), pg=os.environ.get('LAB_PG', 'auto'))
    lab.start(seed=False, standby=False)
    for name in (DB, NOEXT):
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s"' % name)
        lab.psql('primary', 'CREATE DATABASE "%s"' % name)
    lab.psql('primary', "CREATE EXTENSION amcheck; CREATE TABLE victim (id int PRIMARY KEY, note text); "
                        "INSERT INTO victim SELECT g, repeat('x', 50) || g FROM generate_series(1, 2000) g; "
                        "CREATE TABLE bystander (id int PRIMARY KEY); INSERT INTO bystander VALUES (1)", db=DB)
    yield lab
    lab.destroy()


def params(lab, db=DB, **args):
    state = lab.state
    node = state['nodes']['primary']
    return dict(login_host=node['host'], login_port=node['port'], login_user=state['superuser'],
                login_password=state['password'], login_db=db, **args)


def task(lab, name, **args):
    return dict(name=name, ignore_errors=True, **{'procgenie.dbops.pg_integrity_check': params(lab, **args)})


def damage(lab, relations):
    """Overwrite bytes in the middle of the given (relation, block) pages while the cluster is stopped."""
    paths = dict((rel, lab.psql('primary', "SELECT pg_relation_filepath(%s)" % ("'%s'" % rel), db=DB))
                 for rel, _block in relations)
    lab.psql('primary', 'CHECKPOINT')
    lab.stop()
    datadir = lab.node('primary')['datadir']
    for rel, block in relations:
        with open(os.path.join(datadir, paths[rel]), 'r+b') as handle:
            handle.seek(block * 8192 + 3000)
            handle.write(b'\xde\xad\xbe\xef' * 16)
    lab.start(seed=False, standby=False)


ROW_KEYS = {'database', 'schema', 'relation', 'kind', 'block', 'offset', 'attribute', 'message'}


def same_rows(problems):
    """The problem rows in an order that does not depend on the method (pg_amcheck reports as its jobs finish)."""
    return sorted(json.dumps(p, sort_keys=True) for p in problems)


def no_program_dir(lab):
    """A folder without pg_amcheck (nor any other program), for pg_bindir."""
    path = os.path.join(os.path.dirname(lab.node('primary')['datadir']), 'empty-bin')
    os.makedirs(path, exist_ok=True)
    return path


def test_clean_then_damaged_pages_are_found(cluster, play):
    lab = cluster
    run = play([task(lab, 'clean', jobs=2, heapallindexed=True),
                task(lab, 'parent', parent_check=True),
                task(lab, 'one', tables=['victim']),
                task(lab, 'clean_fn', method='functions', heapallindexed=True),
                task(lab, 'one_fn', method='functions', tables=['victim']),
                task(lab, 'auto_fn', pg_bindir=no_program_dir(lab)),
                task(lab, 'program_missing', method='pg_amcheck', pg_bindir=no_program_dir(lab))])
    res = run.result('clean')
    assert not res.get('failed') and res['changed'] is False, res.get('msg')
    assert res['corrupt'] is False and res['problems'] == [] and res['data_checksums'] is True
    assert res['databases'][0]['checked'] is True and res['databases'][0]['amcheck_version']
    argv = res['commands'][0]
    assert os.path.basename(argv[0]) == 'pg_amcheck' and '--jobs=2' in argv and '--heapallindexed' in argv
    assert argv[-1] == "dbname='%s'" % DB and lab.state['password'] not in run.text
    assert res['azure'] == dict(extensions=None, amcheck_allow_listed=None)
    res = run.result('parent')
    assert res.get('failed') and 'maintenance_window' in res['msg'] and res['commands'] == []
    assert '--table="public"."victim"' in run.result('one')['commands'][0]
    assert run.result('clean')['method'] == 'pg_amcheck' and run.result('clean')['method_reason'] is None
    # the extension's functions: the same verdict, every table, TOAST and btree index of the database
    res = run.result('clean_fn')
    assert not res.get('failed') and res['changed'] is False, res.get('msg')
    assert res['method'] == 'functions' and res['commands'] == [] and res['method_reason'] is None
    assert res['corrupt'] is False and res['problems'] == [], res['problems']
    entry = res['databases'][0]
    assert entry['checked'] is True and entry['tables_checked'] is True and entry['reason'] is None
    assert entry['relations']['tables'] > 50 and entry['relations']['indexes'] > 100, entry  # pg_catalog too
    calls = [q for q in res['queries'] if 'verify_heapam' in q or 'bt_index_check' in q]
    assert len(calls) == entry['relations']['tables'] + entry['relations']['indexes']
    assert any("verify_heapam(relation => c.oid, on_error_stop => false, check_toast => true, skip => 'none')" in q
               for q in calls), calls[:3]
    assert any('bt_index_check(index => c.oid, heapallindexed => true)' in q for q in calls), calls[-3:]
    res = run.result('one_fn')
    assert not res.get('failed') and res['databases'][0]['relations'] == dict(tables=2, indexes=2), res  # + TOAST
    # auto without the program: the functions, and why
    res = run.result('auto_fn')
    assert not res.get('failed') and res['method'] == 'functions' and res['corrupt'] is False, res.get('msg')
    assert 'pg_amcheck' in res['method_reason'] and res['commands'] == []
    res = run.result('program_missing')
    assert res.get('failed') and 'pg_amcheck' in res['msg'] and 'empty-bin' in res['msg'], res

    damage(lab, [('victim', 2), ('victim_pkey', 1)])
    run = play([task(lab, 'damaged', jobs=2), task(lab, 'forensic', tables=['public.victim'], heapallindexed=True,
                                                   parent_check=True, maintenance_window=True),
                task(lab, 'damaged_fn', method='functions'),
                task(lab, 'damaged_auto', pg_bindir=no_program_dir(lab)),
                task(lab, 'forensic_fn', method='functions', tables=['public.victim'], heapallindexed=True,
                     parent_check=True, maintenance_window=True)])
    res = run.result('damaged')
    assert not res.get('failed') and res['changed'] is False, res.get('msg')
    assert res['corrupt'] is True
    found = sorted((p['relation'], p['kind'], p['block']) for p in res['problems'])
    assert found == [('victim', 'table', 2), ('victim_pkey', 'index', 1)], res['problems']
    assert all(p['schema'] == 'public' and p['database'] == DB and 'invalid page' in p['message']
               for p in res['problems'])
    failures = dict((r['database'], r['failures']) for r in res['checksum_failures'])
    assert failures[DB] >= 2
    res = run.result('forensic')
    assert not res.get('failed') and res['corrupt'] is True and '--parent-check' in res['commands'][0]
    assert set(p['relation'] for p in res['problems']) == {'victim', 'victim_pkey'}
    # the functions find the same pages, in rows of the same shape (the error each check raised, caught per relation,
    # and the run went on to the other relations)
    program = run.result('damaged')
    for name in ('damaged_fn', 'damaged_auto'):
        res = run.result(name)
        assert not res.get('failed') and res['method'] == 'functions' and res['corrupt'] is True, res.get('msg')
        assert all(set(p) == ROW_KEYS for p in res['problems']) and all(set(p) == ROW_KEYS for p in program['problems'])
        assert same_rows(res['problems']) == same_rows(program['problems']), (res['problems'], program['problems'])
        assert res['databases'][0]['relations']['tables'] > 50, res['databases']
    res = run.result('forensic_fn')
    assert not res.get('failed') and res['corrupt'] is True, res.get('msg')
    assert set(p['relation'] for p in res['problems']) == {'victim', 'victim_pkey'}
    assert any('bt_index_parent_check(index => c.oid, heapallindexed => true, rootdescend => false)' in q
               for q in res['queries'])


def test_tuple_level_rows_are_the_same_through_both_methods(cluster, play):
    """With the damaged pages read despite their checksums (ignore_checksum_failure), verify_heapam reports the
    damaged tuples one by one (block, offset, attribute): the functions give exactly pg_amcheck's rows."""
    lab = cluster
    lab.psql('primary', 'ALTER DATABASE "%s" SET ignore_checksum_failure = on' % DB)
    try:
        run = play([task(lab, 'program', method='pg_amcheck', tables=['victim']),
                    task(lab, 'functions', method='functions', tables=['victim'])])
    finally:
        lab.psql('primary', 'ALTER DATABASE "%s" RESET ignore_checksum_failure' % DB)
    program, funcs = run.result('program'), run.result('functions')
    assert not program.get('failed') and not funcs.get('failed'), (program.get('msg'), funcs.get('msg'))
    assert funcs['method'] == 'functions' and program['method'] == 'pg_amcheck'
    assert any(p['kind'] == 'table' and p['block'] == 2 and p['offset'] is not None for p in program['problems']), \
        program['problems']
    assert same_rows(funcs['problems']) == same_rows(program['problems']), (funcs['problems'], program['problems'])


def test_extension_only_when_asked_and_azure_allow_list(cluster, play):
    lab = cluster
    run = play([task(lab, 'missing', db=NOEXT), task(lab, 'would', db=NOEXT, create_extension=True)], check=True)
    res = run.result('missing')
    assert not res.get('failed') and res['changed'] is False and res['databases'][0]['checked'] is False
    assert 'create_extension' in res['databases'][0]['reason'] and res['commands'] == []
    res = run.result('would')
    assert res['changed'] is True and res['create_extension_in'] == [NOEXT] and res['commands'] == []
    assert lab.psql('primary', "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'", db=NOEXT) == '0'
    # Azure keeps an allow-list in the server parameter azure.extensions
    lab.psql('primary', 'ALTER DATABASE "%s" SET azure.extensions = \'pg_trgm,pgcrypto\'' % NOEXT)
    try:
        run = play([task(lab, 'azure', db=NOEXT, create_extension=True)])
        res = run.result('azure')
        assert res.get('failed') and 'allow-list' in res['msg'] and 'azure.extensions' in res['msg'], res
    finally:
        lab.psql('primary', 'ALTER DATABASE "%s" RESET azure.extensions' % NOEXT)
    run = play([task(lab, 'create', db=NOEXT, create_extension=True), task(lab, 'again', db=NOEXT,
                                                                           create_extension=True)])
    res = run.result('create')
    assert not res.get('failed') and res['changed'] is True, res.get('msg')
    assert res['databases'][0]['extension_created'] is True and res['databases'][0]['checked'] is True
    assert res['corrupt'] is False  # the other database's checksum failures are listed, not this one's verdict
    assert any(r['database'] == DB and r['failures'] for r in res['checksum_failures'])
    res = run.result('again')
    assert res['changed'] is False and res['databases'][0]['checked'] is True


def test_amcheck_without_verify_heapam_checks_only_indexes_and_says_so(cluster, play):
    """amcheck 1.2 (what PostgreSQL 13 has; here created at that version) has no verify_heapam: the functions check
    the btree indexes only and the result says the tables were not checked; auto does not run pg_amcheck there (it
    would report every table as failing); method pg_amcheck is refused before anything runs."""
    lab = cluster
    old = 'integ_old'
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s"' % old)
    lab.psql('primary', 'CREATE DATABASE "%s"' % old)
    lab.psql('primary', "CREATE EXTENSION amcheck VERSION '1.2'; CREATE TABLE t (id int PRIMARY KEY, v text); "
                        "INSERT INTO t SELECT g, g::text FROM generate_series(1, 100) g", db=old)
    run = play([task(lab, 'functions', db=old, method='functions'), task(lab, 'auto', db=old),
                task(lab, 'program', db=old, method='pg_amcheck')])
    for name in ('functions', 'auto'):
        res = run.result(name)
        assert not res.get('failed') and res['method'] == 'functions' and res['corrupt'] is False, res.get('msg')
        entry = res['databases'][0]
        assert entry['amcheck_version'] == '1.2' and entry['checked'] is True and entry['tables_checked'] is False
        assert 'verify_heapam' in entry['reason'] and 'not its tables' in entry['reason'], entry
        assert entry['relations']['tables'] == 0 and entry['relations']['indexes'] > 50, entry
        assert any('not its tables' in w for w in res['warnings']), res.get('warnings')
        assert not any('verify_heapam' in q for q in res['queries']) and res['commands'] == []
        assert any('bt_index_check' in q for q in res['queries'])
    assert 'amcheck 1.2 in database integ_old has no verify_heapam' in run.result('auto')['method_reason']
    res = run.result('program')
    assert res.get('failed') and 'verify_heapam' in res['msg'] and 'method: functions' in res['msg'], res
    assert res['commands'] == []


def test_a_partitioned_table_is_checked_through_its_partitions(cluster, play):
    """A partitioned table has no storage: both methods check its partitions (pg_amcheck failed on the parent: "no
    heap tables to check matching")."""
    import pglab
    lab = cluster
    part = 'integ_part'
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s"' % part)
    lab.psql('primary', 'CREATE DATABASE "%s"' % part)
    lab.psql('primary', "CREATE EXTENSION amcheck; CREATE TABLE p (id int PRIMARY KEY) PARTITION BY RANGE (id); "
                        "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100); "
                        "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200); "
                        "INSERT INTO p SELECT generate_series(0, 199)", db=part)
    # an index left invalid by a failed CREATE INDEX CONCURRENTLY is skipped, as pg_amcheck skips it
    lab.psql('primary', 'CREATE TABLE dup (x int); INSERT INTO dup VALUES (1), (1)', db=part)
    with pytest.raises(pglab.LabError):
        lab.psql('primary', 'CREATE UNIQUE INDEX CONCURRENTLY dup_x ON dup (x)', db=part)
    assert lab.psql('primary', "SELECT indisvalid FROM pg_index WHERE indexrelid = 'dup_x'::regclass", db=part) == 'f'
    run = play([task(lab, 'program', db=part, method='pg_amcheck', tables=['p']),
                task(lab, 'functions', db=part, method='functions', tables=['p']),
                task(lab, 'invalid', db=part, method='functions', tables=['dup']),
                task(lab, 'invalid_program', db=part, method='pg_amcheck', tables=['dup'])])
    res = run.result('program')
    assert not res.get('failed') and res['corrupt'] is False, res.get('msg')
    tables = [a for a in res['commands'][0] if a.startswith('--table=')]
    assert sorted(tables) == ['--table="public"."p1"', '--table="public"."p2"'], res['commands']
    res = run.result('functions')
    assert not res.get('failed') and res['corrupt'] is False, res.get('msg')
    assert res['databases'][0]['relations'] == dict(tables=2, indexes=2), res['databases']
    res = run.result('invalid')
    assert not res.get('failed') and res['corrupt'] is False and res['problems'] == [], res.get('msg')
    assert res['databases'][0]['relations'] == dict(tables=1, indexes=0), res['databases']
    assert any('indisvalid' in q for q in res['queries'])
    res = run.result('invalid_program')
    assert not res.get('failed') and res['corrupt'] is False and res['problems'] == [], res.get('msg')


def test_cancel_ends_pg_amcheck_and_its_sessions_within_2s(cluster, play):
    import psycopg2
    from tests.integration.test_cancel import Monitor, cancel, in_thread, module_process, program_of, wait_until
    lab = cluster
    blocker = psycopg2.connect(**lab.conninfo('primary', DB))
    monitor = Monitor(lab)
    try:
        blocker.cursor().execute('LOCK TABLE bystander IN ACCESS EXCLUSIVE MODE')
        thread, outcome = in_thread(play, [task(lab, 'check', tables=['bystander'], jobs=2)])
        module = module_process('pg_integrity_check')
        wait_until(lambda: program_of(module, ('pg_amcheck',)), 60, 'pg_amcheck')
        wait_until(lambda: monitor.active('%verify_heapam%') or monitor.active('%bt_index_check%'), 60,
                   'pg_amcheck waiting for the lock on bystander')
        cancel(module, monitor, '%bystander%')
        blocker.rollback()
        thread.join(60)
        assert outcome['run'].result('check').get('failed') is True
    finally:
        blocker.close()
        monitor.close()


def test_cancel_ends_the_functions_check_and_its_session_within_2s(cluster, play):
    """method: functions waits for the lock on bystander in verify_heapam; SIGTERM ends the module process and its
    sessions within 2 s."""
    import psycopg2
    from tests.integration.test_cancel import Monitor, cancel, in_thread, module_process, wait_until
    lab = cluster
    blocker = psycopg2.connect(**lab.conninfo('primary', DB))
    monitor = Monitor(lab)
    try:
        blocker.cursor().execute('LOCK TABLE bystander IN ACCESS EXCLUSIVE MODE')
        thread, outcome = in_thread(play, [task(lab, 'check', tables=['bystander'], method='functions')])
        module = module_process('pg_integrity_check')
        wait_until(lambda: monitor.active('%verify_heapam%'), 60, 'verify_heapam waiting for the lock on bystander')
        cancel(module, monitor, '%verify_heapam%', tree=[module])
        blocker.rollback()
        thread.join(60)
        assert outcome['run'].result('check').get('failed') is True
    finally:
        blocker.close()
        monitor.close()


def test_functions_on_a_standby(lab, play):
    """On a hot standby the functions check tables and indexes (bt_index_check takes an AccessShareLock); the parent
    check is refused there, as with pg_amcheck."""
    import time
    from tests.conftest import node_params
    name = 'integ_standby'
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    lab.psql('primary', 'CREATE DATABASE "%s"' % name)
    try:
        lab.psql('primary', 'CREATE EXTENSION amcheck; CREATE TABLE t (id int PRIMARY KEY, v text); '
                            'INSERT INTO t SELECT g, g::text FROM generate_series(1, 1000) g', db=name)
        deadline = time.monotonic() + 60
        while True:
            try:
                if lab.psql('standby', 'SELECT count(*) FROM t', db=name) == '1000':
                    break
            except Exception:  # pylint: disable=broad-except  # not replayed yet
                pass
            assert time.monotonic() < deadline, 'the standby did not replay'
            time.sleep(0.2)
        args = dict(node_params(lab, node='standby', db=name), method='functions')
        module = 'procgenie.dbops.pg_integrity_check'
        run = play([dict(name='standby', ignore_errors=True, **{module: dict(args, heapallindexed=True)}),
                    dict(name='parent', ignore_errors=True,
                         **{module: dict(args, parent_check=True, maintenance_window=True)})])
        res = run.result('standby')
        assert not res.get('failed') and res['in_recovery'] is True and res['method'] == 'functions', res.get('msg')
        assert res['corrupt'] is False and res['problems'] == [] and res['databases'][0]['tables_checked'] is True
        assert res['databases'][0]['relations']['indexes'] > 50
        res = run.result('parent')
        assert res.get('failed') and 'standby' in res['msg'] and not any('bt_index' in q for q in res['queries']), res
    finally:
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
