"""integrity.functions and the method choice: the pure parts (no server)."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError
from ansible_collections.procgenie.dbops.plugins.module_utils.integrity import amcheck, check, functions


class Diag(object):
    def __init__(self, primary, detail=None, hint=None):
        self.message_primary, self.message_detail, self.message_hint = primary, detail, hint


class Error(Exception):
    def __init__(self, primary, detail=None, hint=None, pgcode='XX002'):
        super(Error, self).__init__('ERROR:  %s' % primary)
        self.diag, self.pgcode = Diag(primary, detail, hint), pgcode


def test_versions_and_the_heap_check():
    assert functions.version_tuple('1.3') == (1, 3) and functions.version_tuple(None) == ()
    assert functions.checks_tables('1.3') and functions.checks_tables('1.4') and functions.checks_tables('2.0')
    assert not functions.checks_tables('1.2') and not functions.checks_tables(None)
    assert check.heap_limitation('db', '1.4') is None
    reason = check.heap_limitation('db', '1.2')
    assert 'verify_heapam' in reason and 'only its btree indexes' in reason and 'not its tables' in reason


@pytest.mark.parametrize('code, expected', [('XX001', False), ('XX002', False), ('XX000', False), ('58030', False),
                                            ('55P03', True), ('57014', True), ('57P01', True), ('42501', True),
                                            ('08006', True), ('53200', True), (None, False)])
def test_operational_errors_are_not_corruption(code, expected):
    assert functions.operational(code) is expected


def test_error_message_as_pg_amcheck_prints_it():
    exc = Error('index "t_pkey" lacks a main relation fork', detail='Block=1.', hint='Reindex it.')
    assert functions.error_message(exc) == ('index "t_pkey" lacks a main relation fork DETAIL:  Block=1. '
                                            'HINT:  Reindex it.')
    row = amcheck.problem('db', 'public', 't_pkey', 'index', message=functions.error_message(
        Error('invalid page in block 7 of relation base/1/2')))
    assert row == dict(database='db', schema='public', relation='t_pkey', kind='index', block=7, offset=None,
                       attribute=None, message='invalid page in block 7 of relation base/1/2')
    # the same row shape as pg_amcheck's report
    parsed = amcheck.parse_report('btree index "db.public.t_pkey":\n    ERROR:  invalid page in block 7 of relation '
                                  'base/1/2\n', 'db')
    assert parsed == [row]


def test_kind_of():
    assert functions.kind_of(dict(is_btree=True, schema='pg_toast')) == 'index'
    assert functions.kind_of(dict(is_btree=False, schema='pg_toast')) == 'toast'
    assert functions.kind_of(dict(is_btree=False, schema='public')) == 'table'


def test_old_amcheck():
    assert check.old_amcheck([dict(database='a', amcheck_version='1.3'), dict(database='b', amcheck_version=None)]) \
        is None
    assert check.old_amcheck([dict(database='a', amcheck_version='1.4'), dict(database='b', amcheck_version='1.2')]) \
        == 'amcheck 1.2 in database b has no verify_heapam'


def test_choose_method():
    def found():
        return '/usr/bin/pg_amcheck'

    def missing():
        raise ClientError('Cannot find the PostgreSQL client program pg_amcheck in pg_bindir /x')
    assert check.choose_method('auto', found) == ('pg_amcheck', '/usr/bin/pg_amcheck', None)
    method, program, reason = check.choose_method('auto', missing)
    assert (method, program) == ('functions', None) and 'pg_bindir /x' in reason
    assert check.choose_method('functions', missing) == ('functions', None, None)
    with pytest.raises(ClientError):
        check.choose_method('pg_amcheck', missing)


def test_queries_name_the_extension_schema_as_an_identifier():
    from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql
    assert sql is not None
    heap = functions.heap_query('odd"schema')
    parts = [p for p in heap.seq if isinstance(p, sql.Identifier)]
    assert [p.strings for p in parts] == [('odd"schema',)]
    parent = functions.btree_query('amcheck', parent_check=True)
    assert 'bt_index_parent_check' in repr(parent) and 'rootdescend' in repr(parent)
    assert 'bt_index_parent_check' not in repr(functions.btree_query('amcheck'))
