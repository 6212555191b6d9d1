"""pg_vacuum's pure logic: options refused, tables chosen and ordered, the budget, pg_repack's command and client."""

from __future__ import annotations

import os

import psycopg2.extensions
import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils._thresholds import DEFAULTS
from ansible_collections.procgenie.dbops.plugins.module_utils.vacuum import operation, repack, selection

SETTINGS = dict(freeze_max_age=200000000, mxid_freeze_max_age=400000000, failsafe_age=1600000000,
                mxid_failsafe_age=1600000000)


def params(**kw):
    base = dict(tables=None, method='vacuum', analyze=True, freeze=False, verbose=False, full=False,
                maintenance_window=False, time_budget=None, statement_timeout=None, lock_timeout='5s', wait_timeout=60,
                no_kill_backend=True, jobs=1, disk_check='required', thresholds={})
    base.update(kw)
    return base


def row(name, dead=0, live=1000, xid_age=100, mxid_age=0, allowed=True, oid=None):
    return dict(oid=oid or hash(name) % 100000, schema='public', name=name, qname='public.' + name, n_dead_tup=dead,
                n_live_tup=live, xid_age=xid_age, mxid_age=mxid_age, allowed=allowed, bytes=8192, relfilenode=1)


# ---------------------------------------------------------------- options
def test_vacuum_full_is_refused_outside_a_window_with_the_reason():
    problems = operation.check_params(params(full=True, tables=['t']))
    assert len(problems) == 1 and 'ACCESS EXCLUSIVE' in problems[0] and 'maintenance_window: true' in problems[0]
    assert 'method: repack' in problems[0]
    assert operation.check_params(params(full=True, tables=['t'], maintenance_window=True)) == []
    assert 'lock_timeout' in operation.check_params(params(full=True, tables=['t'], maintenance_window=True,
                                                           lock_timeout='0'))[0]
    assert 'exclude' in operation.check_params(params(full=True, method='repack', tables=['t']))[0]


def test_rewrites_need_named_tables_and_nonsense_numbers_are_refused():
    assert 'name them' in operation.check_params(params(method='repack'))[0]
    assert 'name them' in operation.check_params(params(full=True, maintenance_window=True))[0]
    problems = operation.check_params(params(time_budget=0, statement_timeout='-1s', lock_timeout='5', wait_timeout=0,
                                             jobs=0))
    assert len(problems) == 5
    assert any("lock_timeout: invalid value '5', give a unit" in p for p in problems)
    assert any('statement_timeout' in p for p in operation.check_params(params(statement_timeout='0')))


def test_action_names_the_vacuum_options_in_postgresql_order():
    assert operation.action_of(params()) == 'VACUUM (ANALYZE)'
    assert operation.action_of(params(full=True, freeze=True, verbose=True)) == 'VACUUM (FULL, FREEZE, VERBOSE, ANALYZE)'
    assert operation.action_of(params(analyze=False)) == 'VACUUM'
    assert operation.action_of(params(method='repack')) == 'pg_repack'


# ---------------------------------------------------------------- selection
def test_tables_over_thresholds_oldest_relfrozenxid_first():
    thresholds = dict(DEFAULTS)
    rows = [row('few_dead', dead=50, xid_age=10), row('dead', dead=20000, live=20000, xid_age=500),
            row('old', xid_age=310000000), row('older_dead', dead=30000, live=1000, xid_age=9000),
            row('not_mine', dead=90000, live=10, xid_age=999999999, allowed=False),
            row('old_mxid', mxid_age=700000000, xid_age=5)]
    chosen, skipped = selection.choose(rows, thresholds, SETTINGS)
    assert [r['name'] for r in chosen] == ['old', 'older_dead', 'dead', 'old_mxid']
    assert 'transaction ID age 310000000 (warn)' in chosen[0]['reason']
    assert 'dead tuples' in chosen[1]['reason'] and 'multixact' in chosen[3]['reason']
    assert skipped == []  # not named: a table the role may not vacuum is simply not chosen


def test_named_tables_are_chosen_whatever_their_figures_unless_not_allowed():
    rows = [row('a', oid=1), row('b', oid=2, xid_age=5000), row('c', oid=3, allowed=False), row('d', oid=4)]
    chosen, skipped = selection.choose(rows, dict(DEFAULTS), SETTINGS, named={1, 2, 3})
    assert [r['name'] for r in chosen] == ['b', 'a'] and chosen[1]['reason'] == 'named'
    assert skipped[0]['table'] == 'public.c' and 'own' in skipped[0]['reason']


def test_critical_wraparound_level_uses_the_failsafe_age():
    reasons = selection.reasons_over(row('x', xid_age=1500000000), dict(DEFAULTS), SETTINGS)
    assert reasons == ['transaction ID age 1500000000 (critical)']


def test_budget_bounds_the_next_statement_and_ends():
    now = [100.0]
    budget = selection.Budget(10, clock=lambda: now[0])
    assert budget.timeout(None) == (10, True) and budget.timeout(30) == (10, True)
    assert budget.timeout(4) == (4, False)
    now[0] = 107.5
    assert budget.timeout(None) == (2.5, True) and not budget.spent()
    now[0] = 110.0
    assert budget.spent()
    assert selection.Budget(None).timeout(None) == (None, False) and not selection.Budget(None).spent()


# ---------------------------------------------------------------- pg_repack
@pytest.mark.parametrize('name', ['app', 'my db', "o'brien", 'x host=evil.example port=1', 'back\\slash',
                                  'postgresql://evil.example/db'])
def test_repack_database_reaches_libpq_as_the_name_itself(name):
    command = repack.argv('/bin/pg_repack', name, 'public."T x"', 30)
    dbname = [a for a in command if a.startswith('--dbname=')][0][len('--dbname='):]
    # pg_repack builds "dbname=%s host=..." and hands it to PQconnectdb: the value must read back as the name
    assert psycopg2.extensions.parse_dsn('dbname=%s port=5432' % dbname) == dict(dbname=name, port='5432')
    assert '--no-kill-backend' in command and '--wait-timeout=30' in command and '--table=public."T x"' in command
    assert not [a for a in command if 'password' in a.lower() and a != '--no-password']


def test_repack_flags():
    command = repack.argv('/bin/pg_repack', 'app', 't', 60, no_kill_backend=False, jobs=3, superuser=False)
    assert '--no-kill-backend' not in command and '--jobs=3' in command and '--no-superuser-check' in command


def test_repack_client_must_match_the_extension(tmp_path):
    path = os.path.join(str(tmp_path), 'pg_repack')
    with open(path, 'w') as handle:
        handle.write('#!/bin/sh\necho "pg_repack 1.4.7"\n')
    os.chmod(path, 0o755)
    with pytest.raises(repack.RepackError, match=r'1\.4\.8.*1\.4\.7'):
        repack.find_client(str(tmp_path), '1.4.8')
    assert repack.find_client(str(tmp_path), '1.4.7') == (path, '1.4.7')
    with pytest.raises(repack.RepackError, match='Cannot find'):
        repack.find_client(str(tmp_path / 'none'), '1.4.8')


def test_disk_verdict():
    assert repack.disk_verdict(100, 100, '/data') is None
    assert 'not enough free disk on /data: 99 bytes free, about 100 needed' in repack.disk_verdict(100, 99, '/data')
