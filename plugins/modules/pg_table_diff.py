#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_table_diff
short_description: Compare tables by primary key between two PostgreSQL servers
version_added: 0.1.0
description:
  - Compares tables between a O(source) server (for example the point-in-time restore
    M(procgenie.dbops.pg_restore_pitr) made of the time before an incident, a standby, or a verified backup restored
    elsewhere) and the target (the live database, the module's login options), row by row by primary key.
  - Each side is read in one C(REPEATABLE READ READ ONLY) snapshot. Counts and hash sums of key ranges (an integer
    key) or of key-hash buckets (any other key) are computed on the servers, both at the same time; only ranges
    that differ are split further, and only the rows of differing leaves (at most 16 rows a side) are fetched, as
    their key and hashes - the rows transferred grow with the number of differences, not with the size of the
    table (C(rows_fetched) in RV(tables)).
  - Both sessions run with C(row_security = off), so a row-level security policy that would hide rows from the
    login role makes the module fail instead of silently comparing a subset.
  - Reports per table the rows only in the source (missing in the target), only in the target, and changed (with
    the changed columns), counted, with their keys up to O(limit). Never changes anything.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  tables:
    # Its type and suboptions: the doc fragment procgenie.dbops.table_selection.
    description: The tables to compare, each by name with an optional scope and key.
    required: true
  limit:
    description: Keys listed per table and kind of difference (the counts are always complete).
    type: int
    default: 100
  parallel_workers:
    description:
      - Parallel workers of the first level, the one query per side that reads every row in scope (the levels
        below read only the ranges that differ, through the index).
      - V(0) (the default) uses none - the target is the live server, and the workers' CPU is its application's.
        On servers with idle cores, V(2) or more shortens the first level of a large table.
      - The servers' own C(max_parallel_workers) still limits them.
    type: int
    default: 0
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.source
  - procgenie.dbops.table_selection
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.INFO_MODULE
  - procgenie.dbops.attributes.ACTIONGROUP
notes:
  - Both tables must have the same columns (by name) and types. Rows are compared by the values of every column;
    hash sums use each type's hash function (PostgreSQL 14 and later on both sides), so values equal by their type
    (numeric C(1.0) and C(1.00)) count as equal; rows fetched are compared by their text form.
  - A key column of type C(smallint), C(integer) or C(bigint) is compared by key ranges (index range scans below
    the first level); any other key by hash buckets (a scan per level, collation-independent).
  - Written by the collection rather than taken from reladiff (the maintained fork of data-diff) - reladiff reads
    each segment in its own autocommit query (no snapshot), cannot turn C(row_security) off, takes its passwords in
    URIs, and returns no changed columns or row hashes; see the comparison package's documentation.
seealso:
  - module: procgenie.dbops.pg_restore_pitr
  - module: procgenie.dbops.pg_integrity_check
'''

EXAMPLES = r'''
- name: Compare orders with the restore of 03:00, ignoring rows written since
  procgenie.dbops.pg_table_diff:
    login_db: procgenie
    source:
      login_host: pitr-0300.internal
    tables:
      - name: orders
        where: "created_at < '2026-08-01 03:00+00'"
      - name: request_items
  register: diff

- name: Stop when the damage is larger than expected
  ansible.builtin.assert:
    that: diff.tables | map(attribute='changed.count') | sum < 1000
'''

RETURN = r'''
tables:
  description:
    - Per table - C(table) (schema-qualified), C(key) (columns), C(where), C(method) (C(key_range) or C(key_hash)),
      C(source_rows), C(target_rows) (in scope), C(rows_fetched) (rows read from both sides), C(levels).
    - C(only_in_source) - C(count) and C(keys) (lists of the key columns' text values) of rows missing in the target.
    - C(only_in_target) - C(count) and C(rows) (C(key), C(target_hash)) of rows the source lacks.
    - C(changed) - C(count) and C(rows) (C(key), C(columns) that differ, C(target_hash)).
    - C(target_hash) is C(md5(ROW(every column in attnum order)::text)) of the target row as the diff saw it.
    - C(truncated) - true when a list holds fewer keys than its count (O(limit)).
  returned: always
  type: list
  elements: dict
  sample:
    - table: public.orders
      key: [id]
      where: "created_at < '2026-08-01 03:00+00'"
      method: key_range
      source_rows: 2000000
      target_rows: 1999990
      rows_fetched: 640
      levels: 3
      only_in_source: {count: 10, keys: [["42"]]}
      only_in_target: {count: 0, rows: []}
      changed: {count: 1, rows: [{key: ["7"], columns: [status], target_hash: 0cc175b9c0f1b6a831c399e269772661}]}
      truncated: false
differences:
  description: Whether any table differs.
  returned: always
  type: bool
differing_tables:
  description: The tables that differ.
  returned: always
  type: list
  elements: str
source:
  description: Where the source is (C(host), C(port), C(database), C(user)); no secret.
  returned: always
  type: dict
duration_s:
  description: Seconds the comparison took.
  returned: always
  type: float
queries:
  description: The SQL the module ran on both servers.
  returned: always
  type: list
  elements: str
commands:
  description: Client programs run (none).
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule, ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff import operation


def main():
    module = postgres_spec().merge(operation.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, operation.TableDiff, operation.ERRORS, 'The comparison')


if __name__ == '__main__':
    main()
