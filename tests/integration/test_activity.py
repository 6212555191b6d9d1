"""pg_activity_info and pg_sessions against real sessions of the lab: a three-level lock chain, idle and
idle-in-transaction sessions of two applications, sessions of another database, PostgreSQL's own processes, a
session that ends between the plan and the signal, limit, check mode, masked secrets; and the connections role's
playbooks."""

from __future__ import annotations

import datetime
import os
import threading
import time

import psycopg2
import pytest

from tests.conftest import REPO, node_params

from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Context
from ansible_collections.procgenie.dbops.plugins.module_utils.activity import model
from ansible_collections.procgenie.dbops.plugins.module_utils.activity.sessions import Sessions, argument_spec

ROLE = 'act_app'
ROLE_PASSWORD = 'act-app-pw'
SECRET = 'Sup3rSecret-act'


@pytest.fixture(scope='module')
def dbs(lab):
    db, other = 'act_%d' % os.getpid(), 'act_other_%d' % os.getpid()
    for name in (db, other):
        lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
        lab.psql('primary', 'CREATE DATABASE %s' % name)
    lab.psql('primary', "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
                        "CREATE ROLE %s LOGIN PASSWORD '%s'; END IF; END$$" % (ROLE, ROLE, ROLE_PASSWORD))
    lab.psql('primary', 'CREATE TABLE a (id int PRIMARY KEY, v int); CREATE TABLE b (id int PRIMARY KEY, v int); '
                        'INSERT INTO a VALUES (1, 0); INSERT INTO b VALUES (1, 0); '
                        'GRANT SELECT, UPDATE ON a, b TO %s' % ROLE, db=db)
    yield dict(db=db, other=other)
    for name in (db, other):
        lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    lab.psql('primary', 'DROP ROLE IF EXISTS %s' % ROLE)


class Client(object):
    """A session of the application role (not a superuser), autocommit unless a transaction is begun."""

    def __init__(self, lab, db, app, superuser=False):
        n = lab.state['nodes']['primary']
        user, password = (lab.state['superuser'], lab.state['password']) if superuser else (ROLE, ROLE_PASSWORD)
        self.conn = psycopg2.connect(host=n['host'], port=n['port'], user=user, password=password, dbname=db,
                                     application_name=app)
        self.conn.autocommit = True
        self.pid = self.conn.get_backend_pid()
        self.thread = None
        self.error = None

    def run(self, *statements):
        with self.conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def run_in_background(self, *statements):
        def target():
            try:
                self.run(*statements)
            except psycopg2.Error as exc:
                self.error = exc
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def alive(self):
        try:
            with self.conn.cursor() as cur:
                cur.execute('SELECT 1')
            return True
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            return False

    def close(self):
        try:
            self.conn.close()
        except psycopg2.Error:
            pass


def server_pids(lab):
    return set(int(p) for p in lab.psql('primary', 'SELECT pid FROM pg_stat_activity').split())


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def waiting_on_lock(lab, pid):
    return lab.psql('primary', "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %d" % pid) == 'Lock'


def info_task(params, name='info', **args):
    return dict(name=name, register='out', **{'procgenie.dbops.pg_activity_info': dict(params, **args)})


def sessions_task(params, name='sessions', **args):
    return dict(name=name, register='out', ignore_errors=True,
                **{'procgenie.dbops.pg_sessions': dict(params, **args)})


def test_three_level_lock_chain_tree_and_blockers_only(lab, play, dbs):
    db = dbs['db']
    root, middle, leaf = (Client(lab, db, 'act-chain') for _unused in range(3))
    root.run('BEGIN', 'UPDATE a SET v = 1 WHERE id = 1')  # idle in transaction, holding the row of a
    middle.run('BEGIN', 'UPDATE b SET v = 1 WHERE id = 1')  # holds the row of b ...
    middle.run_in_background('UPDATE a SET v = 2 WHERE id = 1')  # ... and waits for root
    assert wait_for(lambda: waiting_on_lock(lab, middle.pid))
    leaf.run_in_background('UPDATE b SET v = 3 WHERE id = 1')  # waits for middle
    assert wait_for(lambda: waiting_on_lock(lab, leaf.pid))
    params = node_params(lab, db=db)
    try:
        run = play([info_task(params, databases=[db], min_duration=0),
                    sessions_task(params, 'check', action='terminate', blockers_only=True)], check=True)
        assert run.rc == 0, run
        out = run.result('info')
        assert out['changed'] is False
        assert [(r['pid'], r['waiters'], r['direct_waiters']) for r in out['blocking']['roots']] == [(root.pid, 2, 1)]
        assert out['blocking']['roots'][0]['state'] == 'idle in transaction'
        assert out['blocking']['roots'][0]['longest_wait_s'] > 0
        chains = dict((w['pid'], w['chain']) for w in out['blocking']['waiting'])
        assert chains == {middle.pid: [middle.pid, root.pid], leaf.pid: [leaf.pid, middle.pid, root.pid]}
        assert sorted(w['pid'] for w in out['waiting']) == sorted([middle.pid, leaf.pid])
        assert all(w['wait_event_type'] == 'Lock' for w in out['waiting'])
        assert [s['pid'] for s in out['idle_in_transaction']] == [root.pid]
        assert out['databases'][db]['by_state'] == {'idle in transaction': 1, 'active': 2}
        assert out['capacity']['used'] >= 3 and out['capacity']['available'] > 0
        assert any('statement_timeout' in q for q in out['queries']) and len(out['queries']) == 3
        check = run.result('check')
        assert check['changed'] is True and [s['pid'] for s in check['sessions']] == [root.pid]
        assert check['signalled'] == [] and root.alive()  # check mode ends nothing

        run = play([sessions_task(params, 'end', action='terminate', blockers_only=True)])
        assert run.rc == 0, run
        out = run.result('end')
        assert out['changed'] is True and [s['pid'] for s in out['signalled']] == [root.pid]
        assert out['signalled'][0]['outcome'] == 'terminated'
        assert any('backend_start = ' in q and 'pg_terminate_backend' in q for q in out['queries'])
        # the root is gone, the middle proceeded (its UPDATE done), the leaf now waits for the middle
        middle.thread.join(10)
        assert not middle.thread.is_alive() and middle.error is None
        assert root.pid not in server_pids(lab) and not root.alive()
        assert wait_for(lambda: waiting_on_lock(lab, leaf.pid))
        middle.run('COMMIT')
        leaf.thread.join(10)
        assert not leaf.thread.is_alive() and leaf.error is None
    finally:
        for c in (root, middle, leaf):
            c.close()


def test_only_the_selected_application_and_never_other_databases_or_postgres_processes(lab, play, dbs):
    db, other_db = dbs['db'], dbs['other']
    one_idle, one_tx = Client(lab, db, 'act-one'), Client(lab, db, 'act-one')
    two_idle, two_tx = Client(lab, db, 'act-two'), Client(lab, db, 'act-two')
    elsewhere = Client(lab, other_db, 'act-one')
    for tx in (one_tx, two_tx):
        tx.run('BEGIN', 'SELECT v FROM a')
    launcher = int(lab.psql('primary', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum launcher'"))
    checkpointer = int(lab.psql('primary', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"))
    params = node_params(lab, db=db)
    args = dict(action='terminate', application_names=['act-one'], states=['idle', 'idle in transaction'])
    named = dict(action='terminate', pids=[launcher, checkpointer, elsewhere.pid])
    try:
        run = play([sessions_task(params, 'check', **args), sessions_task(params, 'named', **named),
                    sessions_task(params, 'limit', limit=1, **args)], check=True)
        assert run.rc == 0, run
        check = run.result('check')
        assert sorted(s['pid'] for s in check['sessions']) == sorted([one_idle.pid, one_tx.pid])
        assert elsewhere.pid not in [s['pid'] for s in check['sessions'] + check['not_signalled']]
        assert check['databases'] == [db]
        # PostgreSQL's processes and the other database's session, even when named: skipped, with the reason
        named_out = run.result('named')
        assert named_out['sessions'] == [] and named_out['changed'] is False
        reasons = dict((s['pid'], s['reason']) for s in named_out['not_signalled'])
        assert 'autovacuum launcher' in reasons[launcher] and 'checkpointer' in reasons[checkpointer]
        assert 'is not listed in databases' in reasons[elsewhere.pid]
        # limit exceeded: fails, in check mode too
        limited = run.result('limit')
        assert limited['failed'] and 'more than limit 1: nothing was signalled' in limited['msg']

        run = play([sessions_task(params, 'limit', limit=1, **args)])
        assert run.result('limit')['failed'] and not any('pg_terminate_backend(' in q and 'backend_start = ' in q
                                                         for q in run.result('limit')['queries'])
        assert all(c.alive() for c in (one_idle, one_tx, two_idle, two_tx, elsewhere))  # limit: nothing ended

        run = play([sessions_task(params, 'end', **args), sessions_task(params, 'again', **args)])
        assert run.rc == 0, run
        out = run.result('end')
        assert out['changed'] is True
        assert sorted(s['pid'] for s in out['signalled']) == sorted([one_idle.pid, one_tx.pid])
        assert run.result('again')['changed'] is False and run.result('again')['sessions'] == []
        assert not one_idle.alive() and not one_tx.alive()
        assert two_idle.alive() and two_tx.alive() and elsewhere.alive()
        assert launcher in server_pids(lab) and checkpointer in server_pids(lab)
    finally:
        for c in (one_idle, one_tx, two_idle, two_tx, elsewhere):
            c.close()


def operation(lab, db, check_mode=False, **params):
    """The pg_sessions operation built as the module builds it (argument spec defaults), to act between its steps."""
    values = dict((name, spec.get('default')) for name, spec in argument_spec().options.items())
    values.update(node_params(lab, db=db), login_unix_socket=None, ssl_mode='prefer', ca_cert=None, ssl_cert=None,
                  ssl_key=None, connect_params={})
    values.update(params)
    return Sessions(values, Context(check_mode=check_mode))


def test_a_session_that_ends_or_is_replaced_between_plan_and_signal_is_not_signalled(lab, dbs):
    db = dbs['db']
    leaving, replaced = Client(lab, db, 'act-leaving'), Client(lab, db, 'act-replaced')
    try:
        op = operation(lab, db, action='terminate', application_names=['act-leaving', 'act-replaced'])
        plan = op.plan()
        assert sorted(s['pid'] for s in plan['sessions']) == sorted([leaving.pid, replaced.pid])
        leaving.close()  # it exits between plan and signal
        assert wait_for(lambda: leaving.pid not in server_pids(lab))
        # the other one's pid now stands for another session: same pid, another backend_start
        for row in op.selected:
            if row['pid'] == replaced.pid:
                row['backend_start'] = row['backend_start'] + datetime.timedelta(microseconds=1)
        out = op.apply(plan)
        op.close()
        assert out['changed'] is False and out['signalled'] == []
        gone = dict((s['pid'], s) for s in out['not_signalled'])
        assert gone[leaving.pid]['reason'] == model.GONE and gone[replaced.pid]['reason'] == model.GONE
        assert gone[leaving.pid]['outcome'] == 'gone' and gone[leaving.pid]['signalled'] is False
        assert replaced.alive()  # the guard held: not touched
    finally:
        leaving.close()
        replaced.close()


def test_grace_cancels_first_then_terminates_what_is_left(lab, play, dbs):
    db = dbs['db']
    sleeper = Client(lab, db, 'act-grace')
    sleeper.run_in_background('SELECT pg_sleep(60)')
    assert wait_for(lambda: lab.psql('primary', 'SELECT state FROM pg_stat_activity WHERE pid = %d'
                                     % sleeper.pid) == 'active')
    try:
        run = play([sessions_task(node_params(lab, db=db), 'grace', action='terminate',
                                  application_names=['act-grace'], grace=1)])
        assert run.rc == 0, run
        out = run.result('grace')
        assert [(s['pid'], s['signals'], s['outcome']) for s in out['signalled']] == [
            (sleeper.pid, ['cancel', 'terminate'], 'cancelled, then terminated')]
        sleeper.thread.join(5)
        assert isinstance(sleeper.error, psycopg2.errors.QueryCanceled)  # the cancel came first
        assert not sleeper.alive()
    finally:
        sleeper.close()


def test_secrets_in_query_text_are_masked(lab, play, dbs):
    db = dbs['db']
    admin = Client(lab, db, 'act-secret', superuser=True)
    conninfo = Client(lab, db, 'act-secret', superuser=True)
    admin.run("ALTER ROLE %s PASSWORD '%s'" % (ROLE, SECRET))  # the idle session shows its last statement
    conninfo.run("SELECT 'host=db user=x password=%s dbname=p' AS conninfo" % SECRET)
    params = node_params(lab, db=db)
    try:
        run = play([info_task(params, databases=[db], min_duration=0, basis='backend'),
                    sessions_task(params, 'check', action='terminate', application_names=['act-secret'],
                                  include_superusers=True, query_length=40)], check=True)
        assert run.rc == 0, run
        assert SECRET not in run.text
        shown = dict((s['pid'], s['query']) for s in run.result('info')['long_running'])
        assert shown[admin.pid] == "ALTER ROLE %s PASSWORD '********'" % ROLE
        assert shown[conninfo.pid] == "SELECT 'host=db user=x password=******** dbname=p' AS conninfo"
        cut = dict((s['pid'], (s['query'], s['query_truncated'])) for s in run.result('check')['sessions'])
        assert cut[conninfo.pid] == ("SELECT 'host=db user=x password=********", True)
        assert admin.alive() and conninfo.alive()
    finally:
        admin.close()
        conninfo.close()
        lab.psql('primary', "ALTER ROLE %s PASSWORD '%s'" % (ROLE, ROLE_PASSWORD))


def playbook(play, name, **extravars):
    return play(playbook=os.path.join(REPO, 'playbooks', name), extravars=dict(target='localhost', **extravars))


def test_connections_playbooks_thresholds_and_policy(lab, play, dbs):
    db = dbs['db']
    stuck = Client(lab, db, 'act-stuck')
    stuck.run('BEGIN', 'SELECT v FROM a')
    idle_app, idle_other = Client(lab, db, 'act-pool'), Client(lab, db, 'act-pool', superuser=True)
    conn = node_params(lab, db=db)
    try:
        time.sleep(1.2)
        run = playbook(play, 'connections.yml', dbops_connection=conn, connections_databases=[db],
                       connections_idle_in_transaction_seconds=1, connections_pool_replicas=100)
        assert run.rc != 0
        failed = [r for r in run.results if r['status'] == 'failed']
        assert failed[0]['task'].endswith('Fail on the thresholds crossed')
        msg = failed[0]['result']['msg']
        assert 'pid %d idle in transaction longer than 1 s' % stuck.pid in msg
        assert 'the application pool does not fit' in msg
        run = playbook(play, 'connections.yml', dbops_connection=conn, connections_databases=[db],
                       connections_idle_in_transaction_seconds=1, connections_on_threshold='warn')
        assert run.rc == 0, run
        summary = run.results[-1]
        assert summary['task'].endswith('Summary') and 'idle in transaction longer than 1 s' in summary['result']['msg']

        policy = dict(dbops_connection=conn, connections_app_roles=[ROLE], connections_cleanup_min_duration=1)
        run = play(playbook=os.path.join(REPO, 'playbooks', 'connection_cleanup.yml'), check=True,
                   extravars=dict(target='localhost', **policy))
        assert run.rc == 0, run
        would = run.result('procgenie.dbops.connections : End the sessions of the policy')
        assert [s['pid'] for s in would['sessions']] == [idle_app.pid]  # idle, the app role: not the superuser's
        assert 'would terminate 1 session(s): pid %d' % idle_app.pid in run.results[-1]['result']['msg']
        assert idle_app.alive()
        run = playbook(play, 'connection_cleanup.yml', **policy)
        assert run.rc == 0, run
        assert 'terminated 1 session(s): pid %d' % idle_app.pid in run.results[-1]['result']['msg']
        assert not idle_app.alive() and idle_other.alive() and stuck.alive()
        # one pid: cancel it; a pid of a superuser is refused with the reason
        run = playbook(play, 'connection_cleanup.yml', dbops_connection=conn, connections_cleanup_pid=stuck.pid,
                       connections_cleanup_action='cancel')
        assert run.rc == 0, run
        assert 'cancelled 1 session(s): pid %d' % stuck.pid in run.results[-1]['result']['msg']
        run = playbook(play, 'connection_cleanup.yml', dbops_connection=conn, connections_cleanup_pid=idle_other.pid)
        assert run.rc != 0 and 'superuser' in [r for r in run.results if r['status'] == 'failed'][0]['result']['msg']
        assert idle_other.alive()
    finally:
        for c in (stuck, idle_app, idle_other):
            c.close()
