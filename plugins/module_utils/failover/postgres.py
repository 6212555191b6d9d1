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
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientRunner
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, conninfo, open_session, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation
from ansible_collections.procgenie.dbops.plugins.module_utils._server import (
    ServerError, ServerTools, conf_quote, wait_for)
from ansible_collections.procgenie.dbops.plugins.module_utils._wal import parse_lsn
from ansible_collections.procgenie.dbops.plugins.module_utils.failover.options import shared_spec

DEFAULT_CONNECT_TIMEOUT = 5
NODE_SPEC = dict(host=dict(type='str', required=True), port=dict(type='int', default=5432),
                 data_directory=dict(type='path'))


class FailoverError(Exception):
    """The operation stopped; the message says why and what state the nodes are in. `result` holds what is known
    (checks, plan, nodes) when the safety checks refused."""

    def __init__(self, message, result=None):
        super(FailoverError, self).__init__(message)
        self.result = result or {}


def argument_spec():
    """The options of provider postgres (besides the connection and client-program options)."""
    return shared_spec().merge(ArgumentSpec(dict(
        primary=dict(type='dict', options=NODE_SPEC),
        candidate=dict(type='dict', options=NODE_SPEC),
        max_lag_bytes=dict(type='int', default=16777216),
        connect_timeout=dict(type='int', default=5),
        old_primary_action=dict(type='str', default='fence', choices=['fence', 'rejoin']),
        old_primary_slot=dict(type='str'),
        rewind=dict(type='str', default='auto', choices=['auto', 'always', 'never']),
        replication_user=dict(type='str'),
        replication_password=dict(type='str', no_log=True),
        application_name=dict(type='str'),
        os_user=dict(type='str'),
    ), required_if=[('provider', 'postgres', ('primary',))]))


# ---------------------------------------------------------------- pure helpers

def lsn_diff(newer, older):
    """Bytes from `older` to `newer` (never negative), or None when either is unknown."""
    if newer is None or older is None:
        return None
    return max(0, parse_lsn(newer) - parse_lsn(older))


def check_options(params):
    """What the argument spec cannot say: a switch needs a candidate other than the primary, a positive timeout and
    a max_lag_bytes not negative. Raises FailoverError."""
    if params['mode'] != 'status' and not params['candidate']:
        raise FailoverError('mode is %s but all of the following are missing: candidate' % params['mode'])
    if params['candidate'] and (params['candidate']['host'], params['candidate']['port']) == (
            params['primary']['host'], params['primary']['port']):
        raise FailoverError('primary and candidate are the same server')
    if params['timeout'] < 1 or params['max_lag_bytes'] < 0:
        raise FailoverError('timeout must be positive and max_lag_bytes not negative')


def fence_of(mode, primary_facts, data_dir):
    """How the old primary is kept from taking writes: 'stop' (pg_ctl stop), 'sql' (read-only by SQL, when its data
    directory is not known) or 'none' (unreachable in a forced failover)."""
    if mode == 'planned':
        return 'stop'
    if primary_facts.get('reachable') and not primary_facts.get('in_recovery'):
        return 'stop' if data_dir else 'sql'
    return 'none'


def rewinds(params):
    return params['rewind'] == 'always' or (params['rewind'] == 'auto' and params['mode'] == 'forced')


def refusal(failed):
    """The message of failed safety checks, or None."""
    if not failed:
        return None
    return 'Safety checks failed, nothing was changed: %s' % '; '.join(
        '%s (%s)' % (c['name'], c['detail']) for c in failed)


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
    reported = primary.get('data_directory') or ''
    checks.append(check('old primary data directory known',
                        data_dir and os.path.realpath(data_dir) == os.path.realpath(reported),
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


# ---------------------------------------------------------------- operations

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


def already_done(primary, candidate):
    return candidate.facts.get('reachable') and not candidate.facts.get('in_recovery') and (
        not primary.facts.get('reachable') or primary.facts.get('in_recovery'))


def restart(tools, timeout):
    try:
        tools.start(timeout)
    except ServerError:
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


# ---------------------------------------------------------------- the operation

class Failover(Operation):
    """pg_failover, provider postgres. plan() reads both nodes and, for a switch, runs every safety check (the old
    primary's server programs found, the rejoined old primary's primary_conninfo built) and returns the steps;
    apply() fences, waits, promotes and (optionally) rejoins."""

    def __init__(self, params, ctx):
        super(Failover, self).__init__(params, ctx)
        self.primary = None
        self.candidate = None
        self.tools = None
        self.fence = 'none'

    @classmethod
    def make_runner(cls, params):
        """Only the server programs run (ServerTools, as the data directory's OS user): this runner holds the
        `commands` they are recorded in."""
        return ClientRunner(dict(connect_params={}), pg_bindir=params.get('pg_bindir'))

    def close(self):
        for node in (self.primary, self.candidate):
            if node is not None:
                node.close()

    # -------------------------------------------------------- plan
    def plan(self):
        params = self.params
        check_options(params)
        mode = params['mode']
        self.primary = Node('primary', params['primary'], params, self.log)
        self.candidate = Node('candidate', params['candidate'], params, self.log) if params['candidate'] else None
        primary, candidate = self.primary, self.candidate
        result = dict(provider='postgres', mode=mode, changed=False, checks=[], plan=[])
        primary.refresh()
        if candidate is not None:
            candidate.refresh()
            add_lag(primary.facts, candidate.facts)
        result['nodes'], current = report(primary, candidate)
        result['current_primary'] = current[0] if len(current) == 1 else None
        if len(current) > 1:
            self.warn('Both nodes accept writes (split brain): %s' % ', '.join(current))
        if mode == 'status':
            return result
        return self.plan_switch(result)

    def plan_switch(self, result):
        params = self.params
        mode = params['mode']
        primary, candidate = self.primary, self.candidate
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
            result['checks'] = forced_checks(primary.facts, candidate.facts, params['max_lag_bytes'],
                                             params['force'])
        failed = [c for c in result['checks'] if c['blocking'] and not c['ok']]
        data_dir = primary.spec.get('data_directory')
        self.fence = fence_of(mode, primary.facts, data_dir)
        if not failed and (self.fence == 'stop' or params['old_primary_action'] == 'rejoin'):
            try:
                self.tools = ServerTools(params, data_dir, params['os_user'], self.runner.commands)
            except ServerError as exc:
                failed.append(check('server programs for the old primary', False, str(exc)))
                result['checks'].append(failed[-1])
        if not failed and params['old_primary_action'] == 'rejoin':
            try:
                standby_settings(params, candidate.spec)
            except ValueError as exc:
                failed.append(check('primary_conninfo of the rejoined old primary', False, str(exc)))
                result['checks'].append(failed[-1])
        result['plan'] = plan_steps(mode, self.fence, params, rewinds(params), primary, candidate)
        if failed:
            raise FailoverError(refusal(failed), result)
        if mode == 'forced' and not primary.facts.get('reachable'):
            self.warn('The old primary is not reachable and was not fenced: make sure it cannot come back as a '
                      'primary (%s)' % primary.facts.get('error'))
        tracker = DifferenceTracker().add('primary', before='%(host)s:%(port)s' % primary.spec,
                                          after='%(host)s:%(port)s' % candidate.spec)
        result['changed'] = True
        result['diff'] = tracker.diff()
        return result

    # -------------------------------------------------------- apply
    def apply(self, plan):
        if not plan['changed']:
            return plan
        result = dict(plan)
        params = self.params
        timeout = params['timeout']
        primary, candidate, tools = self.primary, self.candidate, self.tools
        started = time.monotonic()
        if self.fence == 'stop':
            primary.close()
            tools.stop(timeout)
            result['fenced'] = 'stopped'
        elif self.fence == 'sql':
            fence_with_sql(primary)
            result['fenced'] = 'read-only'
            self.warn('The old primary was fenced with default_transaction_read_only and its sessions ended; '
                      'a session can still override that: stop it as soon as possible')
        else:
            result['fenced'] = None
        if params['mode'] == 'planned':
            result['old_primary_final_lsn'] = self.wait_caught_up(tools, timeout)
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
            rewind = rewinds(params)
            facts = self.rejoin(rewind)
            result['rejoined'] = True
            result['rewound'] = rewind
            result['old_primary_status'] = dict(in_recovery=facts.get('in_recovery'), timeline=facts.get('timeline'),
                                                wal_receiver=facts.get('wal_receiver'))
        result['nodes'], _current = report(primary, candidate)
        result['current_primary'] = 'candidate'
        return result

    def wait_caught_up(self, tools, timeout):
        """The stopped old primary's shutdown checkpoint, once the candidate has replayed past it; else the old
        primary is started again and FailoverError says nothing was promoted."""
        control = tools.controldata()
        target = control.get('Latest checkpoint location')
        if control.get('Database cluster state') != 'shut down' or not target:
            restart(tools, timeout)
            raise FailoverError('The old primary did not shut down cleanly (%s); it was started again, nothing was '
                                'promoted' % control.get('Database cluster state'))

        def caught_up():
            facts = self.candidate.refresh()
            return facts.get('replay_lsn') and parse_lsn(facts['replay_lsn']) > parse_lsn(target)
        if not wait_for(caught_up, timeout):
            restart(tools, timeout)
            raise FailoverError('The candidate did not replay the old primary\'s shutdown checkpoint %s within %s '
                                'seconds (replayed %s); the old primary was started again, nothing was promoted' % (
                                    target, timeout, self.candidate.facts.get('replay_lsn')))
        return target

    def rejoin(self, rewind):
        """Turn the stopped old primary into a streaming standby of the new primary and wait until it streams."""
        params = self.params
        tools, new_primary = self.tools, self.candidate
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
            # pg_rewind reads the source's timeline from its control file, which a promoted standby updates only at
            # its next checkpoint: without this it may find "no rewind required" and leave the old primary diverged.
            new_primary.session.execute(sql.SQL('CHECKPOINT'))
            tools.rewind(source, timeout * 10)
        # standby.signal plus primary_conninfo/primary_slot_name in postgresql.auto.conf (mode 0600), while the
        # server is stopped; the password stays in that file and out of `queries`.
        tools.update_auto_conf(standby_settings(params, new_primary.spec))
        tools.write_signal('standby.signal')
        tools.start(timeout)
        old = Node('old_primary', params['primary'], params, self.log)

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
