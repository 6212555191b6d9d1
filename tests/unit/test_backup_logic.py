"""Pure logic of the backup modules: validation, commands, FK order, comparisons, scratch names."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.backup import catalog, dump
from ansible_collections.procgenie.dbops.plugins.module_utils import _clients
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import restore as rst
from ansible_collections.procgenie.dbops.plugins.module_utils._dump_restore import ordered_listing, without_fk_constraints


def test_tenant_ids_are_validated():
    assert catalog.validate_tenant_id('E000342E-22C2-B525-5299-B35C4D538065') == 'e000342e-22c2-b525-5299-b35c4d538065'
    for bad in ("x' OR '1'='1", '', None, '1234', 'e000342e-22c2-b525-5299-b35c4d53806g'):
        with pytest.raises(catalog.CatalogError):
            catalog.validate_tenant_id(bad)
    assert catalog.validate_tenant_id('42', 'int') == 42
    with pytest.raises(catalog.CatalogError):
        catalog.validate_tenant_id('4 2', 'int')
    assert catalog.validate_tenant_id("acme'; --", 'text') == "acme'; --"  # bound as a parameter, never pasted
    # control characters only where the type allows them (then COPY and the manifest escape them)
    for bad, id_type in (('acme\n\\! id', 'uuid'), ('4\r2', 'int'), ('e000342e-22c2-b525-5299-b35c4d538065\x1b', 'uuid'),
                         ('9223372036854775808', 'int'), ('\u0661\u0662', 'int')):
        with pytest.raises(catalog.CatalogError):
            catalog.validate_tenant_id(bad, id_type)
    assert catalog.validate_tenant_id('acme\n\\! id', 'text') == 'acme\n\\! id'


def test_dump_patterns_are_literal():
    assert catalog.dump_pattern('public', 'vendors') == '"public"."vendors"'
    assert catalog.dump_pattern('public', 'Odd "Name".*') == '"public"."Odd ""Name"".*"'


def test_fk_order_puts_parents_first_and_reports_cycles():
    ordered, cyclic = catalog.fk_order(['items', 'reqs', 'tenants', 'vendors'],
                                       [('items', 'reqs'), ('reqs', 'tenants'), ('items', 'tenants'),
                                        ('vendors', 'tenants'), ('vendors', 'vendors')])
    assert ordered == ['tenants', 'vendors', 'reqs', 'items'] and cyclic == []
    ordered, cyclic = catalog.fk_order(['a', 'b', 'c'], [('a', 'b'), ('b', 'a'), ('a', 'c')])
    assert ordered == ['c', 'a', 'b'] and cyclic == ['a', 'b']


@pytest.mark.parametrize('params, message', [
    (dict(kind='tables'), 'non-empty list of tables'),
    (dict(kind='full', tables=['x']), 'only used with kind=tables'),
    (dict(kind='tenant', format='custom', tenant='x'), 'plain SQL script'),
    (dict(kind='full', tenant='x'), 'only used with kind=tenant'),
    (dict(kind='full', jobs=2), 'needs format=directory'),
    (dict(kind='full', jobs=0), 'jobs must be 1 or more'),
    (dict(kind='full', compress=11), 'between 0 and 9'),
    (dict(kind='full', format='plain', compress=5), 'custom and directory formats only'),
    (dict(kind='full', keep_last=0), 'keep_last must be 1 or more'),
    (dict(kind='full', jobs=-3), 'jobs must be 1 or more'),
    (dict(kind='full', timeout=-5), 'timeout must be 1 second or more'),
    (dict(kind='full', timeout=0), 'timeout must be 1 second or more'),
    (dict(kind='full', dest=''), 'current directory'),
    (dict(kind='full', dest='  '), 'current directory'),
])
def test_validation(params, message):
    with pytest.raises(dump.BackupFailure, match=message):
        dump.validate(params)


def test_default_formats_follow_the_runbook():
    assert dump.validate(dict(kind='full')) == ('full', 'custom')
    assert dump.validate(dict(kind='schema_only')) == ('schema_only', 'plain')
    assert dump.validate(dict(kind='tables', tables=['a'])) == ('tables', 'custom')
    assert dump.validate(dict(kind='tenant', tenant='x')) == ('tenant', 'plain')


def test_pg_dump_argv():
    argv = dump.pg_dump_argv('/bin/pg_dump', 'directory', '/b/.x', 'SNAP', compress=6, jobs=2,
                             patterns=['"public"."a"'])
    assert argv == ['/bin/pg_dump', '--format=d', '--file=/b/.x', '--no-password', '--snapshot=SNAP',
                    '--compress=6', '--jobs=2', '--table="public"."a"']
    assert '--schema-only' in dump.pg_dump_argv('p', 'plain', 'f', None, schema_only=True)


def test_failures_name_the_signal():
    from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError
    assert 'SIGKILL' in dump.describe_failure(ClientError('x', rc=-9, stderr=''))
    assert 'file size limit' in dump.describe_failure(ClientError('x', rc=-25, stderr=''))
    assert dump.describe_failure(ClientError('pg_dump failed (exit code 1): boom', rc=1)) == \
        'pg_dump failed (exit code 1): boom'


def test_pg_restore_and_psql_argv():
    argv = _clients.pg_restore_argv('pg_restore', '/a.dump', 'db', jobs=4, clean=True)
    assert argv == ['pg_restore', "--dbname=dbname='db'", '--no-password', '--exit-on-error', '--clean', '--if-exists',
                    '--jobs=4', '/a.dump']
    argv = _clients.pg_restore_argv('pg_restore', '/a.dump', 'db', jobs=4, single_transaction=True, data_only=True,
                                    tables=['requisitions'], schemas=['public'])
    assert '--jobs=4' not in argv and '--single-transaction' in argv and '--data-only' in argv
    assert argv[-3:] == ['--schema=public', '--table=requisitions', '/a.dump']
    assert _clients.psql_argv('psql', '/t.sql', 'db')[-1] == '--file=/t.sql'
    assert '--set=ON_ERROR_STOP=1' in _clients.psql_argv('psql', '/t.sql', 'db')


def test_fk_constraints_are_commented_out_of_a_listing():
    listing = ('; Archive created at x\n3; 2615 2200 SCHEMA - public pg\n'
               '4000; 2606 16500 FK CONSTRAINT public requisitions requisitions_tenant_id_fkey owner\n'
               '3999; 0 16400 TABLE DATA public requisitions owner')
    out = without_fk_constraints(listing).splitlines()
    assert out[2].startswith(';4000') and out[3].startswith('3999')


@pytest.mark.parametrize('name, expected', [
    ('requisitions', (None, 'requisitions')),
    ('Public.Requisitions', ('public', 'requisitions')),
    ('"Odd ""Name"" ; x"', (None, 'Odd "Name" ; x')),
    ('public."A.B"', ('public', 'A.B')),
])
def test_split_table_name(name, expected):
    assert rst.split_table_name(name) == expected


@pytest.mark.parametrize('name', ['a.b.c', '"unterminated', '', 'a.'])
def test_split_table_name_refuses(name):
    with pytest.raises(rst.RestoreFailure):
        rst.split_table_name(name)


def test_compare_counts_reports_drift_but_not_as_mismatch():
    rows, mismatches = rst.compare_counts({'a': 1, 'b': 2, 'c': 3}, {'a': 1, 'b': 5, 'c': None}, {'a': 4, 'b': 2})
    assert mismatches == ['b: 5 rows restored, the manifest says 2', 'c: missing after restore']
    assert rows[0] == dict(table='a', expected=1, restored=1, match=True, live=4, drift=3)
    assert rows[2]['drift'] is None


def test_rls_differences():
    policy = dict(name='p', cmd='*', permissive=True, roles=['public'], using_expr='x', check_expr=None)
    want = {'t': dict(enabled=True, forced=False, policies=[policy])}
    assert catalog.rls_differences(want, want) == []
    got = {'t': dict(enabled=False, forced=False, policies=[])}
    assert catalog.rls_differences(want, got) == ['t: row level security enabled is False, the source had True',
                                                  't: policy p missing after restore']
    assert catalog.rls_differences(want, {}) == ['t: table missing after restore']


def test_stale_scratch_databases():
    now = datetime.datetime(2026, 2, 8, tzinfo=datetime.timezone.utc)
    comment = json.dumps(dict(tool='procgenie.dbops.pg_backup_verify', host='h', pid=5, started='2026-02-07T23:00:00Z'))
    assert rst.is_stale(comment, now, host='h', alive=lambda pid: False)
    assert not rst.is_stale(comment, now, host='h', alive=lambda pid: True)
    assert not rst.is_stale(comment, now, host='other', alive=lambda pid: False)
    old = json.dumps(dict(tool='procgenie.dbops.pg_backup_verify', host='other', pid=5, started='2026-02-01T00:00:00Z'))
    assert rst.is_stale(old, now, host='h', alive=lambda pid: True)
    assert not rst.is_stale('someone else\'s database', now)
    assert rst.scratch_name('dbops_verify_', now).startswith('dbops_verify_20260208000000_')


def test_fk_order_puts_referenced_tables_first():
    from ansible_collections.procgenie.dbops.plugins.module_utils.backup.restore import fk_order
    items, reqs, tenants = ('public', 'request_items'), ('public', 'requisitions'), ('public', 'tenants')
    edges = [(items, reqs), (items, tenants), (reqs, tenants), (items, items)]  # a self-reference is no constraint
    assert fk_order([items, reqs, tenants], edges) == ([tenants, reqs, items], [])
    assert fk_order([items, reqs], edges) == ([reqs, items], [])  # tenants not restored: no edge to it
    assert fk_order([reqs, items, reqs], []) == ([reqs, items], [])  # given order kept, duplicates once
    a, b, c = ('s', 'a'), ('s', 'b'), ('s', 'c')
    assert fk_order([a, b, c], [(a, b), (b, a)]) == ([c, a, b], [a, b])  # a cycle goes last, in the given order


def test_ordered_listing_moves_only_the_named_table_data():
    listing = '\n'.join([
        ';', '; Archive created at 2026-11-24 16:00:00 UTC', ';',
        '215; 1259 16390 TABLE public request_items owner',
        '3403; 0 16410 TABLE DATA public requisitions archive owner',  # a longer name that starts the same
        '3401; 0 16390 TABLE DATA public request_items owner',
        '3402; 0 16401 TABLE DATA public requisitions owner',
        '3404; 0 16420 TABLE DATA public tenants owner',
        ';3405; 0 16430 TABLE DATA public vendors owner',
        '3410; 2606 16500 FK CONSTRAINT public request_items request_items_requisition_id_fkey owner'])
    out = ordered_listing(listing, [('public', 'tenants'), ('public', 'requisitions'), ('public', 'request_items')])
    assert out.splitlines() == [
        ';', '; Archive created at 2026-11-24 16:00:00 UTC', ';',
        '215; 1259 16390 TABLE public request_items owner',
        '3403; 0 16410 TABLE DATA public requisitions archive owner',
        '3404; 0 16420 TABLE DATA public tenants owner',
        '3402; 0 16401 TABLE DATA public requisitions owner',
        '3401; 0 16390 TABLE DATA public request_items owner',
        ';3405; 0 16430 TABLE DATA public vendors owner',
        '3410; 2606 16500 FK CONSTRAINT public request_items request_items_requisition_id_fkey owner']
    assert ordered_listing('1; 0 1 TABLE DATA public x owner', [('public', 'y')]) == \
        '1; 0 1 TABLE DATA public x owner\n'
