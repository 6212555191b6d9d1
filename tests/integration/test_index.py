"""pg_index against the lab's real primary (Debian PostgreSQL 15 with hypopg), run through ansible-playbook."""

from __future__ import annotations

import psycopg2
import pytest

from tests.conftest import node_params

DB = 'idx_test'


def task(lab, title, **args):
    return dict(name=title, ignore_errors=True, **{'procgenie.dbops.pg_index': dict(node_params(lab, db=DB), **args)})


def sql(lab, text):
    return lab.psql('primary', text, db=DB)


def connect(lab):
    state = lab.state
    node = state['nodes']['primary']
    conn = psycopg2.connect(host=node['host'], port=node['port'], user=state['superuser'],
                            password=state['password'], dbname=DB)
    return conn


@pytest.fixture(scope='module')
def database(lab):
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'CREATE DATABASE %s' % DB)
    sql(lab, "CREATE TABLE items (id int PRIMARY KEY, label text, created_at timestamptz, deleted_at timestamptz); "
             "INSERT INTO items SELECT g, 'label ' || g, now() - g * interval '1 minute', NULL "
             "FROM generate_series(1, 5000) g; ANALYZE items")
    yield DB
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)


def indexes(lab, table):
    out = sql(lab, "SELECT c.relname || ':' || left(i.indisvalid::text, 1) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                   "WHERE i.indrelid = '%s'::regclass AND NOT i.indisprimary ORDER BY 1" % table)
    return [line for line in out.splitlines() if line]


def test_create_idempotent_replace_refusals_and_absent(lab, play, database):
    tasks = [
        task(lab, 'check', name='items_created_idx', table='items', columns=['created_at DESC'], where='deleted_at IS NULL'),
    ]
    run = play(tasks, check=True)
    res = run.result('check')
    assert res['changed'] is True and not res.get('failed'), res
    assert res['index']['action'] == 'create' and 'CONCURRENTLY' in res['index']['sql'], res['index']
    assert indexes(lab, 'items') == []
    tasks = [
        task(lab, 'create', name='items_created_idx', table='items', columns=['created_at DESC'],
             where='deleted_at IS NULL'),
        task(lab, 'again', name='items_created_idx', table='public.items', columns=['created_at  desc'],
             where='(deleted_at is null)'),
        task(lab, 'other', name='items_created_idx', table='items', columns=['created_at']),
        task(lab, 'expression', name='items_label_idx', table='items', columns=['lower(label)', 'id'],
             include=['created_at']),
        task(lab, 'expression again', name='items_label_idx', table='items', columns=['lower( label )', 'id'],
             include=['created_at']),
        task(lab, 'injection', name='items_bad_idx', table='items', columns=['id); DROP TABLE items; --']),
        task(lab, 'injection where', name='items_bad_idx', table='items', columns=['id'],
             where='true; DROP TABLE items'),
        task(lab, 'bad column', name='items_bad_idx', table='items', columns=['nope']),
        task(lab, 'replace', name='items_created_idx', table='items', columns=['created_at'], replace=True),
        task(lab, 'replace again', name='items_created_idx', table='items', columns=['created_at'], replace=True),
    ]
    run = play(tasks)
    res = run.result('create')
    assert res['changed'] is True and not res.get('failed'), res
    assert 'WHERE (deleted_at IS NULL)' in res['index']['definition'], res['index']
    assert run.result('again')['changed'] is False and not run.result('again').get('failed'), run.result('again')
    other = run.result('other')
    assert other.get('failed') and 'another definition' in other['msg'] and 'replace' in other['msg'], other
    assert run.result('expression')['changed'] is True and not run.result('expression').get('failed')
    again = run.result('expression again')
    assert again['changed'] is False and not again.get('failed'), again
    for name in ('injection', 'injection where'):
        bad = run.result(name)
        assert bad.get('failed') and 'not' in bad['msg'] and not any('DROP TABLE' in q for q in bad['queries']), bad
    bad = run.result('bad column')
    assert bad.get('failed') and 'nope' in bad['msg'] and 'does not exist' in bad['msg'], bad
    replaced = run.result('replace')
    assert replaced['changed'] is True and replaced['index']['action'] == 'replace', replaced
    assert 'WHERE' not in replaced['index']['definition'] and 'DESC' not in replaced['index']['definition']
    assert run.result('replace again')['changed'] is False
    assert indexes(lab, 'items') == ['items_created_idx:t', 'items_label_idx:t']
    assert sql(lab, 'SELECT count(*) FROM items') == '5000'
    run = play([task(lab, 'rebuild', name='items_label_idx', state='rebuilt'),
                task(lab, 'drop', name='items_label_idx', table='items', state='absent'),
                task(lab, 'drop again', name='items_label_idx', table='items', state='absent')])
    rebuilt = run.result('rebuild')
    assert rebuilt['changed'] is True and not rebuilt.get('failed'), rebuilt
    assert any('REINDEX INDEX CONCURRENTLY' in q for q in rebuilt['queries'])
    assert run.result('drop')['changed'] is True and not run.result('drop').get('failed'), run.result('drop')
    assert run.result('drop again')['changed'] is False
    assert indexes(lab, 'items') == ['items_created_idx:t']


def test_build_behind_a_lock_retries_then_succeeds(lab, play, database):
    from tests.integration.test_cancel import Monitor, in_thread, wait_until
    sql(lab, 'CREATE TABLE locked AS SELECT g AS id, g % 10 AS grp FROM generate_series(1, 2000) g')
    writer = connect(lab)
    writer.cursor().execute('UPDATE locked SET grp = grp WHERE id = 1')  # an open transaction writing to the table
    monitor = Monitor(lab)
    try:
        thread, outcome = in_thread(play, [task(lab, 'build', name='locked_grp_idx', table='locked', columns=['grp'],
                                                lock_timeout='400ms', lock_retries=8, lock_retry_delay=0.2)])
        # the first attempt made its catalog entry, waited for the writer and timed out; the retry drops its
        # INVALID leftover (and waits for the writer too): then the writer commits
        wait_until(lambda: monitor.active('DROP INDEX CONCURRENTLY%locked_grp_idx%'), 60, 'a retry')
        writer.commit()
        thread.join(120)
    finally:
        writer.close()
        monitor.close()
    res = outcome['run'].result('build')
    assert res['changed'] is True and not res.get('failed'), res
    assert res['lock_retries'] >= 1, res
    assert 'public.locked_grp_idx' in res['dropped_invalid'], res
    assert indexes(lab, 'locked') == ['locked_grp_idx:t']

    # a lock held longer than the retries last: the run fails naming the holder, and leaves nothing behind
    holder = connect(lab)
    holder.cursor().execute('LOCK TABLE locked IN SHARE MODE')
    try:
        pid = holder.get_backend_pid()
        run = play([task(lab, 'blocked', name='locked_id_idx', table='locked', columns=['id'], lock_timeout='200ms',
                         lock_retries=1, lock_retry_delay=0.1)])
    finally:
        holder.close()
    res = run.result('blocked')
    assert res.get('failed') and 'lock_timeout (200ms) reached 2 time(s)' in res['msg'] and str(pid) in res['msg'], res
    assert indexes(lab, 'locked') == ['locked_grp_idx:t']


def test_failed_unique_build_leaves_no_invalid_index(lab, play, database):
    sql(lab, 'CREATE TABLE dupes AS SELECT g AS id, g % 100 AS code FROM generate_series(1, 1000) g')
    run = play([task(lab, 'unique', name='dupes_code_key', table='dupes', columns=['code'], unique=True),
                task(lab, 'kept', name='dupes_code_key', table='dupes', columns=['code'], unique=True,
                     keep_invalid=True)])
    res = run.result('unique')
    assert res.get('failed') and 'could not create unique index' in res['msg'], res
    assert res['invalid_index'] == 'public.dupes_code_key' and res['dropped_invalid'] == ['public.dupes_code_key']
    kept = run.result('kept')
    assert kept.get('failed') and kept.get('invalid_kept') is True, kept
    assert indexes(lab, 'dupes') == ['dupes_code_key:f']
    # the duplicates gone, the next run finds the INVALID index, says so, drops it and builds
    sql(lab, 'DELETE FROM dupes WHERE id > 100')
    run = play([task(lab, 'check', name='dupes_code_key', table='dupes', columns=['code'], unique=True)], check=True)
    res = run.result('check')
    assert res['changed'] is True and res['index']['invalid_before'] is True, res
    assert any('INVALID' in w and 'dropped' in w for w in res.get('warnings', [])), res
    assert indexes(lab, 'dupes') == ['dupes_code_key:f']
    run = play([task(lab, 'fixed', name='dupes_code_key', table='dupes', columns=['code'], unique=True)])
    res = run.result('fixed')
    assert res['changed'] is True and not res.get('failed'), res
    assert res['dropped_invalid'] == ['public.dupes_code_key'], res
    assert indexes(lab, 'dupes') == ['dupes_code_key:t']


def test_advisor_keeps_only_the_index_that_helps(lab, play, database):
    sql(lab, "CREATE TABLE orders AS SELECT g AS id, (g * 7919) % 5000 AS customer_id, "
             "CASE WHEN g % 2 = 0 THEN 'open' ELSE 'closed' END AS status, g AS amount "
             "FROM generate_series(1, 20000) g; ANALYZE orders")
    queries = ['SELECT * FROM orders WHERE customer_id = $1',
               "SELECT count(*) FROM orders WHERE status = 'open'",
               'DROP TABLE orders']
    run = play([task(lab, 'advise', advise=True, queries=queries)])
    res = run.result('advise')
    assert res['changed'] is False and not res.get('failed'), res
    assert [(a['table'], a['columns']) for a in res['advice']] == [('public.orders', ['customer_id'])], res['advice']
    advice = res['advice'][0]
    assert advice['savings_pct'] >= 50 and advice['cost_after'] < advice['cost_before'], advice
    assert advice['statements'][0]['generic_plan'] is True
    assert advice['create_sql'].startswith('CREATE INDEX CONCURRENTLY "orders_customer_id_idx"'), advice
    rejected = dict((tuple(r['columns']), r) for r in res['advisor']['rejected'])
    assert ('status',) in rejected and rejected[('status',)]['best_savings_pct'] < 50, rejected
    skipped = [s for s in res['advisor']['statements'] if s['skipped']]
    assert [s['query'] for s in skipped] == ['DROP TABLE orders'], res['advisor']['statements']
    # nothing changed on the server: no extension left, no index, the table still there
    assert sql(lab, "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'") == '0'
    assert indexes(lab, 'orders') == []

    # from pg_stat_statements (the statements just run), then applied: check mode first
    sql(lab, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()')
    conn = connect(lab)
    with conn.cursor() as cur:
        for customer in range(30):
            cur.execute('SELECT * FROM orders WHERE customer_id = %s', (customer,))
    conn.close()
    run = play([task(lab, 'plan', advise=True, apply=True, statements=5)], check=True)
    res = run.result('plan')
    assert res['changed'] is True and not res.get('failed'), res
    assert [a['columns'] for a in res['advice']] == [['customer_id']], res['advisor']
    assert res['advice'][0]['action']['action'] == 'create'
    assert indexes(lab, 'orders') == []
    run = play([task(lab, 'apply', advise=True, apply=True, statements=5),
                task(lab, 'apply again', advise=True, apply=True, statements=5)])
    res = run.result('apply')
    assert res['changed'] is True and not res.get('failed'), res
    assert indexes(lab, 'orders') == ['orders_customer_id_idx:t']
    again = run.result('apply again')
    assert again['changed'] is False and again['advice'] == [], again
    assert sql(lab, "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'") == '0'
    # a role that cannot create hypopg is told what it needs
    sql(lab, "DROP ROLE IF EXISTS idx_app; CREATE ROLE idx_app LOGIN PASSWORD 'idx-app-pw'; "
             "GRANT SELECT ON orders TO idx_app")
    try:
        args = dict(node_params(lab, db=DB, user='idx_app', password='idx-app-pw'), advise=True, queries=queries[:1])
        run = play([dict(name='unprivileged', ignore_errors=True, **{'procgenie.dbops.pg_index': args})])
    finally:
        sql(lab, 'REVOKE ALL ON orders FROM idx_app; DROP ROLE idx_app')
    res = run.result('unprivileged')
    assert res.get('failed') and 'not created in this database' in res['msg'] and 'azure_pg_admin' in res['msg'], res
    # create_extension keeps hypopg in the database: a change, reported once
    run = play([task(lab, 'keep', advise=True, create_extension=True, queries=queries[:1]),
                task(lab, 'keep again', advise=True, create_extension=True, queries=queries[:1])])
    keep = run.result('keep')
    assert keep['changed'] is True and keep['hypopg']['created'] is True and keep['advice'] == [], keep
    assert run.result('keep again')['changed'] is False, run.result('keep again')
    assert sql(lab, "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'") == '1'


def test_cancel_ends_the_waiting_build_and_its_session(lab, play, database):
    """SIGTERM to the module (an AWX cancel) while its concurrent build waits behind a lock: within 2 s the module's
    session is gone from the server; the next run builds the index."""
    from tests.integration.test_cancel import Monitor, cancel, in_thread, module_process, wait_until
    sql(lab, 'CREATE TABLE waiting AS SELECT g AS id FROM generate_series(1, 100) g')
    holder = connect(lab)
    holder.cursor().execute('LOCK TABLE waiting IN SHARE MODE')
    monitor = Monitor(lab)
    try:
        thread, outcome = in_thread(play, [task(lab, 'build', name='waiting_id_idx', table='waiting', columns=['id'],
                                                lock_timeout='60s')])
        module = module_process('pg_index')
        wait_until(lambda: monitor.active('CREATE INDEX CONCURRENTLY%'), 60, 'the build waiting for its lock')
        cancel(module, monitor, 'CREATE INDEX CONCURRENTLY%', tree=[])
        thread.join(60)
    finally:
        holder.close()
        monitor.close()
    assert outcome['run'].result('build').get('failed'), outcome['run']
    run = play([task(lab, 'again', name='waiting_id_idx', table='waiting', columns=['id'])])
    res = run.result('again')
    assert res['changed'] is True and not res.get('failed'), res
    assert indexes(lab, 'waiting') == ['waiting_id_idx:t']
