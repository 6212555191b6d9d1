"""pg_read_only against real clusters: a database of our own in the shared lab, and a lab of our own for server-wide."""

from __future__ import annotations

import os
import time

import psycopg2
import pytest

from tests.conftest import node_params


def client(lab, db, app, node='primary'):
    n = lab.state['nodes'][node]
    conn = psycopg2.connect(host=n['host'], port=n['port'], user=lab.state['superuser'],
                            password=lab.state['password'], dbname=db, application_name=app)
    conn.autocommit = True
    return conn


def can_write(conn, table='ro_probe'):
    """Try a write in a fresh transaction; True when it committed."""
    try:
        with conn.cursor() as cur:
            cur.execute('INSERT INTO %s VALUES (1)' % table)
        return True
    except psycopg2.errors.ReadOnlySqlTransaction:
        return False


def alive(conn):
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT 1')
        return True
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        return False


def ro_task(params, name='ro', **extra):
    return dict(name=name, **{'procgenie.dbops.pg_read_only': dict(params, **extra)}, register='out')


def db_setting(lab, db):
    return lab.psql('primary', "SELECT coalesce((SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s "
                               "JOIN pg_database d ON d.oid = s.setdatabase AND s.setrole = 0 "
                               "WHERE d.datname = '%s'), '')" % db)


@pytest.fixture
def ro_db(lab):
    db = 'ro_%d' % os.getpid()
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    lab.psql('primary', 'CREATE DATABASE %s' % db)
    lab.psql('primary', 'CREATE TABLE ro_probe(x int)', db=db)
    yield db
    lab.psql('primary', 'ALTER DATABASE %s RESET default_transaction_read_only' % db)
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)


def test_database_read_only_ends_writers_only_of_the_filtered_application(lab, play, ro_db):
    params = node_params(lab, db='postgres')
    idle = client(lab, ro_db, 'ro-idle')
    writer = client(lab, ro_db, 'ro-writer')
    other = client(lab, ro_db, 'ro-other')
    for conn in (writer, other):
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute('INSERT INTO ro_probe VALUES (42)')  # holds a transaction ID, not committed
    args = dict(database=ro_db, state='on', sessions='terminate', session_selection='writing',
                session_application_names=['ro-writer', 'ro-idle'])

    check = play([ro_task(params, **args)], check=True, diff=True)
    assert check.rc == 0, check
    planned = check.result('ro')
    assert planned['changed'] is True and planned['previous_state'] == 'off'
    assert [(s['application_name'], s['signalled']) for s in planned['sessions']] == [('ro-writer', False)]
    assert db_setting(lab, ro_db) == ''
    assert alive(writer)

    run = play([ro_task(params, **args), ro_task(params, 'again', **args)], diff=True)
    assert run.rc == 0, run
    first = run.result('ro')
    assert first['changed'] is True and first['state'] == 'on'
    assert first['diff']['after']['default_transaction_read_only'] == 'on'
    touched = first['sessions']
    assert [s['application_name'] for s in touched] == ['ro-writer']
    assert touched[0]['signalled'] is True and touched[0]['action'] == 'terminate'
    assert touched[0]['backend_xid'] and 'write transaction' in touched[0]['reason']
    assert any('ALTER DATABASE' in q and 'default_transaction_read_only = on' in q for q in first['queries'])
    assert first['commands'] == []
    again = run.result('again')
    assert again['changed'] is False and again['sessions'] == [] and 'diff' not in again

    # independent checks: the setting, the terminated writer, the other application's writer untouched
    assert db_setting(lab, ro_db) == 'default_transaction_read_only=on'
    time.sleep(0.2)
    assert not alive(writer)
    assert alive(other)
    other.rollback()
    fresh = client(lab, ro_db, 'ro-new')
    assert can_write(fresh) is False  # new sessions are read-only
    assert can_write(idle) is True  # documented: an idle session keeps the default it started with
    with fresh.cursor() as cur:  # documented: any session can override the default
        cur.execute('SET default_transaction_read_only = off')
    assert can_write(fresh) is True

    off = play([ro_task(params, database=ro_db, state='off'), ro_task(params, 'again', database=ro_db, state=False)])
    assert off.rc == 0, off
    assert off.result('ro')['changed'] is True and off.result('ro')['state'] == 'off'
    assert off.result('again')['changed'] is False
    assert db_setting(lab, ro_db) == ''
    assert can_write(client(lab, ro_db, 'ro-after')) is True
    for conn in (idle, writer, other, fresh):
        conn.close()


def test_database_read_only_with_all_sessions_stops_existing_sessions_too(lab, play, ro_db):
    params = node_params(lab, db='postgres')
    idle = client(lab, ro_db, 'ro-idle')
    bystander = client(lab, 'postgres', 'ro-bystander')  # another database: out of scope
    run = play([ro_task(params, database=ro_db, state='on', sessions='terminate', session_selection='all'),
                ro_task(params, 'again', database=ro_db, state='on', sessions='terminate', session_selection='all')])
    assert run.rc == 0, run
    first = run.result('ro')
    assert [s['application_name'] for s in first['sessions']] == ['ro-idle']
    assert 'old default' in first['sessions'][0]['reason']
    assert run.result('again')['changed'] is False
    time.sleep(0.2)
    assert not alive(idle)
    assert alive(bystander)
    reconnected = client(lab, ro_db, 'ro-idle')
    assert can_write(reconnected) is False
    # own and replication sessions are never picked
    assert all(s['application_name'] != 'procgenie.dbops' for s in first['sessions'])
    assert lab.psql('primary', "SELECT count(*) FROM pg_stat_replication") == '1'
    off = play([ro_task(params, database=ro_db, state='off')])
    assert off.rc == 0, off
    assert can_write(client(lab, ro_db, 'ro-after')) is True
    bystander.close()


def test_bad_input_fails_cleanly(lab, play):
    params = node_params(lab, db='postgres')
    run = play([ro_task(params, database='no_such_db_ro', state='on')])
    result = run.result('ro')
    assert result['failed'] is True and 'does not exist' in result['msg']
    assert 'Traceback' not in run.text


def test_bad_state_and_missing_database(lab, play):
    params = node_params(lab, db='postgres')
    bad = play([ro_task(params, database='postgres', state='maybe')]).result('ro')
    assert bad['failed'] is True and 'on or off' in bad['msg']
    missing = play([ro_task(params, state='on')]).result('ro')
    assert missing['failed'] is True and 'database' in missing['msg']


@pytest.fixture(scope='module')
def own_lab(workdir):
    import pglab
    instance = pglab.Lab(os.path.join(workdir, 'readonly-server'))
    instance.start(standby=False, seed=False)
    instance.psql('primary', 'CREATE TABLE ro_probe(x int)')
    yield instance
    instance.destroy()


def test_server_read_only_reaches_existing_sessions_and_warns_about_overrides(own_lab, play):
    params = node_params(own_lab, db='postgres')
    existing = client(own_lab, 'postgres', 'ro-existing')
    own_lab.psql('primary', "DROP ROLE IF EXISTS ro_batch; CREATE ROLE ro_batch; "
                            "ALTER ROLE ro_batch SET default_transaction_read_only = off")
    # sessions=keep: this test is about the reload reaching sessions that stay connected
    check = play([ro_task(params, scope='server', state='on', sessions='keep')], check=True)
    assert check.rc == 0, check
    assert check.result('ro')['changed'] is True
    assert own_lab.psql('primary', 'SHOW default_transaction_read_only') == 'off'

    run = play([ro_task(params, scope='server', state='on', sessions='keep'),
                ro_task(params, 'again', scope='server', state='on', sessions='keep')])
    assert run.rc == 0, run
    first = run.result('ro')
    assert first['changed'] is True and first['previous_state'] == 'off'
    assert any('ALTER SYSTEM SET default_transaction_read_only = on' in q for q in first['queries'])
    assert any('ro_batch' in w for w in first.get('warnings', []))
    assert run.result('again')['changed'] is False
    assert own_lab.psql('primary', 'SHOW default_transaction_read_only') == 'on'
    time.sleep(0.3)
    assert can_write(existing) is False  # the reload reaches sessions already connected

    off = play([ro_task(params, scope='server', state='off'), ro_task(params, 'again', scope='server', state='off')])
    assert off.rc == 0, off
    assert off.result('ro')['changed'] is True and off.result('again')['changed'] is False
    assert any('ALTER SYSTEM RESET' in q for q in off.result('ro')['queries'])
    assert own_lab.psql('primary', 'SHOW default_transaction_read_only') == 'off'
    time.sleep(0.3)
    assert can_write(existing) is True
    existing.close()


def in_action_group(collections_root, *modules):
    """Until the lead lists the module in meta/runtime.yml, add it to the test copy (a no-op afterwards)."""
    import yaml
    path = os.path.join(collections_root, 'ansible_collections', 'procgenie', 'dbops', 'meta', 'runtime.yml')
    with open(path) as handle:
        runtime = yaml.safe_load(handle)
    group = runtime['action_groups']['dbops']
    missing = [m for m in modules if m not in group]
    if missing:
        group.extend(missing)
        with open(path, 'w') as handle:
            yaml.safe_dump(runtime, handle)


def test_read_only_playbook_on_and_off(lab, ro_db, collections_root, home):
    from tests.harness.playbook import run_playbook
    in_action_group(collections_root, 'pg_read_only')

    playbook = os.path.join(collections_root, 'ansible_collections', 'procgenie', 'dbops', 'playbooks',
                            'read_only.yml')
    params = node_params(lab, db=ro_db)
    inventory = {'target': 'localhost', 'dbops_connection': params}
    on = run_playbook(playbook, collections_root, home, extravars=dict(inventory, emergency_read_only_state='on'))
    assert on.rc == 0, on.text[-3000:]
    assert on.result('procgenie.dbops.emergency_read_only : Set the emergency read-only mode')['state'] == 'on'
    assert db_setting(lab, ro_db) == 'default_transaction_read_only=on'
    assert can_write(client(lab, ro_db, 'ro-new')) is False
    off = run_playbook(playbook, collections_root, home, extravars=dict(inventory, emergency_read_only_state='off'))
    assert off.rc == 0, off
    assert db_setting(lab, ro_db) == ''
    assert can_write(client(lab, ro_db, 'ro-new')) is True
