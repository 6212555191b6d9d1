# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_sessions: its options (argument_spec) and the operation `Sessions`.

plan() reads pg_stat_activity once, selects the sessions of the policy (activity.model.select_sessions), sets aside
those never to be signalled with their reasons, and refuses before any signal when more than `limit` are selected or
the login role may not signal one of them; it returns exactly the sessions a real run would signal. apply() sends
the signals, each guarded by the session's pid and backend_start in the same statement, so a session that ended
since the plan (or whose pid a new session got) is not touched and is reported gone; with `grace` it cancels first,
waits, then terminates the sessions still there."""

from __future__ import annotations

import time

from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.activity import model, read
from ansible_collections.procgenie.dbops.plugins.module_utils.activity.info import common_spec, public
from ansible_collections.procgenie.dbops.plugins.module_utils.activity.model import ActivityError

ERRORS = (ActivityError,)
# seconds to wait for terminated sessions to be gone, and between two looks
END_WAIT = 5.0
POLL = 0.1


def argument_spec():
    return common_spec().add(
        action=dict(type='str', required=True, choices=['cancel', 'terminate']),
        users=dict(type='list', elements='str'),
        application_names=dict(type='list', elements='str'),
        client_addrs=dict(type='list', elements='str'),
        states=dict(type='list', elements='str', choices=list(model.STATES)),
        pids=dict(type='list', elements='int'),
        blockers_only=dict(type='bool', default=False),
        exclude_users=dict(type='list', elements='str'),
        exclude_application_names=dict(type='list', elements='str'),
        exclude_client_addrs=dict(type='list', elements='str'),
        exclude_pids=dict(type='list', elements='int'),
        include_superusers=dict(type='bool', default=False),
        limit=dict(type='int'),
        grace=dict(type='float', default=0),
    )


def criteria(params, login_db):
    """The policy of the options, as activity.model.select_sessions takes it."""
    nets = dict((name, [model.parse_network(v) for v in params.get(name) or []])
                for name in ('client_addrs', 'exclude_client_addrs'))
    return dict(
        databases=list(params.get('databases') or [login_db]),
        users=params.get('users'), application_names=params.get('application_names'),
        client_addrs=nets['client_addrs'], states=params.get('states'),
        min_duration=params.get('min_duration'), basis=params['basis'],
        pids=params.get('pids'), blockers_only=params['blockers_only'],
        exclude_users=params.get('exclude_users'), exclude_application_names=params.get('exclude_application_names'),
        exclude_client_addrs=nets['exclude_client_addrs'], exclude_pids=params.get('exclude_pids'),
        include_superusers=params['include_superusers'],
    )


def planned_result(params, selected, skipped, crit, check_mode):
    """What check mode reports: exactly the sessions a real run would signal, and those set aside and why."""
    action = params['action']
    signals = ['cancel', 'terminate'] if action == 'terminate' and params['grace'] else [action]
    return dict(
        changed=bool(selected), action=action, grace=params['grace'], limit=params.get('limit'),
        databases=crit['databases'], basis=params['basis'],
        sessions=[public(r, params['basis'], signals=signals, signalled=False,
                         outcome=('would ' + ' then '.join(signals)) if check_mode else None) for r in selected],
        signalled=[],
        not_signalled=[public(r, params['basis'], reason=r['reason']) for r in skipped],
    )


class Sessions(SessionOperation):
    """pg_sessions: plan() selects and checks, apply() signals what was planned, and only that."""

    def __init__(self, params, ctx):
        super(Sessions, self).__init__(params, ctx)
        self.selected = []

    # ------------------------------------------------------------------------------------------ plan
    def plan(self):
        params = self.params
        model.check_options(params)
        facts, rows = read.snapshot(self.open(), params['query_length'])
        crit = criteria(params, facts['current_database'])
        selected, skipped, _tree = model.select_sessions(rows, crit, params['platform'])
        result = planned_result(params, selected, skipped, crit, self.ctx.check_mode)
        try:
            model.check_limit(selected, params.get('limit'))
            refused = model.unsignalable(selected)
            if refused:
                raise ActivityError(
                    'The login role %s may not signal %d of the selected sessions (pids %s: neither a superuser, nor '
                    'a member of their roles or of pg_signal_backend): nothing was signalled' % (
                        facts['login_role'], len(refused), ', '.join(str(r['pid']) for r in refused)))
        except ActivityError as exc:
            exc.result = dict(result, changed=False, **exc.result)
            raise
        self.selected = selected
        return result

    # ------------------------------------------------------------------------------------------ apply
    def send(self, action, rows):
        """Signal each planned session; returns {pid: True (sent) / False (refused by the server) / None (gone)}."""
        return dict((r['pid'], read.signal(self.session, action, r['pid'], r['backend_start'])) for r in rows)

    def wait_gone(self, rows, seconds):
        """Wait up to `seconds` until the planned sessions have ended; returns the pids still there."""
        planned = [(r['pid'], r['backend_start']) for r in rows]
        deadline = time.monotonic() + seconds
        left = read.alive(self.session, planned)
        while left and time.monotonic() < deadline:
            time.sleep(POLL)
            left = read.alive(self.session, [p for p in planned if p[0] in left])
        return left

    def apply(self, plan):
        params = self.params
        rows = self.selected
        action = params['action']
        outcome = dict((r['pid'], dict(signals=[], signalled=False, outcome=None)) for r in rows)

        if action == 'terminate' and params['grace']:
            sent = self.send('cancel', rows)
            for pid, ok in sent.items():
                if ok is None:
                    outcome[pid]['outcome'] = 'gone'
                elif ok:
                    outcome[pid]['signals'].append('cancel')
            cancelled = [r for r in rows if sent[r['pid']]]
            still = self.wait_gone(cancelled, params['grace'])
            for r in cancelled:
                if r['pid'] not in still:
                    outcome[r['pid']]['outcome'] = 'cancelled, then ended by itself'
            rows = [r for r in cancelled if r['pid'] in still] + [r for r in rows if sent[r['pid']] is False]

        sent = self.send(action, rows)
        for pid, ok in sent.items():
            if ok is None:
                outcome[pid]['outcome'] = outcome[pid]['outcome'] or 'gone'
                if outcome[pid]['signals']:
                    outcome[pid]['outcome'] = 'cancelled, then ended by itself'
            elif ok:
                outcome[pid]['signals'].append(action)
                outcome[pid]['outcome'] = ('cancelled, then terminated' if len(outcome[pid]['signals']) > 1
                                           else action + ('led' if action == 'cancel' else 'd'))
            else:
                outcome[pid]['outcome'] = 'the server did not send the signal'
        if action == 'terminate':
            terminated = [r for r in rows if sent.get(r['pid'])]
            left = self.wait_gone(terminated, END_WAIT)
            for pid in left:
                outcome[pid]['outcome'] = 'terminated, but still there after %.0f s' % END_WAIT
                self.warn('session %s was terminated but had not ended after %.0f s' % (pid, END_WAIT))

        signalled, skipped = [], list(plan['not_signalled'])
        sessions = []
        for item in plan['sessions']:
            done = outcome[item['pid']]
            item = dict(item, signals=done['signals'], signalled=bool(done['signals']), outcome=done['outcome'])
            sessions.append(item)
            if item['signalled']:
                signalled.append(item)
            else:
                skipped.append(dict(item, reason=model.GONE if done['outcome'] == 'gone' else done['outcome']))
        return dict(plan, changed=bool(signalled), sessions=sessions, signalled=signalled, not_signalled=skipped)
