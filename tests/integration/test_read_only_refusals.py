"""pg_read_only's plan step checks everything before the first change: check mode reports what the run would do,
refusals included."""

from __future__ import annotations

import os

import pytest

from tests.conftest import node_params
from tests.integration.test_read_only import db_setting, ro_task

RECORD = 'procgenie_dbops.read_only_mode'


@pytest.fixture
def strict_db(lab):
    db = 'ro_plan_%d' % os.getpid()
    app = 'ro_plan_app_%d' % os.getpid()
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    lab.psql('primary', 'DROP ROLE IF EXISTS %s' % app)
    lab.psql('primary', 'CREATE ROLE %s; CREATE DATABASE %s' % (app, db))
    lab.psql('primary', 'CREATE TABLE t(x int); GRANT SELECT, INSERT, DELETE ON t TO %s' % app, db=db)
    yield db, app
    lab.psql('primary', 'ALTER DATABASE %s RESET default_transaction_read_only' % db)
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    lab.psql('primary', 'DROP ROLE IF EXISTS %s' % app)


def test_a_tampered_record_is_refused_by_check_mode_and_before_any_change(lab, play, strict_db):
    db, app = strict_db
    params = node_params(lab, db='postgres')
    on = play([ro_task(params, database=db, state='on', revoke_writes=[app])])
    assert on.rc == 0, on
    assert sorted(g['privilege'] for g in on.result('ro')['revoked']) == ['DELETE', 'INSERT']
    acl = lab.psql('primary', "SELECT relacl::text FROM pg_class WHERE relname = 't'", db=db)
    # someone edits the record: a privilege that is not a write privilege must never be granted back
    lab.psql('primary', "SET default_transaction_read_only = off; "
                        "UPDATE %s SET revoked = jsonb_set(revoked, '{0,privilege}', '\"SELECT\"')" % RECORD,
             db=db)

    check = play([ro_task(params, database=db, state='off')], check=True)
    planned = check.result('ro')
    assert planned.get('failed') is True, planned
    assert 'Unexpected privilege in the record' in planned['msg']

    run = play([ro_task(params, database=db, state='off')])
    failed = run.result('ro')
    assert failed.get('failed') is True and 'Unexpected privilege in the record' in failed['msg']
    assert 'Traceback' not in run.text
    assert not any('ALTER DATABASE' in q or q.startswith(('GRANT', 'SET ROLE')) for q in failed['queries'])
    # nothing changed: the mode, the privileges and the record are as they were
    assert db_setting(lab, db) == 'default_transaction_read_only=on'
    assert lab.psql('primary', "SELECT relacl::text FROM pg_class WHERE relname = 't'", db=db) == acl
    assert lab.psql('primary', 'SELECT count(*) FROM %s' % RECORD, db=db) == '1'
