#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_backup_verify
short_description: Verify a pg_backup artifact by restoring it into a scratch database and counting every table
version_added: 0.1.0
description:
  - The runbook's weekly backup verification, exact and self-cleaning.
  - Checks the artifact's SHA-256 (of every file for the directory format) against its manifest first.
  - B(A plain artifact never runs a psql meta-command.) Before psql sees a plain SQL artifact (and the schema
    artifact of a tenant artifact), the module reads it the way psql does and fails, restoring nothing, when
    anything outside quoted text and COPY data starts with a backslash (C(\! shell), C(\o |program), C(\i file), ...),
    when a line starts with a backslash outside COPY data, or when COPY data holds an escape COPY never writes.
    The C(\.) that ends a COPY block is the only backslash command allowed, besides the C(\restrict) and
    C(\unrestrict) pair with which pg_dump makes psql refuse every other one. The check runs in check mode too,
    and a failure is recorded in the manifest. Plain artifacts are restored with C(ON_ERROR_STOP).
  - The line rule is strict on purpose. A pg_dump plain artifact of a database with an object whose name holds a
    line break followed by a backslash has such a line inside the quoted name, which psql would not run, and
    still fails; rename the object or use the custom format. Tenant artifacts write such names as C(U&"...")
    escapes and always pass.
  - The manifest is validated against the one schema of the collection first; a damaged one (an C(end_time) that
    is not a time, C(files), C(row_counts) or C(rls) that are not objects, C(verifications) that is not a list)
    fails with its path and the field that is wrong.
  - Restores it into a scratch database with a unique name (O(scratch_prefix) plus time and a random suffix) on the
    server the connection options name, with O(jobs) parallel workers for the custom and directory formats, and
    always drops it afterwards, also when the restore fails or the module is interrupted. Scratch databases that an
    earlier killed run left behind are dropped first.
  - Compares the restored row count of every table with the manifest's exactly (the counts were taken in the
    snapshot pg_dump read), checks that the RLS flags and policies recorded at backup time survived the restore,
    and optionally reports the difference to the live source database as drift (never a failure).
  - Records the verification (time and result) in the manifest, so that M(procgenie.dbops.pg_backup)'s retention
    keeps the newest verified backup.
  - A tenant artifact holds rows only; the schema comes from O(schema_from) or the newest C(schema_only) artifact of
    the same database in the same folder.
  - Artifacts of O(kind=tables) are restored without their foreign keys to tables outside the artifact.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  path:
    description: The artifact to verify. One of O(path) and O(dest) is required.
    type: path
  dest:
    description: A backup folder; its newest complete artifact (of O(kind) when given) is verified.
    type: path
  kind:
    description: With O(dest), verify the newest artifact of this kind.
    type: str
    choices: [full, schema_only, tables, tenant]
  scratch_prefix:
    description: Prefix of the scratch database's name; databases with it are this module's to drop.
    type: str
    default: dbops_verify_
  jobs:
    description: Parallel pg_restore workers for the custom and directory formats; at least 1.
    type: int
    default: 2
  compare_live:
    description: Also count the rows of the live source database (the manifest's database) and report the drift.
    type: bool
    default: false
  fail_on_mismatch:
    description: Fail when a count, a checksum or the RLS state does not match; otherwise only report it.
    type: bool
    default: true
  no_owner:
    description: Restore without owners and privileges (for a server that lacks the source's roles).
    type: bool
    default: false
  schema_from:
    description: The schema artifact to restore before a tenant artifact.
    type: path
  timeout:
    description: Seconds each restore command may run; at least 1.
    type: int
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: partial
    details:
      - Checks everything that needs no restore (the manifest, the checksum, a plain script's content, the client
        programs and the server); creates no scratch database and records nothing.
  diff_mode:
    support: none
notes:
  - The connection options name the server that hosts the scratch database; O(login_db) is only the database to
    connect to for creating and dropping it. The login role needs C(CREATEDB).
seealso:
  - module: procgenie.dbops.pg_backup
  - module: procgenie.dbops.pg_restore
'''

EXAMPLES = r'''
- name: Weekly verification of the newest full backup, on the staging server
  procgenie.dbops.pg_backup_verify:
    login_host: psql-procgenie-staging.postgres.database.azure.com
    login_user: procgenie_admin
    login_password: "{{ vault_pg_password }}"
    dest: /var/backups/procgenie
    kind: full
  register: verification

- name: Verify one artifact, report but do not fail
  procgenie.dbops.pg_backup_verify:
    path: /var/backups/procgenie/backup_20260208_120000.dump
    fail_on_mismatch: false
    compare_live: true
'''

RETURN = r'''
path:
  description: The artifact verified.
  returned: always
  type: str
manifest:
  description: Its manifest, where the verification is recorded.
  returned: always
  type: str
passed:
  description: Whether checksum, every row count and the RLS state matched.
  returned: always
  type: bool
checksum_ok:
  description: Whether the artifact matched the SHA-256 of its manifest.
  returned: always
  type: bool
script_ok:
  description:
    - Whether a plain artifact (and the schema artifact of a tenant artifact) holds only SQL and COPY data; the
      problems are in RV(mismatches). Always true for the custom and directory formats.
  returned: when the checksum matched
  type: bool
tables:
  description: Table by table, the manifest's count, the restored count, whether they match, and with
    O(compare_live) the live count and the drift (live minus manifest).
  returned: always
  type: list
  elements: dict
  sample: [{table: public.vendors, expected: 60, restored: 60, match: true}]
mismatches:
  description: Readable mismatches (checksum, missing tables, counts, a failed restore).
  returned: always
  type: list
  elements: str
rls_problems:
  description: RLS flags or policies of the source that the restore lost or changed.
  returned: always
  type: list
  elements: str
drift:
  description: With O(compare_live), tables whose live count differs from the manifest, with the difference.
  returned: always
  type: dict
scratch_database:
  description: The scratch database used (already dropped).
  returned: always
  type: str
verification:
  description: The record written into the manifest.
  returned: when the restore ran
  type: dict
duration_s:
  description: Seconds the verification took.
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
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import verify


def main():
    module = postgres_spec().merge(client_spec(), verify.argument_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, verify.Verify, verify.VerifyFailure, 'The verification')


if __name__ == '__main__':
    main()
