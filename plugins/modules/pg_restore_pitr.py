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
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  provider:
    description: Where the cluster runs. V(postgres) is a self-hosted PostgreSQL on this host.
    type: str
    default: postgres
    choices: [postgres]
  backup_dir:
    description: Folder of base backups made by M(procgenie.dbops.pg_base_backup); the module chooses one.
    type: path
  base_backup:
    description: One base backup folder to restore (instead of choosing from O(backup_dir)).
    type: path
  wal_archive:
    description: The folder the source's C(archive_command) copies WAL segments into.
    type: path
    required: true
  data_directory:
    description: The new cluster's data directory; must be absent or empty.
    type: path
    required: true
  restore_port:
    description:
      - TCP port of the new cluster; must be free. The module connects to it with the connection options
        (O(login_host), O(login_user), O(login_password)), the roles being those of the source cluster.
    type: int
    required: true
  target:
    description: V(immediate) stops as soon as the base backup is consistent; V(latest) replays the whole archive.
    type: str
    choices: [immediate, latest]
  target_time:
    description: ISO-8601 time to recover to (without a zone it is UTC).
    type: str
  target_lsn:
    description: WAL position to recover to, such as V(0/3000148).
    type: str
  target_xid:
    description: Transaction ID to recover to.
    type: int
  target_name:
    description: Restore point (from C(pg_create_restore_point())) to recover to.
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
    description: Seconds to wait for the server to start and to leave recovery.
    type: int
    default: 300
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Runs every validation (including the pg_waldump scan) and returns the plan, the chosen base backup and where
        recovery will stop; writes nothing.
  diff_mode:
    support: full
    details:
      - The diff names the base backup, target and new data directory.
notes:
  - Run the module on the host holding the base backups and the WAL archive, as root or as O(os_user).
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

- name: Recover to a named restore point
  procgenie.dbops.pg_restore_pitr:
    backup_dir: /var/backups/procgenie/base
    wal_archive: /var/lib/postgresql/wal_archive
    data_directory: /var/lib/postgresql/pitr_before_release
    restore_port: 5498
    target_name: before_release_42
'''

RETURN = r'''
data_directory:
  description: The new cluster's data directory.
  returned: always
  type: str
restore_port:
  description: Its port.
  returned: always
  type: int
connection:
  description: Connection options of the new cluster (login_host, login_port, login_user, login_db).
  returned: always
  type: dict
base_backup:
  description: The base backup restored.
  returned: always
  type: str
target:
  description: The target (kind, value, inclusive).
  returned: always
  type: dict
stop:
  description: The WAL record recovery stops at, found by pg_waldump (kind, lsn, xid, time, name).
  returned: when changed
  type: dict
window:
  description: The restorable window (earliest, latest), ISO-8601 UTC.
  returned: when changed
  type: dict
reached_lsn:
  description: The last WAL position replayed (pg_last_wal_replay_lsn()).
  returned: success
  type: str
timeline:
  description: The new cluster's timeline after promotion (the plan's target timeline in check mode).
  returned: always
  type: int
running:
  description: Whether the new cluster runs.
  returned: always
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
  description: The SQL statements the module ran (against the new cluster).
  returned: always
  type: list
  elements: str
commands:
  description: The programs the module ran, as argument lists.
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import client_argument_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    QueryLog, ensure_psycopg2, postgres_argument_spec)
from ansible_collections.procgenie.dbops.plugins.module_utils._failures import clean_failures
from ansible_collections.procgenie.dbops.plugins.module_utils.failover.postgres import FailoverError
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import postgres as backend


def main():
    argument_spec = postgres_argument_spec()
    argument_spec.update(client_argument_spec())
    argument_spec.update(backend.argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('backup_dir', 'base_backup')],
                           required_one_of=[('backup_dir', 'base_backup')])
    ensure_psycopg2(module)
    if module.params['timeout'] < 1 or not 0 < module.params['restore_port'] < 65536:
        module.fail_json(msg='timeout must be positive and restore_port a TCP port', queries=[], commands=[])
    log = QueryLog()
    commands = []
    with clean_failures(module, log, commands, 'The point-in-time restore', (backend.PitrError, FailoverError)):
        result = backend.run(module.params, log, commands, check_mode=module.check_mode)
    module.exit_json(queries=log.queries, commands=commands, **result)


if __name__ == '__main__':
    main()
