#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_azure_backup_policy
short_description: Check and enforce the backup retention and geo-redundancy of an Azure PostgreSQL flexible server
version_added: 0.1.0
description:
  - Compares the automated backup settings of an Azure Database for PostgreSQL flexible server with the runbook's
    "Automated Backups (Azure Managed)" table - V(development) 7 days without geo-redundancy, V(production) 35 days
    with geo-redundant backup - or with explicit O(retention_days) and O(geo_redundant_backup), and reports the drift.
  - A retention that differs is changed with a server update (a long-running PATCH of C(backup.backupRetentionDays)
    only), and the module waits for it.
  - Geo-redundant backup can only be chosen when a server is created (or restored); Azure does not change it on an
    existing server. A difference there is reported as drift that cannot be fixed and fails the module unless
    O(fail_on_unfixable=false). It is never sent to Azure.
  - Idempotent - a server that matches is left alone and reported unchanged.
  - The PostgreSQL connection options are accepted, so that the module shares the C(procgenie.dbops.dbops)
    C(module_defaults) group with the other modules, and are not used.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  environment:
    description:
      - The runbook's column to enforce - V(development) (7 days, geo-redundancy V(Disabled)) or V(production)
        (35 days, geo-redundancy V(Enabled)).
      - O(retention_days) and O(geo_redundant_backup) override it; without O(environment) only what they set is
        checked. One of the three is required.
    type: str
    choices: [development, production]
  retention_days:
    description: Backup retention in days, 7 to 35 (Azure's limits).
    type: int
  geo_redundant_backup:
    description: Whether backups must be geo-redundant (copied to the paired region).
    type: bool
  fail_on_unfixable:
    description:
      - Fail when the geo-redundancy differs from the policy (it cannot be changed on an existing server). With
        V(false) it is only reported in RV(drift) and RV(unfixable).
      - Fixable drift is fixed first either way.
    type: bool
    default: true
  resource_group:
    description: Resource group of the flexible server.
    type: str
    required: true
  server_name:
    description: Name of the Azure Database for PostgreSQL flexible server.
    type: str
    required: true
extends_documentation_fragment:
  - procgenie.dbops.azure
  - procgenie.dbops.postgres
  - procgenie.dbops.azure.WAIT
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Reads the server and reports the drift and the PATCH it would send; sends none.
  diff_mode:
    support: full
    details:
      - The diff shows C(retention_days) and C(geo_redundant_backup) before and after.
notes:
  - The identity needs C(Microsoft.DBforPostgreSQL/flexibleServers/read), and C(Microsoft.DBforPostgreSQL/flexibleServers/write)
    to change the retention.
  - A shorter retention moves the earliest restore point forward - backups older than the new retention cannot be
    restored any more.
seealso:
  - module: procgenie.dbops.pg_server_info
  - name: Backup and restore in Azure Database for PostgreSQL flexible server
    description: Retention, geo-redundant backup and their limits.
    link: https://learn.microsoft.com/azure/postgresql/flexible-server/concepts-backup-restore
'''

EXAMPLES = r'''
- name: The production server must keep 35 days of geo-redundant backups
  procgenie.dbops.pg_azure_backup_policy:
    environment: production
    resource_group: rg-procgenie-prod
    server_name: psql-procgenie-prod
  register: backup_policy

- name: Development, but keep 14 days; only report geo-redundancy
  procgenie.dbops.pg_azure_backup_policy:
    environment: development
    retention_days: 14
    fail_on_unfixable: false
    resource_group: rg-procgenie-dev
    server_name: psql-procgenie-dev
'''

RETURN = r'''
server_name:
  description: The server.
  returned: always
  type: str
  sample: psql-procgenie-prod
resource_group:
  description: Its resource group.
  returned: always
  type: str
subscription_id:
  description: Its subscription.
  returned: always
  type: str
environment:
  description: The environment whose policy was applied, V(null) when only explicit values were given.
  returned: always
  type: str
  sample: production
desired:
  description: The policy - C(retention_days) and C(geo_redundant_backup) (V(Enabled) or V(Disabled); V(null) when
    not checked).
  returned: always
  type: dict
  sample: {retention_days: 35, geo_redundant_backup: Enabled}
backup:
  description:
    - The server's backup settings after the run (in check mode, as they would be) - C(retention_days),
      C(geo_redundant_backup) and C(earliest_restore_date).
  returned: always
  type: dict
  sample: {retention_days: 35, geo_redundant_backup: Enabled, earliest_restore_date: "2026-10-20T02:11:09.512000+00:00"}
drift:
  description:
    - The settings that differed from the policy before the run, each with C(setting), C(current), C(desired),
      C(fixable) and C(fixed).
  returned: always
  type: list
  elements: dict
  sample: [{setting: retention_days, current: 7, desired: 35, fixable: true, fixed: true}]
unfixable:
  description: Settings that differ and cannot be changed on an existing server (V(geo_redundant_backup)).
  returned: always
  type: list
  elements: str
compliant:
  description: Whether the server matched the policy before the run.
  returned: always
  type: bool
patch:
  description: The Servers_Update body sent (or that would be sent in check mode).
  returned: when changed
  type: dict
  sample: {properties: {backup: {backupRetentionDays: 35}}}
duration_s:
  description: Seconds the update took.
  returned: when changed and not in check mode
  type: float
diff:
  description: C(retention_days) and C(geo_redundant_backup) before and after.
  returned: when changed
  type: dict
queries:
  description: SQL run; always empty for this module.
  returned: always
  type: list
  elements: str
commands:
  description: Programs run; always empty for this module.
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule
from ansible_collections.procgenie.dbops.plugins.module_utils._provider import Provider
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import azure_policy as backend

# one provider: the policy is checked (validate) before Azure is connected, then planned and applied
POLICY = Provider(backend.BackupPolicy, 'Reading the Azure flexible server failed', backend.PolicyError,
                  validate=backend.validate)


def main():
    module = backend.argument_spec().create_module(PostgresModule, supports_check_mode=True)
    POLICY.run(module)


if __name__ == '__main__':
    main()
