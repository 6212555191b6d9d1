"""The maintenance role through playbooks/maintenance_window.yml as AWX runs it (extra variables): outside the
maintenance window only VACUUM/ANALYZE runs and the heavy steps are listed as skipped with the reason; inside it an
INVALID index is rebuilt and a bloated table repacked; check mode changes nothing; production and development
thresholds choose different tables. Each test builds its tables again, and checks the database with its own SQL."""

from __future__ import annotations

import os
import time

import psycopg2
import pytest

from tests.conftest import REPO, node_params
from tests.harness.playbook import run_playbook

DB = 'maint_role'
ROLE = 'procgenie.dbops.maintenance : '
WINDOW_REASON = 'outside the maintenance window (maintenance_window is false)'
# the advisor on a statement an index on dead15_t (v) makes far cheaper (85,000 rows, one matches)
ADVISOR = dict(maintenance_advise_indexes=True, maintenance_apply_advised_indexes=True,
               maintenance_advise_queries=['SELECT * FROM dead15_t WHERE v = 4242'])

# dead_t: 20,000 dead of 30,000 (over both environments' thresholds); dead15_t: 15,000 dead of 100,000 (15 %: over
# production's 10 %, under development's 20 %); bloat_t: about 24 MB of which 80 % is deleted rows (VACUUM leaves
# that space in the table: over development's 10 MiB, under production's 100 MiB); uniq_t_k: INVALID, left by a failed unique concurrent build
# whose duplicates were deleted since (a rebuild succeeds), and uniq_t_pkey_ccnew, as an interrupted REINDEX
# CONCURRENTLY leaves it (dropped, not rebuilt). Autovacuum is off on them so the figures stay put.
BUILD = [
    'DROP TABLE IF EXISTS dead_t, dead15_t, bloat_t, uniq_t, bloat_nokey_t',
    'CREATE EXTENSION IF NOT EXISTS pg_repack',
    'CREATE TABLE dead_t (id bigint PRIMARY KEY, v int) WITH (autovacuum_enabled = false)',
    'INSERT INTO dead_t SELECT g, g FROM generate_series(1, 30000) g',
    'DELETE FROM dead_t WHERE id <= 20000',
    'CREATE TABLE dead15_t (id bigint PRIMARY KEY, v int) WITH (autovacuum_enabled = false)',
    'INSERT INTO dead15_t SELECT g, g FROM generate_series(1, 100000) g',
    'DELETE FROM dead15_t WHERE id <= 15000',
    'CREATE TABLE bloat_t (id bigint PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)',
    "INSERT INTO bloat_t SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 100000) g",
    'DELETE FROM bloat_t WHERE id % 5 <> 0',
    'CREATE TABLE uniq_t (id bigint PRIMARY KEY, k int) WITH (autovacuum_enabled = false)',
    'INSERT INTO uniq_t SELECT g, g % 100 FROM generate_series(1, 200) g',
]


def connect(lab):
    conn = psycopg2.connect(**dict(host=lab.state['nodes']['primary']['host'],
                                   port=lab.state['nodes']['primary']['port'], user=lab.state['superuser'],
                                   password=lab.state['password'], dbname=DB, connect_timeout=5,
                                   application_name='maintenance-test'))
    conn.autocommit = True
    return conn


def query(lab, sql, args=None):
    conn = connect(lab)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope='module')
def database(lab):
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'CREATE DATABASE %s' % DB)
    yield DB
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)


@pytest.fixture
def tables(lab, database):
    """The tables of the scenario, built again for each test; waits until the statistics show the dead tuples."""
    conn = connect(lab)
    try:
        with conn.cursor() as cur:
            for statement in BUILD:
                cur.execute(statement)
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute('CREATE UNIQUE INDEX CONCURRENTLY uniq_t_k ON uniq_t (k)')
            # what an interrupted REINDEX INDEX CONCURRENTLY of uniq_t_pkey leaves: an INVALID uniq_t_pkey_ccnew
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute('CREATE UNIQUE INDEX CONCURRENTLY uniq_t_pkey_ccnew ON uniq_t (k)')
            cur.execute('DELETE FROM uniq_t WHERE id > 100')
            cur.execute('ANALYZE bloat_t')
    finally:
        conn.close()  # the backend's statistics are flushed when it ends
    deadline = time.time() + 20
    while True:
        dead = dict(query(lab, "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE relname IN "
                               "('dead_t', 'dead15_t', 'bloat_t')"))
        if dead.get('dead_t', 0) >= 20000 and dead.get('dead15_t', 0) >= 15000:
            break
        assert time.time() < deadline, dead
        time.sleep(0.3)
    assert state(lab)['uniq_t_k valid'] is False and state(lab)['uniq_t_pkey_ccnew valid'] is False


def state(lab):
    """What the role may change, read independently."""
    rows = query(lab, """
        SELECT c.relname, c.relfilenode, pg_relation_size(c.oid), s.n_dead_tup,
               coalesce(s.vacuum_count, 0), coalesce(s.analyze_count, 0)
          FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE c.relname IN ('dead_t', 'dead15_t', 'bloat_t', 'uniq_t') ORDER BY 1""")
    found = {}
    for name, filenode, size, dead, vacuums, analyzes in rows:
        found[name] = dict(filenode=filenode, size=size, dead=dead, vacuums=vacuums, analyzes=analyzes)
    for index in ('uniq_t_k', 'uniq_t_pkey_ccnew'):
        found[index + ' valid'] = (query(lab, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                                         (index,)) or [(None,)])[0][0]
    indexdefs = "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"
    found['indexes'] = [r[0] for r in query(lab, indexdefs)]
    found['rows'] = query(lab, 'SELECT (SELECT count(*) FROM bloat_t), (SELECT sum(id) FROM bloat_t), '
                               '(SELECT count(*) FROM dead_t), (SELECT count(*) FROM uniq_t)')[0]
    return found


def run(lab, collections_root, home, check=False, **extravars):
    return run_playbook(os.path.join(REPO, 'playbooks', 'maintenance_window.yml'), collections_root, home,
                        check=check, extravars=dict(dict(target='localhost', dbops_connection=node_params(lab, db=DB)),
                                                    **extravars))


def failures(run_):
    return [(r['task'], r['result'].get('msg')) for r in run_.results if r['status'] == 'failed']


def status(run_, task):
    return run_.task(ROLE + task)['status']


def plan(run_):
    return run_.result(ROLE + 'Plan the maintenance')['ansible_facts']


def vacuumed(run_):
    tables = []
    for task in ('Vacuum and analyze the tables over the thresholds', "Vacuum and analyze the runbook's critical tables"):
        result = run_.result(ROLE + task)
        tables += [t['table'] for t in result.get('tables', [])]
    return tables


def summary(run_):
    last = run_.results[-1]
    assert last['task'] == ROLE + 'Summary' and last['status'] == 'ok', last
    msg = last['result']['msg']
    assert isinstance(msg, str) and '\n' not in msg and msg.startswith('localhost (%s, ' % DB), msg
    return msg


def test_outside_the_window_only_vacuum_runs_and_the_heavy_steps_are_listed_as_skipped(lab, tables, collections_root,
                                                                                       home):
    before = state(lab)
    result = run(lab, collections_root, home, **ADVISOR)
    assert result.rc == 0, (failures(result), result)
    # VACUUM (ANALYZE) of the table over the thresholds ran
    assert 'public.dead_t' in vacuumed(result)
    after = state(lab)
    assert after['dead_t']['vacuums'] > before['dead_t']['vacuums']
    assert after['dead_t']['analyzes'] > before['dead_t']['analyzes']
    # the heavy steps did not run: the tasks were skipped, nothing rewritten, the index still INVALID
    assert status(result, 'Repack the bloated tables') == 'skipped'
    assert status(result, 'Rebuild the invalid indexes') == 'skipped'
    assert after['bloat_t']['filenode'] == before['bloat_t']['filenode']
    assert after['bloat_t']['size'] == before['bloat_t']['size']
    assert after['uniq_t_k valid'] is False and after['uniq_t_pkey_ccnew valid'] is False
    assert after['indexes'] == before['indexes']
    # ... and are listed with the reason
    skipped = plan(result)['maintenance_skipped']
    assert [(s['step'], s['objects'], s['reason']) for s in skipped] == [
        ('repack of bloated tables', ['public.bloat_t'], WINDOW_REASON),
        ('rebuild of invalid indexes', ['public.uniq_t_k'], WINDOW_REASON),
        ('drop of the leftovers of an interrupted REINDEX CONCURRENTLY', ['public.uniq_t_pkey_ccnew'], WINDOW_REASON)]
    advice = result.result(ROLE + 'Ask the index advisor')['advice']
    assert [a['table'] for a in advice] == ['public.dead15_t'], advice
    skipped = result.result(ROLE + 'List the advised indexes not built outside the window')['ansible_facts'][
        'maintenance_skipped']
    assert [(s['step'], s['objects'], s['reason']) for s in skipped[3:]] == [
        ('building of advised indexes', ['public.dead15_t (v)'], WINDOW_REASON)]
    shown = '\n'.join(result.result(ROLE + 'Show the maintenance')['msg'])
    assert 'public.bloat_t' in shown and WINDOW_REASON in shown, shown
    msg = summary(result)
    assert 'outside the maintenance window' in msg and 'vacuumed' in msg and 'public.dead_t' in msg, msg
    assert msg.endswith('; skipped, %s: repack of bloated tables (public.bloat_t), rebuild of invalid indexes '
                        '(public.uniq_t_k), drop of the leftovers of an interrupted REINDEX CONCURRENTLY '
                        '(public.uniq_t_pkey_ccnew), building of advised indexes (public.dead15_t (v))'
                        % WINDOW_REASON), msg
    assert 'would' not in msg and 'repacked' not in msg and 'rebuilt' not in msg, msg


def test_check_mode_changes_nothing_and_the_environments_choose_different_tables(
        lab, tables, collections_root, home):
    """Inside the window, as an AWX check job (--check) with development's thresholds and with the role's own
    maintenance_check_only with production's: both list what they would do, neither changes anything."""
    before = state(lab)
    chosen = {}
    for environment, check in (('development', True), ('production', False)):
        extravars = dict(ADVISOR, dbops_environment=environment, maintenance_window=True)
        if not check:
            extravars['maintenance_check_only'] = True
        result = run(lab, collections_root, home, check=check, **extravars)
        assert result.rc == 0, (failures(result), result)
        assert state(lab) == before, environment
        args = result.result(ROLE + 'Vacuum and analyze the tables over the thresholds')['invocation']['module_args']
        repack = plan(result)['maintenance_plan']['repack']
        chosen[environment] = dict(thresholds=args['thresholds'], vacuum=vacuumed(result),
                                   repack=[t['table'] for t in repack])
        assert plan(result)['maintenance_skipped'] == []
        msg = summary(result)
        assert '(%s, %s, inside the maintenance window)' % (DB, environment) in msg, msg
        assert 'would vacuum' in msg and 'would rebuild 1 invalid index(es) (public.uniq_t_k)' in msg, msg
        assert 'would drop 1 leftover index(es) of an interrupted REINDEX (public.uniq_t_pkey_ccnew)' in msg, msg
        assert status(result, 'Rebuild the invalid indexes') == 'changed'
        assert 'the index advisor proposes 1 index(es) (public.dead15_t), would build them' in msg, msg
        if environment == 'development':
            assert 'would repack 1 table(s) (public.bloat_t)' in msg, msg
            assert [t['table'] for t in result.result(ROLE + 'Repack the bloated tables')['tables']] == \
                ['public.bloat_t']
        else:
            assert 'repack' not in msg, msg
            assert status(result, 'Repack the bloated tables') == 'skipped'
    dev, prod = chosen['development'], chosen['production']
    assert (dev['thresholds']['dead_ratio'], prod['thresholds']['dead_ratio']) == (0.2, 0.1)
    assert (dev['thresholds']['bloat_min_bytes'], prod['thresholds']['bloat_min_bytes']) == (10485760, 104857600)
    # 15 % dead: production vacuums it, development does not; both vacuum the 67 % dead table
    assert 'public.dead15_t' in prod['vacuum'] and 'public.dead15_t' not in dev['vacuum'], chosen
    assert 'public.dead_t' in prod['vacuum'] and 'public.dead_t' in dev['vacuum'], chosen
    # a 24 MB table 80 % empty: repacked in development, too small to bother in production
    assert dev['repack'] == ['public.bloat_t'] and prod['repack'] == [], chosen


def test_inside_the_window_the_invalid_index_is_rebuilt_and_the_bloated_table_repacked(
        lab, tables, collections_root, home):
    # a second bloated table (about 14 MB, 80 % deleted) pg_repack cannot work on: it has no key
    conn = connect(lab)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE bloat_nokey_t WITH (autovacuum_enabled = false) AS "
                        "SELECT g AS id, repeat(md5(g::text), 6) AS pad FROM generate_series(1, 60000) g")
            cur.execute('DELETE FROM bloat_nokey_t WHERE id % 5 <> 0')
            cur.execute('ANALYZE bloat_nokey_t')
    finally:
        conn.close()
    nokey_size = query(lab, "SELECT pg_relation_size('bloat_nokey_t')")[0][0]
    before = state(lab)
    result = run(lab, collections_root, home, maintenance_window=True, **ADVISOR)
    assert result.rc == 0, (failures(result), result)
    after = state(lab)
    assert after['uniq_t_k valid'] is True and after['uniq_t_pkey_ccnew valid'] is None
    built = [d for d in after['indexes'] if d not in before['indexes']]
    assert len(built) == 1 and 'ON public.dead15_t USING btree (v)' in built[0], built
    assert after['bloat_t']['filenode'] != before['bloat_t']['filenode']
    assert after['bloat_t']['size'] < before['bloat_t']['size'] * 0.4, (before['bloat_t'], after['bloat_t'])
    assert after['rows'] == before['rows']
    assert after['dead_t']['vacuums'] > before['dead_t']['vacuums']
    repacked = result.result(ROLE + 'Repack the bloated tables')['tables']
    assert [t['table'] for t in repacked] == ['public.bloat_t']
    assert repacked[0]['bytes_after'] < repacked[0]['bytes_before']
    # the table without a key is left as it is, and said why
    assert [t['table'] for t in plan(result)['maintenance_plan']['repack']] == ['public.bloat_t', 'public.bloat_nokey_t']
    assert query(lab, "SELECT pg_relation_size('bloat_nokey_t')")[0][0] == nokey_size
    left = result.result(ROLE + 'Repack the bloated tables')['skipped_tables']
    assert [t['table'] for t in left] == ['public.bloat_nokey_t'] and 'no primary key' in left[0]['reason'], left
    shown = '\n'.join(result.result(ROLE + 'Show the maintenance')['msg'])
    assert 'public.bloat_nokey_t: not repacked, it has no primary key' in shown, shown
    msg = summary(result)
    assert 'not repacked: public.bloat_nokey_t (see the list above)' in msg, msg
    assert 'inside the maintenance window' in msg and 'repacked 1 table(s) (public.bloat_t' in msg, msg
    assert 'rebuilt 1 invalid index(es) (public.uniq_t_k)' in msg and 'skipped' not in msg, msg
    assert 'dropped 1 leftover index(es) of an interrupted REINDEX (public.uniq_t_pkey_ccnew)' in msg, msg
    assert 'the index advisor proposes 1 index(es) (public.dead15_t), built them' in msg, msg
    assert 'would' not in msg, msg
    # the next window finds nothing heavy left to do
    result = run(lab, collections_root, home, maintenance_window=True, **ADVISOR)
    assert result.rc == 0, (failures(result), result)
    assert [t['table'] for t in plan(result)['maintenance_plan']['repack']] == ['public.bloat_nokey_t']
    assert plan(result)['maintenance_plan']['indexes'] == []
    assert status(result, 'Repack the bloated tables') == 'ok'
    assert result.result(ROLE + 'Repack the bloated tables')['tables'] == []
    assert result.result(ROLE + 'Ask the index advisor')['advice'] == []
    assert state(lab)['indexes'] == after['indexes']
