"""_catalog: table names (SQL syntax and the literal convention), foreign-key order, display quoting."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _catalog
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError


@pytest.mark.parametrize('name, expected', [
    ('requisitions', (None, 'requisitions')),
    ('  requisitions ', (None, 'requisitions')),
    ('Public.Requisitions', ('public', 'requisitions')),
    ('"Odd ""Name"" ; x"', (None, 'Odd "Name" ; x')),
    ('public."A.B"', ('public', 'A.B')),
    ('"My Schema"."T"', ('My Schema', 'T')),
    ('ÄBC', (None, 'Äbc')),  # PostgreSQL folds ASCII letters only
    ('vendors; DROP TABLE tenants; --', (None, 'vendors; drop table tenants; --')),  # a name, never SQL
])
def test_parse_table_name(name, expected):
    assert _catalog.parse_table_name(name) == expected


def test_parse_table_name_default_schema():
    assert _catalog.parse_table_name('vendors', default_schema='public') == ('public', 'vendors')
    assert _catalog.parse_table_name('s.vendors', default_schema='public') == ('s', 'vendors')


@pytest.mark.parametrize('name, message', [
    ('a.b.c', 'is not a table name'),
    ('"unterminated', 'unterminated quote'),
    ('', 'is not a table name'),
    (None, 'is not a table name'),
    ('a.', 'is not a table name'),
    ('.a', 'is not a table name'),
    ('""', 'is not a table name'),
    ('"a\x00"', 'is not a table name'),
    ('tenants" ; DROP TABLE vendors; --', 'unterminated quote'),
])
def test_parse_table_name_refuses(name, message):
    with pytest.raises(CatalogError, match=message):
        _catalog.parse_table_name(name)


def test_literal_table_name():
    assert _catalog.literal_table_name('vendors') == ('public', 'vendors')
    assert _catalog.literal_table_name('vendors', 'app') == ('app', 'vendors')
    assert _catalog.literal_table_name('s.Mixed Case') == ('s', 'Mixed Case')
    assert _catalog.literal_table_name('s.a.b') == ('s', 'a.b')  # split at the first dot
    assert _catalog.literal_table_name('"Quoted"') == ('public', '"Quoted"')  # quotes are part of the name
    assert _catalog.literal_table_name({'schema': 's', 'name': 'a.b'}) == ('s', 'a.b')
    assert _catalog.literal_table_name({'name': 'a.b'}) == ('public', 'a.b')
    for bad in ('', None, 'x.', '.x', {'schema': 's'}, 'a\x00', 42):
        with pytest.raises(CatalogError):
            _catalog.literal_table_name(bad)


@pytest.mark.parametrize('name, quoted', [
    ('vendors', 'vendors'), ('Vendors', '"Vendors"'), ('a b', '"a b"'), ('x"y', '"x""y"'), ('_t1$', '_t1$'),
    ('1t', '"1t"'),
])
def test_quote_ident(name, quoted):
    assert _catalog.quote_ident(name) == quoted


def test_fk_order_puts_parents_first_and_reports_cycles():
    ordered, cyclic = _catalog.fk_order(['items', 'reqs', 'tenants', 'vendors'],
                                        [('items', 'reqs'), ('reqs', 'tenants'), ('items', 'tenants'),
                                         ('vendors', 'tenants'), ('vendors', 'vendors')])
    assert ordered == ['tenants', 'vendors', 'reqs', 'items'] and cyclic == []
    ordered, cyclic = _catalog.fk_order(['a', 'b', 'c'], [('a', 'b'), ('b', 'a'), ('a', 'c')])
    assert ordered == ['c', 'a', 'b'] and cyclic == ['a', 'b']


def test_fk_order_with_schema_qualified_keys():
    items, reqs, tenants = ('public', 'request_items'), ('public', 'requisitions'), ('public', 'tenants')
    edges = [(items, reqs), (items, tenants), (reqs, tenants), (items, items)]  # a self-reference is no constraint
    assert _catalog.fk_order([items, reqs, tenants], edges) == ([tenants, reqs, items], [])
    assert _catalog.fk_order([items, reqs], edges) == ([reqs, items], [])  # tenants not listed: no edge to it
    assert _catalog.fk_order([reqs, items, reqs], []) == ([reqs, items], [])  # given order kept, duplicates once
    a, b, c = ('s', 'a'), ('s', 'b'), ('s', 'c')
    assert _catalog.fk_order([a, b, c], [(a, b), (b, a)]) == ([c, a, b], [a, b])  # a cycle last, in given order
    assert _catalog.fk_order([], [(a, b)]) == ([], [])


def test_fk_order_every_edge_respected():
    tables = list(range(12))
    edges = [(i, j) for i in tables for j in tables if (i * 7 + j * 3) % 5 == 0 and i > j]
    ordered, cyclic = _catalog.fk_order(tables, edges)
    assert cyclic == [] and sorted(ordered) == tables
    for child, parent in edges:
        assert ordered.index(parent) < ordered.index(child)
