"""pg_read_only under full-speed writers: after `state=on` returns no existing session commits a write.

pgbench (6 clients, an application role) writes while the module turns the mode on; the rows of pgbench_history
are counted when the play returns and 3 s later. Strict mode (`revoke_writes`) must make the role's own
`SET default_transaction_read_only = off` useless, and `off` must put every privilege back exactly.
"""

from __future__ import annotations

import os
import subprocess
import time

import psycopg2
import pytest

from tests.conftest import node_params

APP = 'ro_app'
APP_PASSWORD = 'ro-app-Pw-1'
GRANTOR = 'ro_grantor'


def pgbench_path(lab):
    own = os.path.join(lab.bindir, 'pgbench')
    return own if os.path.exists(own) else '/usr/lib/postgresql/15/bin/pgbench'


def connect(lab, db, user=None, password=None, app='ro-test'):
    n = lab.state['nodes']['primary']
    conn = psycopg2.connect(host=n['host'], port=n['port'], user=user or lab.state['superuser'],
                            password=password or lab.state['password'], dbname=db, application_name=app)
    conn.autocommit = True
    return conn


def scalar(lab, db, query):
    conn = connect(lab, db)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0]
    finally:
        conn.close()


ACL_QUERY = (
    "SELECT json_agg(x ORDER BY x.name)::text FROM ("
    "SELECT c.relname || coalesce('.' || a.attname, '') AS name, coalesce(a.attacl, c.relacl)::text AS acl, "
    "(SELECT array_agg(e::text ORDER BY e::text) FROM aclexplode(coalesce(a.attacl, c.relacl, "
    "acldefault('r', c.relowner))) e) AS exploded "
    "FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND a.attacl IS NOT NULL "
    "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v')) x")


@pytest.fixture(scope='module')
def bench_db(lab):
    db = 'ro_bench_%d' % os.getpid()
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    lab.psql('primary', 'DROP ROLE IF EXISTS %s; DROP ROLE IF EXISTS %s' % (APP, GRANTOR))
    lab.psql('primary', "CREATE ROLE %s LOGIN PASSWORD '%s'; CREATE ROLE %s" % (APP, APP_PASSWORD, GRANTOR))
    lab.psql('primary', 'CREATE DATABASE %s' % db)
    n = lab.state['nodes']['primary']
    env = dict(os.environ, PGHOST=n['host'], PGPORT=str(n['port']), PGUSER=lab.state['superuser'],
               PGPASSWORD=lab.state['password'], PGDATABASE=db)
    subprocess.run([pgbench_path(lab), '-i', '-s', '1', '-q'], env=env, check=True, capture_output=True)
    # privileges of every shape strict mode must put back exactly: table grants from the owner, a grant from a
    # role holding the grant option, a column privilege, a grant with grant option, and SELECT it must not touch
    lab.psql('primary', "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %(app)s; "
                        "CREATE TABLE ro_extra(id int, note text, secret text); "
                        "GRANT SELECT, TRUNCATE, INSERT ON ro_extra TO %(grantor)s WITH GRANT OPTION; "
                        "SET ROLE %(grantor)s; GRANT INSERT ON ro_extra TO %(app)s; RESET ROLE; "
                        "GRANT TRUNCATE ON ro_extra TO %(app)s WITH GRANT OPTION; "
                        "GRANT SELECT (id, note), UPDATE (note) ON ro_extra TO %(app)s"
                        % dict(app=APP, grantor=GRANTOR), db=db)
    yield db
    lab.psql('primary', 'ALTER DATABASE %s RESET default_transaction_read_only' % db)
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    lab.psql('primary', 'DROP ROLE IF EXISTS %s; DROP ROLE IF EXISTS %s' % (APP, GRANTOR))


def start_pgbench(lab, db, reconnect=False, seconds=20):
    n = lab.state['nodes']['primary']
    env = dict(os.environ, PGHOST=n['host'], PGPORT=str(n['port']), PGUSER=APP, PGPASSWORD=APP_PASSWORD,
               PGDATABASE=db, PGAPPNAME='ro-pgbench')
    argv = [pgbench_path(lab), '-n', '-c', '6', '-j', '2', '-T', str(seconds)] + (['-C'] if reconnect else [])
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = scalar(lab, db, 'SELECT count(*) FROM pgbench_history')
    deadline = time.monotonic() + 10
    while scalar(lab, db, 'SELECT count(*) FROM pgbench_history') < start + 50:
        assert time.monotonic() < deadline and proc.poll() is None, 'pgbench does not write'
        time.sleep(0.05)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
    proc.wait(timeout=10)


def ro(params, db, name='ro', **extra):
    return dict(name=name, register='out', **{'procgenie.dbops.pg_read_only': dict(params, database=db, **extra)})


def app_can_write(lab, db, how):
    """Write as the application role, turning the read-only default off for itself the way `how` says."""
    conn = connect(lab, db, APP, APP_PASSWORD, app='ro-app-probe')
    try:
        with conn.cursor() as cur:
            if how == 'set':
                cur.execute('SET default_transaction_read_only = off')
                cur.execute('INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 0)')
            elif how == 'begin':
                cur.execute('BEGIN READ WRITE')
                cur.execute('UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1')
                cur.execute('COMMIT')
            else:
                cur.execute('INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 0)')
        return True
    except (psycopg2.errors.ReadOnlySqlTransaction, psycopg2.errors.InsufficientPrivilege):
        return False
    finally:
        conn.close()


def test_check_mode_changes_nothing_under_writers(lab, play, bench_db):
    params = node_params(lab, db='postgres')
    acl = scalar(lab, bench_db, ACL_QUERY)
    proc = start_pgbench(lab, bench_db)
    try:
        check = play([ro(params, bench_db, state='on', revoke_writes=[APP])], check=True, diff=True)
        assert check.rc == 0, check.result('ro').get('msg')
        planned = check.result('ro')
        assert planned['changed'] is True and planned['state'] == 'on'
        assert len([s for s in planned['sessions'] if s['application_name'] == 'ro-pgbench']) == 6
        assert all(s['signalled'] is False for s in planned['sessions'])
        assert {(g['table'], g['privilege']) for g in planned['revoked']} >= {('pgbench_history', 'INSERT')}
        before = scalar(lab, bench_db, 'SELECT count(*) FROM pgbench_history')
        time.sleep(0.5)
        assert scalar(lab, bench_db, 'SELECT count(*) FROM pgbench_history') > before  # still writing
        assert proc.poll() is None
    finally:
        stop(proc)
    assert scalar(lab, bench_db, ACL_QUERY) == acl
    assert scalar(lab, bench_db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'procgenie_dbops'") == 0
    assert scalar(lab, 'postgres', "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d "
                                   "ON d.oid = s.setdatabase WHERE d.datname = '%s'" % bench_db) == 0


def test_on_stops_every_writer_ten_runs(lab, play, bench_db):
    params = node_params(lab, db='postgres')
    acl = scalar(lab, bench_db, ACL_QUERY)
    survivors = []
    for attempt in range(10):
        proc = start_pgbench(lab, bench_db, reconnect=attempt % 2 == 1)  # odd runs reconnect every transaction
        try:
            run = play([ro(params, bench_db, state='on', revoke_writes=[APP]),
                        ro(params, bench_db, 'again', state='on', revoke_writes=[APP])])
            at_return = scalar(lab, bench_db, 'SELECT count(*) FROM pgbench_history')
            time.sleep(3)
            later = scalar(lab, bench_db, 'SELECT count(*) FROM pgbench_history')
        finally:
            stop(proc)
        assert run.rc == 0, run
        first, again = run.result('ro'), run.result('again')
        survivors.append(later - at_return)
        assert first['changed'] is True and first['previous_state'] == 'off'
        assert first['revoked'] and all(g['grantee'] == APP for g in first['revoked'])
        assert again['changed'] is False, again
        assert again['sessions'] == [] and again['revoked'] == [] and 'diff' not in again
        assert later == at_return, 'run %d: %d rows committed after on returned' % (attempt, later - at_return)
        # strict mode: the application role cannot write even when it turns the default off for itself
        assert app_can_write(lab, bench_db, 'set') is False
        assert app_can_write(lab, bench_db, 'begin') is False

        off = play([ro(params, bench_db, state='off'), ro(params, bench_db, 'again', state='off')])
        assert off.rc == 0, off
        assert off.result('ro')['changed'] is True and off.result('ro')['restored']
        assert off.result('again')['changed'] is False
        assert scalar(lab, bench_db, ACL_QUERY) == acl, 'run %d: privileges differ after off' % attempt
        assert scalar(lab, bench_db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'procgenie_dbops'") == 0
        assert app_can_write(lab, bench_db, 'plain') is True
    assert survivors == [0] * 10


def test_second_on_leaves_sessions_that_started_read_only(lab, play, bench_db):
    """A pool reconnecting after the switch gets read-only sessions: a second `on` must not end them."""
    params = node_params(lab, db='postgres')
    old = connect(lab, bench_db, app='ro-old')
    try:
        run = play([ro(params, bench_db, state='on')])
        assert run.rc == 0, run
        assert [s['application_name'] for s in run.result('ro')['sessions']] == ['ro-old']
        fresh = connect(lab, bench_db, app='ro-fresh')
        again = play([ro(params, bench_db, state='on')])
        assert again.rc == 0, again
        assert again.result('ro')['changed'] is False and again.result('ro')['sessions'] == []
        with fresh.cursor() as cur:
            cur.execute('SELECT 1')
        # but a session that turned the default off for itself and writes is ended
        fresh.autocommit = False
        with fresh.cursor() as cur:
            cur.execute('SET default_transaction_read_only = off')
            fresh.commit()
            cur.execute('INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 0)')
        third = play([ro(params, bench_db, state='on')])
        assert third.rc == 0, third
        assert [s['application_name'] for s in third.result('ro')['sessions']] == ['ro-fresh']
        assert third.result('ro')['changed'] is True
    finally:
        old.close()
        off = play([ro(params, bench_db, state='off')])
        assert off.rc == 0, off


def test_on_after_the_runbook_command_ends_the_sessions_it_left(lab, play, bench_db):
    """The runbook's ALTER DATABASE by hand leaves connected sessions read-write; the module ends them."""
    params = node_params(lab, db='postgres')
    idle = connect(lab, bench_db, app='ro-before-runbook')
    lab.psql('primary', 'ALTER DATABASE %s SET default_transaction_read_only = on' % bench_db)
    try:
        run = play([ro(params, bench_db, state='on'), ro(params, bench_db, 'again', state='on')])
        assert run.rc == 0, run
        first = run.result('ro')
        assert first['previous_state'] == 'on' and first['changed'] is True
        assert [s['application_name'] for s in first['sessions']] == ['ro-before-runbook']
        assert run.result('again')['changed'] is False
    finally:
        idle.close()
        assert play([ro(params, bench_db, state='off')]).rc == 0


def test_keep_warns_that_sessions_can_still_write(lab, play, bench_db):
    params = node_params(lab, db='postgres')
    idle = connect(lab, bench_db, app='ro-kept')
    try:
        run = play([ro(params, bench_db, state='on', sessions='keep')])
        assert run.rc == 0, run
        result = run.result('ro')
        assert result['sessions'] == []
        assert any('sessions=keep' in w and 'can still commit writes' in w for w in result.get('warnings', []))
        with idle.cursor() as cur:
            cur.execute('SELECT 1')
    finally:
        idle.close()
        assert play([ro(params, bench_db, state='off')]).rc == 0


def test_strict_refuses_unknown_and_superuser_roles_before_any_change(lab, play, bench_db):
    params = node_params(lab, db='postgres')
    for roles, words in (([APP, 'no_such_role_ro'], 'do not exist'), ([lab.state['superuser']], 'superuser')):
        result = play([ro(params, bench_db, state='on', revoke_writes=roles)]).result('ro')
        assert result['failed'] is True and words in result['msg'], result
        assert 'Traceback' not in str(result)
    assert scalar(lab, 'postgres', "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d "
                                   "ON d.oid = s.setdatabase WHERE d.datname = '%s'" % bench_db) == 0
    server = play([dict(name='ro', register='out', **{'procgenie.dbops.pg_read_only': dict(
        params, scope='server', state='on', revoke_writes=[APP])})]).result('ro')
    assert server['failed'] is True and 'scope=database' in server['msg']
