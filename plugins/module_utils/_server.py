# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server control: the server programs of a local data directory, run as its OS user. PRIVATE to the collection
(as every `_` module).

* `ServerTools`: pg_ctl (start, stop, status), pg_controldata and pg_rewind of the data directory's major version,
  run through `_clients.ClientRunner` (recorded in `commands`, ended on a cancel) as the OS user owning the data
  directory; files written into it as that user, mode 0600 by default.
* postgresql.auto.conf read and rewritten (`rewrite_auto_conf`) with the configuration file's exact quoting
  (`conf_quote`).
* `wait_for`: poll until something is true or a timeout passes.

Used by pg_failover (fence, rejoin) and pg_restore_pitr (start the restored server, wait for it).
"""

from __future__ import annotations

import os
import pwd
import re
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, ClientRunner, find_program
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import conninfo

AUTO_CONF = 'postgresql.auto.conf'


class ServerError(Exception):
    """A server program could not run or failed; the message says why."""


# ---------------------------------------------------------------- pure helpers
def conf_quote(value):
    """A postgresql.conf (and postgresql.auto.conf) string value that the server's configuration lexer reads back as
    exactly `value`: single-quoted, a single quote doubled, and a backslash doubled because the lexer processes
    backslash escapes (\\b, \\n, octal, any other \\x is x). A newline cannot stand inside a quoted value and a
    carriage return or tab would not survive editors: they are written as \\n, \\r, \\t. NUL is refused."""
    text = str(value)
    if '\0' in text:
        raise ValueError('a configuration value cannot hold a NUL character')
    text = text.replace('\\', '\\\\').replace("'", "''")
    text = text.replace('\n', '\\n').replace('\r', '\\r').replace('\t', '\\t')
    return "'%s'" % text


def rewrite_auto_conf(text, settings):
    """postgresql.auto.conf text with `settings` (name -> value or None to remove) replacing earlier lines."""
    names = set(settings)
    kept = [line for line in (text or '').splitlines()
            if not re.match(r'^\s*(%s)\s*=' % '|'.join(re.escape(n) for n in names), line)]
    for name, value in settings.items():
        if value is not None:
            kept.append('%s = %s' % (name, conf_quote(value)))
    return '\n'.join(kept) + '\n'


def parse_controldata(text):
    """pg_controldata output as a dict of its 'Name: value' lines."""
    facts = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition(':')
        if sep:
            facts[key.strip()] = value.strip()
    return facts


def debian_bindir(major, program=None):
    """Debian's folder of the server programs of a major version, when it is there (holding `program`, if named)."""
    path = '/usr/lib/postgresql/%d/bin' % major
    if program is not None:
        return path if os.path.isfile(os.path.join(path, program)) else None
    return path if os.path.isdir(path) else None


def wait_for(predicate, timeout, interval=0.05, first=None):
    """Call predicate until it returns something true or timeout passes; the pause grows from `first` to
    `interval`. Returns the predicate's last value."""
    deadline = time.monotonic() + timeout
    pause = first or interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(pause)
        pause = min(interval, pause * 2)


# ---------------------------------------------------------------- server programs
class ServerTools(object):
    """pg_ctl, pg_controldata and pg_rewind of a data directory's major version, run as its OS user."""

    def __init__(self, params, data_directory, os_user=None, commands=None):
        self.data_directory = data_directory
        if not data_directory or not os.path.isfile(os.path.join(data_directory, 'PG_VERSION')):
            raise ServerError('%s is not a PostgreSQL data directory on this host' % data_directory)
        with open(os.path.join(data_directory, 'PG_VERSION')) as handle:
            self.major = int(handle.read().strip().split('.')[0])
        self.os_user = os_user or pwd.getpwuid(os.stat(data_directory).st_uid).pw_name
        self.pg_bindir = params.get('pg_bindir') or debian_bindir(self.major, 'pg_ctl')
        base = dict(connect_params={}, pg_bindir=self.pg_bindir)
        self.runner = ClientRunner(base, pg_bindir=self.pg_bindir)
        if commands is not None:
            self.runner.commands = commands
        self.commands = self.runner.commands

    def program(self, name):
        try:
            path, version = find_program(name, self.pg_bindir, self.major)
        except ClientError as exc:
            raise ServerError(str(exc))
        if int(version.split('.')[0]) != self.major:
            raise ServerError('%s is of PostgreSQL %s but the data directory is of %s: set pg_bindir' % (
                path, version, self.major))
        return path

    def _prefix(self):
        if os.geteuid() == 0 and self.os_user != 'root':
            return ['runuser', '-u', self.os_user, '--']
        if pwd.getpwuid(os.geteuid()).pw_name != self.os_user:
            raise ServerError('The data directory belongs to %s: run the module as root or as %s' % (
                self.os_user, self.os_user))
        return []

    def run(self, argv, runner=None, **kwargs):
        runner = runner or self.runner
        try:
            return runner.run(self._prefix() + argv, cwd='/', env_extra={'LC_ALL': 'C'}, **kwargs)
        except ClientError as exc:
            raise ServerError(str(exc))

    def controldata(self):
        return parse_controldata(self.run([self.program('pg_controldata'), '-D', self.data_directory])[1])

    def log_file(self):
        logdir = os.path.join(self.data_directory, 'log')
        return os.path.join(logdir if os.path.isdir(logdir) else self.data_directory, 'pg_ctl.log')

    def stop(self, timeout, mode='fast'):
        self.run([self.program('pg_ctl'), 'stop', '-D', self.data_directory, '-m', mode, '-w', '-t', str(timeout)],
                 timeout=timeout + 30)

    def start(self, timeout):
        self.run([self.program('pg_ctl'), 'start', '-D', self.data_directory, '-w', '-t', str(timeout),
                  '-l', self.log_file()], timeout=timeout + 30)

    def running(self):
        return self.run([self.program('pg_ctl'), 'status', '-D', self.data_directory], check=False,
                        record=False)[0] == 0

    def rewind(self, source_params, timeout):
        """pg_rewind against a source server; the password reaches it through PGPASSWORD, never argv."""
        runner = ClientRunner(source_params, pg_bindir=self.pg_bindir)
        runner.commands = self.commands
        source = conninfo(host=source_params['login_host'], port=source_params['login_port'],
                          user=source_params['login_user'], dbname='postgres')
        # pg_rewind copies the source's configuration files over the target's: keep the target's own (its port,
        # its listen address, its pg_hba.conf), the *.conf files at the top of the data directory.
        kept = {}
        for name in os.listdir(self.data_directory):
            path = os.path.join(self.data_directory, name)
            if name.endswith('.conf') and os.path.isfile(path):
                with open(path) as handle:
                    kept[path] = (handle.read(), os.stat(path).st_mode & 0o777)
        self.run([self.program('pg_rewind'), '--target-pgdata', self.data_directory, '--source-server', source,
                  '--progress'], runner=runner, timeout=timeout)
        for path, (text, mode) in kept.items():
            self.write_file(path, text, mode)

    def write_file(self, path, text, mode=0o600):
        """Write a file of the data directory as its OS user (through a temporary file renamed over it)."""
        uid = pwd.getpwnam(self.os_user).pw_uid
        gid = pwd.getpwnam(self.os_user).pw_gid
        tmp = path + '.dbops-tmp'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
        if os.geteuid() == 0:
            os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.rename(tmp, path)

    def update_auto_conf(self, settings):
        """Set (or, with None, remove) settings in postgresql.auto.conf (mode 0600), while the server is stopped:
        values quoted for the configuration file, so a password in primary_conninfo stays in that file only."""
        auto = os.path.join(self.data_directory, AUTO_CONF)
        text = ''
        if os.path.exists(auto):
            with open(auto) as handle:
                text = handle.read()
        self.write_file(auto, rewrite_auto_conf(text, settings))

    def write_signal(self, name):
        """An empty signal file (standby.signal, recovery.signal) in the data directory."""
        self.write_file(os.path.join(self.data_directory, name), '')
