#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_backup
short_description: Logical backups with pg_dump that say exactly what they hold, published atomically
version_added: 0.1.0
description:
  - Takes the runbook's manual backups (full, schema-only, specific tables, one tenant) of O(login_db) into O(dest).
  - B(Consistent.) A C(REPEATABLE READ) transaction exports its snapshot; C(pg_dump --snapshot) dumps exactly that
    snapshot while the module counts the rows of every dumped table in it. The counts in the manifest are therefore
    what the artifact holds, even on a database that is being written.
  - B(Self-describing.) Beside every artifact C(<artifact>.manifest.json) records database, server and pg_dump
    versions, kind, format, tables, tenant, start and end time, size, the SHA-256 of the artifact (of every file for
    the directory format), the exact row counts, the RLS flags and policies of the tables, and later verifications.
  - B(Atomic.) The artifact is written under a hidden temporary name in O(dest) and renamed to its final name only
    after pg_dump succeeded and the manifest with the checksum is written. A failed dump leaves nothing under the
    final name and the module fails with pg_dump's error output. Temporary files of killed runs are removed by the
    next run.
  - B(Tenant backups.) C(pg_dump) has no C(--where) option, so the runbook's tenant command does not run. For
    O(kind=tenant) the module writes a plain SQL script itself, in the same kind of exported snapshot, holding
    C(COPY ... FROM stdin) blocks of C(SELECT <columns> FROM <table> WHERE <tenant_column> = <tenant>) for every
    table that has O(tenant_column) (a partitioned table as a whole) plus the tenant's row of O(tenant_table), parents
    before children in foreign-key order, in one transaction. It is data only; restore it with
    C(psql -v ON_ERROR_STOP=1 -f) or M(procgenie.dbops.pg_restore) into a database that has the schema.
  - B(Nothing in a tenant script leaves its literal.) Its comments hold no value (the tenant and the database are
    in the manifest), names are written quoted (with C(U&"...") escapes when they hold control characters, so a
    name never spans lines), the rows are COPY's own text format (backslash, newline, carriage return and tab
    escaped by the server), and the script holds no psql meta-command; before it is published the module scans it
    the way psql reads it and refuses it when anything outside quotes and COPY data starts with a backslash (the
    C(\.) that ends a COPY block is the only one). M(procgenie.dbops.pg_backup_verify) runs the same scan on every
    plain artifact before psql sees it.
  - B(Private.) Folders the module creates are C(0700); the artifact (every file and folder of a directory-format
    dump) and its manifest are C(0600), and pg_dump runs with umask C(077), so not even the temporary file is ever
    readable by other users. An existing O(dest) keeps its mode.
  - B(Retention.) With O(keep_last) and/or O(max_age_days), older artifacts of the same series (same database,
    kind, format, tables or tenant) that this module made (they have a manifest) are deleted after a successful
    backup. The newest artifact and the newest verified one (see M(procgenie.dbops.pg_backup_verify)) are never
    deleted.
  - B(Idempotence.) Every run makes a new artifact, so it reports C(changed). Check mode makes nothing and reports
    the path it would make and what retention would delete; a retention that has already run deletes nothing more.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  kind:
    description:
      - V(full) dumps the whole database, V(schema_only) its schema, V(tables) the O(tables) (with their partitions),
        V(tenant) the rows of one tenant.
    type: str
    default: full
    choices: [full, schema_only, tables, tenant]
  format:
    description:
      - pg_dump's output format. V(directory) allows a parallel dump (O(jobs)).
      - Defaults to V(custom) for V(full) and V(tables), and to V(plain) (a C(.sql) file, as in the runbook) for
        V(schema_only). V(tenant) supports V(plain) only.
    type: str
    choices: [custom, directory, plain]
  compress:
    description: Compression level 0-9 for the custom and directory formats (pg_dump C(--compress)).
    type: int
  jobs:
    description: Parallel pg_dump workers, at least 1; more than 1 needs O(format=directory).
    type: int
    default: 1
  dest:
    description: Folder of the artifacts; created when missing (mode C(0700)). Must not be empty.
    type: path
    required: true
  name:
    description:
      - Template of the artifact's name, with the fields C({prefix}) (V(backup), V(schema), V(tables), V(tenant)),
        C({timestamp}) (UTC, C(YYYYMMDD_HHMMSS)), C({ext}) (V(.dump), V(.sql), V(.dir)), C({kind}), C({format}),
        C({database}) and C({tenant}).
      - The default C({prefix}_{timestamp}{ext}) gives the runbook's C(backup_20260208_120000.dump) and
        C(schema_20260208_120000.sql).
      - A template that names another field, an attribute or index of a field (C({timestamp.x})), or gives a path,
        a hidden name or a name with a control character is refused before anything runs.
    type: str
  tables:
    description:
      - Tables for O(kind=tables), as SQL names, optionally schema-qualified and quoted, for example
        V(requisitions), V(public.vendors) or V('"Odd ""Name"""'). The server resolves them; a missing one fails.
      - A partitioned table brings its partitions.
    type: list
    elements: str
    default: []
  tenant:
    description:
      - The tenant for O(kind=tenant), validated against O(tenant_id_type). Control characters (newline, carriage
        return, ...) are refused unless O(tenant_id_type=text); the value only ever reaches the server as a query
        parameter, and the artifact as COPY data.
    type: str
  tenant_column:
    description:
      - The column that holds the tenant in every tenant table. When no table has it (a misspelled name), the
        backup fails rather than making an artifact that holds only the O(tenant_table) row.
    type: str
    default: tenant_id
  tenant_id_type:
    description: What a valid O(tenant) looks like.
    type: str
    default: uuid
    choices: [uuid, int, text]
  tenant_table:
    description:
      - The table whose row O(tenant_table_key) = O(tenant) is the tenant itself; it is included first. Empty to
        leave it out.
    type: str
    default: tenants
  tenant_table_key:
    description: Key column of O(tenant_table).
    type: str
    default: id
  keep_last:
    description: Retention; keep at least the newest this many artifacts of the series.
    type: int
  max_age_days:
    description:
      - Retention; keep the artifacts younger than this many days. With O(keep_last) too, an artifact is deleted
        only when neither keeps it.
      - Retention reads every manifest in O(dest) first, before anything is written. A manifest that is damaged
        (an C(end_time) that is not a time, C(files) or C(row_counts) that are not objects, ...) or not this
        collection's is left alone, named in a warning with the field that is wrong and in RV(skipped_manifests);
        it never stops the backup or the retention of the others.
    type: float
  timeout:
    description: Seconds pg_dump may run before the backup fails; at least 1.
    type: int
  prune_only:
    description:
      - Make no backup; only apply the retention (O(keep_last), O(max_age_days)) to the series the other options
        describe. Reports C(changed) only when it deleted something, so a second run is C(changed=false).
    type: bool
    default: false
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Connects and resolves the tables, makes nothing and deletes nothing; returns the planned path and the
        artifacts retention would delete.
  diff_mode:
    support: full
    details:
      - The diff lists the artifact made and the artifacts deleted.
notes:
  - The password reaches pg_dump only through its environment (E(PGPASSWORD)), as do the SSL options.
  - pg_dump must be of the server's major version or newer; the module picks one (see O(pg_bindir)).
  - A tenant artifact moves the identity and serial sequences of its tables past the restored ids (never back), so
    a database that takes new rows after the restore does not hand out those ids again.
seealso:
  - module: procgenie.dbops.pg_backup_verify
  - module: procgenie.dbops.pg_restore
  - name: pg_dump
    description: The PostgreSQL client program this module runs.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
'''

EXAMPLES = r'''
- name: Full backup before a migration (runbook defaults, custom format, backup_YYYYMMDD_HHMMSS.dump)
  procgenie.dbops.pg_backup:
    login_host: psql-procgenie-prod.postgres.database.azure.com
    login_user: procgenie_admin
    login_password: "{{ vault_pg_password }}"
    login_db: procgenie_prod
    dest: /var/backups/procgenie
    keep_last: 7
    max_age_days: 35
  register: backup

- name: Parallel directory-format dump
  procgenie.dbops.pg_backup:
    login_db: procgenie_prod
    dest: /var/backups/procgenie
    format: directory
    jobs: 4

- name: The runbook's table backup
  procgenie.dbops.pg_backup:
    login_db: procgenie_prod
    dest: /var/backups/procgenie
    kind: tables
    tables: [requisitions, request_items]
    name: requisitions_{timestamp}{ext}

- name: One tenant's rows of every tenant table
  procgenie.dbops.pg_backup:
    login_db: procgenie_prod
    dest: /var/backups/procgenie/tenants
    kind: tenant
    tenant: 6f1c1f5e-8a53-4b5e-9d7e-0f3c1d2a4b5c
'''

RETURN = r'''
path:
  description:
    - The artifact (a file, or a folder for the directory format). In check mode the path it would have.
    - V(null) with O(prune_only).
  returned: always
  type: str
  sample: /var/backups/procgenie/backup_20260208_120000.dump
manifest:
  description: The manifest beside the artifact.
  returned: always
  type: str
  sample: /var/backups/procgenie/backup_20260208_120000.dump.manifest.json
size_bytes:
  description: Size of the artifact (every file for the directory format); V(null) in check mode.
  returned: always
  type: int
sha256:
  description: SHA-256 of the artifact; for the directory format of the sorted C(sha256sum) lines of its files.
  returned: always
  type: str
duration_s:
  description: Seconds the backup took.
  returned: always
  type: float
row_counts:
  description: Exact row count of every table in the artifact, taken in the snapshot pg_dump read.
  returned: always
  type: dict
  sample: {public.vendors: 60, public.requisitions: 600}
tables:
  description: The tables in the artifact, schema-qualified and quoted where needed.
  returned: always
  type: list
  elements: str
kind:
  description: The kind of backup.
  returned: always
  type: str
format:
  description: The format of the artifact.
  returned: always
  type: str
deleted:
  description: Artifacts retention deleted (in check mode, would delete).
  returned: always
  type: list
  elements: str
skipped_manifests:
  description: Manifests in O(dest) that retention left alone because they are damaged or not this collection's.
  returned: always
  type: list
  elements: str
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
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import dump


def main():
    module = postgres_spec().merge(client_spec(), dump.argument_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, dump.Backup, dump.BackupFailure, 'The backup')


if __name__ == '__main__':
    main()
