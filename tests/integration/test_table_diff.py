"""pg_table_diff between two databases of the lab primary (and the primary against its standby), through
ansible-playbook: inserts, updates and deletes found by key, `where` scoping, row-level security refusing instead of
comparing a subset, and rows fetched growing with the differences, not with the table."""

from __future__ import annotations

import pytest

from tests.conftest import node_params

SRC, TGT = 'td_source', 'td_target'
T = '2026-01-01 00:00:00+00'
SETUP = """
CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL, amount numeric(12,2), note jsonb,
                     created_at timestamptz NOT NULL);
INSERT INTO orders SELECT g, 'open', g * 1.25, jsonb_build_object('n', g),
       timestamptz '2025-01-01 00:00+00' + g * interval '1 minute' FROM generate_series(1, 20000) g;
CREATE TABLE codes (region text, code text, label text, PRIMARY KEY (region, code));
INSERT INTO codes SELECT 'r' || (g % 5), 'c' || g, 'label ' || g FROM generate_series(1, 3000) g;
CREATE TABLE big (id integer PRIMARY KEY, payload text);
INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 100000) g;
ANALYZE;
"""
# the incident in the target at T: an UPDATE and a DELETE gone wrong; legitimate writes after T
DAMAGE = """
UPDATE orders SET status = 'cancelled' WHERE id IN (10, 500, 19999);
UPDATE orders SET amount = 0, note = '{}' WHERE id = 777;
DELETE FROM orders WHERE id IN (42, 4242);
INSERT INTO orders VALUES (20001, 'open', 1, NULL, timestamptz '%s' + interval '1 hour'),
                          (20002, 'open', 2, NULL, timestamptz '%s' + interval '2 hours');
UPDATE codes SET label = 'x' WHERE (region, code) = ('r1', 'c1');
DELETE FROM codes WHERE (region, code) = ('r2', 'c2');
INSERT INTO codes VALUES ('r9', 'new', 'n');
UPDATE big SET payload = 'changed' WHERE id IN (7, 50000, 99999);
""" % (T, T)


@pytest.fixture(scope='module')
def dbs(lab):
    for name in (SRC, TGT):
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        lab.psql('primary', 'CREATE DATABASE "%s"' % name)
        lab.psql('primary', SETUP, db=name)
    lab.psql('primary', DAMAGE, db=TGT)
    yield
    for name in (SRC, TGT):
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    lab.psql('primary', 'DROP ROLE IF EXISTS td_reader')


def diff_task(lab, name, tables, user=None, password=None, **args):
    params = node_params(lab, db=TGT, user=user, password=password)
    source = dict(login_host=params['login_host'], login_port=params['login_port'], login_db=SRC)
    return dict(name=name, ignore_errors=True, **{'procgenie.dbops.pg_table_diff': dict(
        params, source=source, tables=tables, **args)})


@pytest.fixture(scope='module')
def first(lab, dbs, collections_root, home):
    """One playbook run of the tasks the read-only tests look at (each ansible-playbook run costs seconds)."""
    from tests.harness.playbook import run_playbook
    tasks = [diff_task(lab, 'diff', [dict(name='orders'), dict(name='public.codes'), dict(name='big')]),
             diff_task(lab, 'scoped', [dict(name='big'), dict(name='orders', where="id <= 2000 -- a comment")]),
             diff_task(lab, 'where', [dict(name='orders', where="created_at < '%s'" % T)], limit=1),
             diff_task(lab, 'bad', [dict(name='orders', where="true; COMMIT; DROP TABLE orders")]),
             diff_task(lab, 'parallel', [dict(name='orders'), dict(name='codes')], parallel_workers=2),
             diff_task(lab, 'negative', [dict(name='orders')], parallel_workers=-1)]
    return run_playbook([dict(name='t', hosts='localhost', gather_facts=False, tasks=tasks)], collections_root, home)


def by_table(res):
    return dict((t['table'], t) for t in res['tables'])


def test_diff_finds_inserts_updates_deletes_by_key(lab, first):
    run = first
    res = run.result('diff')
    assert not res.get('failed') and res['changed'] is False, res.get('msg')
    tables = by_table(res)
    orders = tables['public.orders']
    assert orders['method'] == 'key_range' and orders['key'] == ['id']
    assert orders['source_rows'] == 20000 and orders['target_rows'] == 20000
    assert orders['only_in_source'] == dict(count=2, keys=[['42'], ['4242']])
    assert [r['key'] for r in orders['only_in_target']['rows']] == [['20001'], ['20002']]
    changed = dict((r['key'][0], r['columns']) for r in orders['changed']['rows'])
    assert changed == {'10': ['status'], '500': ['status'], '19999': ['status'], '777': ['amount', 'note']}
    # target_hash is the row as the target had it: md5(ROW(every column)::text)
    expected = lab.psql('primary', "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; "
                        "SELECT md5(ROW(o.*)::text) FROM orders o WHERE id = 777", db=TGT).strip()
    assert [r['target_hash'] for r in orders['changed']['rows'] if r['key'] == ['777']] == [expected]
    codes = tables['public.codes']
    assert codes['method'] == 'key_hash' and codes['key'] == ['region', 'code']
    assert codes['only_in_source']['keys'] == [['r2', 'c2']]
    assert [r['key'] for r in codes['only_in_target']['rows']] == [['r9', 'new']]
    assert [(r['key'], r['columns']) for r in codes['changed']['rows']] == [(['r1', 'c1'], ['label'])]
    assert res['differences'] is True
    assert set(res['differing_tables']) == {'public.orders', 'public.codes', 'public.big'}
    # both sides read in one REPEATABLE READ snapshot, row_security off
    queries = '\n'.join(res['queries'])
    assert 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' in queries and '"row_security" = \'off\'' in queries
    assert res['commands'] == [] and lab.state['password'] not in run.text


def test_parallel_workers_only_on_request_and_the_same_answer(first):
    plain, parallel = by_table(first.result('diff')), first.result('parallel')
    assert not parallel.get('failed'), parallel.get('msg')
    for name, table in by_table(parallel).items():
        for kind in ('source_rows', 'target_rows', 'only_in_source', 'only_in_target', 'changed'):
            assert table[kind] == plain[name][kind], (name, kind)
    # the first level of the default run takes no parallel workers from the live server; on request it plans them
    setting = "pg_catalog.set_config('%s', '%s', false)"
    assert setting % ('max_parallel_workers_per_gather', '0') in '\n'.join(first.result('diff')['queries'])
    queries = '\n'.join(parallel['queries'])
    assert setting % ('max_parallel_workers_per_gather', '2') in queries
    assert setting % ('parallel_setup_cost', '0') in queries
    negative = first.result('negative')
    assert negative.get('failed') and 'parallel_workers must be 0' in negative['msg'], negative
    assert 'Module failed' not in negative['msg'] and 'Traceback' not in first.text


def test_rows_fetched_grow_with_differences_not_size(lab, play, first):
    res = first.result('scoped')
    assert not res.get('failed'), res.get('msg')
    big = by_table(res)['public.big']
    assert big['source_rows'] == 100000 and big['changed']['count'] == 3
    assert [r['key'] for r in big['changed']['rows']] == [['7'], ['50000'], ['99999']]
    assert 0 < big['rows_fetched'] <= 3 * 2 * 16, big  # at most a leaf of 16 rows a side per difference
    small = by_table(res)['public.orders']
    assert small['target_rows'] == 1999 and small['changed']['count'] == 3  # 10, 500, 777; 19999 is out of scope
    assert small['only_in_source']['keys'] == [['42']] and small['only_in_target']['count'] == 0
    assert small['rows_fetched'] <= 4 * 2 * 16
    # ten times the differences: more rows fetched, still no more than the leaves around them
    lab.psql('primary', 'UPDATE big SET payload = payload || \'!\' WHERE id % 3000 = 1', db=TGT)
    try:
        res = play([diff_task(lab, 'diff', [dict(name='big')])]).result('diff')
        big2 = by_table(res)['public.big']
        assert big2['changed']['count'] == 3 + 34
        assert big['rows_fetched'] < big2['rows_fetched'] <= 37 * 2 * 16
    finally:
        lab.psql('primary', 'UPDATE big b SET payload = s.p FROM (SELECT g, md5(g::text) p FROM generate_series(1, '
                 '100000) g) s WHERE b.id = s.g AND b.id % 3000 = 1', db=TGT)


def test_where_scopes_out_rows_written_after_the_point_in_time(lab, first):
    res = first.result('where')
    assert not res.get('failed'), res.get('msg')
    orders = by_table(res)['public.orders']
    assert orders['only_in_target']['count'] == 0  # written after T: legitimately absent from the restore
    assert orders['only_in_source']['count'] == 2 and orders['changed']['count'] == 4
    assert orders['truncated'] is True and len(orders['changed']['rows']) == 1  # limit
    # one expression only: a second statement is refused before anything runs
    res = first.result('bad')
    assert res.get('failed') and '";" is not allowed' in res['msg'] and 'Traceback' not in first.text
    assert lab.psql('primary', "SELECT to_regclass('orders') IS NOT NULL", db=TGT) == 't'


def test_row_security_makes_the_diff_fail_instead_of_comparing_a_subset(lab, play, dbs):
    for name in (SRC, TGT):
        lab.psql('primary', """
DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'td_reader') THEN
  CREATE ROLE td_reader LOGIN PASSWORD 'td-reader-pw'; END IF; END $$;
GRANT SELECT ON codes TO td_reader;
ALTER TABLE codes ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS only_r1 ON codes;
CREATE POLICY only_r1 ON codes FOR SELECT USING (region = 'r1');""", db=name)
    try:
        run = play([diff_task(lab, 'diff', [dict(name='codes')], user='td_reader', password='td-reader-pw')])
        res = run.result('diff')
        assert res.get('failed') and 'row-level security' in res['msg'] and 'row_security = off' in res['msg'], res
        assert 'td-reader-pw' not in run.text and 'Traceback' not in run.text
    finally:
        for name in (SRC, TGT):
            lab.psql('primary', 'ALTER TABLE codes DISABLE ROW LEVEL SECURITY; REVOKE ALL ON codes FROM td_reader',
                     db=name)


def test_standby_as_source_has_no_differences(lab, play, dbs):
    lab.wait_replay(timeout=60)
    params = node_params(lab, db=TGT)
    standby = lab.state['nodes']['standby']
    task = dict(name='diff', ignore_errors=True, **{'procgenie.dbops.pg_table_diff': dict(
        params, source=dict(login_host=standby['host'], login_port=standby['port']),
        tables=[dict(name='orders'), dict(name='codes')])})
    res = play([task], check=True).result('diff')
    assert not res.get('failed'), res.get('msg')
    assert res['differences'] is False and res['changed'] is False
    assert all(t['rows_fetched'] == 0 for t in res['tables'])
    assert res['source']['port'] == standby['port'] and res['source']['database'] == TGT


def test_cancel_ends_both_sessions_within_2s_even_while_waiting_for_a_lock(lab, play, dbs):
    import psycopg2
    from tests.integration.test_cancel import Monitor, cancel, in_thread, module_process, wait_until
    blocker = psycopg2.connect(**lab.conninfo('primary', TGT))
    monitor = Monitor(lab)
    try:
        blocker.cursor().execute('LOCK TABLE codes IN ACCESS EXCLUSIVE MODE')
        thread, outcome = in_thread(play, [diff_task(lab, 'diff', [dict(name='codes')])])
        module = module_process('pg_table_diff')
        wait_until(lambda: monitor.active('%codes%'), 60, 'the diff waiting for the lock on codes')
        cancel(module, monitor, '%codes%', tree=[])
        blocker.rollback()
        thread.join(60)
        assert outcome['run'].result('diff').get('failed') is True
    finally:
        blocker.close()
        monitor.close()


def test_first_level_compiles_only_large_tables_and_only_where_the_server_has_jit_on(lab, dbs):
    """The first level of a table of a million rows or more runs with JIT where the server's own configuration has
    it on (never where the DBA turned it off: here for the role), without parallel workers unless asked; the
    session's settings are the diff's own again afterwards."""
    import psycopg2
    from ansible_collections.procgenie.dbops.plugins.module_utils._connection import Session
    from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff import compare

    def session(user='postgres', password=None):
        info = dict(lab.conninfo('primary', TGT), user=user)
        if password:
            info['password'] = password
        conn = psycopg2.connect(**info)
        conn.autocommit = True
        result = Session(conn)
        compare.begin_snapshot(result)
        return result
    available = session()
    try:
        if available.scalar("SELECT reset_val FROM pg_settings WHERE name = 'jit'") != 'on' or not \
                compare._with_settings(available, (('jit', 'on'),), lambda: available.scalar('SELECT pg_jit_available()')):
            pytest.skip('this PostgreSQL build has no JIT provider')
        settings = dict(compare.first_level_settings(available, 0, compare.JIT_ROWS))
        assert settings['jit'] == 'on' and settings['jit_optimize_above_cost'] == '0'
        assert settings['jit_inline_above_cost'] == '-1'
        assert settings['max_parallel_workers_per_gather'] == '0'
        assert 'jit' not in dict(compare.first_level_settings(available, 0, compare.JIT_ROWS - 1))
        assert dict(compare.first_level_settings(available, 3, 10))['max_parallel_workers_per_gather'] == '3'
        # the first level with them; afterwards the session is back at the diff's own settings (jit off)
        groups = compare._groups(available, 'SELECT 0 AS parent, id % 4 AS seg, count(*) AS n, 0 AS s FROM orders '
                                 'GROUP BY 2', settings=tuple(settings.items()))
        assert sum(n for n, _s in groups.values()) == 20000
        assert available.scalar("SELECT current_setting('jit')") == 'off'
        assert available.scalar("SELECT current_setting('max_parallel_workers_per_gather')") != '0'
    finally:
        available.close()
    lab.psql('primary', "DROP ROLE IF EXISTS td_nojit; CREATE ROLE td_nojit LOGIN PASSWORD 'td-nojit-pw' SUPERUSER; "
             "ALTER ROLE td_nojit SET jit = off")
    off = session('td_nojit', 'td-nojit-pw')
    try:
        assert 'jit' not in dict(compare.first_level_settings(off, 0, compare.JIT_ROWS))
    finally:
        off.close()
        lab.psql('primary', 'DROP ROLE IF EXISTS td_nojit')
