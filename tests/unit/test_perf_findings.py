"""pg_perf_info's findings_limit: at most that many findings of a kind, the worst kept, the others counted."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.perf import findings, info


def result_with(unused=(), duplicate=(), databases=(), tables=()):
    return dict(
        server=dict(database='app'),
        statements=dict(available=True, top_total_time=[]),
        indexes=dict(duplicate=list(duplicate), redundant=[], unused=list(unused), invalid=[], missing=[],
                     tenant_unindexed=[], unused_since=None, replicas=[]),
        bloat=dict(method='estimate', tables=[], indexes=[]),
        vacuum=dict(settings=dict(autovacuum_freeze_max_age=1, vacuum_failsafe_age=2), tables=list(tables),
                    databases=list(databases)),
        sequences=[], sizes=dict(tables=[], databases=[]))


def unused_index(i, nbytes):
    return dict(table='public.t', index='public.i%d' % i, bytes=nbytes, fix_sql='DROP INDEX i%d;' % i)


def test_thousands_of_unused_indexes_give_the_limit_largest_first_and_a_count():
    unused = sorted([unused_index(i, 8192 * (i % 37 + 1)) for i in range(3000)], key=lambda d: -d['bytes'])
    out, omitted = findings.findings_omitted(result_with(unused), 50)
    listed = [f for f in out if f['area'] == 'indexes' and f['fix_sql']]
    assert len(listed) == 50
    assert [f['object'] for f in listed] == [d['index'] for d in unused[:50]]  # the largest, in their order
    assert omitted == dict(unused=2950)
    counts = [f for f in out if f['area'] == 'indexes' and not f['fix_sql']]
    assert len(counts) == 1 and counts[0]['level'] == 'warn' and counts[0]['object'] == 'app'
    assert counts[0]['message'].startswith('2950 more unused indexes') and 'indexes.unused' in counts[0]['message']
    assert out.index(counts[0]) == out.index(listed[-1]) + 1  # right after the kind's findings
    assert all(set(f) == {'level', 'area', 'object', 'message', 'fix_sql'} for f in out)  # no internal key


def test_the_worst_are_kept_even_when_the_list_is_not_sorted_by_size():
    unused = [unused_index(1, 10), unused_index(2, 3000), unused_index(3, 20), unused_index(4, 2000)]
    out, omitted = findings.findings_omitted(result_with(unused), 2)
    assert [f['object'] for f in out if f['fix_sql']] == ['public.i2', 'public.i4']
    assert omitted == dict(unused=2)


def test_no_limit_and_a_kind_under_the_limit_are_unchanged():
    unused = [unused_index(i, 8192) for i in range(120)]
    dup = [dict(table='public.t', index='public.d%d' % i, keep='public.k', bytes=i, fix_sql='x') for i in range(3)]
    result = result_with(unused, dup)
    everything = findings.findings(result)
    assert findings.findings_omitted(result, 0) == (everything, {})
    assert len([f for f in everything if f['fix_sql'] == 'DROP INDEX i7;']) == 1 and len(everything) > 120
    out, omitted = findings.findings_omitted(result, 100)
    assert omitted == dict(unused=20)
    duplicates = [f for f in everything if f['object'].startswith('public.d')]
    assert [f for f in out if f['object'].startswith('public.d')] == duplicates


def test_a_critical_finding_is_kept_before_larger_warnings_and_the_count_is_as_bad_as_the_worst_left_out():
    dbs = [dict(database='db%d' % i, xid_age=100 + i, mxid_age=1, level='warn') for i in range(5)]
    dbs += [dict(database='old%d' % i, xid_age=10 + i, mxid_age=1, level='critical') for i in range(2)]
    out, omitted = findings.findings_omitted(result_with(databases=dbs), 1)
    wrap = [f for f in out if f['area'] == 'wraparound']
    assert [f['object'] for f in wrap] == ['old1', 'app']
    assert wrap[0]['level'] == 'critical' and wrap[1]['level'] == 'critical'  # old0 (critical) was left out
    assert omitted == dict(wraparound=6)


@pytest.mark.parametrize('limit, ok', [(-1, False), (0, True), (1, True), (50, True)])
def test_findings_limit_negative_refused(limit, ok):
    params = dict(top=20, query_length=200, statement_timeout='60s', lock_timeout='5s', tenant_column='tenant_id',
                  thresholds={}, since=None, findings_limit=limit)
    if ok:
        info.check_options(params)
    else:
        with pytest.raises(info.PerfError, match='findings_limit'):
            info.check_options(params)
    assert info.argument_spec().options['findings_limit'] == dict(type='int', default=50)
