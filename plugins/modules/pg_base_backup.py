#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_base_backup
short_description: Physical base backups with pg_basebackup for point-in-time recovery, published atomically
version_added: 0.1.0
description:
  - Takes a base backup of the whole cluster with C(pg_basebackup) into a new folder in O(dest), the starting point of
    a point-in-time recovery with M(procgenie.dbops.pg_restore_pitr) and the server's WAL archive.
  - B(A separate module, not pg_backup kind=base.) A base backup copies the whole cluster over the replication
    protocol (it needs the REPLICATION attribute and a C(replication) line in C(pg_hba.conf)), is a folder of a data
    directory or of tar files rather than a dump of one database, and is useless without the WAL archive; its options
    (checkpoint, WAL method) and its manifest (LSNs, timeline, system identifier) have nothing in common with
    C(pg_dump)'s. It shares M(procgenie.dbops.pg_backup)'s artifact conventions instead (temporary name then rename,
    SHA-256, a C(.manifest.json) beside the artifact, retention).
  - B(Atomic.) pg_basebackup writes into a hidden temporary folder beside the final one; only after it succeeded,
    C(pg_verifybackup) checked it against PostgreSQL's own C(backup_manifest) and our manifest was written is the
    folder renamed to its final name (default C(base_YYYYMMDD_HHMMSS)). A failed backup leaves nothing under a final
    name; temporary folders of killed runs are removed by the next run.
  - B(Manifest.) C(<folder>.manifest.json) records the start and end LSN and timeline (from C(backup_manifest)'s
    C(WAL-Ranges)), the start and end time, the system identifier, the server version, format, compression,
    checkpoint and WAL method, the SHA-256 of every file and the C(pg_verifybackup) result.
  - B(Verification.) C(pg_verifybackup) checks plain-format backups (and tar-format ones from PostgreSQL 18 on;
    older versions read plain backups only, then the result says C(skipped) and only the SHA-256 are recorded).
  - B(Retention.) With O(keep_last) and/or O(max_age_days), older base backups of the same cluster and format are
    deleted after a successful backup, as M(procgenie.dbops.pg_backup) does (the newest and the newest verified are
    kept), and never the newest base backup that ended at or before the start of the oldest kept PITR window
    (now minus O(max_age_days), or the oldest base backup kept), because restoring to that moment needs it.
  - Every run makes a new base backup, so it reports C(changed); check mode makes nothing.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  dest:
    description:
      - Folder of the base backups; created when missing, with mode C(0700). Must not be empty.
      - Every base backup folder is C(0700) and its files and its manifest C(0600) (pg_basebackup runs with umask
        C(077)), because a base backup holds every row of the cluster.
    type: path
    required: true
  format:
    description: V(tar) writes C(base.tar) (and C(pg_wal.tar)), V(plain) a data directory.
    type: str
    default: tar
    choices: [tar, plain]
  compress:
    description: gzip level 1-9 of the tar files (V(0) or unset for none). Only with O(format=tar).
    type: int
  checkpoint:
    description: V(fast) starts at once with an immediate checkpoint; V(spread) waits for a spread checkpoint.
    type: str
    default: fast
    choices: [fast, spread]
  wal_method:
    description:
      - V(stream) streams the WAL written during the backup into it (a second connection), V(fetch) collects it at
        the end, V(none) leaves it to the WAL archive (the backup is then unusable without it).
    type: str
    default: stream
    choices: [stream, fetch, none]
  name:
    description:
      - Template of the folder name, fields C({prefix}) (V(base)), C({timestamp}) (UTC) and C({ext}) (empty).
      - A template that names another field, an attribute or index of a field (C({timestamp.x})), or gives a path,
        a hidden name or a control character is refused before anything runs.
    type: str
  verify:
    description: Run C(pg_verifybackup) on the new backup (a failure fails the module and removes the backup).
    type: bool
    default: true
  keep_last:
    description: Retention; keep at least the newest this many base backups of the cluster.
    type: int
  max_age_days:
    description: Retention; keep the base backups younger than this many days (the PITR window).
    type: float
  timeout:
    description: Seconds pg_basebackup may run; at least 1.
    type: int
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Connects, finds pg_basebackup, makes nothing and deletes nothing; returns the planned path and what
        retention would delete.
  diff_mode:
    support: full
    details:
      - The diff lists the base backup made and the ones deleted.
notes:
  - The login role needs the REPLICATION attribute (or to be a superuser) and C(pg_hba.conf) must allow its
    C(replication) connection. The password reaches pg_basebackup only through E(PGPASSWORD).
  - Tablespaces other than the default ones are not supported by M(procgenie.dbops.pg_restore_pitr).
seealso:
  - module: procgenie.dbops.pg_restore_pitr
  - module: procgenie.dbops.pg_backup
  - name: pg_basebackup
    description: The PostgreSQL program this module runs.
    link: https://www.postgresql.org/docs/current/app-pgbasebackup.html
'''

EXAMPLES = r'''
- name: Nightly base backup, one week of PITR window
  procgenie.dbops.pg_base_backup:
    login_host: db1.internal
    login_user: replicator
    login_password: "{{ vault_replication_password }}"
    dest: /var/backups/procgenie/base
    compress: 6
    max_age_days: 7
    keep_last: 2
'''

RETURN = r'''
path:
  description: The base backup folder (in check mode the path it would have).
  returned: always
  type: str
  sample: /var/backups/procgenie/base/base_20260208_120000
manifest:
  description: Our manifest beside it.
  returned: always
  type: str
format:
  description: V(tar) or V(plain).
  returned: always
  type: str
start_lsn:
  description: The LSN the backup starts at (the WAL from here on is needed to restore it).
  returned: success
  type: str
  sample: 0/2000028
end_lsn:
  description: The LSN the backup is consistent at; a restore can reach targets after it only.
  returned: success
  type: str
timeline:
  description: Timeline of the backup.
  returned: success
  type: int
start_time:
  description: When the backup started (ISO-8601 UTC).
  returned: success
  type: str
end_time:
  description: When the backup had finished (ISO-8601 UTC).
  returned: success
  type: str
system_identifier:
  description: The cluster's system identifier.
  returned: always
  type: str
server_version:
  description: The server's version.
  returned: always
  type: str
size_bytes:
  description: Size of all files of the backup.
  returned: always
  type: int
sha256:
  description: SHA-256 of the sorted C(sha256sum) lines of the backup's files.
  returned: always
  type: str
verify:
  description: The pg_verifybackup result (C(result) passed, failed or skipped, C(detail)).
  returned: always
  type: dict
deleted:
  description: Base backups retention deleted (in check mode, would delete).
  returned: always
  type: list
  elements: str
skipped_manifests:
  description:
    - Manifests in O(dest) that retention left alone because they are damaged or not this collection's (each is
      also named in a warning with the field that is wrong). They never stop the backup or the retention of the
      others.
  returned: always
  type: list
  elements: str
duration_s:
  description: Seconds the module took.
  returned: always
  type: float
queries:
  description: The SQL statements the module ran.
  returned: always
  type: list
  elements: str
commands:
  description: The programs the module ran, as argument lists, without secrets.
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import client_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule, ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import base_backup


def main():
    module = postgres_spec().merge(client_spec(), base_backup.argument_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, base_backup.BaseBackup, base_backup.BaseBackupFailure, 'The base backup')


if __name__ == '__main__':
    main()
