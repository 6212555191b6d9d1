#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_server_info
short_description: Facts about a PostgreSQL server, its replication, WAL archiving and runbook settings
version_added: 0.1.0
description:
  - Reads the state of one PostgreSQL server the way the ProcGenie runbook's checks do, and returns it as data.
  - Version, whether the server is in recovery (a standby), its timeline, WAL archiving status from
    C(pg_stat_archiver), the standbys streaming from it and its replication slots with their lag in bytes,
    databases with their sizes, the extensions installed in O(login_db), and the settings the runbook's tuning
    and connection-pool tables name, with their source and whether they wait for a restart.
  - On a standby it also reports the WAL receiver and how far replay is behind.
  - With O(provider=azure) it reads an Azure Database for PostgreSQL flexible server from Azure Resource Manager
    instead (the runbook's C(az postgres flexible-server show) checks) - state, version, SKU, FQDN, high
    availability mode and state, standby zone, backup retention, geo-redundant backup, earliest restore date - and
    lists its automatic and on-demand backups. The connection options are not used then.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  provider:
    description:
      - Where the server runs. V(postgres) reads the server's catalogs over a normal connection.
      - V(azure) reads an Azure Database for PostgreSQL flexible server through Azure Resource Manager, with the
        Azure options; O(resource_group) and O(server_name) are required then.
    type: str
    default: postgres
    choices: [postgres, azure]
  settings:
    description:
      - Names of the server parameters to report in RV(settings).
      - Not used with O(provider=azure).
      - Defaults to the parameters of the runbook's tuning and connection tables plus replication and archiving
        parameters. Names the server does not know are listed in RV(unknown_settings).
    type: list
    elements: str
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.azure
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.INFO_MODULE
  - procgenie.dbops.attributes.ACTIONGROUP
notes:
  - Standby lag and WAL positions of other sessions need superuser or membership in C(pg_monitor).
  - With O(provider=azure) the identity needs C(Microsoft.DBforPostgreSQL/flexibleServers/read) and
    C(Microsoft.DBforPostgreSQL/flexibleServers/backups/read) on the server (the Reader role has both).
seealso:
  - name: The Statistics Collector / Cumulative Statistics System
    description: pg_stat_archiver, pg_stat_replication, pg_stat_wal_receiver.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html
  - name: Backup and restore in Azure Database for PostgreSQL flexible server
    description: Automatic backups, retention, geo-redundancy and the earliest restore point.
    link: https://learn.microsoft.com/azure/postgresql/flexible-server/concepts-backup-restore
'''

EXAMPLES = r'''
- name: Gather facts of the primary
  procgenie.dbops.pg_server_info:
    login_host: psql-procgenie-prod.postgres.database.azure.com
    login_user: procgenie_admin
    login_password: "{{ vault_pg_password }}"
    ssl_mode: verify-full
    ca_cert: /etc/ssl/certs/ca-certificates.crt
  register: primary

- name: Fail when a standby lags more than 64 MiB
  ansible.builtin.assert:
    that: primary.replication | map(attribute='lag_bytes') | select('gt', 67108864) | list | length == 0

- name: Only the settings the tuning role cares about
  procgenie.dbops.pg_server_info:
    login_unix_socket: /var/run/postgresql
    settings: [shared_buffers, work_mem, max_connections]
  register: info

- name: The Azure flexible server's state, HA and backups (runbook sections 1 and 7)
  procgenie.dbops.pg_server_info:
    provider: azure
    resource_group: rg-procgenie-prod
    server_name: psql-procgenie-prod
    subscription_id: "{{ azure_subscription_id }}"
    client_id: "{{ azure_client_id }}"
    secret: "{{ vault_azure_secret }}"
    tenant: "{{ azure_tenant }}"
  register: azure_info

- name: Production backups must be geo-redundant and kept 35 days
  ansible.builtin.assert:
    that:
      - azure_info.backup.geo_redundant_backup == 'Enabled'
      - azure_info.backup.retention_days == 35
'''

RETURN = r'''
provider:
  description: The provider that gathered the facts.
  returned: always
  type: str
  sample: postgres
version:
  description:
    - Server version.
    - With O(provider=azure), C(server_version) (major.minor), C(major) and C(minor) as Azure reports them.
  returned: always
  type: dict
  sample: {server_version: "15.18 (Debian 15.18-0+deb12u1)", server_version_num: 150018, major: 15, minor: 18,
           full: "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu ..."}
in_recovery:
  description: Whether the server is in recovery, that is a standby (C(pg_is_in_recovery())).
  returned: when O(provider=postgres)
  type: bool
timeline:
  description: The server's timeline; on a standby the timeline it receives.
  returned: when O(provider=postgres)
  type: int
  sample: 1
current_wal_lsn:
  description: The current WAL write position of a primary; V(null) on a standby.
  returned: when O(provider=postgres)
  type: str
  sample: 0/3000148
wal_receiver:
  description: The standby's WAL receiver (C(pg_stat_wal_receiver)); V(null) on a primary.
  returned: when O(provider=postgres)
  type: dict
  sample: {status: streaming, received_tli: 1, flushed_lsn: 0/3000148, slot_name: standby1,
           sender_host: 127.0.0.1, sender_port: 5432}
replay:
  description:
    - On a standby, received and replayed WAL positions, the bytes received but not replayed yet, the time of the
      last replayed transaction and the replay lag in seconds (0 when everything received is replayed).
    - V(null) on a primary.
  returned: when O(provider=postgres)
  type: dict
archiving:
  description:
    - WAL archiving status from C(pg_stat_archiver) and the C(archive_mode) setting.
    - C(enabled) is true when this server archives WAL (C(archive_mode=on) on a primary, C(always) on any server).
    - C(healthy) is true when archiving is enabled and no archive attempt failed after the last success.
  returned: when O(provider=postgres)
  type: dict
  sample: {archive_mode: "on", enabled: true, healthy: true, archived_count: 12,
           last_archived_wal: "00000001000000000000000B", failed_count: 0}
replication:
  description:
    - The standbys streaming from this server (C(pg_stat_replication)), with C(lag_bytes) (current WAL position
      minus the standby's replay position) and the write, flush and replay lag in seconds.
  returned: when O(provider=postgres)
  type: list
  elements: dict
  sample: [{application_name: standby, state: streaming, sync_state: async, replay_lsn: 0/3000148, lag_bytes: 0}]
replication_slots:
  description: Replication slots with the WAL they retain in bytes.
  returned: when O(provider=postgres)
  type: list
  elements: dict
databases:
  description: Databases (templates left out) with owner, encoding and size in bytes (V(null) without CONNECT).
  returned: when O(provider=postgres)
  type: list
  elements: dict
  sample: [{name: procgenie, owner: postgres, encoding: UTF8, allow_connections: true, size_bytes: 9142831}]
extensions:
  description: Extensions installed in the database the module connected to.
  returned: when O(provider=postgres)
  type: list
  elements: dict
  sample: [{name: pg_stat_statements, version: "1.10", schema: public}]
settings:
  description:
    - The requested parameters by name, each with its raw C(setting), C(unit), the readable C(value), C(source),
      C(context), C(vartype), C(boot_val), C(reset_val) and C(pending_restart).
  returned: when O(provider=postgres)
  type: dict
  sample: {shared_buffers: {setting: "16384", unit: 8kB, value: 128MB, source: configuration file,
           context: postmaster, pending_restart: false}}
unknown_settings:
  description: Requested parameter names the server does not know.
  returned: when O(provider=postgres)
  type: list
  elements: str
id:
  description: Azure resource ID of the server.
  returned: when O(provider=azure)
  type: str
  sample: >-
    /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-procgenie-prod/providers/Microsoft.DBforPostgreSQL/flexibleServers/psql-procgenie-prod
name:
  description: Name of the server.
  returned: when O(provider=azure)
  type: str
  sample: psql-procgenie-prod
subscription_id:
  description: Subscription of the server.
  returned: when O(provider=azure)
  type: str
resource_group:
  description: Resource group of the server.
  returned: when O(provider=azure)
  type: str
location:
  description: Azure region of the server.
  returned: when O(provider=azure)
  type: str
  sample: westeurope
state:
  description: The server's state (C(Ready), C(Stopped), C(Updating), C(Starting), C(Stopping), C(Disabled), ...).
  returned: when O(provider=azure)
  type: str
  sample: Ready
sku:
  description: Compute SKU C(name) and C(tier) (C(Burstable), C(GeneralPurpose), C(MemoryOptimized)).
  returned: when O(provider=azure)
  type: dict
  sample: {name: Standard_D4ds_v5, tier: GeneralPurpose}
fqdn:
  description: Fully qualified domain name clients connect to.
  returned: when O(provider=azure)
  type: str
  sample: psql-procgenie-prod.postgres.database.azure.com
availability_zone:
  description: Availability zone of the primary.
  returned: when O(provider=azure)
  type: str
  sample: "1"
high_availability:
  description:
    - High availability C(mode) (C(Disabled), C(SameZone), C(ZoneRedundant)), whether it is C(enabled), its
      C(state) (for example C(Healthy), C(FailingOver), C(NotEnabled)) and the C(standby_availability_zone).
  returned: when O(provider=azure)
  type: dict
  sample: {mode: ZoneRedundant, enabled: true, state: Healthy, standby_availability_zone: "2"}
backup:
  description:
    - Backup configuration, the runbook's C(--query backup) - C(retention_days), C(geo_redundant_backup)
      (C(Enabled) or C(Disabled)) and C(earliest_restore_date), the earliest point a point-in-time restore can
      go back to.
  returned: when O(provider=azure)
  type: dict
  sample: {retention_days: 35, geo_redundant_backup: Enabled, earliest_restore_date: "2026-10-20T02:11:09.512000+00:00"}
backups:
  description:
    - The server's automatic and on-demand backups, newest first, with C(name), C(id), C(backup_type) (C(Full),
      C(Customer On-Demand)), C(source) and C(completed_time).
  returned: when O(provider=azure)
  type: list
  elements: dict
  sample: [{name: backup_638830782181266873, backup_type: Full, source: Automatic,
            completed_time: "2026-11-24T02:30:22.123456+00:00"}]
replication_role:
  description: Replication role of the server (C(Primary), C(AsyncReplica), C(GeoAsyncReplica), C(None)).
  returned: when O(provider=azure)
  type: str
storage:
  description: Storage C(size_gb), performance C(tier) and C(auto_grow).
  returned: when O(provider=azure)
  type: dict
  sample: {size_gb: 128, tier: P10, auto_grow: Disabled}
queries:
  description: The SQL the module ran; always empty with O(provider=azure).
  returned: always
  type: list
  elements: str
commands:
  description: Client programs run; always empty for this module.
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec, azure_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule
from ansible_collections.procgenie.dbops.plugins.module_utils._provider import Provider, provider_spec, run_provider
from ansible_collections.procgenie.dbops.plugins.module_utils.server_info import azure as azure_backend
from ansible_collections.procgenie.dbops.plugins.module_utils.server_info import postgres as backend

PROVIDERS = dict(
    postgres=Provider(backend.Facts, 'Reading server facts'),
    azure=Provider(azure_backend.Facts, 'Reading the Azure flexible server failed',
                   spec=ArgumentSpec(required_if=[('provider', 'azure', ('resource_group', 'server_name'))])),
)


def main():
    spec = provider_spec(PROVIDERS).merge(postgres_spec(), azure_spec()).add(
        settings=dict(type='list', elements='str'))
    run_provider(spec.create_module(PostgresModule, supports_check_mode=True), PROVIDERS)


if __name__ == '__main__':
    main()
