"""integrity: pg_amcheck's command line and report, the refusals (no server)."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.integrity import amcheck, check

REPORT = '''heap table "shop.public.orders", block 12, offset 4:
    xmin 4294967295 equals or exceeds next valid transaction ID 0:758
heap table "shop.public.orders", block 12, offset 5, attribute 2:
    toast value 16444 not found in toast table
btree index "shop.public.orders_pkey":
    ERROR:  invalid page in block 1 of relation base/5/16389
heap table "shop.pg_toast.pg_toast_16384":
    ERROR:  invalid page in block 0 of relation base/5/16387
heap table "shop.my.schema.odd.name":
    ERROR:  could not read block 3 in file "base/5/1": read only 0 of 8192 bytes
    query was: SELECT * FROM verify_heapam(...)
'''


def test_parse_report():
    problems = amcheck.parse_report(REPORT, 'shop', known=[('my.schema', 'odd.name')])
    assert [(p['schema'], p['relation'], p['kind'], p['block'], p['offset'], p['attribute']) for p in problems] == [
        ('public', 'orders', 'table', 12, 4, None),
        ('public', 'orders', 'table', 12, 5, 2),
        ('public', 'orders_pkey', 'index', 1, None, None),
        ('pg_toast', 'pg_toast_16384', 'toast', 0, None, None),
        ('my.schema', 'odd.name', 'table', 3, None, None)]
    assert problems[2]['message'] == 'invalid page in block 1 of relation base/5/16389'
    assert 'query was' not in problems[4]['message'] and problems[0]['database'] == 'shop'
    assert amcheck.parse_report('', 'shop') == []


def test_build_argv_quotes_names_and_never_expands_the_database():
    argv = amcheck.build_argv('/bin/pg_amcheck', 'host=evil dbname=x', jobs=3, heapallindexed=True,
                              schemas=['Sales*'], tables=[('public', 'a"b.c')])
    assert argv == ['/bin/pg_amcheck', '--no-password', '--jobs=3', '--heapallindexed', '--schema="Sales*"',
                    '--table="public"."a""b.c"', "dbname='host=evil dbname=x'"]


def opts(**kw):
    base = dict(jobs=1, parent_check=False, maintenance_window=False, rootdescend=False)
    base.update(kw)
    return base


@pytest.mark.parametrize('params, recovery, reason', [
    (opts(jobs=0), False, 'jobs must be 1 or more'),
    (opts(parent_check=True), False, 'maintenance_window: true'),
    (opts(parent_check=True, maintenance_window=True), True, 'standby'),
    (opts(rootdescend=True), False, 'parent_check: true'),
])
def test_refusals(params, recovery, reason):
    with pytest.raises(check.IntegrityError) as exc:
        check.check_options(params, recovery)
    assert reason in str(exc.value)


def test_parent_check_in_a_window_is_fine():
    check.check_options(opts(parent_check=True, maintenance_window=True, rootdescend=True), False)


def test_allow_listed():
    assert check.allow_listed(None) is None
    assert check.allow_listed('pg_trgm, AMCHECK') is True
    assert check.allow_listed('pg_trgm,pgcrypto') is False
