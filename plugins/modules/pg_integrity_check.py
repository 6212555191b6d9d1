#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_integrity_check
short_description: Find physical corruption in PostgreSQL tables, TOAST and btree indexes with amcheck
version_added: 0.1.0
description:
  - Runs C(pg_amcheck) (the client program of the C(amcheck) extension, PostgreSQL 14 and later) with O(jobs)
    concurrent connections over the tables of O(databases) - or of their O(schemas), or the O(tables) named - with
    their TOAST tables and btree indexes - C(verify_heapam) on tables and TOAST, C(bt_index_check) on indexes (an
    C(AccessShareLock); it runs on a hot standby too).
  - Without the C(pg_amcheck) program (clients older than 14, a minimal client install, an execution environment
    without it), or with O(method=functions), it runs the same checks through the extension's SQL functions in a
    session of its own, one relation at a time - the same relations, the same problem rows, the same C(corrupt)
    verdict. See O(method).
  - A partitioned table named in O(tables) has no storage of its own - its partitions are checked.
  - O(heapallindexed) also checks that every table row has its index entry. O(parent_check) runs
    C(bt_index_parent_check), which takes a C(ShareLock) on each index and its table (writes and VACUUM wait),
    and so only with O(maintenance_window=true).
  - Reports one row per problem (database, schema, relation, kind, block, offset, attribute, message), the
    server's C(data_checksums) state and C(pg_stat_database.checksum_failures), and on Azure whether C(amcheck)
    is in the C(azure.extensions) allow-list.
  - Only reads - C(changed) is false - unless O(create_extension=true) and C(amcheck) is missing in a database;
    then it is created there (C(changed=true)) and that database checked. Without it such a database is not
    checked and a warning says so.
  - amcheck proves corruption when it finds it; a clean result does not prove there is none.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  databases:
    description: Databases to check. Default - O(login_db) (or V(postgres)).
    type: list
    elements: str
  schemas:
    description: Check only the tables (with their indexes and TOAST) of these schemas (names, taken literally).
    type: list
    elements: str
  tables:
    description:
      - Check only these tables, with their indexes and TOAST (names in SQL syntax, C(orders) or
        C(public.orders)); with O(schemas), both are checked.
    type: list
    elements: str
  heapallindexed:
    description: Verify that every table row has an entry in each btree index (slower; C(--heapallindexed)).
    type: bool
    default: false
  parent_check:
    description:
      - Run C(bt_index_parent_check) (parent/child page relationships) instead of C(bt_index_check). It blocks
        INSERT, UPDATE, DELETE and VACUUM on each table while its index is checked; refused unless
        O(maintenance_window=true), and on a standby.
    type: bool
    default: false
  rootdescend:
    description: With O(parent_check), find each tuple again from the root page (C(--rootdescend)).
    type: bool
    default: false
  maintenance_window:
    description: Say that writes may be blocked now (needed for O(parent_check)).
    type: bool
    default: false
  jobs:
    description: Concurrent connections of C(pg_amcheck) (C(--jobs)); 1 or more.
    type: int
    default: 1
  method:
    description:
      - How the checks run. V(pg_amcheck) - the client program (found in O(pg_bindir), else on C(PATH) and in the
        usual folders; it must be of the server's major version or newer), failing when it is not found.
        V(functions) - the extension's functions in the module's own session - C(verify_heapam) for tables and TOAST
        (with C(on_error_stop => false), C(check_toast => true), C(skip => 'none')), C(bt_index_check) with
        O(heapallindexed) (or C(bt_index_parent_check) with O(parent_check)) for btree indexes - over the relations
        C(pg_amcheck) would choose (temporary tables and indexes not valid or not ready skipped). Each relation is
        its own statement; an error a check raises (C(bt_index_check) stops at the first problem of an index, a page
        failing its checksum raises) becomes that relation's problem row and the run goes on. Errors that say
        nothing about the data (no permission, a lock not granted, the session cancelled or lost) fail the module.
        O(jobs) does not apply (one relation at a time).
      - V(auto) - C(pg_amcheck) when it is found, else the functions (C(method_reason) says why); the functions too
        when a database to check has C(amcheck) older than 1.3 (see below), where C(pg_amcheck) would report every
        table as failing. V(pg_amcheck) is refused there before anything runs.
      - C(verify_heapam) needs C(amcheck) 1.3 (PostgreSQL 14 and later). On PostgreSQL 13 (or with C(amcheck)
        older than 1.3 in a database) only the btree indexes can be checked - that database's C(tables_checked) is
        false, its C(reason) and a warning say so; its tables and TOAST are B(not) checked.
    type: str
    choices: [auto, pg_amcheck, functions]
    default: auto
  create_extension:
    description: Create the C(amcheck) extension in a database that lacks it (needs a superuser, or on Azure
      C(azure_pg_admin) with C(amcheck) allow-listed).
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
      - Check mode checks the databases that have C(amcheck) and reports which would get it created.
  diff_mode:
    support: none
notes:
  - With C(data_checksums) on, a damaged page fails its checksum when read - amcheck reports "invalid page in block
    N", the server logs a warning and counts it in C(pg_stat_database.checksum_failures).
seealso:
  - module: procgenie.dbops.pg_table_diff
  - name: amcheck functions
    description: verify_heapam, bt_index_check and bt_index_parent_check, which O(method=functions) calls.
    link: https://www.postgresql.org/docs/current/amcheck.html#AMCHECK-FUNCTIONS
  - name: amcheck
    description: The extension and its functions.
    link: https://www.postgresql.org/docs/current/amcheck.html
  - name: pg_amcheck
    description: The client program the module runs.
    link: https://www.postgresql.org/docs/current/app-pgamcheck.html
'''

EXAMPLES = r'''
- name: Check the application database's tables, TOAST and indexes, two connections
  procgenie.dbops.pg_integrity_check:
    login_db: procgenie
    jobs: 2
    heapallindexed: true
  register: integrity

- name: Stop when something is damaged
  ansible.builtin.assert:
    that: not integrity.corrupt
    fail_msg: "{{ integrity.problems | map(attribute='relation') | unique | join(', ') }}"

- name: Check with the extension's functions (no pg_amcheck program in this execution environment)
  procgenie.dbops.pg_integrity_check:
    login_db: procgenie
    method: functions

- name: Forensic run in a maintenance window
  procgenie.dbops.pg_integrity_check:
    databases: [procgenie]
    tables: [public.requests]
    heapallindexed: true
    parent_check: true
    maintenance_window: true
'''

RETURN = r'''
corrupt:
  description: Whether a problem was found or the server counted checksum failures.
  returned: always
  type: bool
problems:
  description:
    - One per item pg_amcheck (or a function, with O(method=functions)) reported - C(database), C(schema),
      C(relation), C(kind) (C(table), C(toast) or C(index)), C(block), C(offset), C(attribute) (null when not
      known) and C(message). The same rows whichever method ran.
  returned: always
  type: list
  elements: dict
  sample:
    - {database: procgenie, schema: public, relation: requests, kind: table, block: 2, offset: null, attribute: null,
       message: "invalid page in block 2 of relation base/16384/16390"}
databases:
  description:
    - Per database - C(amcheck_version) (null when missing), C(amcheck_available), C(extension_created),
      C(checked), C(tables_checked) (whether its tables and TOAST were checked - false when only its indexes could
      be, on PostgreSQL 13), C(relations) (with O(method=functions), the counts of C(tables) and C(indexes)
      checked; null with C(pg_amcheck)), C(problems) (count) and C(reason) (why it was not, or only partly,
      checked).
  returned: always
  type: list
  elements: dict
data_checksums:
  description: Whether the cluster has data checksums.
  returned: always
  type: bool
checksum_failures:
  description: C(database), C(failures), C(last_failure) of the databases checked and of every database with failures.
  returned: always
  type: list
  elements: dict
azure:
  description: C(extensions) (the C(azure.extensions) allow-list, null off Azure) and C(amcheck_allow_listed).
  returned: always
  type: dict
checks:
  description: The checks run (C(heapallindexed), C(parent_check), C(rootdescend), C(jobs)).
  returned: always
  type: dict
create_extension_in:
  description: Databases where C(amcheck) is (or, in check mode, would be) created.
  returned: always
  type: list
  elements: str
method:
  description: How the checks ran - V(pg_amcheck) (the program) or V(functions) (the extension's functions).
  returned: always
  type: str
  sample: functions
method_reason:
  description:
    - With O(method=auto), why the functions ran (pg_amcheck not found or older than the server, or C(amcheck)
      without C(verify_heapam) in a database); else null.
  returned: always
  type: str
in_recovery:
  description: Whether the server is a standby.
  returned: always
  type: bool
duration_s:
  description: Seconds the module took.
  returned: always
  type: float
queries:
  description: The SQL the module ran (with O(method=functions), every check's function call).
  returned: always
  type: list
  elements: str
commands:
  description: The pg_amcheck command lines (no password - it is in the environment); empty with O(method=functions).
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule, ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.integrity import check


def main():
    module = postgres_spec().merge(check.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, check.IntegrityCheck, check.ERRORS, 'The integrity check')


if __name__ == '__main__':
    main()
