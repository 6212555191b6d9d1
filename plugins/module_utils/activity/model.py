# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of pg_activity_info and pg_sessions on the rows of pg_stat_activity, without a server: durations by
basis, the blocking tree built from pg_blocking_pids(), the per-database summaries, capacity, and which sessions a
policy selects and which it must never signal (and why). Unit-tested in tests/unit/test_activity_model.py.

A row (see activity.read.SESSIONS) is a dict: pid, database, user, application_name, client_addr, backend_type,
state, backend_start, backend_s, transaction_s, query_s, state_s (seconds since backend_start, xact_start,
query_start, state_change; None when unset), wait_event_type, wait_event, wait_s, blocked_by (pids, 0 for a
prepared transaction), superuser, own (the module's own session), can_signal, query, query_chars."""

from __future__ import annotations

import ipaddress

CLIENT_BACKEND = 'client backend'
BASES = ('query', 'transaction', 'backend', 'state')
BASIS_FIELD = dict(query='query_s', transaction='transaction_s', backend='backend_s', state='state_s')
STATES = ('active', 'idle', 'idle in transaction', 'idle in transaction (aborted)', 'fastpath function call',
          'disabled')
IDLE_IN_TRANSACTION = ('idle in transaction', 'idle in transaction (aborted)')
# Azure Database for PostgreSQL keeps these roles' sessions (monitoring, replication) for the platform; the server
# admin cannot end them, whatever the filters.
AZURE_PLATFORM_ROLES = ('azuresu', 'azure_superuser', 'replication')
GONE = 'gone: it ended before the signal, or its pid now belongs to another session (pid and backend_start differ)'


class ActivityError(Exception):
    """A refusal of pg_activity_info or pg_sessions; `result` is merged into the failed result."""

    def __init__(self, msg, result=None):
        super(ActivityError, self).__init__(msg)
        self.result = result or {}


# ------------------------------------------------------------------------------------------------ options
def check_options(params):
    """What Ansible's spec cannot say: minimums, and grace only with terminate. Raises ActivityError."""
    errors = []
    for name in ('min_duration', 'query_length', 'limit', 'grace'):
        value = params.get(name)
        if value is not None and value < 0:
            errors.append('%s must not be negative, got %s' % (name, value))
    pool = params.get('pool') or {}
    for name, low in (('db_max_connections', 1), ('replicas', 1), ('reserved', 0)):
        value = pool.get(name)
        if value is not None and value < low:
            errors.append('pool.%s must be at least %d, got %s' % (name, low, value))
    if params.get('grace') and params.get('action') == 'cancel':
        errors.append('grace cancels first and then terminates what is left: it needs action=terminate')
    for name in ('client_addrs', 'exclude_client_addrs'):
        for value in params.get(name) or []:
            try:
                parse_network(value)
            except ValueError:
                errors.append('%s: %r is neither an IP address, a network (10.0.0.0/8) nor "local"' % (name, value))
    if errors:
        raise ActivityError('; '.join(errors))


def parse_network(value):
    """'local' (a Unix-socket session, no client address) or an ip_network; raises ValueError."""
    text = str(value).strip()
    if text.lower() == 'local':
        return 'local'
    return ipaddress.ip_network(text, strict=False)


def address_in(addr, networks):
    for net in networks:
        if net == 'local':
            if addr in (None, ''):
                return True
            continue
        if addr in (None, ''):
            continue
        try:
            if ipaddress.ip_address(addr) in net:
                return True
        except ValueError:
            continue
    return False


# ------------------------------------------------------------------------------------------------ durations
def duration(row, basis):
    """Seconds of the row on a basis: query (since query_start), transaction (xact_start), backend
    (backend_start), state (state_change: how long it has been idle, active, ...). None when unset."""
    return row.get(BASIS_FIELD[basis])


def over(row, min_duration, basis):
    value = duration(row, basis)
    return value is not None and value >= min_duration


def is_client(row):
    return row.get('backend_type') == CLIENT_BACKEND


def is_platform(row, platform):
    return platform == 'azure' and (row.get('superuser') or row.get('user') in AZURE_PLATFORM_ROLES)


# ------------------------------------------------------------------------------------------------ blocking tree
def blocking_tree(rows):
    """The blocking tree of pg_blocking_pids(): for every waiting session its chain up to a root blocker, and the
    root blockers (sessions that block others and wait for nobody) with the number of sessions waiting behind them
    (directly or not) and the longest wait among them.

    Returns dict(waiting=[{pid, blocked_by, chain, roots, depth, cycle, wait_s}], roots=[{pid, waiters,
    direct_waiters, longest_wait_s, prepared_transaction}]), sorted by pid; a root of pid 0 is a prepared transaction
    (pg_blocking_pids reports those as 0). Sessions in a lock cycle (a deadlock the server has not broken yet) have
    cycle true and no root."""
    blockers = dict((r['pid'], list(r.get('blocked_by') or [])) for r in rows)
    waits = dict((r['pid'], r.get('wait_s')) for r in rows)
    roots_of = {}

    def roots(pid, path):
        """The roots above pid, and whether a cycle was met on the way (then nothing is remembered)."""
        if pid in roots_of:
            return roots_of[pid], False
        above = blockers.get(pid) or []
        if not above:
            return {pid}, False
        found, cycle = set(), False
        for b in above:
            if b in path:
                cycle = True
                continue
            sub, sub_cycle = roots(b, path | {b})
            found |= sub
            cycle = cycle or sub_cycle
        if not cycle:
            roots_of[pid] = found
        return found, cycle

    def chain(pid):
        """One path up to a root: the first blocker pg_blocking_pids named that leads to a root."""
        path, seen = [pid], {pid}
        while blockers.get(path[-1]):
            above = [b for b in blockers[path[-1]] if b not in seen]
            if not above:
                return path, True
            nxt = next((b for b in above if roots(b, seen | {b})[0]), above[0])
            path.append(nxt)
            seen.add(nxt)
        return path, False

    waiting = []
    for pid in sorted(p for p, b in blockers.items() if b):
        path, cycle = chain(pid)
        found = sorted(roots(pid, {pid})[0])
        waiting.append(dict(pid=pid, blocked_by=sorted(set(blockers[pid])), chain=path, roots=found,
                            depth=len(path) - 1, cycle=cycle or not found, wait_s=waits.get(pid)))
    root_info = {}
    for item in waiting:
        for root in item['roots']:
            info = root_info.setdefault(root, dict(pid=root, waiters=0, direct_waiters=0, longest_wait_s=None,
                                                   prepared_transaction=root == 0))
            info['waiters'] += 1
            if root in item['blocked_by']:
                info['direct_waiters'] += 1
            wait = item['wait_s']
            if wait is not None and (info['longest_wait_s'] is None or wait > info['longest_wait_s']):
                info['longest_wait_s'] = wait
    return dict(waiting=waiting, roots=[root_info[k] for k in sorted(root_info)])


# ------------------------------------------------------------------------------------------------ summaries
def _count(counter, key):
    counter[key] = counter.get(key, 0) + 1


def database_summaries(rows, databases=None):
    """Per database, the client sessions (not the module's own) by state, by application_name and by user and
    client address."""
    found = {}
    for row in rows:
        if not is_client(row) or row.get('own') or (databases and row.get('database') not in databases):
            continue
        db = found.setdefault(row.get('database'), dict(sessions=0, by_state={}, by_application={}, by_client={}))
        db['sessions'] += 1
        _count(db['by_state'], row.get('state') or 'unknown')
        _count(db['by_application'], row.get('application_name') or '')
        _count(db['by_client'], (row.get('user'), row.get('client_addr') or 'local'))
    for db in found.values():
        db['by_client'] = [dict(user=k[0], client_addr=k[1], sessions=v)
                           for k, v in sorted(db['by_client'].items(), key=lambda kv: (-kv[1], str(kv[0])))]
    return found


def background(rows):
    """Server processes other than client backends, by backend_type."""
    counts = {}
    for row in rows:
        if not is_client(row):
            _count(counts, row.get('backend_type') or 'unknown')
    return counts


def capacity(rows, settings, platform_reserved, pool_check):
    """Connections used by clients against what max_connections leaves them (less superuser_reserved_connections,
    reserved_connections and what the platform keeps); `pool_check` is `_capacity.pool_check`, whose
    `available` is that figure."""
    check = pool_check(0, 1, 0, settings['max_connections'], settings['superuser_reserved_connections'],
                       settings.get('reserved_connections') or 0, platform_reserved=platform_reserved)
    used = sum(1 for r in rows if is_client(r))
    available = check['available']
    return dict(max_connections=check['max_connections'],
                superuser_reserved_connections=check['superuser_reserved_connections'],
                reserved_connections=check['reserved_connections'],
                platform_reserved_connections=check['platform_reserved_connections'],
                available=available, used=used, free=available - used,
                usage_percent=round(100.0 * used / available, 1) if available > 0 else 100.0)


# ------------------------------------------------------------------------------------------------ selection
def _in(value, names):
    return names is not None and len(names) > 0 and value in names


def matches(row, crit, root_pids):
    """Whether a row meets the policy's filters (not its protections)."""
    if crit.get('pids') and row['pid'] not in crit['pids']:
        return False
    if crit.get('users') and row.get('user') not in crit['users']:
        return False
    if crit.get('application_names') and (row.get('application_name') or '') not in crit['application_names']:
        return False
    if crit.get('client_addrs') and not address_in(row.get('client_addr'), crit['client_addrs']):
        return False
    if crit.get('states') and row.get('state') not in crit['states']:
        return False
    if crit.get('min_duration') is not None and not over(row, crit['min_duration'], crit.get('basis') or 'query'):
        return False
    if crit.get('blockers_only') and row['pid'] not in root_pids:
        return False
    if crit.get('exclude_pids') and row['pid'] in crit['exclude_pids']:
        return False
    if _in(row.get('user'), crit.get('exclude_users')):
        return False
    if _in(row.get('application_name') or '', crit.get('exclude_application_names')):
        return False
    if crit.get('exclude_client_addrs') and address_in(row.get('client_addr'), crit['exclude_client_addrs']):
        return False
    return True


def protection(row, crit, platform='postgres'):
    """Why a session the filters picked must not be signalled, or None."""
    if row.get('own'):
        return 'the module\'s own session'
    if not is_client(row):
        return 'not a client session (%s): PostgreSQL\'s own process' % (row.get('backend_type') or 'unknown')
    if crit.get('databases') is not None and row.get('database') not in crit['databases']:
        return 'database %s is not listed in databases' % row.get('database')
    if is_platform(row, platform):
        return 'an Azure platform session (role %s): the platform keeps it and it cannot be ended' % row.get('user')
    if row.get('superuser') and not crit.get('include_superusers'):
        return 'a superuser\'s session (role %s): include_superusers is false' % row.get('user')
    return None


def select_sessions(rows, crit, platform='postgres'):
    """(selected, skipped) of a policy: the sessions to signal, and those the filters picked but that are never
    signalled, each with its reason. Sessions of other databases, and PostgreSQL's own processes outside the
    listed databases, are left out silently unless named in pids."""
    tree = blocking_tree(rows)
    root_pids = set(r['pid'] for r in tree['roots'] if r['pid'])
    selected, skipped = [], []
    for row in sorted(rows, key=lambda r: r['pid']):
        if not matches(row, crit, root_pids):
            continue
        reason = protection(row, crit, platform)
        named = bool(crit.get('pids')) and row['pid'] in crit['pids']
        if reason is None:
            selected.append(row)
        elif named or row.get('own') or (crit.get('databases') is None or row.get('database') in crit['databases']):
            skipped.append(dict(row, reason=reason))
    return selected, skipped, tree


def unsignalable(selected):
    """The selected sessions the login role may not signal (neither superuser, nor their role's privileges, nor
    pg_signal_backend)."""
    return [r for r in selected if not r.get('can_signal')]


def check_limit(selected, limit):
    if limit is not None and len(selected) > limit:
        raise ActivityError(
            '%d sessions are selected, more than limit %d: nothing was signalled. Narrow the filters or raise '
            'limit. Selected pids: %s' % (len(selected), limit, ', '.join(str(r['pid']) for r in selected)))
