"""pg_integrity_check on a small cluster of its own (never the shared lab): clean, then a heap page and an index
page damaged on disk while it is stopped; amcheck created only when asked; the parent check only in a maintenance
window; Azure's allow-list read from the server parameter."""

from __future__ import annotations

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


def test_clean_then_damaged_pages_are_found(cluster, play):
    lab = cluster
    run = play([task(lab, 'clean', jobs=2, heapallindexed=True),
                task(lab, 'parent', parent_check=True),
                task(lab, 'one', tables=['victim'])])
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

    damage(lab, [('victim', 2), ('victim_pkey', 1)])
    run = play([task(lab, 'damaged', jobs=2), task(lab, 'forensic', tables=['public.victim'], heapallindexed=True,
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
