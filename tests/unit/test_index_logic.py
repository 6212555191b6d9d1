"""pg_index's pure logic: index elements and predicates checked by PostgreSQL's parser, the advisor's candidates and
choice, lock-timeout retries with backoff (no server)."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _lock_retry
from ansible_collections.procgenie.dbops.plugins.module_utils.index import advisor, definition
from ansible_collections.procgenie.dbops.plugins.module_utils.index.definition import IndexFailure


@pytest.mark.parametrize('text, printed', [
    ('lower(email)', '(lower(email))'),
    ('created_at  desc', 'created_at DESC'),
    ('email text_pattern_ops', 'email text_pattern_ops'),
    ('"Mixed Case" COLLATE "C" DESC NULLS LAST', '"Mixed Case" COLLATE "C" DESC NULLS LAST'),
    ('(a + b)', '(a + b)'),
    ('a + b', '(a + b)'),
    ('coalesce(a, 0) DESC', '(COALESCE(a, 0)) DESC'),
])
def test_elements_are_reprinted_by_the_parser(text, printed):
    assert definition.parse_element(text, 0) == printed


@pytest.mark.parametrize('text', [
    'id); DROP TABLE items; --',
    'a, b',
    'a) INCLUDE (b',
    'a) WHERE (true',
    'a) WITH (fillfactor = 10',
    'a) TABLESPACE pg_global; SELECT (1',
    '',
    'select',
])
def test_anything_but_one_element_is_refused(text):
    with pytest.raises(IndexFailure):
        definition.parse_element(text, 3)


def test_predicates():
    assert definition.parse_predicate('(deleted_at is null)') == 'deleted_at IS NULL'
    assert definition.parse_predicate("status = 'open' and id > 3") == "status = 'open' AND id > 3"
    for bad in ('true; DROP TABLE items', 'true) WITH (fillfactor = 10', '', 'x TABLESPACE y'):
        with pytest.raises(IndexFailure):
            definition.parse_predicate(bad)


def test_elements_columns_stay_identifiers():
    assert definition.build_elements(['Id', 'lower(x)'], ['Id', 'x']) == [('column', 'Id'), ('sql', '(lower(x))')]
    with pytest.raises(IndexFailure):
        definition.build_elements([], ['x'])


def test_generated_names_fit_namedatalen():
    assert definition.generated_name('orders', ['customer_id']) == 'orders_customer_id_idx'
    long_name = definition.generated_name('t' * 60, ['c' * 20, 'd'])
    assert len(long_name.encode('utf-8')) <= 63 and long_name.endswith('_idx')
    assert len(definition.temporary_name('x' * 63).encode('utf-8')) <= 63


def test_differences():
    wanted = dict(method='btree', unique=False, keys=['a'], include=[], opclasses='{1}', options='{0}',
                  collations='{0}', nulls_not_distinct=False, predicate=None)
    assert definition.differences(dict(wanted), wanted) == []
    assert definition.differences(dict(wanted, keys=['a', 'b'], predicate='a > 1'), wanted) == ['keys', 'predicate']


def statement(text):
    return advisor.parse_statement(advisor.Statement(text))


def test_statements_parsed_for_candidates():
    s = statement('SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id '
                  'WHERE o.status = $1 AND c.region IN (1, 2) AND o.amount > $2 ORDER BY o.created_at')
    assert s.skipped is None and s.params == 2
    assert [(r[1], r[2]) for r in s.relations] == [('orders', 'o'), ('customers', 'c')] or \
        sorted((r[1], r[2]) for r in s.relations) == [('customers', 'c'), ('orders', 'o')]
    assert set(s.refs) == {('c', 'id', True), ('o', 'customer_id', True), ('o', 'status', True),
                           ('c', 'region', True), ('o', 'amount', False)}
    assert statement('DELETE FROM t WHERE a = ANY($1)').refs == [(None, 'a', True)]
    assert statement('UPDATE t SET b = 1 WHERE a BETWEEN 1 AND 2').refs == [(None, 'a', False)]


@pytest.mark.parametrize('text, why', [
    ('DROP TABLE orders', 'not a SELECT'),
    ('SELECT 1; DROP TABLE orders', 'not one statement'),
    ('SELECT * INTO copy FROM orders WHERE a = 1', 'not a SELECT'),
    ('INSERT INTO t VALUES (1)', 'not a SELECT'),
    ('SELECT * FROM orders', 'no column compared'),
    ('SELEC oops', 'not parsed'),
])
def test_statements_not_advised_on(text, why):
    assert why in statement(text).skipped


def test_candidates_singles_then_pairs_and_coverage():
    cands = advisor.candidate_columns([('a', True), ('b', False), ('c', True)])
    assert cands == [('a',), ('b',), ('c',), ('a', 'b'), ('a', 'c'), ('c', 'a'), ('c', 'b')]
    assert advisor.covered(('a',), [['a', 'b']]) and advisor.covered(('a', 'b'), [['a', 'b', 'c']])
    assert not advisor.covered(('b',), [['a', 'b']])


def test_choice_cheapest_then_fewer_columns():
    s1 = advisor.Statement('q1')
    s1.cost_before = 100.0
    s1.costs = {(1, ('a',)): 10.0, (1, ('a', 'b')): 9.95, (1, ('b',)): 60.0}
    s2 = advisor.Statement('q2')
    s2.cost_before = 100.0
    s2.costs = {(1, ('b',)): 55.0}
    s3 = advisor.Statement('q3')
    s3.cost_before = 100.0
    s3.costs = {(1, ('a',)): 20.0, (1, ('a', 'c')): 5.0}
    assert advisor.choose([s1, s2, s3], 50.0) == {0: (1, ('a',)), 2: (1, ('a', 'c'))}
    assert advisor.savings(200.0, 50.0) == 75.0 and advisor.savings(0, 1) == 0.0


class LockError(Exception):
    pgcode = '55P03'


def test_lock_retries_with_backoff():
    calls, sleeps, retried = [], [], []

    def action():
        calls.append(1)
        if len(calls) < 3:
            raise LockError()
        return 'done'
    result = _lock_retry.with_lock_retries(action, 5, 0.5, before_retry=lambda n, e: retried.append(n),
                                           sleep=sleeps.append)
    assert result == ('done', 2) and sleeps == [0.5, 1.0] and retried == [0, 1]
    with pytest.raises(_lock_retry.LockRetriesExhausted) as info:
        _lock_retry.with_lock_retries(lambda: (never for never in ()).throw(LockError()), 2, 1, sleep=sleeps.append)
    assert info.value.attempts == 3
    with pytest.raises(ValueError):
        _lock_retry.with_lock_retries(lambda: (never for never in ()).throw(ValueError()), 2, 1, sleep=sleeps.append)


def test_the_missing_hypopg_message_says_how_to_install_it():
    message = advisor.HYPOPG_HELP.format(major=15)
    assert 'postgresql-15-hypopg' in message and 'azure.extensions' in message and 'hypopg_15' in message
