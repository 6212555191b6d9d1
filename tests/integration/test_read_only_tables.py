"""pg_read_only scope=tables against the real lab: writes to some tables stop for every application role (the owner
included), other tables keep working, `off` puts the exact ACL back (grant options, grantors, column grants, PUBLIC),
sessions holding write locks are ended, pg_row_restore still writes the stopped tables as their (non-superuser)
owner, and the corruption recovery playbook runs with corruption_recovery_stop_writes=tables."""

from __future__ import annotations

import json
import os
import time

import psycopg2
import pytest

from tests.conftest import REPO, node_params
from tests.integration import test_corruption_recovery as recovery
from tests.integration.test_read_only import alive

incident = recovery.incident  # the fixture of the recovery test: its lab database, a base backup, the corruption

OWNER, APP, HELPER = 'rot_owner', 'rot_app', 'rot_helper'
PASSWORD = 'rot-Pw-1'
SETUP = """
CREATE TABLE stopped (id serial PRIMARY KEY, note text);
CREATE TABLE other (x int);
CREATE TABLE stopped_child (id int PRIMARY KEY REFERENCES stopped (id));
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON stopped, other, stopped_child TO {app};
GRANT INSERT ON stopped TO {app} WITH GRANT OPTION;
GRANT USAGE ON SEQUENCE stopped_id_seq TO {app};
GRANT SELECT, DELETE ON stopped TO PUBLIC;
SET ROLE {app};
GRANT INSERT ON stopped TO {helper};
RESET ROLE;
GRANT UPDATE (note) ON stopped TO {helper};
INSERT INTO stopped (note) VALUES ('one'), ('two');
"""
ACL = ("SELECT json_build_object('table', (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(c.relacl) a), "
       "'columns', (SELECT json_object_agg(t.attname, (SELECT array_agg(x::text ORDER BY x::text) "
       "FROM unnest(t.attacl) x)) FROM pg_attribute t WHERE t.attrelid = c.oid AND t.attacl IS NOT NULL))::text "
       "FROM pg_class c WHERE c.oid = '%s'::regclass")


def connect(lab, db, user=None, password=None, app='rot-test'):
    n = lab.state['nodes']['primary']
    conn = psycopg2.connect(host=n['host'], port=n['port'], user=user or lab.state['superuser'],
                            password=password or lab.state['password'], dbname=db, application_name=app)
    conn.autocommit = True
    return conn


def writes(conn, statement):
    """True when the statement committed, False when it was refused for lack of privilege."""
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
        return True
    except psycopg2.errors.InsufficientPrivilege:
        return False


def task(params, name='ro', **args):
    return dict(name=name, register='out', **{'procgenie.dbops.pg_read_only': dict(params, **args)})


def acl(lab, db, table):
    return json.loads(lab.psql('primary', ACL % table, db=db))


@pytest.fixture
def tdb(lab):
    db = 'rot_%d' % os.getpid()
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    for role in (HELPER, APP, OWNER):
        lab.psql('primary', 'DROP ROLE IF EXISTS %s' % role)
    lab.psql('primary', "CREATE ROLE %s LOGIN PASSWORD '%s'; CREATE ROLE %s LOGIN PASSWORD '%s'; CREATE ROLE %s" % (
        OWNER, PASSWORD, APP, PASSWORD, HELPER))
    lab.psql('primary', 'CREATE DATABASE %s OWNER %s' % (db, OWNER))
    lab.psql('primary', 'ALTER SCHEMA public OWNER TO %s' % OWNER, db=db)
    lab.psql('primary', 'SET ROLE %s;\n' % OWNER + SETUP.format(app=APP, helper=HELPER), db=db)
    yield db
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    for role in (HELPER, APP, OWNER):
        lab.psql('primary', 'DROP ROLE IF EXISTS %s' % role)


def test_tables_stop_writes_for_owner_and_app_and_off_restores_the_exact_acl(lab, play, tdb):
    params = node_params(lab, db='postgres')
    before = dict((t, acl(lab, tdb, t)) for t in ('stopped', 'other'))
    assert before['stopped']['columns'] == {'note': ['%s=w/%s' % (HELPER, OWNER)]}
    assert '%s=a*rwdD/%s' % (APP, OWNER) in before['stopped']['table']
    args = dict(scope='tables', database=tdb, tables=['stopped'], state='on')

    check = play([task(params, **args)], check=True, diff=True)
    assert check.rc == 0, check.result('ro').get('msg')
    planned = check.result('ro')
    assert planned['changed'] is True and planned['previous_state'] == 'off'
    assert any(s.startswith('REVOKE') and '"public"."stopped"' in s and 'FROM PUBLIC' in s
               for s in planned['statements'])
    assert any(q.startswith('REVOKE') for q in planned['queries'])
    assert planned['diff']['after']['stopped_tables'] == ['public.stopped']
    assert acl(lab, tdb, 'stopped') == before['stopped']
    assert lab.psql('primary', "SELECT to_regnamespace('procgenie_dbops') IS NULL", db=tdb) == 't'

    run = play([task(params, **args), task(params, 'again', **args)], diff=True)
    assert run.rc == 0, [r['result'].get('msg') for r in run.results]
    first, again = run.result('ro'), run.result('again')
    assert first['changed'] is True and first['state'] == 'on' and first['tables'] == ['public.stopped']
    revoked = set((g['grantee'], g['privilege'], g['column'], g['grantable'], g['grantor']) for g in first['revoked'])
    assert (OWNER, 'INSERT', None, False, OWNER) in revoked
    assert (APP, 'INSERT', None, True, OWNER) in revoked
    assert (HELPER, 'INSERT', None, False, APP) in revoked
    assert (HELPER, 'UPDATE', 'note', False, OWNER) in revoked
    assert ('PUBLIC', 'DELETE', None, False, OWNER) in revoked
    assert lab.state['superuser'] in [w['role'] for w in first['writers']]
    assert any('can still write' in w for w in first.get('warnings', []))
    assert any('stopped_child' in w for w in first.get('warnings', []))
    assert again['changed'] is False and again['revoked'] == [] and 'diff' not in again

    owner = connect(lab, tdb, OWNER, PASSWORD)
    app = connect(lab, tdb, APP, PASSWORD)
    for conn in (owner, app):
        assert writes(conn, "INSERT INTO stopped (note) VALUES ('x')") is False
        assert writes(conn, "UPDATE stopped SET note = 'y'") is False
        assert writes(conn, 'DELETE FROM stopped') is False
        assert writes(conn, 'TRUNCATE stopped_child, stopped') is False
        assert writes(conn, 'INSERT INTO other VALUES (1)') is True  # the rest of the database keeps working
        assert writes(conn, 'SELECT count(*) FROM stopped') is True
        # documented: the sequence is left alone (a value taken is a gap, no data)
        assert writes(conn, "SELECT nextval('stopped_id_seq')") is True
    assert writes(app, 'BEGIN READ WRITE; UPDATE stopped SET note = note; COMMIT') is False
    with app.cursor() as cur:
        cur.execute('ROLLBACK')
    assert lab.psql('primary', 'SELECT count(*) FROM stopped', db=tdb) == '2'
    record = lab.psql('primary', 'SELECT "table", jsonb_array_length(revoked) FROM procgenie_dbops.read_only_tables',
                      db=tdb)
    assert record == 'stopped|%d' % len(first['revoked'])

    off = play([task(params, 'off', scope='tables', database=tdb, tables=['public.stopped'], state='off'),
                task(params, 'off again', scope='tables', database=tdb, tables=['public.stopped'], state='off')],
               diff=True)
    assert off.rc == 0, [r['result'].get('msg') for r in off.results]
    assert off.result('off')['changed'] is True and off.result('off')['previous_state'] == 'on'
    assert len(off.result('off')['restored']) == len(first['revoked'])
    assert off.result('off again')['changed'] is False
    assert dict((t, acl(lab, tdb, t)) for t in ('stopped', 'other')) == before
    assert lab.psql('primary', "SELECT to_regnamespace('procgenie_dbops') IS NULL", db=tdb) == 't'
    assert writes(owner, "INSERT INTO stopped (note) VALUES ('back')") is True
    assert writes(app, "UPDATE stopped SET note = 'z' WHERE note = 'back'") is True
    owner.close()
    app.close()


def test_tables_mode_ends_sessions_holding_write_locks_only(lab, play, tdb):
    params = node_params(lab, db='postgres')
    writer = connect(lab, tdb, APP, PASSWORD, app='rot-writer')
    reader = connect(lab, tdb, APP, PASSWORD, app='rot-reader')
    elsewhere = connect(lab, tdb, APP, PASSWORD, app='rot-elsewhere')
    idle = connect(lab, tdb, APP, PASSWORD, app='rot-idle')
    numbering = connect(lab, tdb, APP, PASSWORD, app='rot-numbering')  # took an id for an insert still to come
    for conn, statement in ((writer, "INSERT INTO stopped (note) VALUES ('late')"),
                            (numbering, "SELECT nextval('stopped_id_seq')"),
                            (reader, 'SELECT count(*) FROM stopped'), (elsewhere, 'INSERT INTO other VALUES (7)')):
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute(statement)  # each transaction stays open
    args = dict(scope='tables', database=tdb, tables=['stopped'], state='on', sessions='terminate')
    check = play([task(params, **args)], check=True)
    assert check.rc == 0, check.result('ro').get('msg')
    assert sorted((s['application_name'], s['signalled']) for s in check.result('ro')['sessions']) == [
        ('rot-numbering', False), ('rot-writer', False)]
    run = play([task(params, **args)])
    assert run.rc == 0, [r['result'].get('msg') for r in run.results]
    picked = dict((s['application_name'], s) for s in run.result('ro')['sessions'])
    assert sorted(picked) == ['rot-numbering', 'rot-writer']
    assert all(s['action'] == 'terminate' and s['signalled'] for s in picked.values())
    assert 'RowExclusiveLock on public.stopped:' in picked['rot-writer']['reason']
    assert 'RowExclusiveLock on public.stopped_id_seq' in picked['rot-numbering']['reason']
    time.sleep(0.2)
    assert not alive(writer) and not alive(numbering)
    assert alive(reader) and alive(elsewhere) and alive(idle)
    elsewhere.commit()
    reader.rollback()
    assert lab.psql('primary', "SELECT count(*) FROM stopped WHERE note = 'late'", db=tdb) == '0'
    off = play([task(params, scope='tables', database=tdb, state='off')])  # no tables: every stopped table
    assert off.rc == 0, [r['result'].get('msg') for r in off.results]
    assert off.result('ro')['tables'] == ['public.stopped']
    for conn in (reader, elsewhere, idle):
        conn.close()


def test_bad_input_and_confusing_combinations_are_refused(lab, play, tdb):
    params = node_params(lab, db='postgres')
    missing = play([task(params, scope='tables', database=tdb, tables=['no_such_table'], state='on')])
    result = missing.result('ro')
    assert result['failed'] is True and 'no_such_table does not exist' in result['msg']
    empty = play([task(params, scope='tables', database=tdb, state='on')]).result('ro')
    assert empty['failed'] is True and 'needs the tables' in empty['msg']
    bad_name = play([task(params, scope='tables', database=tdb, tables=['"open'], state='on')]).result('ro')
    assert bad_name['failed'] is True and 'unterminated quote' in bad_name['msg']
    elsewhere = play([task(params, database=tdb, tables=['stopped'], state='on')]).result('ro')
    assert elsewhere['failed'] is True and 'scope=tables' in elsewhere['msg']
    bad_timeout = play([task(params, scope='tables', database=tdb, tables=['stopped'], state='on',
                             lock_timeout='soon')]).result('ro')
    assert bad_timeout['failed'] is True and 'lock_timeout' in bad_timeout['msg']
    for run in (missing,):
        assert 'Traceback' not in run.text
    assert lab.psql('primary', "SELECT to_regnamespace('procgenie_dbops') IS NULL", db=tdb) == 't'

    # the database-wide default coexists with the table mode; revoke_writes does not (off would be ambiguous)
    on = play([task(params, scope='tables', database=tdb, tables=['stopped'], state='on'),
               task(params, 'db', database=tdb, state='on', sessions='keep'),
               task(params, 'strict', database=tdb, state='on', sessions='keep', revoke_writes=[APP])])
    assert on.result('db')['changed'] is True
    strict = on.result('strict')
    assert strict['failed'] is True and 'stopped by scope=tables' in strict['msg']
    off = play([task(params, 'db', database=tdb, state='off'),
                task(params, 'tables', scope='tables', database=tdb, state='off')])
    assert off.rc == 0, [r['result'].get('msg') for r in off.results]
    assert off.result('tables')['changed'] is True  # the database-wide off left the table record alone
    assert lab.psql('primary', "SELECT to_regnamespace('procgenie_dbops') IS NULL", db=tdb) == 't'


def test_lock_timeout_makes_it_all_or_nothing(lab, play, tdb):
    """A transaction holding the catalog row of one table (an uncommitted ALTER TABLE) makes the REVOKE wait; after
    lock_timeout the run fails and no table is stopped, not even the one listed before."""
    params = node_params(lab, db='postgres')
    before = acl(lab, tdb, 'other')
    blocker = connect(lab, tdb, app='rot-blocker')
    blocker.autocommit = False
    with blocker.cursor() as cur:
        cur.execute('ALTER TABLE stopped ADD COLUMN extra int')
    try:
        started = time.monotonic()
        run = play([task(params, scope='tables', database=tdb, tables=['other', 'stopped'], state='on',
                         lock_timeout='500ms', sessions='keep')])
        result = run.result('ro')
        assert result['failed'] is True and 'lock timeout' in result['msg'], result.get('msg')
        assert time.monotonic() - started < 60
    finally:
        blocker.rollback()
        blocker.close()
    assert acl(lab, tdb, 'other') == before
    assert lab.psql('primary', "SELECT to_regnamespace('procgenie_dbops') IS NULL", db=tdb) == 't'


def test_row_restore_as_the_non_superuser_owner_writes_a_stopped_table(lab, play, tdb, tmp_path):
    """pg_row_restore lifts the stop inside its own transaction only: the rows are restored, the ACL is the stopped
    one afterwards, and the owner still cannot write."""
    src = tdb + '_src'
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % src)
    lab.psql('primary', 'CREATE DATABASE %s' % src)
    lab.psql('primary', "CREATE TABLE stopped (id serial PRIMARY KEY, note text); "
                        "INSERT INTO stopped (note) VALUES ('one'), ('two'), ('three')", db=src)
    lab.psql('primary', "UPDATE stopped SET note = 'bad' WHERE id = 1", db=tdb)
    try:
        params = node_params(lab, db='postgres')
        on = play([task(params, scope='tables', database=tdb, tables=['stopped', 'stopped_child'], state='on')])
        assert on.rc == 0, on
        stopped_acl = acl(lab, tdb, 'stopped')
        os.chmod(str(tmp_path), 0o755)
        owner = node_params(lab, db=tdb, user=OWNER, password=PASSWORD)
        restore = play([dict(name='restore', register='out', **{'procgenie.dbops.pg_row_restore': dict(
            owner, source=dict(node_params(lab, db=src)), tables=[dict(name='stopped')],
            undo_dir=str(tmp_path / 'undo'))})])
        result = restore.result('restore')
        assert restore.rc == 0, result.get('msg')
        assert result['changed'] is True
        assert any(q.startswith('GRANT') for q in result['queries'])
        assert lab.psql('primary', 'SELECT string_agg(note, \',\' ORDER BY id) FROM stopped', db=tdb) == \
            'one,two,three'
        assert acl(lab, tdb, 'stopped') == stopped_acl
        conn = connect(lab, tdb, OWNER, PASSWORD)
        assert writes(conn, "UPDATE stopped SET note = 'x'") is False
        conn.close()
        off = play([task(params, scope='tables', database=tdb, state='off')])
        assert off.rc == 0, [r['result'].get('msg') for r in off.results]
    finally:
        lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % src)


def test_corruption_recovery_playbook_stops_writes_per_table(lab, incident, play):  # pylint: disable=redefined-outer-name
    scope = "created_at < '%s'" % incident['at']
    good = incident['good']
    extravars = dict(
        target='localhost', dbops_connection=node_params(lab, db=recovery.DB),
        corruption_recovery_tables=[dict(name='cr_accounts', where=scope), dict(name='public.cr_orders', where=scope)],
        corruption_recovery_stop_writes='tables', corruption_recovery_approved=True,
        corruption_recovery_restore_time=incident['at'], corruption_recovery_backup_dir=incident['base'],
        corruption_recovery_wal_archive=lab.state['archive_dir'],
        corruption_recovery_data_directory=incident['restored'], corruption_recovery_port=incident['port'],
        corruption_recovery_pg_bindir=lab.state['bindir'],
        corruption_recovery_undo_dir=os.path.join(incident['root'], 'undo'),
        corruption_recovery_delete_extra=True, corruption_recovery_health_url=incident['health'])
    playbook = os.path.join(REPO, 'playbooks', 'corruption_recovery.yml')
    acl_before = lab.psql('primary', "SELECT relacl::text FROM pg_class WHERE oid = 'cr_orders'::regclass", db=recovery.DB)

    assess = play(playbook=playbook, extravars=dict(extravars, corruption_recovery_phase='assess'))
    assert assess.rc == 0, assess
    stop = assess.result('1. Stop writes: the affected tables, every write privilege revoked, writing sessions ended')
    assert stop['changed'] is True and stop['tables'] == ['public.cr_accounts', 'public.cr_orders']
    assert lab.psql('primary', "SELECT has_table_privilege('procgenie_app', 'cr_orders', 'INSERT')", db=recovery.DB) == 'f'
    assert lab.psql('primary', "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                               "WHERE d.datname = '%s'" % recovery.DB) == '0'  # no database-wide mode

    second = play(playbook=playbook, extravars=extravars)
    failed = [(r['task'], r['result'].get('msg')) for r in second.results if r['status'] == 'failed']
    assert second.rc == 0, (failed, second)
    assert recovery.orders(lab, scope) == good
    resumed = second.result('Resume writes (the stop of step 1 turned off)')
    assert resumed['changed'] is True and resumed['scope'] == 'tables'
    assert lab.psql('primary', "SELECT has_table_privilege('procgenie_app', 'cr_orders', 'INSERT')", db=recovery.DB) == 't'
    assert sorted(lab.psql('primary', "SELECT relacl::text FROM pg_class WHERE oid = 'cr_orders'::regclass",
                           db=recovery.DB).strip('{}').split(',')) == sorted(acl_before.strip('{}').split(','))
    assert 'writes were stopped (tables) and resumed' in second.results[-1]['result']['msg']
