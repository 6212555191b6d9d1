"""pg_vacuum on the lab's primary (Debian PostgreSQL 15 with pg_repack 1.4.8), through ansible-playbook: VACUUM FULL
refused outside a maintenance window, the tables over the thresholds chosen oldest first (check mode changing
nothing, the second run changing nothing), the time budget, pg_repack of a bloated table while a writer writes, and
a cancelled pg_repack (ended with its session within 2 s) whose leftovers the next run drops."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import node_params
from tests.integration.test_cancel import Monitor, cancel, in_thread, module_process, program_of, wait_until

DB = 'vacuum_t'


SELECT_DB = 'vacuum_sel'  # the threshold test sees every table of its database: one of its own


def vacuum(lab, name='vacuum', db=DB, **args):
    return dict(name=name, ignore_errors=True, **{'procgenie.dbops.pg_vacuum': dict(node_params(lab, db=db), **args)})


def sql(lab, text, db=DB):
    return lab.psql('primary', text, db=db)


def connect(lab):
    import psycopg2
    conn = psycopg2.connect(**lab.conninfo('primary', DB))
    conn.autocommit = True
    return conn


@pytest.fixture(scope='module')
def database(lab):
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'CREATE DATABASE %s' % DB)
    sql(lab, 'CREATE EXTENSION pg_repack')
    yield DB
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)


def bloated(lab, table, rows=200000, keep_every=4):
    """A table with a primary key, `rows` rows of ~200 bytes, all but every `keep_every`-th deleted."""
    sql(lab, 'DROP TABLE IF EXISTS %(t)s; CREATE TABLE %(t)s (id bigint PRIMARY KEY, note text NOT NULL) '
             'WITH (autovacuum_enabled = off); '
             "INSERT INTO %(t)s SELECT g, repeat('x', 200) FROM generate_series(1, %(n)d) g; "
             'DELETE FROM %(t)s WHERE id %% %(k)d <> 0' % dict(t=table, n=rows, k=keep_every))


def test_vacuum_full_refused_outside_the_window(lab, play, database):
    sql(lab, 'CREATE TABLE IF NOT EXISTS full_t (id int PRIMARY KEY); INSERT INTO full_t VALUES (1) ON CONFLICT DO NOTHING')
    before = sql(lab, "SELECT pg_relation_filenode('full_t')")
    run = play([vacuum(lab, 'outside', tables=['full_t'], full=True),
                vacuum(lab, 'no lock_timeout', tables=['full_t'], full=True, maintenance_window=True, lock_timeout='0'),
                vacuum(lab, 'window', tables=['full_t'], full=True, maintenance_window=True, lock_timeout='3s')])
    res = run.result('outside')
    assert res.get('failed') is True and 'ACCESS EXCLUSIVE' in res['msg'] and 'maintenance_window' in res['msg'], res
    assert 'method: repack' in res['msg'] and res['queries'] == [] and res['commands'] == []  # refused before any SQL
    res = run.result('no lock_timeout')
    assert res.get('failed') is True and 'lock_timeout' in res['msg'] and res['queries'] == [], res
    res = run.result('window')
    assert not res.get('failed') and res['changed'] is True, res
    assert res['tables'][0]['action'] == 'VACUUM (FULL, ANALYZE)' and res['tables'][0]['status'] == 'done'
    assert any("set_config('lock_timeout', '3000ms'" in q for q in res['queries'])
    assert sql(lab, "SELECT pg_relation_filenode('full_t')") != before  # rewritten in the window


@pytest.fixture
def select_db(lab):
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % SELECT_DB)
    lab.psql('primary', 'CREATE DATABASE %s' % SELECT_DB)
    yield SELECT_DB
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % SELECT_DB)


def test_threshold_selection_oldest_first_check_mode_and_idempotence(lab, play, select_db):
    db = select_db
    # old_t: no dead tuples but an old relfrozenxid; dead_b then dead_a: dead tuples over the thresholds, younger;
    # fresh (3000 transactions later): below every threshold
    sql(lab, 'DROP TABLE IF EXISTS old_t, dead_a, dead_b, fresh; '
             'CREATE TABLE old_t (id int) WITH (autovacuum_enabled = off); INSERT INTO old_t VALUES (1); '
             'CREATE TABLE dead_b (id int) WITH (autovacuum_enabled = off); '
             'INSERT INTO dead_b SELECT generate_series(1, 3000); DELETE FROM dead_b WHERE id <= 2000', db=db)
    sql(lab, 'DO $$ BEGIN FOR i IN 1..3000 LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$; '
             'CREATE TABLE dead_a (id int) WITH (autovacuum_enabled = off); '
             'INSERT INTO dead_a SELECT generate_series(1, 5000); DELETE FROM dead_a WHERE id <= 4000; '
             'CREATE TABLE fresh (id int) WITH (autovacuum_enabled = off); INSERT INTO fresh VALUES (1)', db=db)
    age_old = int(sql(lab, "SELECT age(relfrozenxid) FROM pg_class WHERE relname = 'old_t'", db=db))
    # the lab's standby (hot_standby_feedback) holds the xmin horizon back until its next feedback: wait until the
    # deleted tuples are removable, or VACUUM would rightly keep them
    now = int(sql(lab, 'SELECT txid_current()', db=db))
    wait_until(lambda: sql(lab, 'SELECT coalesce(bool_and(xmin IS NULL OR xmin::text::bigint > %d), true) '
                                'FROM pg_replication_slots' % now, db=db) == 't', 30, 'the standby\'s feedback')
    # warn from 2500 transactions (autovacuum_freeze_max_age 200 M): fresh is not over it
    thresholds = dict(dead_tuples=1000, dead_ratio=0.5, wraparound_warn_ratio=2500 / 200000000.0)
    dead = "SELECT string_agg(relname || '=' || n_dead_tup, ',' ORDER BY relname) FROM pg_stat_user_tables"
    before = sql(lab, dead, db=db)
    run = play([dict(vacuum(lab, 'check', db=db, thresholds=thresholds, freeze=True), check_mode=True),
                vacuum(lab, 'run', db=db, thresholds=thresholds, freeze=True),
                vacuum(lab, 'again', db=db, thresholds=thresholds, freeze=True)])
    res = run.result('check')
    assert not res.get('failed') and res['changed'] is True, res
    assert [t['table'] for t in res['tables']] == ['public.old_t', 'public.dead_b', 'public.dead_a'], res['tables']
    assert all(t['status'] == 'planned' for t in res['tables'])
    assert 'transaction ID age' in res['tables'][0]['reason'] and res['tables'][0]['xid_age'] >= age_old
    assert 'dead tuples' in res['tables'][2]['reason'] and res['tables'][2]['dead_before'] == 4000
    assert not [q for q in res['queries'] if q.lstrip().upper().startswith('VACUUM')]
    assert 'public.fresh' not in [t['table'] for t in res['tables']]
    res = run.result('run')
    assert not res.get('failed') and res['changed'] is True, res
    assert [t['table'] for t in res['tables']] == ['public.old_t', 'public.dead_b', 'public.dead_a']
    for table in res['tables']:
        assert table['status'] == 'done' and table['action'] == 'VACUUM (FREEZE, ANALYZE)', table
        assert table['dead_after'] == 0 and table['duration_s'] >= 0 and table['bytes_after'] > 0
    # the run found what check mode found: check mode had vacuumed nothing
    assert [t['dead_before'] for t in res['tables']] == [0, 2000, 4000] and before == 'dead_a=4000,dead_b=2000,fresh=0,old_t=0'
    res = run.result('again')
    assert not res.get('failed') and res['changed'] is False and res['tables'] == [], res


def test_time_budget_stops_the_running_table_and_starts_no_other(lab, play, database):
    sql(lab, 'DROP TABLE IF EXISTS budget_a, budget_b; CREATE TABLE budget_a (id int); '
             'CREATE TABLE budget_b (id int)')
    blocker = connect(lab)
    try:
        # budget_a (the older) is locked against VACUUM: its VACUUM waits until the budget ends it
        blocker.autocommit = False
        blocker.cursor().execute('LOCK TABLE budget_a IN SHARE UPDATE EXCLUSIVE MODE')
        started = time.monotonic()
        run = play([vacuum(lab, tables=['budget_b', 'budget_a'], time_budget=2, lock_timeout='0')])
        assert time.monotonic() - started < 60
    finally:
        blocker.rollback()
        blocker.close()
    res = run.result('vacuum')
    assert not res.get('failed'), res
    assert [t['table'] for t in res['tables']] == ['public.budget_a'], res
    first = res['tables'][0]
    assert first['status'] == 'timed_out' and 'time budget' in first['error'], first
    assert 1.5 <= first['duration_s'] < 10, first
    assert res['skipped_tables'] == [dict(table='public.budget_b', reason='the time budget of 2.0s was spent before it')]


def test_cancelled_vacuum_ends_its_statement_and_session_within_2s(lab, play, database):
    sql(lab, 'DROP TABLE IF EXISTS waits; CREATE TABLE waits (id int)')
    blocker = connect(lab)
    blocker.autocommit = False
    monitor = Monitor(lab)
    try:
        blocker.cursor().execute('LOCK TABLE waits IN SHARE UPDATE EXCLUSIVE MODE')
        thread, outcome = in_thread(play, [vacuum(lab, tables=['waits'], lock_timeout='0')])
        module = module_process('pg_vacuum')
        wait_until(lambda: monitor.active('VACUUM%'), 60, 'the waiting VACUUM')
        time.sleep(0.3)  # well inside the wait for the lock
        assert cancel(module, monitor, 'VACUUM%', tree=[]) < 2.0
        thread.join(60)
    finally:
        blocker.rollback()
        blocker.close()
        monitor.close()
    assert outcome['run'].result('vacuum').get('failed') is True


def test_time_budget_ends_a_waiting_repack_and_drops_what_it_left(lab, play, database):
    bloated(lab, 'slow_rep', rows=20000)
    oid = sql(lab, "SELECT 'slow_rep'::regclass::oid")
    holder = connect(lab)
    holder.autocommit = False
    try:
        holder.cursor().execute("SELECT txid_current()")  # pg_repack waits for this transaction: the budget ends it
        run = play([vacuum(lab, method='repack', tables=['slow_rep'], time_budget=3)])
        cursor = holder.cursor()
        cursor.execute('SELECT 1')  # the transaction pg_repack waited for was left alone
    finally:
        holder.rollback()
        holder.close()
    res = run.result('vacuum')
    assert not res.get('failed'), res
    table = res['tables'][0]
    assert table['status'] == 'timed_out' and 'time budget' in table['error'] and table['leftovers'] == 'cleaned', table
    assert 2.5 <= table['duration_s'] < 15, table
    assert sql(lab, "SELECT count(*) FROM pg_class WHERE relnamespace = 'repack'::regnamespace AND relname ~ '_%s$'"
                    % oid) == '0'
    assert sql(lab, "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s" % oid) == '0'


def test_repack_of_a_bloated_table_while_a_writer_writes(lab, play, database):
    bloated(lab, 'busy', rows=100000)
    monitor = connect(lab)
    size = "SELECT pg_total_relation_size('busy')"
    cursor = monitor.cursor()
    cursor.execute(size)
    bytes_before = cursor.fetchone()[0]
    stop = threading.Event()
    written, errors = [], []
    writer = connect(lab)
    writer_pid = writer.get_backend_pid()

    def write():
        next_id = 10000000
        cur = writer.cursor()
        while not stop.is_set():
            try:
                cur.execute("INSERT INTO busy VALUES (%s, 'w'); UPDATE busy SET note = 'u' WHERE id = %s",
                            [next_id, 4 * (next_id % 50000) + 4])
                written.append(next_id)
                next_id += 1
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(str(exc))
                return
            time.sleep(0.002)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(written) > 20, 30, 'the writer')
        run = play([vacuum(lab, method='repack', tables=['busy'], wait_timeout=10)])
        count_during = len(written)
    finally:
        stop.set()
        thread.join(10)
    res = run.result('vacuum')
    assert not res.get('failed'), res
    table = res['tables'][0]
    assert table['status'] == 'done' and table['action'] == 'pg_repack', table
    assert table['bytes_after'] < table['bytes_before'] / 2 and table['bytes_before'] >= bytes_before * 0.9, table
    command = res['commands'][0]
    assert '--no-kill-backend' in command and '--wait-timeout=10' in command and "--dbname='vacuum_t'" in command
    assert not [a for a in command if lab.state['password'] in a]
    # no write lost, no session killed
    assert errors == [] and count_during > 20
    cursor.execute('SELECT count(*) FROM busy WHERE id >= 10000000')
    assert cursor.fetchone()[0] == len(written)
    cursor.execute('SELECT count(*) FROM pg_stat_activity WHERE pid = %s', [writer_pid])
    assert cursor.fetchone()[0] == 1
    writer.cursor().execute('SELECT 1')
    writer.close()
    monitor.close()


def test_cancelled_repack_ends_within_2s_and_the_next_run_drops_its_leftovers(lab, play, database):
    bloated(lab, 'halted', rows=50000)
    sql(lab, 'CREATE TABLE IF NOT EXISTS side (i int)')
    oid = sql(lab, "SELECT 'halted'::regclass::oid")
    holder = connect(lab)
    holder.autocommit = False
    monitor = Monitor(lab)
    try:
        # a young transaction with an xid: pg_repack sets up its log table and trigger, then waits for it
        holder.cursor().execute('INSERT INTO side VALUES (1)')
        thread, outcome = in_thread(play, [vacuum(lab, method='repack', tables=['halted'])])
        module = module_process('pg_vacuum')
        wait_until(lambda: program_of(module, ('pg_repack',)), 60, 'pg_repack')
        wait_until(lambda: sql(lab, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'halted'::regclass "
                                    "AND tgname = 'repack_trigger'") == '1', 60, 'the repack trigger')
        took = cancel(module, monitor, '%repack%')
        assert took < 2.0
        thread.join(60)
    finally:
        holder.rollback()
        holder.close()
        monitor.close()
    assert outcome['run'].result('vacuum').get('failed') is True
    leftovers = ("SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'repack'::regnamespace "
                 "AND relname = 'log_%(o)s') || ',' || (SELECT count(*) FROM pg_trigger "
                 "WHERE tgrelid = %(o)s) || ',' || (SELECT count(*) FROM pg_type WHERE typname = 'pk_%(o)s')" % dict(o=oid))
    assert sql(lab, leftovers) == '1,1,1'  # what pg_repack left behind: its log table, trigger and key type
    sql(lab, 'INSERT INTO halted VALUES (99999999, \'after\')')  # the trigger still logs every write
    # and two tables pg_repack cannot take: no key, an INVALID index (a failed unique build)
    sql(lab, 'DROP TABLE IF EXISTS nokey, badidx; CREATE TABLE nokey (v int); '
             'CREATE TABLE badidx (id int PRIMARY KEY, v int); INSERT INTO badidx VALUES (1, 1), (2, 1)')
    with pytest.raises(Exception):
        sql(lab, 'CREATE UNIQUE INDEX CONCURRENTLY badidx_v ON badidx (v)')
    run = play([dict(vacuum(lab, 'check', method='repack', tables=['halted']), check_mode=True),
                vacuum(lab, 'again', method='repack', tables=['halted']),
                vacuum(lab, 'refused', method='repack', tables=['nokey', 'badidx'])])
    res = run.result('check')
    assert not res.get('failed') and res['leftovers'][0]['status'] == 'planned', res
    assert set(o['kind'] for o in res['leftovers'][0]['objects']) == set(['table', 'trigger', 'type'])
    res = run.result('again')
    assert not res.get('failed'), res
    assert res['leftovers'][0]['status'] == 'cleaned' and res['leftovers'][0]['table'] == 'public.halted', res
    assert res['tables'][0]['status'] == 'done' and res['tables'][0]['bytes_after'] < res['tables'][0]['bytes_before']
    assert sql(lab, leftovers) == '0,0,0'
    assert sql(lab, 'SELECT count(*) FROM halted WHERE id = 99999999') == '1'
    res = run.result('refused')
    assert not res.get('failed') and res['changed'] is False and res['tables'] == [] and res['commands'] == [], res
    reasons = dict((s['table'], s['reason']) for s in res['skipped_tables'])
    assert 'no primary key' in reasons['public.nokey'] and 'INVALID index(es) badidx_v' in reasons['public.badidx']
