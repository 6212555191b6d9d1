"""Cancels: AWX "Cancel" sends SIGTERM to the module's own process. Within 2 s every child program the module started
has ended and been reaped, its server session is gone, and no half artifact stays under its final name. Each module
runs through ansible-playbook on a slow run (a table locked by another session, a slow restore, a spread checkpoint, a
slow WAL archive); the module's process is found by walking this test's process tree."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import threading
import time

import psutil
import pytest

from tests.conftest import node_params
from tests.harness.playbook import run_playbook
from tests.integration.test_backup import (  # noqa: F401  # pylint: disable=unused-import  # source: a fixture
    DB, backup, blocked_dump, files_in, source, verify_task)
from tests.integration.test_pitr import free_port, wait_archived

DEADLINE_S = 2.0
SLOW_DB = 'cancel_slow'
TARGET_DB = 'cancel_target'
APP = 'procgenie.dbops'


# ---------------------------------------------------------------- helpers
def module_process(name, timeout=120):
    """The module's own python process: a descendant of this test (ansible-playbook -> its worker -> sh -c ->
    python) whose argv runs AnsiballZ_<name>.py."""
    wanted = 'AnsiballZ_%s.py' % name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.Process().children(recursive=True):
            try:
                argv = proc.cmdline()
            except psutil.Error:
                continue
            if len(argv) >= 2 and 'python' in os.path.basename(argv[0]) and os.path.basename(argv[1]) == wanted:
                return proc
        time.sleep(0.05)
    raise AssertionError('no process runs %s' % wanted)


def alive(proc):
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def still_there(proc):
    """'<pid> <name>' of a process that is still alive, else None (it may end between the two reads)."""
    try:
        return '%d %s' % (proc.pid, proc.name()) if alive(proc) else None
    except psutil.NoSuchProcess:
        return None


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, 'timed out waiting for %s' % what
        time.sleep(0.05)


def program_of(module, names):
    """A live descendant of the module process named one of names."""
    for proc in module.children(recursive=True):
        try:
            if proc.name() in names and alive(proc):
                return proc
        except psutil.Error:
            continue
    return None


class Monitor(object):
    """A session of the test on a lab node, reading pg_stat_activity."""

    def __init__(self, lab, node='primary'):
        import psycopg2
        self.conn = psycopg2.connect(**lab.conninfo(node, 'postgres'))
        self.conn.autocommit = True

    def rows(self, query, args=()):
        cursor = self.conn.cursor()
        cursor.execute(query, args or None)
        return cursor.fetchall()

    def module_sessions(self, like=None):
        """Sessions of the module and of its programs (application_name procgenie.dbops...), or whose query is
        like `like` and running; (pid, application_name, backend_type, query)."""
        return self.rows("SELECT pid, application_name, backend_type, left(query, 120) FROM pg_stat_activity "
                         "WHERE pid <> pg_backend_pid() AND (application_name LIKE %s OR (state = 'active' AND query LIKE %s))",
                         [APP + '%', like or '-- nothing'])

    def active(self, like):
        return self.rows("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                         "AND application_name LIKE %s", [like, APP + '%'])

    def close(self):
        self.conn.close()


def cancel(module, monitor, like, extra=lambda: [], tree=None):
    """SIGTERM to the module process; assert that within 2 s its programs (and their children) are gone and
    reaped, and no session of the module or its programs, nor their query, is on the server. `extra()` lists
    anything else that must be gone by then."""
    if tree is None:
        tree = module.children(recursive=True)
        assert tree, 'the module runs no program'
    started = time.monotonic()
    module.send_signal(signal.SIGTERM)
    while True:
        left = dict(programs=[name for name in map(still_there, tree) if name],
                    sessions=monitor.module_sessions(like), other=extra())
        if not any(left.values()):
            return time.monotonic() - started
        assert time.monotonic() - started < DEADLINE_S, 'still there %.1f s after SIGTERM: %s' % (
            time.monotonic() - started, left)
        time.sleep(0.05)


def in_thread(play, tasks, **kwargs):
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(run=play(tasks, **kwargs)), daemon=True)
    thread.start()
    return thread, outcome


def fresh_db(lab, name):
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    lab.psql('primary', 'CREATE DATABASE "%s"' % name)


@pytest.fixture
def dest(workdir, request):
    path = os.path.join(workdir, 'cancel', request.node.name)
    shutil.rmtree(path, ignore_errors=True)
    return path


@pytest.fixture(scope='module')
def slow_artifact(lab, workdir, collections_root, home):
    """A custom-format pg_backup artifact whose restore is slow: every restored row runs a CHECK that sleeps 0.2 s
    (except in the session that loads it here), 300 rows: a minute of COPY."""
    fresh_db(lab, SLOW_DB)
    lab.psql('primary', "CREATE FUNCTION public.slow_check(i int) RETURNS boolean LANGUAGE sql AS $$ "
                        "SELECT true FROM pg_catalog.pg_sleep(CASE WHEN pg_catalog.current_setting('dbops.fast', "
                        "true) = 'on' THEN 0 ELSE 0.2 END) $$; "
                        "CREATE TABLE public.slow (id int PRIMARY KEY, CONSTRAINT slow_ok CHECK (public.slow_check(id))); "
                        "SET dbops.fast = on; INSERT INTO public.slow SELECT generate_series(1, 300)", db=SLOW_DB)
    folder = os.path.join(workdir, 'cancel', 'slow-artifact')
    shutil.rmtree(folder, ignore_errors=True)
    run = run_playbook([dict(name='t', hosts='localhost', gather_facts=False, tasks=[
        backup(lab, folder, 'slow', db=SLOW_DB)])], collections_root, home)
    assert run.rc == 0, run.text
    yield run.result('slow')['path']
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % SLOW_DB)


@pytest.fixture
def monitor(lab):
    mon = Monitor(lab)
    yield mon
    # whatever a failed test left: end it, so the next tests find a quiet server
    mon.rows("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
             "application_name LIKE %s", [APP + '%'])
    mon.close()


# ---------------------------------------------------------------- the modules
def test_pg_backup_cancel_ends_pg_dump_its_session_and_the_count_query(lab, play, source, dest, monitor):
    """pg_dump waits for a lock on contracts (and so does the row count the module runs in a worker thread)."""
    with blocked_dump(lab, play, dest) as (dump_pid, outcome):
        module = module_process('pg_backup')
        assert psutil.Process(dump_pid).ppid() == module.pid
        assert monitor.module_sessions('%contracts%'), 'pg_dump is not waiting on the server'
        cancel(module, monitor, '%contracts%')
    res = outcome['run'].result('backup')
    assert res.get('failed') is True, res
    assert files_in(dest) == []


def test_pg_backup_verify_cancel_ends_pg_restore_and_drops_the_scratch_database(lab, play, slow_artifact, monitor):
    def scratch():
        return [r[0] for r in monitor.rows("SELECT datname FROM pg_database WHERE datname LIKE 'dbops_verify_%'")]
    with open(slow_artifact + '.manifest.json') as handle:
        manifest_before = handle.read()
    thread, outcome = in_thread(play, [verify_task(lab, path=slow_artifact, jobs=2)])
    module = module_process('pg_backup_verify')
    wait_until(lambda: monitor.active('COPY public.slow%'), 120, 'the slow restore')
    assert scratch() and program_of(module, ('pg_restore',))
    cancel(module, monitor, 'COPY public.slow%', extra=scratch)
    thread.join(120)
    res = outcome['run'].result('verify')
    assert res.get('failed') is True, res
    with open(slow_artifact + '.manifest.json') as handle:
        assert handle.read() == manifest_before  # no half verification recorded


def test_pg_restore_cancel_ends_pg_restore_and_leaves_the_target_as_it_was(lab, play, slow_artifact, monitor):
    fresh_db(lab, TARGET_DB)
    task = dict(name='restore', ignore_errors=True, **{'procgenie.dbops.pg_restore': dict(
        node_params(lab, db=TARGET_DB), path=slow_artifact, single_transaction=True)})
    thread, outcome = in_thread(play, [task])
    module = module_process('pg_restore')
    wait_until(lambda: monitor.active('COPY public.slow%'), 120, 'the slow restore')
    assert program_of(module, ('pg_restore',))
    cancel(module, monitor, 'COPY public.slow%')
    thread.join(120)
    assert outcome['run'].result('restore').get('failed') is True
    assert lab.psql('primary', "SELECT count(*) FROM pg_class WHERE relname = 'slow'", db=TARGET_DB) == '0'
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % TARGET_DB)


def test_pg_base_backup_cancel_ends_pg_basebackup_and_its_walsender(lab, play, dest, monitor):
    """pg_basebackup waits for a spread checkpoint of many dirty buffers; its walsender waits with it and would not
    see its client gone."""
    lab.psql('primary', 'DROP TABLE IF EXISTS cancel_dirty; CREATE TABLE cancel_dirty AS '
                        "SELECT g, repeat('x', 400) AS pad FROM generate_series(1, 40000) g")
    task = dict(name='base', ignore_errors=True, **{'procgenie.dbops.pg_base_backup': dict(
        node_params(lab, db='postgres'), dest=dest, checkpoint='spread', verify=False)})
    try:
        thread, outcome = in_thread(play, [task])
        module = module_process('pg_base_backup')
        wait_until(lambda: program_of(module, ('pg_basebackup',)), 60, 'pg_basebackup')
        wait_until(lambda: monitor.rows("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender' AND "
                                        "application_name LIKE %s", [APP + '%']), 60, 'the walsender')
        time.sleep(0.5)
        cancel(module, monitor, '%BASE_BACKUP%')
        thread.join(120)
        assert outcome['run'].result('base').get('failed') is True
        assert files_in(dest) == []
    finally:
        lab.psql('primary', 'CHECKPOINT; DROP TABLE IF EXISTS cancel_dirty')


def test_pg_restore_pitr_cancel_stops_the_restored_server_and_removes_it(lab, play, workdir, dest, monitor):
    """restore_command finds a `cp` that takes 3 s a file (first in PATH): the restored server is still in recovery
    when the module is cancelled."""
    base_dir = os.path.join(workdir, 'cancel', 'pitr-base')
    shutil.rmtree(base_dir, ignore_errors=True)
    run = play([dict(name='base', **{'procgenie.dbops.pg_base_backup': dict(
        node_params(lab, db='postgres'), dest=base_dir)})])
    assert run.rc == 0, run.text
    for _i in range(3):
        wait_archived(lab)
    slow_bin = os.path.join(workdir, 'cancel-slow-bin')
    os.makedirs(slow_bin, exist_ok=True)
    os.chmod(slow_bin, 0o755)
    with open(os.path.join(slow_bin, 'cp'), 'w') as handle:
        handle.write('#!/bin/sh\nsleep 3\nexec /bin/cp "$@"\n')
    os.chmod(os.path.join(slow_bin, 'cp'), stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    for folder in (os.path.dirname(dest), dest):  # the server's OS user must reach the data directory
        os.makedirs(folder, exist_ok=True)
        os.chmod(folder, 0o755)
    data = os.path.join(dest, 'restored')
    args = dict(node_params(lab, db='postgres'), backup_dir=base_dir, wal_archive=lab.state['archive_dir'],
                data_directory=data, restore_port=free_port(), target='latest', timeout=300)
    args.pop('login_port')
    thread, outcome = in_thread(play, [dict(name='pitr', ignore_errors=True, **{
        'procgenie.dbops.pg_restore_pitr': args})], env=dict(PATH=slow_bin + os.pathsep + os.environ['PATH']))
    module = module_process('pg_restore_pitr')
    pidfile = os.path.join(data, 'postmaster.pid')

    def started():
        assert thread.is_alive(), 'the module ended first: %s' % outcome['run'].text[-3000:]
        return os.path.isfile(pidfile) and open(pidfile).readline().strip()
    wait_until(started, 120, 'the restored server')
    postmaster = psutil.Process(int(open(pidfile).readline()))
    time.sleep(1)
    assert alive(postmaster)

    # the server's processes are not the module's descendants (pg_ctl detaches the postmaster)
    tree = module.children(recursive=True) + [postmaster] + postmaster.children(recursive=True)
    cancel(module, monitor, '-- nothing', extra=lambda: [data] if os.path.exists(data) else [], tree=tree)
    thread.join(120)
    assert outcome['run'].result('pitr').get('failed') is True
    assert not alive(postmaster)
    assert os.listdir(dest) == []  # the half restore is removed, not only renamed


TENANT_DB = 'cancel_tenant'
TENANT = '00000000-0000-4000-8000-000000000001'
NEW_DB = 'cancel_new_target'


def database_exists(lab, name):
    return lab.psql('primary', 'SELECT count(*) FROM pg_database WHERE datname = %s' % (
        "'%s'" % name.replace("'", "''"))) == '1'


def test_pg_backup_tenant_cancel_mid_copy_cancels_the_copy_and_leaves_no_artifact(lab, play, dest, monitor):
    """A tenant backup exports its rows with COPY in the module's own session: a table of 2000 rows of 1 MB each
    (11 KB each on disk) is seconds of COPY. The cancel cancels it at once: the session and its query are gone
    within 2 s, and no artifact (not even the hidden temporary one) stays in dest."""
    fresh_db(lab, TENANT_DB)
    lab.psql('primary', "CREATE TABLE public.tenants (id uuid PRIMARY KEY); INSERT INTO tenants VALUES ('%s'); "
                        'CREATE TABLE public.documents (id int PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES '
                        "tenants, body text); INSERT INTO documents VALUES (0, '%s', repeat('x', 1000000)); "
                        'INSERT INTO documents SELECT g, t.id, (SELECT body FROM documents WHERE id = 0) '
                        'FROM generate_series(1, 2000) g, tenants t' % (TENANT, TENANT), db=TENANT_DB)
    try:
        thread, outcome = in_thread(play, [backup(lab, dest, 'tenant', db=TENANT_DB, kind='tenant', tenant=TENANT)])
        module = module_process('pg_backup')
        wait_until(lambda: monitor.active('COPY (SELECT%documents%'), 120, 'the COPY of documents')
        wait_until(lambda: files_in(dest), 30, 'the temporary artifact')
        time.sleep(0.3)  # mid-COPY: rows are arriving
        assert monitor.active('COPY (SELECT%documents%'), 'the COPY ended before the cancel: make the table bigger'
        cancel(module, monitor, 'COPY (SELECT%documents%', extra=lambda: files_in(dest), tree=[])
        thread.join(120)
        res = outcome['run'].result('tenant')
        assert res.get('failed') is True, res
        assert files_in(dest) == []
    finally:
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % TENANT_DB)


def test_pg_restore_cancel_after_create_database_drops_the_database_it_created(lab, play, slow_artifact, monitor):
    """create_database=true on a missing database: CREATE DATABASE, then the slow restore; cancelled then, the
    database this run created is dropped (as a failed restore drops it) within the 2 s: no half-restored new
    database is left looking restored."""
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % NEW_DB)
    task = dict(name='restore', ignore_errors=True, **{'procgenie.dbops.pg_restore': dict(
        node_params(lab, db=NEW_DB), path=slow_artifact, create_database=True)})
    try:
        thread, outcome = in_thread(play, [task])
        module = module_process('pg_restore')
        wait_until(lambda: monitor.active('COPY public.slow%'), 120, 'the slow restore')
        assert database_exists(lab, NEW_DB) and program_of(module, ('pg_restore',))
        cancel(module, monitor, 'COPY public.slow%', extra=lambda: [NEW_DB] if database_exists(lab, NEW_DB) else [])
        thread.join(120)
        assert outcome['run'].result('restore').get('failed') is True
        assert not database_exists(lab, NEW_DB)
    finally:
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % NEW_DB)


def test_pg_restore_failure_drops_the_database_it_created_never_one_that_was_there(lab, play, workdir, monitor):
    """What the cancel does is what a failure does: a tenant script restored into a database created for it fails
    (no schema there) and that database is dropped, said in the message; the same failure into a database that was
    there leaves it."""
    folder = os.path.join(workdir, 'cancel', 'tenant-artifact')
    shutil.rmtree(folder, ignore_errors=True)
    tenant = lab.psql('primary', 'SELECT id FROM tenants ORDER BY id LIMIT 1', db='procgenie')
    run = play([backup(lab, folder, 'tenant', db='procgenie', kind='tenant', tenant=tenant)])
    assert run.rc == 0, run.text
    path = run.result('tenant')['path']
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % NEW_DB)
    try:
        run = play([dict(name='restore', ignore_errors=True, **{'procgenie.dbops.pg_restore': dict(
            node_params(lab, db=NEW_DB), path=path, create_database=True)})])
        res = run.result('restore')
        assert res.get('failed') is True, res
        assert 'database %s, created by this run, was dropped' % NEW_DB in res['msg'], res['msg']
        assert not database_exists(lab, NEW_DB)
        fresh_db(lab, NEW_DB)
        run = play([dict(name='restore', ignore_errors=True, **{'procgenie.dbops.pg_restore': dict(
            node_params(lab, db=NEW_DB), path=path, create_database=True)})])
        res = run.result('restore')
        assert res.get('failed') is True, res
        assert 'dropped' not in res['msg'], res['msg']
        assert database_exists(lab, NEW_DB)
    finally:
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % NEW_DB)
