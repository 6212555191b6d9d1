# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_failover, provider postgres: status, planned switchover and forced failover of self-hosted streaming replicas.

The pure parts (LSN arithmetic, pg_controldata parsing, safety checks, conninfo quoting) are plain functions; the
rest drives two Sessions (the old primary and the candidate) and the server programs pg_ctl, pg_controldata and
pg_rewind through _clients.ClientRunner, run as the data directory's OS user.
"""

from __future__ import annotations

import os
import pwd
import re
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, ClientRunner, find_program
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (  # noqa: F401 conninfo_quote
    ConnectionFailure, conninfo, conninfo_quote, open_session, psycopg2, sql)

DEFAULT_CONNECT_TIMEOUT = 5
REJOIN_KEYS = ('primary_conninfo', 'primary_slot_name')


class FailoverError(Exception):
    """The operation stopped; the message says why and what state the nodes are in."""


# ---------------------------------------------------------------- pure helpers

def lsn_int(lsn):
    """'16/B374D848' -> integer byte position; None stays None."""
    if lsn is None:
        return None
    high, low = str(lsn).strip().split('/')
    return (int(high, 16) << 32) | int(low, 16)


def lsn_diff(newer, older):
    """Bytes from `older` to `newer` (never negative), or None when either is unknown."""
    if newer is None or older is None:
        return None
    return max(0, lsn_int(newer) - lsn_int(older))


def parse_controldata(text):
    """pg_controldata output as a dict of its 'Name: value' lines."""
    facts = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition(':')
        if sep:
            facts[key.strip()] = value.strip()
    return facts


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


def check(name, ok, detail, blocking=True):
    return dict(name=name, ok=bool(ok), detail=detail, blocking=blocking)


def planned_checks(primary, candidate, primary_spec, max_lag_bytes, force):
    """The safety checks of a planned switchover, from the two nodes' status dicts."""
    checks = [check('primary reachable and writable', primary.get('reachable') and not primary.get('in_recovery'),
                    primary.get('error') or ('in recovery' if primary.get('in_recovery') else 'primary')),
              check('candidate reachable and a standby', candidate.get('reachable') and candidate.get('in_recovery'),
                    candidate.get('error') or ('standby' if candidate.get('in_recovery') else 'not in recovery'))]
    if not all(c['ok'] for c in checks):
        return checks
    receiver = candidate.get('wal_receiver') or {}
    checks.append(check('candidate streams from the primary',
                        receiver.get('status') == 'streaming' and receiver.get('sender_port') == primary_spec['port'],
                        'WAL receiver %s from port %s' % (receiver.get('status', 'not running'),
                                                          receiver.get('sender_port'))))
    checks.append(check('same timeline', primary.get('timeline') == candidate.get('timeline'),
                        'primary %s, candidate %s' % (primary.get('timeline'), candidate.get('timeline'))))
    checks.append(check('candidate replays WAL', not candidate.get('replay_paused'),
                        'replay is paused (pg_wal_replay_resume())' if candidate.get('replay_paused') else 'running'))
    data_dir = primary_spec.get('data_directory')
    checks.append(check('old primary data directory known',
                        data_dir and os.path.realpath(data_dir) == os.path.realpath(primary.get('data_directory') or ''),
                        'given %s, server reports %s' % (data_dir, primary.get('data_directory'))))
    lag = candidate.get('lag_bytes')
    checks.append(check('lag within max_lag_bytes', force or lag is None or lag <= max_lag_bytes,
                        '%s bytes behind (max_lag_bytes %s%s)' % (lag, max_lag_bytes, ', force' if force else '')))
    return checks


def forced_checks(primary, candidate, max_lag_bytes, force):
    """The safety checks of a forced failover."""
    checks = [check('candidate reachable and a standby', candidate.get('reachable') and candidate.get('in_recovery'),
                    candidate.get('error') or ('standby' if candidate.get('in_recovery') else 'not in recovery'))]
    lag = candidate.get('lag_bytes')
    basis = ('behind the reachable primary' if primary.get('reachable') and not primary.get('in_recovery')
             else 'received but not replayed (the primary is unreachable: what it never sent is unknown)')
    checks.append(check('lag within max_lag_bytes', force or lag is None or lag <= max_lag_bytes,
                        '%s bytes %s (max_lag_bytes %s%s)' % (lag, basis, max_lag_bytes, ', force' if force else '')))
    checks.append(check('old primary reachable (it will be fenced)',
                        primary.get('reachable'), primary.get('error') or 'reachable', blocking=False))
    return checks


# ---------------------------------------------------------------- nodes

def node_params(params, spec):
    """The module's connection options aimed at one node."""
    node = dict(params)
    node['login_host'] = spec['host']
    node['login_port'] = spec['port']
    node['login_unix_socket'] = None
    extra = dict(params.get('connect_params') or {})
    extra.setdefault('connect_timeout', params.get('connect_timeout') or DEFAULT_CONNECT_TIMEOUT)
    node['connect_params'] = extra
    return node


def address(spec):
    return dict(host=spec['host'], port=spec['port'])


def status(session):
    """Role, timeline, WAL positions and replay state of one server."""
    in_recovery = session.scalar(sql.SQL('SELECT pg_is_in_recovery()'))
    facts = dict(reachable=True, in_recovery=in_recovery,
                 data_directory=session.scalar(sql.SQL("SELECT current_setting('data_directory')")),
                 server_version_num=session.server_version_num)
    if not in_recovery:
        row = session.row(sql.SQL(
            "SELECT pg_current_wal_lsn()::text AS current_lsn, "
            "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline"))
        facts.update(row, role='primary', wal_receiver=None)
        facts['standbys'] = session.rows(sql.SQL(
            "SELECT application_name, client_addr::text AS client_addr, state, sync_state, replay_lsn::text AS "
            "replay_lsn, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes, "
            "extract(epoch FROM replay_lag)::float8 AS lag_seconds FROM pg_stat_replication ORDER BY 1"))
        return facts
    row = session.row(sql.SQL(
        "SELECT pg_last_wal_receive_lsn()::text AS receive_lsn, pg_last_wal_replay_lsn()::text AS replay_lsn, "
        "pg_is_wal_replay_paused() AS replay_paused, "
        "CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() "
        "THEN 0 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8 AS lag_seconds, "
        "(SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline"))
    receiver = session.row(sql.SQL(
        "SELECT status, received_tli, sender_host, sender_port FROM pg_stat_wal_receiver"))
    facts.update(row, role='standby', wal_receiver=receiver)
    facts['timeline'] = (receiver or {}).get('received_tli') or row['checkpoint_timeline']
    facts.pop('checkpoint_timeline', None)
    return facts


class Node(object):
    """One server of the pair: its spec, connection options and (when reachable) a Session."""

    def __init__(self, name, spec, params, log):
        self.name = name
        self.spec = spec
        self.params = node_params(params, spec)
        self.log = log
        self.session = None
        self.facts = dict(reachable=False)

    def connect(self):
        self.close()
        try:
            self.session = open_session(self.params, autocommit=True, log=self.log)
        except ConnectionFailure as exc:
            self.facts = dict(reachable=False, error=str(exc))
            return False
        return True

    def refresh(self):
        if self.session is None and not self.connect():
            return self.facts
        try:
            self.facts = status(self.session)
        except psycopg2.OperationalError as exc:
            self.close()
            self.facts = dict(reachable=False, error=str(exc).strip())
        return self.facts

    def close(self):
        if self.session is not None:
            self.session.close()
            self.session = None


def add_lag(primary, candidate):
    """Candidate lag in bytes: behind the primary's current WAL position when the primary answers, else the WAL it
    received but has not replayed."""
    if not candidate.get('in_recovery'):
        candidate['lag_bytes'] = None
        return
    if primary.get('reachable') and not primary.get('in_recovery'):
        candidate['lag_bytes'] = lsn_diff(primary.get('current_lsn'), candidate.get('replay_lsn'))
    else:
        candidate['lag_bytes'] = lsn_diff(candidate.get('receive_lsn'), candidate.get('replay_lsn'))


def report(primary, candidate):
    nodes = dict(primary=dict(address(primary.spec), **primary.facts))
    if candidate is not None:
        nodes['candidate'] = dict(address(candidate.spec), **candidate.facts)
    current = [name for name, facts in nodes.items() if facts.get('reachable') and not facts.get('in_recovery')]
    return nodes, current


# ---------------------------------------------------------------- server programs

class ServerTools(object):
    """pg_ctl, pg_controldata and pg_rewind of a data directory's major version, run as its OS user."""

    def __init__(self, params, data_directory, os_user=None, commands=None):
        self.data_directory = data_directory
        if not data_directory or not os.path.isfile(os.path.join(data_directory, 'PG_VERSION')):
            raise FailoverError('%s is not a PostgreSQL data directory on this host' % data_directory)
        with open(os.path.join(data_directory, 'PG_VERSION')) as handle:
            self.major = int(handle.read().strip().split('.')[0])
        self.os_user = os_user or pwd.getpwuid(os.stat(data_directory).st_uid).pw_name
        self.pg_bindir = params.get('pg_bindir') or self._debian_bindir()
        base = dict(connect_params={}, pg_bindir=self.pg_bindir)
        self.runner = ClientRunner(base, pg_bindir=self.pg_bindir)
        if commands is not None:
            self.runner.commands = commands
        self.commands = self.runner.commands

    def _debian_bindir(self):
        path = '/usr/lib/postgresql/%d/bin' % self.major
        return path if os.path.isfile(os.path.join(path, 'pg_ctl')) else None

    def program(self, name):
        try:
            path, version = find_program(name, self.pg_bindir, self.major)
        except ClientError as exc:
            raise FailoverError(str(exc))
        if int(version.split('.')[0]) != self.major:
            raise FailoverError('%s is of PostgreSQL %s but the data directory is of %s: set pg_bindir' % (
                path, version, self.major))
        return path

    def _prefix(self):
        if os.geteuid() == 0 and self.os_user != 'root':
            return ['runuser', '-u', self.os_user, '--']
        if pwd.getpwuid(os.geteuid()).pw_name != self.os_user:
            raise FailoverError('The data directory belongs to %s: run the module as root or as %s' % (
                self.os_user, self.os_user))
        return []

    def run(self, argv, runner=None, **kwargs):
        runner = runner or self.runner
        try:
            return runner.run(self._prefix() + argv, cwd='/', env_extra={'LC_ALL': 'C'}, **kwargs)
        except ClientError as exc:
            raise FailoverError(str(exc))

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
        """pg_rewind against the new primary; the password reaches it through PGPASSWORD, never argv."""
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

    def configure_standby(self, settings):
        """standby.signal plus primary_conninfo/primary_slot_name in postgresql.auto.conf (mode 0600), while the
        server is stopped; the password stays in that file and out of `queries`."""
        auto = os.path.join(self.data_directory, 'postgresql.auto.conf')
        text = ''
        if os.path.exists(auto):
            with open(auto) as handle:
                text = handle.read()
        self.write_file(auto, rewrite_auto_conf(text, settings))
        self.write_file(os.path.join(self.data_directory, 'standby.signal'), '')


# ---------------------------------------------------------------- operations

def wait_for(predicate, timeout, interval=0.05, first=None):
    """Call predicate until it returns something true or timeout passes; the pause grows from `first` to
    `interval`."""
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


def write_probe(session):
    """True when the server commits a transaction that needs a transaction ID (a real write)."""
    func = 'pg_current_xact_id' if session.server_version_num >= 130000 else 'txid_current'
    try:
        session.execute(sql.SQL('BEGIN READ WRITE'))
        session.scalar(sql.SQL('SELECT {}()').format(sql.Identifier(func)))
        session.execute(sql.SQL('COMMIT'))
        return True
    except psycopg2.Error:
        try:
            session.execute(sql.SQL('ROLLBACK'))
        except psycopg2.Error:
            pass
        return False


def promote(candidate, timeout):
    """pg_promote, then a write probe until the candidate commits; returns the new timeline."""
    if candidate.facts.get('replay_paused'):
        candidate.session.scalar(sql.SQL('SELECT pg_wal_replay_resume()'))
    # pg_promote(wait => true) polls ten times a second; promote without waiting and poll faster ourselves.
    candidate.session.scalar(sql.SQL('SELECT pg_promote(false)'))
    done = wait_for(lambda: not candidate.session.scalar(sql.SQL('SELECT pg_is_in_recovery()')), timeout,
                    interval=0.1, first=0.005)
    if not done:
        raise FailoverError('pg_promote() did not finish within %s seconds on the candidate' % timeout)
    if not wait_for(lambda: write_probe(candidate.session), timeout, interval=0.1, first=0.005):
        raise FailoverError('The candidate was promoted but does not accept writes within %s seconds' % timeout)
    return candidate.refresh().get('timeline')


def fence_with_sql(node):
    """Fence a reachable old primary without OS access: read-only server-wide and its client sessions ended."""
    session = node.session
    session.execute(sql.SQL('ALTER SYSTEM SET default_transaction_read_only = on'))
    session.scalar(sql.SQL('SELECT pg_reload_conf()'))
    session.rows(sql.SQL(
        "SELECT pid, pg_terminate_backend(pid) AS terminated FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"))


def standby_settings(params, new_primary_spec):
    """primary_conninfo and primary_slot_name of the rejoined old primary: every conninfo value quoted for libpq,
    the whole string quoted for the configuration file when written (conf_quote). Raises ValueError for a value no
    configuration file can hold."""
    settings = dict(primary_conninfo=conninfo(
        host=new_primary_spec['host'], port=new_primary_spec['port'],
        user=params['replication_user'] or params['login_user'],
        password=params['replication_password'] or params['login_password'], sslmode=params.get('ssl_mode'),
        application_name=params['application_name']), primary_slot_name=params['old_primary_slot'])
    for value in settings.values():
        if value is not None:
            conf_quote(value)
    return settings


def rejoin(ctx, tools, new_primary, rewind):
    """Turn the stopped old primary into a streaming standby of the new primary and wait until it streams."""
    params = ctx['params']
    timeout = params['timeout']
    if tools.running():
        tools.stop(timeout)
    slot = params['old_primary_slot']
    if slot:
        new_primary.session.scalar(sql.SQL(
            "SELECT count(*) FROM (SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
            "(SELECT FROM pg_replication_slots WHERE slot_name = %s)) s"), (slot, slot))
    source = dict(new_primary.params)
    source['login_user'] = params['replication_user'] or params['login_user']
    source['login_password'] = params['replication_password'] or params['login_password']
    if rewind:
        # pg_rewind reads the source's timeline from its control file, which a promoted standby updates only at its
        # next checkpoint: without this it may find "no rewind required" and leave the old primary diverged.
        new_primary.session.execute(sql.SQL('CHECKPOINT'))
        tools.rewind(source, timeout * 10)
    tools.configure_standby(standby_settings(params, new_primary.spec))
    tools.start(timeout)
    old = Node('old_primary', ctx['primary_spec'], params, ctx['log'])

    def streaming():
        facts = old.refresh()
        return facts.get('in_recovery') and (facts.get('wal_receiver') or {}).get('status') == 'streaming'
    ok = wait_for(streaming, timeout, interval=0.2)
    facts = old.facts
    old.close()
    if not ok:
        raise FailoverError('The old primary was started as a standby of the new primary but does not stream '
                            'within %s seconds (%s); see %s. It may need pg_rewind (rewind: always).' % (
                                timeout, facts.get('wal_receiver') or facts.get('error'), tools.log_file()))
    return facts


def run(module, log, commands):
    """The module's work for provider postgres; returns the result dict (without queries/commands)."""
    params = module.params
    mode = params['mode']
    primary_spec = params['primary']
    candidate_spec = params['candidate']
    ctx = dict(params=params, log=log, primary_spec=primary_spec, commands=commands)
    primary = Node('primary', primary_spec, params, log)
    candidate = Node('candidate', candidate_spec, params, log) if candidate_spec else None
    result = dict(provider='postgres', mode=mode, changed=False, checks=[], plan=[], commands=ctx['commands'])
    try:
        primary.refresh()
        if candidate is not None:
            candidate.refresh()
            add_lag(primary.facts, candidate.facts)
        result['nodes'], current = report(primary, candidate)
        result['current_primary'] = current[0] if len(current) == 1 else None
        if len(current) > 1:
            module.warn('Both nodes accept writes (split brain): %s' % ', '.join(current))
        if mode == 'status':
            return result
        return switch(module, ctx, primary, candidate, result)
    finally:
        primary.close()
        if candidate is not None:
            candidate.close()


def already_done(primary, candidate):
    return candidate.facts.get('reachable') and not candidate.facts.get('in_recovery') and (
        not primary.facts.get('reachable') or primary.facts.get('in_recovery'))


def switch(module, ctx, primary, candidate, result):
    params = ctx['params']
    mode = params['mode']
    timeout = params['timeout']
    result.update(old_primary=address(primary.spec), new_primary=address(candidate.spec),
                  timeline_before=primary.facts.get('timeline') or candidate.facts.get('timeline'))
    if already_done(primary, candidate):
        result['plan'] = ['nothing to do: the candidate is already the primary']
        result['new_timeline'] = candidate.facts.get('timeline')
        return result
    if mode == 'planned':
        result['checks'] = planned_checks(primary.facts, candidate.facts, primary.spec, params['max_lag_bytes'],
                                          params['force'])
    else:
        result['checks'] = forced_checks(primary.facts, candidate.facts, params['max_lag_bytes'], params['force'])
    failed = [c for c in result['checks'] if c['blocking'] and not c['ok']]
    tools = None
    data_dir = primary.spec.get('data_directory')
    fence = 'none'
    if mode == 'planned':
        fence = 'stop'
    elif primary.facts.get('reachable') and not primary.facts.get('in_recovery'):
        fence = 'stop' if data_dir else 'sql'
    if not failed and (fence == 'stop' or params['old_primary_action'] == 'rejoin'):
        try:
            tools = ServerTools(params, data_dir, params['os_user'], ctx['commands'])
        except FailoverError as exc:
            failed.append(check('server programs for the old primary', False, str(exc)))
            result['checks'].append(failed[-1])
    if not failed and params['old_primary_action'] == 'rejoin':
        try:
            standby_settings(params, candidate.spec)
        except ValueError as exc:
            failed.append(check('primary_conninfo of the rejoined old primary', False, str(exc)))
            result['checks'].append(failed[-1])
    rewind = params['rewind'] == 'always' or (params['rewind'] == 'auto' and mode == 'forced')
    result['plan'] = plan_steps(mode, fence, params, rewind, primary, candidate)
    if failed:
        module.fail_json(msg='Safety checks failed, nothing was changed: %s' % '; '.join(
            '%s (%s)' % (c['name'], c['detail']) for c in failed), **dict(result, queries=ctx['log'].queries))
    if mode == 'forced' and not primary.facts.get('reachable'):
        module.warn('The old primary is not reachable and was not fenced: make sure it cannot come back as a '
                    'primary (%s)' % primary.facts.get('error'))
    result['changed'] = True
    result['diff'] = dict(before=dict(primary='%(host)s:%(port)s' % primary.spec),
                          after=dict(primary='%(host)s:%(port)s' % candidate.spec))
    if module.check_mode:
        return result
    started = time.monotonic()
    if fence == 'stop':
        primary.close()
        tools.stop(timeout)
        result['fenced'] = 'stopped'
    elif fence == 'sql':
        fence_with_sql(primary)
        result['fenced'] = 'read-only'
        module.warn('The old primary was fenced with default_transaction_read_only and its sessions ended; '
                    'a session can still override that: stop it as soon as possible')
    else:
        result['fenced'] = None
    if mode == 'planned':
        control = tools.controldata()
        target = control.get('Latest checkpoint location')
        if control.get('Database cluster state') != 'shut down' or not target:
            restart(tools, timeout)
            raise FailoverError('The old primary did not shut down cleanly (%s); it was started again, nothing was '
                                'promoted' % control.get('Database cluster state'))

        def caught_up():
            facts = candidate.refresh()
            return facts.get('replay_lsn') and lsn_int(facts['replay_lsn']) > lsn_int(target)
        if not wait_for(caught_up, timeout):
            restart(tools, timeout)
            raise FailoverError('The candidate did not replay the old primary\'s shutdown checkpoint %s within %s '
                                'seconds (replayed %s); the old primary was started again, nothing was promoted' % (
                                    target, timeout, candidate.facts.get('replay_lsn')))
        result['old_primary_final_lsn'] = target
    else:
        candidate.refresh()
    result['lag_at_promotion'] = dict(
        bytes=lsn_diff(result.get('old_primary_final_lsn') or primary.facts.get('current_lsn')
                       or candidate.facts.get('receive_lsn'), candidate.facts.get('replay_lsn')),
        seconds=candidate.facts.get('lag_seconds'), replay_lsn=candidate.facts.get('replay_lsn'))
    result['new_timeline'] = promote(candidate, timeout)
    result['duration_s'] = round(time.monotonic() - started, 3)
    result['rejoined'] = False
    if params['old_primary_action'] == 'rejoin':
        facts = rejoin(ctx, tools, candidate, rewind)
        result['rejoined'] = True
        result['rewound'] = rewind
        result['old_primary_status'] = dict(in_recovery=facts.get('in_recovery'), timeline=facts.get('timeline'),
                                            wal_receiver=facts.get('wal_receiver'))
    result['nodes'], current = report(primary, candidate)
    result['current_primary'] = 'candidate'
    return result


def restart(tools, timeout):
    try:
        tools.start(timeout)
    except FailoverError:
        pass


def plan_steps(mode, fence, params, rewind, primary, candidate):
    old = '%(host)s:%(port)s' % primary.spec
    new = '%(host)s:%(port)s' % candidate.spec
    steps = []
    if fence == 'stop':
        steps.append('stop the old primary %s cleanly (pg_ctl stop -m fast) so it accepts no more writes' % old)
    elif fence == 'sql':
        steps.append('fence the old primary %s: ALTER SYSTEM SET default_transaction_read_only = on, reload, end '
                     'its client sessions' % old)
    else:
        steps.append('the old primary %s is unreachable: it cannot be fenced' % old)
    if mode == 'planned':
        steps.append('wait until %s has replayed the old primary\'s shutdown checkpoint (no committed transaction '
                     'lost)' % new)
    steps.append('promote %s with pg_promote() and wait until it commits a write' % new)
    if params['old_primary_action'] == 'rejoin':
        steps.append('%sturn %s into a standby of %s (standby.signal, primary_conninfo%s) and wait until it '
                     'streams' % ('pg_rewind, then ' if rewind else '', old, new,
                                  ', slot %s' % params['old_primary_slot'] if params['old_primary_slot'] else ''))
    return steps
