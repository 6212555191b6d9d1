#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_restore
short_description: Restore a pg_backup artifact (or another pg_dump) into a database, safely
version_added: 0.1.0
description:
  - The runbook's "Restore from pg_dump". A full restore of a custom or directory artifact runs
    C(pg_restore --clean --if-exists) as in the runbook; O(tables) with O(data_only) is the runbook's table restore.
  - Plain SQL artifacts (schema-only and tenant artifacts) run through C(psql) with C(ON_ERROR_STOP); a tenant
    artifact restores one tenant's rows, in one transaction, into a database that has the schema.
  - B(Safe by default.) The artifact's SHA-256 is checked against its manifest before anything is touched (a dump
    without a manifest needs O(verify_checksum=false)); a target database that other sessions use is refused unless
    O(terminate_connections=true); with O(pre_restore_backup=true) a M(procgenie.dbops.pg_backup) of the target is
    taken first (runbook restore checklist step 2) and its path returned.
  - B(Everything is checked before the first change.) The manifest (validated, and its format compared with what the
    artifact is), the options, the client programs (found, of the server's major version or newer), the target
    (existence, other sessions, the rights to create or drop it) and, for a table subset, the foreign-key order are
    all read first; only then are sessions ended, the database dropped or created and the artifact restored.
  - The database reaches C(pg_restore) and C(psql) as a quoted connection string (C(--dbname=dbname='...')), so a
    database name is never read by libpq as connection options of its own.
  - Returns the row counts of the restored tables and, for a full restore, the tables whose count differs from the
    manifest.
  - A restore always changes the target, so the module always reports C(changed); check mode reports the plan.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  path:
    description:
      - The artifact (a file, or a folder for the directory format). One of O(path) and O(dest) is required.
    type: path
  dest:
    description: A backup folder; its newest complete pg_backup artifact (of O(kind) when given) is restored.
    type: path
  kind:
    description: With O(dest), restore the newest artifact of this kind.
    type: str
    choices: [full, schema_only, tables, tenant]
  recreate_database:
    description:
      - Drop O(login_db) (after the O(pre_restore_backup)) and create it empty before restoring; creates it when
        missing. For restoring a plain schema artifact again, or into a clean copy.
    type: bool
    default: false
  clean:
    description:
      - Drop the artifact's objects before re-creating them (C(--clean --if-exists)).
      - Defaults to true for a full restore of a custom or directory artifact, false otherwise.
    type: bool
  tables:
    description:
      - Restore only these tables (C(pg_restore --table), with C(--schema) for schema-qualified names). Names may be
        quoted; a partitioned table does not bring its partitions, list them too.
    type: list
    elements: str
    default: []
  data_only:
    description: Restore rows only (C(--data-only)), into existing tables.
    type: bool
    default: false
  disable_triggers:
    description: With O(data_only), disable triggers and foreign-key checks while loading (needs superuser).
    type: bool
    default: false
  jobs:
    description: Parallel pg_restore workers (custom and directory formats), 1 or more.
    type: int
    default: 1
  single_transaction:
    description: Restore in one transaction (not with O(jobs) > 1). Tenant artifacts always restore in one.
    type: bool
    default: false
  no_owner:
    description: Restore without owners and privileges.
    type: bool
    default: false
  create_database:
    description:
      - Create O(login_db) when it does not exist.
      - A database created this way is dropped again when the restore fails or is cancelled (the failure message says
        so); a database that existed is never dropped.
    type: bool
    default: false
  maintenance_db:
    description:
      - The database to connect to for checking, creating, dropping and terminating sessions of O(login_db).
      - Must be another database than O(login_db) (to restore into V(postgres), set V(template1)).
    type: str
    default: postgres
  verify_checksum:
    description: Check the artifact against its manifest first; false also allows dumps without a manifest.
    type: bool
    default: true
  pre_restore_backup:
    description: Take a full backup of the target (custom format) into O(backup_dest) before touching it.
    type: bool
    default: false
  backup_dest:
    description: Folder of the pre-restore backup.
    type: path
  terminate_connections:
    description: End the other sessions of the target database instead of refusing to restore.
    type: bool
    default: false
  timeout:
    description: Seconds each client program may run (a positive number).
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
      - Runs every check of a real run (manifest, checksum, format, options, client programs, the target, its
        sessions and the rights on it), changes nothing and returns the plan.
  diff_mode:
    support: partial
    details:
      - The diff names the database and the artifact restored into it.
notes:
  - O(login_db) is the database restored into.
  - Stop application traffic first (runbook restore checklist step 3); O(terminate_connections) only ends the
    sessions present when the restore starts.
seealso:
  - module: procgenie.dbops.pg_backup
  - module: procgenie.dbops.pg_backup_verify
  - name: pg_restore
    description: The PostgreSQL client program this module runs.
    link: https://www.postgresql.org/docs/current/app-pgrestore.html
'''

EXAMPLES = r'''
- name: Restore the full database, after a fresh backup of its current state
  procgenie.dbops.pg_restore:
    login_host: psql-procgenie-prod.postgres.database.azure.com
    login_user: procgenie_admin
    login_password: "{{ vault_pg_password }}"
    login_db: procgenie_prod
    path: /var/backups/procgenie/backup_20260208_120000.dump
    pre_restore_backup: true
    backup_dest: /var/backups/procgenie/pre_restore
    terminate_connections: true
    jobs: 4

- name: The runbook's table restore
  procgenie.dbops.pg_restore:
    login_db: procgenie_prod
    path: /var/backups/procgenie/requisitions_20260208_120000.dump
    tables: [requisitions, request_items]
    data_only: true

- name: The newest schema backup into a fresh database
  procgenie.dbops.pg_restore:
    login_db: procgenie_tenant_copy
    dest: /var/backups/procgenie
    kind: schema_only
    recreate_database: true

- name: One tenant's rows into a database that has the schema
  procgenie.dbops.pg_restore:
    login_db: procgenie_tenant_copy
    path: /var/backups/procgenie/tenants/tenant_20260208_120000.sql
'''

RETURN = r'''
path:
  description: The artifact restored.
  returned: always
  type: str
database:
  description: The database restored into.
  returned: always
  type: str
format:
  description: Format of the artifact.
  returned: always
  type: str
kind:
  description: Kind of the artifact from its manifest (V(unknown) without one).
  returned: always
  type: str
plan:
  description:
    - What the restore does (create, sessions to end, clean, data_only, tables, jobs, ...), the same in check mode.
    - C(programs) gives the version of each client program it runs; C(table_order) the order a data-only table
      subset is loaded in.
  returned: always
  type: dict
pre_restore_backup:
  description: Path of the backup of the target taken before the restore, or V(null).
  returned: always
  type: str
row_counts:
  description: Row counts of the restored tables in the target after the restore (empty in check mode).
  returned: always
  type: dict
mismatches:
  description: For a full restore, tables whose restored count differs from the manifest.
  returned: always
  type: list
  elements: str
duration_s:
  description: Seconds the restore took.
  returned: always
  type: float
queries:
  description: The SQL statements the module ran, parameters filled in.
  returned: always
  type: list
  elements: str
commands:
  description: The client programs the module ran, as argument lists, without secrets.
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import client_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule, ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import dump, restore


def main():
    module = postgres_spec().merge(client_spec(), restore.argument_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, restore.Restore, (restore.RestoreFailure, dump.BackupFailure), 'The restore')


if __name__ == '__main__':
    main()
