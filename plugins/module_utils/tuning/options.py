# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_tune_params' own options and the shape of its result, shared by both providers (the connection, client and
Azure options come from each provider's spec: tuning.postgres.argument_spec(), tuning.azure.argument_spec()).

Ansible's int has no minimum: the bounds (cpus, max_connections, timeouts, pool sizes), sizes and parameter names are
checked by recommend.check_options(), which both providers run before anything is read."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning.recommend import PROFILES, STORAGE, WORKLOADS


def argument_spec():
    return ArgumentSpec(dict(
        mode=dict(type='str', default='apply', choices=['apply', 'recommend']),
        profile=dict(type='str', default='recommended', choices=PROFILES),
        memory=dict(type='str'),
        cpus=dict(type='int'),
        storage=dict(type='str', default='ssd', choices=STORAGE),
        workload=dict(type='str', default='mixed', choices=WORKLOADS),
        max_connections=dict(type='int'),
        database_size=dict(type='str'),
        parameters=dict(type='dict', default={}),
        role_settings=dict(type='list', elements='dict', options=dict(
            role=dict(type='str'), database=dict(type='str'), settings=dict(type='dict'))),
        pool=dict(type='dict', options=dict(
            db_max_connections=dict(type='int'), replicas=dict(type='int', default=1),
            reserved=dict(type='int', default=0))),
        allow_restart=dict(type='bool', default=False),
    ))


# ---------------------------------------------------------------- the result, the same for both providers
def public(item):
    """A planned item as the result shows it (the keys starting with _ are the operation's own)."""
    return dict((k, v) for k, v in item.items() if not k.startswith('_'))


def label(role, database):
    """'role x database y' of a role_settings entry."""
    return ' '.join(x for x in ('role %s' % role if role else '', 'database %s' % database if database else '') if x)


def changes_diff(param_changes, role_changes, recommend_only=False):
    """The module's diff: the changed parameters and session settings (planned items), before and after; nothing at
    all when only recommending."""
    if recommend_only:
        return DifferenceTracker().diff()
    parameters, role_settings = DifferenceTracker(), DifferenceTracker()
    for item in param_changes:
        parameters.add(item['name'], item['before'], item['after'])
    for item in role_changes:
        role_settings.add('%s: %s' % (label(item['role'], item['database']), item['name']), item['before'],
                          item['after'])
    tracker = DifferenceTracker()
    for name, part in (('parameters', parameters.diff()), ('role_settings', role_settings.diff())):
        tracker.add(name, part['before'], part['after'])
    return tracker.diff()
