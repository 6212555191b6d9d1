# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_azure_backup_policy: the runbook's backup table for Azure flexible servers, compared and enforced.

Retention is changed with a Servers_Update PATCH (long-running). Geo-redundant backup can only be chosen when a
server is created (the spec marks it create-only, and read-only in the PATCH body): drift there is reported as
unfixable and never sent.
"""

from __future__ import annotations

import time

from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec, azure_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._azure import AzureOperation, backup_facts
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker

# The runbook's "Automated Backups (Azure Managed)" table.
POLICIES = {
    'development': dict(retention_days=7, geo_redundant_backup='Disabled'),
    'production': dict(retention_days=35, geo_redundant_backup='Enabled'),
}
# Azure's limits for backup retention of flexible servers.
MIN_RETENTION_DAYS = 7
MAX_RETENTION_DAYS = 35
FIXABLE = ('retention_days',)


def argument_spec():
    """pg_azure_backup_policy's options and constraints: the connection options (its documentation fragments),
    Azure's with the wait timeout, and the policy's."""
    return postgres_spec().merge(azure_spec(wait=True), ArgumentSpec(dict(
        environment=dict(type='str', choices=['development', 'production']),
        retention_days=dict(type='int'),
        geo_redundant_backup=dict(type='bool'),
        fail_on_unfixable=dict(type='bool', default=True),
    ), required_one_of=[('environment', 'retention_days', 'geo_redundant_backup')])).add(
        # this module always names the server (Azure's options leave them optional for modules that do not)
        resource_group=dict(type='str', required=True),
        server_name=dict(type='str', required=True))


class PolicyError(Exception):
    """Bad input, or drift the module cannot fix; `result` holds what is known."""

    def __init__(self, message, result=None):
        super(PolicyError, self).__init__(message)
        self.result = result or {}


def geo_value(flag):
    """True/False (the module option) -> Azure's Enabled/Disabled; None stays None."""
    if flag is None:
        return None
    return 'Enabled' if flag else 'Disabled'


def desired_policy(environment=None, retention_days=None, geo_redundant_backup=None):
    """The wanted retention_days and geo_redundant_backup (Enabled/Disabled): the environment's row of the runbook
    table, overridden by explicit values; a setting with neither is None (not checked)."""
    wanted = dict(POLICIES[environment]) if environment else dict(retention_days=None, geo_redundant_backup=None)
    if retention_days is not None:
        wanted['retention_days'] = retention_days
    if geo_redundant_backup is not None:
        wanted['geo_redundant_backup'] = geo_value(geo_redundant_backup)
    if wanted['retention_days'] is None and wanted['geo_redundant_backup'] is None:
        raise PolicyError('Nothing to check: set environment, retention_days or geo_redundant_backup.')
    days = wanted['retention_days']
    if days is not None and not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise PolicyError('retention_days must be between %d and %d (Azure flexible server limits), not %s.'
                          % (MIN_RETENTION_DAYS, MAX_RETENTION_DAYS, days))
    return wanted


def compare(current, wanted):
    """The drift: a list of dict(setting, current, desired, fixable), in a stable order."""
    drift = []
    for setting in ('retention_days', 'geo_redundant_backup'):
        if wanted.get(setting) is not None and current.get(setting) != wanted[setting]:
            drift.append(dict(setting=setting, current=current.get(setting), desired=wanted[setting],
                              fixable=setting in FIXABLE))
    return drift


def patch_body(drift):
    """The Servers_Update body fixing the fixable drift (only backupRetentionDays), None when nothing to fix."""
    backup = {}
    for item in drift:
        if item['setting'] == 'retention_days' and item['fixable']:
            backup['backupRetentionDays'] = item['desired']
    return {'properties': {'backup': backup}} if backup else None


def unfixable_message(server_name, unfixable, fixed):
    parts = ['%s is %s, the policy wants %s' % (d['setting'], d['current'], d['desired']) for d in unfixable]
    text = ('Backup policy drift on server %s that cannot be fixed in place: %s. Geo-redundant backup can only be '
            'chosen when a server is created: restore or recreate the server with the wanted setting, or set '
            'fail_on_unfixable=false to only report it.' % (server_name, '; '.join(parts)))
    if fixed:
        text += ' The fixable drift (%s) was fixed.' % ', '.join(d['setting'] for d in fixed)
    return text


def validate(params):
    """The policy asked for is one Azure can keep (checked before anything is connected). Raises PolicyError."""
    desired_policy(params['environment'], params['retention_days'], params['geo_redundant_backup'])


def policy_plan(before, wanted):
    """Pure: what enforcing the policy on a server with the backup settings `before` does: dict(drift, body (the
    PATCH, None when nothing is fixable), after (the settings once the PATCH is applied), fixable, unfixable)."""
    drift = compare(before, wanted)
    body = patch_body(drift)
    after = dict(before, retention_days=body['properties']['backup']['backupRetentionDays']) if body else before
    return dict(drift=drift, body=body, after=after, fixable=[d for d in drift if d['fixable']],
                unfixable=[d for d in drift if not d['fixable']])


def settings_diff(before, after):
    tracker = DifferenceTracker()
    for setting in ('retention_days', 'geo_redundant_backup'):
        tracker.add(setting, before=before[setting], after=after[setting])
    return tracker.diff()


class BackupPolicy(AzureOperation):
    """pg_azure_backup_policy. plan() reads the server, compares its backup settings with the policy and computes the
    PATCH; apply() sends it. Drift that cannot be fixed in place fails the module (unless fail_on_unfixable=false)
    once the fixable drift is fixed; when there is nothing to fix (or in check mode) the plan fails at once."""

    def __init__(self, params, ctx):
        super(BackupPolicy, self).__init__(params, ctx)
        self.before = None
        self.decided = None

    def plan(self):
        params, azure = self.params, self.azure
        wanted = desired_policy(params['environment'], params['retention_days'], params['geo_redundant_backup'])
        before = backup_facts(azure.client.servers.get(azure.resource_group, azure.server_name))
        decided = policy_plan(before, wanted)
        self.before, self.decided = before, decided
        result = dict(changed=decided['body'] is not None, server_name=azure.server_name,
                      resource_group=azure.resource_group, subscription_id=azure.subscription_id,
                      environment=params['environment'], desired=wanted, backup=before,
                      drift=[dict(d, fixed=False) for d in decided['fixable'] + decided['unfixable']],
                      unfixable=[d['setting'] for d in decided['unfixable']], compliant=not decided['drift'])
        if decided['body'] is not None:
            result.update(patch=decided['body'], backup=decided['after'],
                          diff=settings_diff(before, decided['after']))
        if decided['unfixable'] and params['fail_on_unfixable'] and (decided['body'] is None or self.ctx.check_mode):
            raise PolicyError(unfixable_message(azure.server_name, decided['unfixable'], []), result)
        return result

    def apply(self, plan):
        params, azure, decided = self.params, self.azure, self.decided
        if decided['body'] is None:
            return plan
        result = dict(plan, backup=self.before)  # as it is until the update succeeds
        what = 'Update of the backup retention of server %s' % azure.server_name
        started = time.monotonic()
        try:
            server = _azure.wait(azure.client.servers.begin_update(azure.resource_group, azure.server_name,
                                                                   decided['body']),
                                 params['timeout'], what)
        except _azure.AzureModuleError as exc:
            raise PolicyError(azure.scrub(str(exc)), result)
        except _azure.AzureError as exc:
            raise PolicyError('%s failed: %s' % (what, _azure.error_message(exc, azure.secrets)), result)
        after = backup_facts(server)
        fixed = [dict(d, fixed=True) for d in decided['fixable']]
        result.update(backup=after, diff=settings_diff(self.before, after),
                      drift=fixed + [dict(d, fixed=False) for d in decided['unfixable']],
                      duration_s=round(time.monotonic() - started, 3))
        if decided['unfixable'] and params['fail_on_unfixable']:
            raise PolicyError(unfixable_message(azure.server_name, decided['unfixable'], fixed), result)
        return result
