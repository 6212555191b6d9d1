"""The pure index-health rules of pg_perf_info (issue 15): duplicates with every property that makes two indexes
different, the index to keep, each pair once; redundant prefixes; unused with replicas; invalid minus the ones being
built; missing-index candidates; tenant tables."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils import _thresholds
from ansible_collections.procgenie.dbops.plugins.module_utils.perf import indexes

_OID = [100]


def ix(name, keys, table_oid=1, **kw):
    """An index row as read.indexes returns it (btree, default opclass 1 / collation 0 / ASC on every key)."""
    _OID[0] += 1
    nkeys = kw.pop('nkeyatts', len(keys))
    row = dict(oid=kw.pop('oid', _OID[0]), table_oid=table_oid, table='public.t%d' % table_oid,
               index='public.' + name, index_sql='public.' + name, name=name, method='btree', relkind='i',
               natts=len(keys), nkeyatts=nkeys, keys=list(keys), opclasses=[1] * nkeys, collations=[0] * nkeys,
               options=[0] * nkeys, exprs=None, predicate=None, unique=False, primary=False, exclusion=False,
               nulls_not_distinct=False, valid=True, ready=True, live=True, constraints=[], attached=False,
               being_built=False, definition='CREATE INDEX %s ...' % name, bytes=8192, idx_scan=0)
    row.update(kw)
    return row


def dup_map(rows):
    return dict((d['index'], d['keep']) for d in indexes.duplicates(rows))


def test_identical_indexes_are_one_pair_reported_once_keeping_the_older():
    a, b = ix('a1', [1, 2]), ix('a2', [1, 2])
    assert dup_map([b, a]) == {'public.a2': 'public.a1'}
    three = dup_map([a, b, ix('a3', [1, 2])])
    assert three == {'public.a2': 'public.a1', 'public.a3': 'public.a1'}


def test_the_more_scanned_index_is_kept():
    a, b = ix('a1', [1]), ix('a2', [1], idx_scan=10)
    assert dup_map([a, b]) == {'public.a1': 'public.a2'}


def test_unique_and_constraint_indexes_are_never_dropped_for_a_plain_one():
    plain, unique = ix('plain', [3], idx_scan=1000), ix('uniq', [3], unique=True)
    assert dup_map([plain, unique]) == {'public.plain': 'public.uniq'}
    pkey, uniq = ix('pkey', [1], unique=True, primary=True, constraints=['pkey']), ix('u', [1], unique=True)
    assert dup_map([uniq, pkey]) == {'public.u': 'public.pkey'}
    fk_target, plain2 = ix('ref', [4], unique=True, constraints=['child_fk']), ix('p', [4])
    assert dup_map([plain2, fk_target]) == {'public.p': 'public.ref'}


def test_two_constraint_indexes_are_reported_without_a_drop():
    a = ix('pk', [1], unique=True, primary=True, constraints=['pk'])
    b = ix('uk', [1], unique=True, constraints=['uk'])
    found = indexes.duplicates([a, b])
    assert [(d['index'], d['keep'], d['fix_sql']) for d in found] == [('public.uk', 'public.pk', None)]
    assert 'uk' in found[0]['note']


def test_look_alikes_are_not_duplicates():
    base = ix('base', [1, 2])
    alikes = [
        ix('desc', [1, 2], options=[0, 3]),                       # (a, b DESC NULLS FIRST)
        ix('pattern', [1, 2], opclasses=[1, 9]),                  # text_pattern_ops
        ix('collate', [1, 2], collations=[0, 950]),               # COLLATE "C"
        ix('partial', [1, 2], predicate='(b = 1)'),
        ix('expr', [1, 0], exprs='lower(d)'),
        ix('hash', [1, 2], method='hash'),
        ix('include', [1, 2, 3], nkeyatts=2),                     # INCLUDE (c)
        ix('other_table', [1, 2], table_oid=2),
        ix('invalid', [1, 2], valid=False),
    ]
    for other in alikes:
        assert dup_map([base, other]) == {}, other['name']


def test_expression_and_partial_duplicates_are_duplicates():
    assert dup_map([ix('e1', [0], exprs='lower(d)'), ix('e2', [0], exprs='lower(d)')]) == {'public.e2': 'public.e1'}
    assert dup_map([ix('p1', [4], predicate='(b = 1)'), ix('p2', [4], predicate='(b = 1)')]) == {
        'public.p2': 'public.p1'}


def test_nulls_not_distinct_unique_indexes_differ():
    a = ix('u1', [1], unique=True)
    b = ix('u2', [1], unique=True, nulls_not_distinct=True)
    assert dup_map([a, b]) == {}


def test_partitioned_index_drop_is_not_concurrent_and_attached_ones_are_skipped():
    parent1, parent2 = ix('p1', [1], relkind='I'), ix('p2', [1], relkind='I')
    assert indexes.duplicates([parent1, parent2])[0]['fix_sql'] == 'DROP INDEX IF EXISTS public.p2;'
    assert dup_map([ix('c1', [1], attached=True), ix('c2', [1], attached=True)]) == {}


def red_map(rows, dropped=()):
    return dict((d['index'], d['covered_by']) for d in indexes.redundant(rows, dropped))


def test_leading_prefix_is_redundant():
    assert red_map([ix('a', [1]), ix('ab', [1, 2])]) == {'public.a': 'public.ab'}
    # both ascending on a: (a) is covered by (a, b DESC) too
    assert red_map([ix('a', [1]), ix('abd', [1, 2], options=[0, 1])]) == {'public.a': 'public.abd'}
    # INCLUDE: (a) INCLUDE (b) covered by (a, b); (a, b) INCLUDE (c) covers (a, b)
    assert red_map([ix('a_inc_b', [1, 2], nkeyatts=1), ix('ab', [1, 2])]) == {'public.a_inc_b': 'public.ab'}
    assert red_map([ix('ab', [1, 2]), ix('ab_inc_c', [1, 2, 3], nkeyatts=2)]) == {'public.ab': 'public.ab_inc_c'}


def test_not_redundant():
    cases = [
        [ix('b', [2]), ix('ab', [1, 2])],                                       # not a leading prefix
        [ix('a_desc', [1], options=[3]), ix('ab', [1, 2])],                     # another ordering on a
        [ix('a_pat', [1], opclasses=[9]), ix('ab', [1, 2])],                    # another operator class
        [ix('a_c', [1], collations=[950]), ix('ab', [1, 2])],                   # another collation
        [ix('a_part', [1], predicate='(x > 0)'), ix('ab', [1, 2])],             # partial vs plain
        [ix('a', [1]), ix('ab_part', [1, 2], predicate='(x > 0)')],             # plain vs partial
        [ix('a_expr', [0], exprs='lower(a)'), ix('ab', [0, 2], exprs='lower(a)')],  # expressions
        [ix('a_uniq', [1], unique=True), ix('ab', [1, 2])],                     # unique is never redundant
        [ix('a_uniq', [1], unique=True), ix('ab_uniq', [1, 2], unique=True)],
        [ix('a_hash', [1], method='hash'), ix('ab', [1, 2])],
        [ix('a_gist', [1], method='gist'), ix('ab_gist', [1, 2], method='gist')],
        [ix('a_inc_c', [1, 3], nkeyatts=1), ix('ab', [1, 2])],                  # INCLUDE (c) not in (a, b)
        [ix('a', [1]), ix('ab_invalid', [1, 2], valid=False)],
    ]
    for rows in cases:
        assert red_map(rows) == {}, rows[0]['name']


def test_redundant_skips_indexes_dropped_as_duplicates_and_covers():
    a, ab1, ab2 = ix('a', [1]), ix('ab1', [1, 2]), ix('ab2', [1, 2])
    assert red_map([a, ab1, ab2], dropped=['public.ab2']) == {'public.a': 'public.ab1'}
    health = indexes.health([a, ab1, ab2], [], _thresholds.DEFAULTS, 'tenant_id')
    assert [d['index'] for d in health['duplicate']] == ['public.ab2']
    assert [d['index'] for d in health['redundant']] == ['public.a']


def test_unused_rules_and_replicas():
    rows = [ix('u', [1]), ix('used', [2], idx_scan=5), ix('uniq', [3], unique=True),
            ix('cons', [4], constraints=['x']), ix('child', [5], attached=True), ix('bad', [6], valid=False),
            ix('nostats', [7], idx_scan=None), ix('rep', [8])]
    assert [d['index'] for d in indexes.unused(rows)] == ['public.rep', 'public.u']
    replicas = [{'public.u': 0, 'public.rep': 3}, {'public.u': 0, 'public.rep': 0}]
    assert [d['index'] for d in indexes.unused(rows, replicas)] == ['public.u']
    # an index a replica does not know counts as used there
    assert [d['index'] for d in indexes.unused(rows, [{'public.rep': 0}])] == ['public.rep']


def test_invalid_excludes_the_ones_being_built():
    rows = [ix('ok', [1]), ix('failed', [2], valid=False, ready=False),
            ix('building', [3], valid=False, being_built=True)]
    found = indexes.invalid(rows)
    assert [(d['index'], d['fix_sql']) for d in found] == [
        ('public.failed', 'DROP INDEX CONCURRENTLY IF EXISTS public.failed;')]


def test_missing_candidates_follow_the_thresholds():
    t = _thresholds.DEFAULTS
    tables = [dict(table='public.big', seq_scan=5000, seq_tup_read=10 ** 9, idx_scan=10, n_live_tup=10 ** 6),
              dict(table='public.small', seq_scan=5000, seq_tup_read=10 ** 5, idx_scan=0, n_live_tup=100),
              dict(table='public.indexed', seq_scan=5000, seq_tup_read=10 ** 9, idx_scan=10 ** 6, n_live_tup=10 ** 6),
              dict(table='public.few', seq_scan=1000, seq_tup_read=10 ** 9, idx_scan=0, n_live_tup=10 ** 6)]
    found = indexes.missing(tables, t)
    assert [d['table'] for d in found] == ['public.big']
    assert '5000 sequential scans' in found[0]['reason']


def test_tenant_tables_without_a_leading_tenant_index():
    tables = [dict(oid=1, table='public.t1', table_sql='public.t1', tenant_attnum=2, tenant_sql='tenant_id', relkind='r'),
              dict(oid=2, table='public.Odd', table_sql='public."Odd"', tenant_attnum=3, tenant_sql='"Tenant"',
                   relkind='p'),
              dict(oid=3, table='public.t3', table_sql='public.t3', tenant_attnum=2, tenant_sql='tenant_id', relkind='r'),
              dict(oid=4, table='public.part', table_sql='public.part', tenant_attnum=2, tenant_sql='tenant_id',
                   relkind='r', partition=True),
              dict(oid=5, table='public.none', table_sql='public.none', tenant_attnum=None, relkind='r')]
    rows = [ix('t1_second', [1, 2], table_oid=1), ix('t1_partial', [2], table_oid=1, predicate='(x)'),
            ix('t3_lead', [2, 1], table_oid=3)]
    found = indexes.tenant_unindexed(tables, rows, 'tenant_id')
    assert [(d['table'], d['fix_sql']) for d in found] == [
        ('public.Odd', 'CREATE INDEX ON public."Odd" ("Tenant");'),
        ('public.t1', 'CREATE INDEX CONCURRENTLY ON public.t1 (tenant_id);')]


def test_definitions_are_filled_in_for_the_named_indexes_only():
    a, ab1, ab2, used = ix('a', [1]), ix('ab1', [1, 2], idx_scan=3), ix('ab2', [1, 2]), ix('used', [9], idx_scan=1)
    health = indexes.health([a, ab1, ab2, used], [], _thresholds.DEFAULTS, 'tenant_id')
    assert indexes.named_indexes(health) == {'public.a', 'public.ab1', 'public.ab2'}
    indexes.fill_definitions(health, {'public.a': 'CREATE INDEX a', 'public.ab1': 'CREATE INDEX ab1',
                                      'public.ab2': 'CREATE INDEX ab2'})
    assert health['duplicate'][0]['definition'] == 'CREATE INDEX ab2'
    assert health['duplicate'][0]['keep_definition'] == 'CREATE INDEX ab1'
    assert health['redundant'][0]['covered_by_definition'] == 'CREATE INDEX ab1'
