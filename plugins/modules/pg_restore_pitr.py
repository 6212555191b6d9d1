#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_restore_pitr
short_description: Point-in-time recovery into a new PostgreSQL cluster, validated before anything is written
version_added: 0.1.0
description:
  - Restores a base backup made by M(procgenie.dbops.pg_base_backup) plus the WAL archive into a B(new) data
    directory O(data_directory) listening on O(restore_port), replays the WAL up to the target, promotes the cluster,
    starts it and waits until it accepts connections and has left recovery. It never restores over the source
    cluster (as the runbook warns for Azure, a point-in-time restore always makes a new server).
  - B(Validates before it touches anything.) Exactly one target is given; the destination is absent or empty; the
    port is free; C(pg_ctl) and C(postgres) are of the base backup's major version; the archive holds the timeline
    history of the base backup's timeline; and the archived WAL reaches the target from the base backup without a
    missing segment. A target before the base backup, after the end of the archive or behind a missing segment fails
    with the restorable window (earliest and latest restorable time) in the message, and nothing is written.
  - B(How times are known.) C(pg_waldump) (run with E(TZ=UTC)) reads the archived segments from the base backup's
    start segment on, along the timeline history, up to the first missing segment. Its C(COMMIT)/C(ABORT) records
    carry the commit times, C(RESTORE_POINT) records the names of C(pg_create_restore_point()). A time target needs
    a commit or abort later than it after the base backup's end (recovery stops there; without one it would end
    before the target and fail), an xid target its commit or abort, a name target its restore point, an LSN target
    a record after it. The earliest restorable time is the end time of the oldest base backup (recorded in our
    manifests), the latest the last commit time in the archive.
  - B(Base backup choice.) Unless O(base_backup) names one, the newest base backup in O(backup_dir) that ends before
    the target is used (for O(target=latest) and O(target=immediate) the newest).
  - B(The new cluster.) Its files are copied (plain) or extracted (tar) into O(data_directory) (mode 0700) and
    owned by O(os_user); C(postgresql.auto.conf) gets O(restore_port), C(archive_mode = off) (it must never write
    into the source's archive), C(restore_command) reading O(wal_archive), the recovery target,
    C(recovery_target_action = promote) and C(recovery_target_timeline); then C(recovery.signal) and C(pg_ctl start).
  - B(Idempotent.) The target and base backup are recorded in C(dbops_pitr.json) in the new data directory; a
    destination already restored to the same target is reported unchanged, one restored to another target fails.
  - With O(provider=azure) it restores an Azure Database for PostgreSQL flexible server, the runbook's
    C(az postgres flexible-server restore) - into a B(new) server O(server_name) in O(resource_group), from
    O(source_server) at O(restore_time) (C(PointInTimeRestore)), or from the source's latest geo-replicated backup
    into another region with O(restore_mode=geo) (C(GeoRestore)). Before it sends anything that changes Azure it
    reads the source and checks that O(restore_time) lies between the earliest restore date Azure reports for the
    source and now (the window is in the message and in RV(window)), that a geo-restore has geo-redundant backups
    and a O(location) in another region, and that a point-in-time restore stays in the source's region. Then it
    sends one C(PUT) (Servers_CreateOrUpdate), waits for the operation and until the new server is C(Ready), and
    returns its FQDN, ID and connection options.
  - B(Warning (runbook).) A point-in-time restore creates a NEW server, and applications must have their connection
    strings updated (or DNS swapped) to use it after the restored data is verified. The module never touches the
    source server or the applications; the warning is in RV(warning) and printed.
  - B(Idempotent on Azure.) The new server carries the tags C(procgenie-dbops-restore-source),
    C(procgenie-dbops-restore-time) and C(procgenie-dbops-restore-mode). A server of that name restored from the
    same source at the same time is reported unchanged (and waited for while it is still being restored); a
    server of that name from anywhere else is an error, whatever the window says.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  provider:
    description:
      - Where the cluster runs. V(postgres) is a self-hosted PostgreSQL on this host.
      - V(azure) is an Azure Database for PostgreSQL flexible server, restored through Azure Resource Manager with
        the Azure options; O(server_name) and O(resource_group) name the NEW server.
    type: str
    default: postgres
    choices: [postgres, azure]
  backup_dir:
    description:
      - Folder of base backups made by M(procgenie.dbops.pg_base_backup); the module chooses one.
      - O(provider=postgres) only; it or O(base_backup) is required there.
    type: path
  base_backup:
    description: One base backup folder to restore (instead of choosing from O(backup_dir)). O(provider=postgres) only.
    type: path
  wal_archive:
    description:
      - The folder the source's C(archive_command) copies WAL segments into. Required with O(provider=postgres).
    type: path
  data_directory:
    description: The new cluster's data directory; must be absent or empty. Required with O(provider=postgres).
    type: path
  restore_port:
    description:
      - TCP port of the new cluster; must be free. The module connects to it with the connection options
        (O(login_host), O(login_user), O(login_password)), the roles being those of the source cluster.
      - Required with O(provider=postgres).
    type: int
  target:
    description:
      - V(immediate) stops as soon as the base backup is consistent; V(latest) replays the whole archive.
      - With O(provider=azure), V(latest) restores to the time of the request; V(immediate) is not available.
    type: str
    choices: [immediate, latest]
  target_time:
    description:
      - ISO-8601 time to recover to (without a zone it is UTC).
      - With O(provider=azure) the time of the point-in-time restore (the runbook's C(--restore-time)); it must lie
        between the source's earliest restore date and now. A geo-restore takes none.
    type: str
    aliases: [restore_time]
  target_lsn:
    description: WAL position to recover to, such as V(0/3000148). O(provider=postgres) only.
    type: str
  target_xid:
    description: Transaction ID to recover to. O(provider=postgres) only.
    type: int
  target_name:
    description: Restore point (from C(pg_create_restore_point())) to recover to. O(provider=postgres) only.
    type: str
  target_inclusive:
    description: Stop just after (V(true)) or just before (V(false)) the target time, LSN or xid.
    type: bool
    default: true
  os_user:
    description:
      - The unprivileged OS user the restored server runs as (PostgreSQL refuses root); its files are owned by it.
      - Defaults to the owner of O(wal_archive); required when that is root.
    type: str
  timeout:
    description:
      - Seconds to wait for the server to start and to leave recovery; default 300.
      - With O(provider=azure), for the restore operation and until the new server is Ready; default 3600. When it
        has not ended by then the module fails and the restore goes on in Azure (a new run waits for it).
    type: int
  source_server:
    description:
      - O(provider=azure) (required there) - the server to restore from (the runbook's C(--source-server)), by name
        (in O(source_resource_group)) or by resource ID.
    type: str
  source_resource_group:
    description: O(provider=azure) - resource group of O(source_server) when given by name; defaults to O(resource_group).
    type: str
  restore_mode:
    description:
      - O(provider=azure) - V(point_in_time) restores to O(restore_time) in the source's region
        (C(PointInTimeRestore)); V(geo) restores the latest geo-replicated backup into another region O(location)
        (C(GeoRestore)), which needs geo-redundant backups on the source and may be up to an hour behind.
    type: str
    default: point_in_time
    choices: [point_in_time, geo]
  location:
    description:
      - O(provider=azure) - region of the new server. Defaults to the source's region; required for V(geo).
    type: str
  availability_zone:
    description: O(provider=azure) - availability zone of the new server; Azure chooses when not given.
    type: str
  tags:
    description:
      - O(provider=azure) - tags of the new server, besides the C(procgenie-dbops-restore-*) tags the module sets.
    type: dict
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.azure
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Runs every validation (including the pg_waldump scan) and returns the plan, the chosen base backup and where
        recovery will stop; writes nothing. With O(provider=azure) it reads only (no PUT) and returns the request it
        would send.
  diff_mode:
    support: full
    details:
      - The diff names the base backup, target and new data directory (with O(provider=azure) the new server,
        source and restore time).
notes:
  - With O(provider=postgres) run the module on the host holding the base backups and the WAL archive, as root or as
    O(os_user). With O(provider=azure) run it anywhere that reaches Azure Resource Manager (usually localhost).
  - Tablespaces other than the default ones are not supported.
  - The restored cluster keeps the source's configuration files (C(pg_hba.conf), included files); only the
    settings above are overridden in C(postgresql.auto.conf). Stop it with C(pg_ctl stop -D <data_directory>).
seealso:
  - module: procgenie.dbops.pg_base_backup
  - name: Continuous archiving and point-in-time recovery
    description: The PostgreSQL documentation of the procedure this module automates.
    link: https://www.postgresql.org/docs/current/continuous-archiving.html
'''

EXAMPLES = r'''
- name: Recover the cluster as it was before the bad migration, on port 5499
  procgenie.dbops.pg_restore_pitr:
    backup_dir: /var/backups/procgenie/base
    wal_archive: /var/lib/postgresql/wal_archive
    data_directory: /var/lib/postgresql/pitr_20260208
    restore_port: 5499
    target_time: "2026-02-08T11:59:00Z"
    os_user: postgres
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
  register: pitr

- name: The runbook's Azure restore - psql-procgenie-prod as it was at noon, into a new server
  procgenie.dbops.pg_restore_pitr:
    provider: azure
    resource_group: rg-procgenie-prod
    server_name: psql-procgenie-prod-restored
    source_server: psql-procgenie-prod
    restore_time: "2026-02-08T12:00:00Z"
  register: restored
  # then verify the data on restored.fqdn and update the applications' connection strings

- name: Geo-restore into the paired region after a regional outage
  procgenie.dbops.pg_restore_pitr:
    provider: azure
    resource_group: rg-procgenie-dr
    server_name: psql-procgenie-prod-northeurope
    source_server: /subscriptions/xxxx/resourceGroups/rg-procgenie-prod/providers/Microsoft.DBforPostgreSQL/flexibleServers/psql-procgenie-prod
    restore_mode: geo
    location: northeurope

- name: Recover to a named restore point
  procgenie.dbops.pg_restore_pitr:
    backup_dir: /var/backups/procgenie/base
    wal_archive: /var/lib/postgresql/wal_archive
    data_directory: /var/lib/postgresql/pitr_before_release
    restore_port: 5498
    target_name: before_release_42
'''

RETURN = r'''
provider:
  description: The provider that did the work.
  returned: always
  type: str
  sample: azure
data_directory:
  description: The new cluster's data directory.
  returned: with O(provider=postgres)
  type: str
restore_port:
  description: Its port.
  returned: with O(provider=postgres)
  type: int
connection:
  description:
    - Connection options of the new cluster or server (login_host, login_port, login_user, login_db; with
      O(provider=azure) also ssl_mode), no password.
  returned: success
  type: dict
  sample: {login_host: psql-procgenie-prod-restored.postgres.database.azure.com, login_port: 5432,
           login_user: procgenie_admin, login_db: postgres, ssl_mode: require}
base_backup:
  description: The base backup restored.
  returned: with O(provider=postgres)
  type: str
target:
  description: The target (kind, value; with O(provider=postgres) also inclusive).
  returned: always
  type: dict
server:
  description: The new Azure server (id, name, resource_group, location, state, fqdn, version, sku, availability_zone,
    tags).
  returned: with O(provider=azure), success
  type: dict
fqdn:
  description: The new Azure server's fully qualified domain name.
  returned: with O(provider=azure), success
  type: str
  sample: psql-procgenie-prod-restored.postgres.database.azure.com
id:
  description: The new Azure server's resource ID.
  returned: with O(provider=azure), success
  type: str
source_server_id:
  description: Resource ID of the source server.
  returned: with O(provider=azure)
  type: str
restore_time:
  description: The pointInTimeUTC of the Azure restore (for V(latest) and geo-restores, the time of the request).
  returned: with O(provider=azure), when validated
  type: str
  sample: "2026-02-08T12:00:00.000000Z"
restore_mode:
  description: V(point_in_time) or V(geo).
  returned: with O(provider=azure)
  type: str
request:
  description: The body of the Servers_CreateOrUpdate request (sent, or in check mode, that would be sent).
  returned: with O(provider=azure), when a restore is needed
  type: dict
warning:
  description: The runbook's warning - the restore is a NEW server and connection strings must be updated.
  returned: with O(provider=azure), when validated
  type: str
stop:
  description: The WAL record recovery stops at, found by pg_waldump (kind, lsn, xid, time, name).
  returned: when changed
  type: dict
window:
  description:
    - The restorable window (earliest, latest), ISO-8601 UTC. With O(provider=azure), the source's earliest restore
      date and the time of the check.
  returned: when changed, and with O(provider=azure) once the source is read
  type: dict
reached_lsn:
  description: The last WAL position replayed (pg_last_wal_replay_lsn()).
  returned: success
  type: str
timeline:
  description: The new cluster's timeline after promotion (the plan's target timeline in check mode).
  returned: with O(provider=postgres)
  type: int
running:
  description: Whether the new cluster runs.
  returned: with O(provider=postgres)
  type: bool
plan:
  description: The steps taken (in check mode, planned).
  returned: always
  type: list
  elements: str
duration_s:
  description: Seconds the module took.
  returned: always
  type: float
queries:
  description: The SQL statements the module ran (against the new cluster; none with O(provider=azure)).
  returned: always
  type: list
  elements: str
commands:
  description: The programs the module ran, as argument lists (none with O(provider=azure)).
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import azure_spec, client_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule
from ansible_collections.procgenie.dbops.plugins.module_utils._provider import Provider, provider_spec, run_provider
from ansible_collections.procgenie.dbops.plugins.module_utils._server import ServerError
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import azure as azure_backend
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import postgres as backend

PROVIDERS = dict(
    postgres=Provider(backend.Restore, 'The point-in-time restore', (backend.PitrError, ServerError),
                      spec=backend.argument_spec(), defaults=dict(timeout=300)),
    azure=Provider(azure_backend.Restore, 'The Azure restore failed', azure_backend.AzurePitrError,
                   spec=azure_backend.argument_spec(), defaults=dict(timeout=3600)),
)


def main():
    module = provider_spec(PROVIDERS).merge(postgres_spec(), client_spec(), azure_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    run_provider(module, PROVIDERS)


if __name__ == '__main__':
    main()
