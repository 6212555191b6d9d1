# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_activity_info: its options (argument_spec) and the operation `ActivityInfo`, whose plan() reads the settings
and pg_stat_activity (two queries and the statement_timeout, whatever the number of sessions) and returns the
report; it changes nothing, so apply() returns the plan as it is."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._capacity import PLATFORM_RESERVED, pool_check
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.activity import model, read
from ansible_collections.procgenie.dbops.plugins.module_utils.activity.model import ActivityError

ERRORS = (ActivityError,)


def common_spec():
    """Options both activity modules share."""
    return ArgumentSpec(dict(
        databases=dict(type='list', elements='str'),
        min_duration=dict(type='float'),
        basis=dict(type='str', default='query', choices=list(model.BASES)),
        query_length=dict(type='int', default=300),
        platform=dict(type='str', default='postgres', choices=['postgres', 'azure']),
    ))


def argument_spec():
    spec = common_spec()
    spec.options['min_duration'] = dict(type='float', default=60.0)
    return spec.add(pool=dict(type='dict', options=dict(
        db_max_connections=dict(type='int', required=True), replicas=dict(type='int', default=1),
        reserved=dict(type='int', default=0))))


# the fields of a session in the result
FIELDS = ('pid', 'database', 'user', 'application_name', 'client_addr', 'backend_type', 'state', 'backend_start',
          'transaction_s', 'query_s', 'state_s', 'wait_event_type', 'wait_event', 'query', 'query_truncated')


def public(row, basis=None, **extra):
    """A session as the results show it: its fields, backend_start as ISO 8601, duration_s on the basis."""
    item = dict((k, row.get(k)) for k in FIELDS)
    if item['backend_start'] is not None and hasattr(item['backend_start'], 'isoformat'):
        item['backend_start'] = item['backend_start'].isoformat()
    if basis is not None:
        item['duration_s'] = model.duration(row, basis)
    item.update(extra)
    return item


def report(rows, facts, params, platform_reserved):
    """The report of pg_activity_info from the rows and settings (pure: unit-tested)."""
    basis, min_duration = params['basis'], params['min_duration']
    databases = params.get('databases') or None
    clients = [r for r in rows if model.is_client(r) and not r.get('own')
               and (databases is None or r.get('database') in databases)]
    by_pid = dict((r['pid'], r) for r in rows)

    long_running = [r for r in clients if model.over(r, min_duration, basis)
                    and (basis != 'query' or r.get('state') == 'active')]
    long_running.sort(key=lambda r: (-(model.duration(r, basis) or 0), r['pid']))
    waiting = [r for r in clients if r.get('state') == 'active' and r.get('wait_event_type')]
    waiting.sort(key=lambda r: (-(r.get('wait_s') or r.get('query_s') or 0), r['pid']))
    idle_tx = [r for r in clients if r.get('state') in model.IDLE_IN_TRANSACTION]
    idle_tx.sort(key=lambda r: (-(r.get('state_s') or 0), r['pid']))

    tree = model.blocking_tree(rows)
    if databases is not None:
        tree['waiting'] = [w for w in tree['waiting'] if (by_pid.get(w['pid']) or {}).get('database') in databases]
        keep = set(root for w in tree['waiting'] for root in w['roots'])
        tree['roots'] = [r for r in tree['roots'] if r['pid'] in keep]
    roots = []
    for root in tree['roots']:
        row = by_pid.get(root['pid'])
        roots.append(dict(public(row, 'transaction') if row else dict(pid=root['pid']), **root))
    chains = [dict(public(by_pid[w['pid']], None, wait_s=w['wait_s']), blocked_by=w['blocked_by'], chain=w['chain'],
                   roots=w['roots'], depth=w['depth'], cycle=w['cycle']) for w in tree['waiting']]

    result = dict(
        changed=False,
        server=dict(server_version_num=facts['server_version_num'], now=facts['now'].isoformat(),
                    login_role=facts['login_role'], own_pid=facts['own_pid']),
        capacity=model.capacity(rows, facts, platform_reserved, pool_check),
        databases=model.database_summaries(rows, databases),
        background=model.background(rows),
        basis=basis, min_duration=min_duration,
        long_running=[public(r, basis) for r in long_running],
        waiting=[public(r, None, wait_s=r.get('wait_s'), blocked_by=r['blocked_by']) for r in waiting],
        idle_in_transaction=[public(r, None, idle_s=r.get('state_s')) for r in idle_tx],
        blocking=dict(roots=roots, waiting=chains),
        pool=None,
    )
    pool = params.get('pool')
    if pool:
        result['pool'] = pool_check(pool['db_max_connections'], pool.get('replicas') or 1, pool.get('reserved') or 0,
                                    facts['max_connections'], facts['superuser_reserved_connections'],
                                    facts.get('reserved_connections') or 0, platform_reserved=platform_reserved)
    return result


class ActivityInfo(SessionOperation):
    """pg_activity_info: plan() reads and reports; nothing is ever changed."""

    def plan(self):
        params = self.params
        model.check_options(params)
        facts, rows = read.snapshot(self.open(), params['query_length'])
        return report(rows, facts, params, PLATFORM_RESERVED[params['platform']])

    def apply(self, plan):
        return plan
