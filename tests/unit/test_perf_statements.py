"""The pure statement logic of pg_perf_info: the column names of each pg_stat_statements version, how to enable it,
the snapshot, deltas against an earlier result, the top lists; and the maintenance levels and findings."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _thresholds
from ansible_collections.procgenie.dbops.plugins.module_utils.perf import findings, info, maintenance, read, statements


def test_columns_of_each_extension_version():
    old = ['userid', 'dbid', 'queryid', 'query', 'calls', 'total_time', 'max_time', 'rows']
    assert read.statement_columns(old) == dict(total='total_time', max='max_time', toplevel=False)
    new = ['userid', 'dbid', 'toplevel', 'queryid', 'query', 'calls', 'total_exec_time', 'max_exec_time', 'rows']
    assert read.statement_columns(new) == dict(total='total_exec_time', max='max_exec_time', toplevel=True)


def test_unavailable_messages():
    server = dict(shared_preload_libraries='pg_stat_statements', pss_schema='public', database='app')
    assert statements.unavailable_message(server, 'postgres') is None
    assert statements.preloaded('auto_explain, "pg_stat_statements"')
    missing = dict(server, pss_schema=None)
    assert 'CREATE EXTENSION pg_stat_statements' in statements.unavailable_message(missing, 'postgres')
    unloaded = dict(server, shared_preload_libraries='')
    text = statements.unavailable_message(unloaded, 'postgres')
    assert 'shared_preload_libraries' in text and 'restart' in text
    azure = statements.unavailable_message(dict(unloaded, pss_schema=None), 'azure')
    assert 'azure.extensions' in azure and 'shared_preload_libraries' in azure and 'CREATE EXTENSION' in azure


def row(queryid, calls, total, **kw):
    base = dict(queryid=queryid, dbid=5, userid=10, toplevel=True, database='app', user='app', calls=calls,
                total_ms=total, max_ms=total, rows=calls, shared_blks_hit=calls * 2, shared_blks_read=calls)
    base.update(kw)
    return base


def test_deltas_against_an_earlier_snapshot():
    earlier = statements.snapshot([row(1, 10, 100.0), row(2, 5, 50.0), row(3, 100, 1.0)], 'r1', 't0')
    now = [row(1, 15, 160.0), row(2, 5, 50.0), row(3, 4, 2.0), row(4, 1, 7.0)]
    out, reset_between = statements.deltas(now, earlier, 'r1')
    assert reset_between is False
    by_id = dict((r['queryid'], r) for r in out)
    assert sorted(by_id) == [1, 3, 4]               # 2: no call in between
    assert by_id[1]['calls'] == 5 and by_id[1]['total_ms'] == pytest.approx(60.0)
    assert by_id[3]['calls'] == 4                    # counters went down: evicted, counted from zero
    assert by_id[4]['calls'] == 1
    out, reset_between = statements.deltas(now, earlier, 'r2')  # reset in between: the numbers as they are
    assert reset_between is True and dict((r['queryid'], r['calls']) for r in out)[1] == 15


def test_earlier_snapshot_accepts_the_result_or_its_parts():
    snap = statements.snapshot([row(1, 1, 1.0)], None, 't0')
    for since in (dict(statements=dict(snapshot=snap)), dict(snapshot=snap), snap):
        assert statements.earlier_snapshot(since) is snap
    with pytest.raises(ValueError, match='no statements snapshot'):
        statements.earlier_snapshot(dict(statements=dict(available=False, snapshot=None)))
    with pytest.raises(ValueError):
        statements.earlier_snapshot('text')


def test_top_lists_and_texts():
    rows = [row(1, 1000, 100.0), row(2, 2, 500.0), row(3, 10, 300.0)]
    keys = statements.chosen_keys(rows, 1)
    assert keys == [(1, 5, 10), (2, 5, 10)]
    texts = {(2, 5, 10): dict(query='SELECT pg_sleep($1)', query_chars=19)}
    top = statements.top(rows, texts, 1, 10)
    assert top['top_total_time'][0]['queryid'] == 2 and top['top_total_time'][0]['query_truncated'] is True
    assert top['top_mean_time'][0]['mean_ms'] == 250.0
    assert top['top_calls'][0]['queryid'] == 1 and top['top_calls'][0]['query'] is None


def test_check_options_refuses_nonsense():
    params = dict(top=20, query_length=200, statement_timeout='60s', lock_timeout='5s', tenant_column='tenant_id',
                  thresholds={}, since=None)
    assert info.check_options(params) == _thresholds.DEFAULTS
    for bad, text in ((dict(top=0), 'top'), (dict(lock_timeout='0'), 'lock_timeout'),
                      (dict(statement_timeout='60'), 'give a unit'),
                      (dict(tenant_column=' '), 'tenant_column'), (dict(since={'x': 1}), 'snapshot'),
                      (dict(thresholds=dict(sequence_warn=0.95)), 'sequence_warn')):
        with pytest.raises(info.PerfError, match=text):
            info.check_options(dict(params, **bad))


# ---------------------------------------------------------------- maintenance
T = _thresholds.DEFAULTS


def test_sequence_levels():
    rows = [dict(sequence='s.a', min_value=1, max_value=101, last_value=81, increment_by=1),
            dict(sequence='s.b', min_value=1, max_value=32767, last_value=30000, increment_by=1, data_type='smallint'),
            dict(sequence='s.c', min_value=1, max_value=100, last_value=None, increment_by=1),
            dict(sequence='s.d', min_value=-100, max_value=-1, last_value=-95, increment_by=-1),
            dict(sequence='s.e', min_value=1, max_value=10, last_value=10, increment_by=1, cycle=True)]
    levels = dict((s['sequence'], (s['used'], s['level'])) for s in maintenance.sequences(rows, T))
    assert levels == {'s.a': (0.8, 'warn'), 's.b': (0.9156, 'critical'), 's.c': (0.0, 'ok'),
                      's.d': (0.9495, 'critical'), 's.e': (1.0, 'ok')}


def test_wraparound_levels_against_the_server_settings():
    server = dict(autovacuum_freeze_max_age=200000000, autovacuum_multixact_freeze_max_age=400000000,
                  vacuum_failsafe_age=None, vacuum_multixact_failsafe_age=None)
    ages = maintenance.settings(server)
    assert ages['vacuum_failsafe_age'] == 1600000000  # before 14: the default
    assert maintenance.age_levels(1000, 1000, ages, T)[0] == 'ok'
    assert maintenance.age_levels(300000001, 0, ages, T)[0] == 'warn'
    assert maintenance.age_levels(0, 1500000000, ages, T) == ('critical', 'ok', 'critical')


def test_bloat_estimates_and_levels():
    table = dict(reltuples=2000.0, relpages=600, width=204.0, has_nulls=False, columns=2, fillfactor=100)
    wasted = maintenance.table_estimate(table, 8192)
    assert 500 * 8192 < wasted < 600 * 8192
    assert maintenance.table_estimate(dict(table, width=None), 8192) is None  # never analyzed
    assert maintenance.table_estimate(dict(table, reltuples=-1.0), 8192) is None
    assert maintenance.index_estimate(dict(reltuples=1000.0, relpages=4), 4.0, 90, 8192) == 0
    assert maintenance.bloat_level(100 * 2 ** 20, 40 * 2 ** 20, T) == 'warn'
    assert maintenance.bloat_level(100 * 2 ** 20, 70 * 2 ** 20, T) == 'critical'
    assert maintenance.bloat_level(2 ** 20, 2 ** 19, T) == 'ok'  # under bloat_min_bytes


def test_findings_one_line_each_critical_first():
    result = dict(
        server=dict(database='app'),
        statements=dict(available=False, message='pg_stat_statements is loaded but not created in this database: x'),
        indexes=dict(duplicate=[dict(table='public.t', index='public.i2', keep='public.i1', bytes=8192,
                                     fix_sql='DROP INDEX CONCURRENTLY IF EXISTS public.i2;')],
                     redundant=[], unused=[dict(table='public.t', index='public.i2', bytes=8192, fix_sql='x'),
                                           dict(table='public.t', index='public.i3', bytes=8192, fix_sql='y',
                                                foreign_keys=['fk'])],
                     invalid=[], missing=[], tenant_unindexed=[], unused_since=None, replicas=[]),
        bloat=dict(method='estimate', tables=[], indexes=[]),
        vacuum=dict(settings=dict(autovacuum_freeze_max_age=1, vacuum_failsafe_age=2), tables=[], databases=[
            dict(database='app', xid_age=5, mxid_age=1, level='critical')]),
        sequences=[], sizes=dict(tables=[], databases=[]))
    out = findings.findings(result)
    assert out[0]['level'] == 'critical' and out[0]['area'] == 'wraparound'
    assert [f['object'] for f in out if f['area'] == 'indexes'] == ['public.i2', 'public.i3']  # i2 once
    assert 'foreign key fk' in [f for f in out if f['object'] == 'public.i3'][0]['message']
    assert [f['fix_sql'] for f in out if f['area'] == 'statements'] == ['CREATE EXTENSION pg_stat_statements;']
    assert all('\n' not in f['message'] for f in out)
    assert set(f['area'] for f in out) == {'statements', 'indexes', 'bloat', 'vacuum', 'wraparound', 'sequences',
                                           'sizes'}


def test_widths_from_pg_stats_and_sizes_counted_once():
    stats = {(1, 1): (4.0, 0.0), (1, 2): (100.0, 0.5), (7, 1): (20.0, 0.0)}
    assert maintenance.table_width(dict(oid=1, columns=3), stats) == (54.0, True)
    assert maintenance.table_width(dict(oid=2, columns=3), stats) == (None, None)  # never analyzed
    plain = dict(oid=5, table_oid=1, keys=[1, 2], nkeyatts=1)                     # (a) INCLUDE (b): leaf holds both
    assert maintenance.index_width(plain, stats) == 104.0
    expr = dict(oid=7, table_oid=1, keys=[0, 1], nkeyatts=2)                       # (lower(b), a)
    assert maintenance.index_width(expr, stats) == 24.0
    assert maintenance.index_width(dict(oid=8, table_oid=1, keys=[0]), stats) == 32.0
    assert maintenance.index_width(dict(oid=9, table_oid=2, keys=[1]), stats) is None
    tables = [dict(oid=1, table='public.a', relkind='r', table_bytes=800, map_bytes=100, toast_bytes=100,
                   n_live_tup=3),
              dict(oid=2, table='public.p', relkind='p', table_bytes=0)]
    indexes = [dict(oid=5, table_oid=1, relkind='i', bytes=300), dict(oid=6, table_oid=1, relkind='i', bytes=200),
               dict(oid=9, table_oid=2, relkind='I', bytes=999)]
    sizes = maintenance.sizes(tables, indexes, [dict(database='d', bytes=5)], 10)
    assert sizes['tables'] == [dict(table='public.a', total_bytes=1500, table_bytes=800, index_bytes=500,
                                    toast_bytes=100, live_rows=3)]
    assert sizes['databases'] == [dict(database='d', bytes=5)]
