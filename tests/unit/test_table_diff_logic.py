"""table_diff: the where check, the source option, the comparison's pure steps (no server)."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff import compare, operation, source
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff.where import WhereError, check_where


@pytest.mark.parametrize('text', [
    "created_at < '2026-08-01 03:00+00'",
    "note = 'a;b' AND x = E'it\\'s;'",
    '"odd;col" IS NOT NULL',
    "body = $x$ ; ) ( $x$ AND y = $$;$$",
    "a = 1 -- a comment; with a semicolon\n",
    "a = 1 /* nested /* ; */ comment ) */",
    "(a = 1 OR (b = 2))",
    "tag = 'it''s'",
])
def test_where_accepts_one_expression(text):
    assert check_where(text) == text.strip()


@pytest.mark.parametrize('text, reason', [
    ("true; COMMIT; DROP TABLE orders", '";" is not allowed'),
    ("a = 1) OR (true", 'unbalanced'),
    ("(a = 1", 'unbalanced'),
    ("a = 'open", 'unterminated string'),
    ('"open', 'unterminated quoted identifier'),
    ("a = $q$ open", 'unterminated dollar'),
    ("a = 1 /* open", 'unterminated /*'),
    ("x = E'\\'; DROP TABLE t; --'", None),  # E'' escapes: the string ends at the last quote, nothing outside
])
def test_where_refuses_what_could_leave_the_parentheses(text, reason):
    if reason is None:
        assert check_where(text) == text
        return
    with pytest.raises(WhereError) as exc:
        check_where(text)
    assert reason in str(exc.value)


def test_where_empty_is_none():
    assert check_where(None) is None and check_where('  ') is None


def test_standard_string_has_no_backslash_escape():
    # standard_conforming_strings: in 'a\' the backslash is a character and the quote ends the string
    with pytest.raises(WhereError):
        check_where("x = 'a\\'; DROP TABLE t")


BASE = dict(login_host='live', login_port=5432, login_user='app', login_password='pw', login_db='procgenie',
            ssl_mode='prefer', ca_cert=None, ssl_cert=None, ssl_key=None, connect_params={})


def test_source_inherits_credentials_not_place():
    params = dict(BASE, source=dict(login_host='pitr', login_port=None, login_user=None, login_password=None,
                                    login_db=None, login_unix_socket=None, ssl_mode=None, ca_cert=None,
                                    ssl_cert=None, ssl_key=None, connect_params=None))
    src = source.source_params(params)
    assert src['login_host'] == 'pitr' and src['login_port'] == 5432
    assert (src['login_user'], src['login_password'], src['login_db']) == ('app', 'pw', 'procgenie')
    assert source.describe(params) == dict(host='pitr', port=5432, database='procgenie', user='app')


def test_source_must_say_where_and_keeps_secrets_out_of_connect_params():
    with pytest.raises(source.SourceError) as exc:
        source.source_params(dict(BASE, source=dict(login_db='x')))
    assert 'where the other server is' in str(exc.value)
    with pytest.raises(source.SourceError) as exc:
        source.source_params(dict(BASE, source=dict(login_host='h', connect_params=dict(password='s'))))
    assert 'login_password' in str(exc.value) and "'s'" not in str(exc.value)


def test_source_spec_password_is_no_log():
    spec = source.source_spec().options['source']
    assert spec['options']['login_password']['no_log'] is True and spec['required'] is True
    assert source.source_spec(required=False).options['source']['required'] is False
    operation.argument_spec()  # merges without conflicts


def test_differing_groups():
    src = {(0, 1): (10, 5), (0, 2): (10, 7), (0, 3): (1, 1)}
    tgt = {(0, 1): (10, 5), (0, 2): (10, 8), (0, 4): (2, 2)}
    assert compare.differing(src, tgt) == {(0, 2): (10, 10), (0, 3): (1, 0), (0, 4): (0, 2)}


def test_classify_rows():
    src = {('1',): ('a', ['x', 'y']), ('2',): ('b', ['x', 'y']), ('10',): ('c', ['p', 'q'])}
    tgt = {('2',): ('b2', ['x', 'z']), ('10',): ('c', ['p', 'q']), ('3',): ('d', ['m', 'n'])}
    only_s, only_t, changed = compare.classify(src, tgt, ['id', 'note'])
    assert only_s == [('1',)] and only_t == [(('3',), 'd')] and changed == [(('2',), ['note'], 'b2')]


def test_sort_keys_numbers_numerically():
    keys = [('10',), ('9',), ('b',), ('a',)]
    assert sorted(keys, key=compare.sort_key) == [('9',), ('10',), ('a',), ('b',)]


def test_top_fanout():
    assert compare.top_fanout(0) == 1 and compare.top_fanout(2000000) == 7813 and compare.top_fanout(10 ** 9) == compare.MAX_TOP
    assert compare.top_fanout(100000) == 391


def desc(columns, pk=('id',)):
    return dict(columns=columns, primary_key=list(pk))


def test_check_pair():
    cols = [('id', 'bigint', 'bigint'), ('doc', 'json', 'json'), ('name', 'text', 'text')]
    pair = compare.check_pair('public.t', desc(cols), desc(list(reversed(cols))))
    assert pair['columns'] == ['name', 'doc', 'id'] and pair['key'] == ['id'] and pair['integer_key'] is True
    assert pair['hashable'] == ['name', 'id']  # json has no hash function: hashed through its text
    with pytest.raises(compare.TableDiffError) as exc:
        compare.check_pair('public.t', desc(cols), desc(cols[:2] + [('name', 'varchar(5)', 'character varying')]))
    assert 'types differ: name (text in the source, varchar(5) in the target)' in str(exc.value)
    with pytest.raises(compare.TableDiffError) as exc:
        compare.check_pair('public.t', desc(cols), desc(cols, pk=()))
    assert 'no primary key' in str(exc.value)
    pair = compare.check_pair('public.t', desc(cols, pk=()), desc(cols, pk=()), key=['name'])
    assert pair['key'] == ['name'] and pair['integer_key'] is False


def test_table_specs_refuse_nonsense():
    with pytest.raises(compare.TableDiffError):
        operation.table_specs(dict(tables=[], limit=1))
    with pytest.raises(compare.TableDiffError):
        operation.table_specs(dict(tables=[dict(name='t')], limit=-1))
    assert operation.table_specs(dict(tables=[dict(name='t', where=None, key=None)], limit=0)) == [
        dict(table='t', where=None, key=None)]
