#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_vacuum
short_description: VACUUM the tables that need it inside a time budget, VACUUM FULL in a window, or pg_repack online
version_added: 0.1.0
description:
  - The runbook's maintenance (sections 3 and 6) - C(VACUUM) with O(analyze), O(freeze) and O(verbose) of the tables
    named in O(tables) or, without names, of the tables over O(thresholds) (dead tuples and dead ratio, transaction-ID
    or multixact age at the warn or critical level - the thresholds M(procgenie.dbops.pg_perf_info) reports against),
    the oldest C(relfrozenxid) first (the greater age of the table and its TOAST table), like flexible-freeze.
  - B(Time budget.) With O(time_budget) no table is started once it is spent, and a running C(VACUUM) is bounded by
    C(statement_timeout) set to what is left (or O(statement_timeout) when smaller); a table stopped so is reported
    C(timed_out), the tables not started in RV(skipped_tables).
  - B(VACUUM FULL) (O(full)) takes an ACCESS EXCLUSIVE lock for the whole rewrite of each table - it runs only with
    O(maintenance_window=true) and a O(lock_timeout), and is refused otherwise with the reason.
  - B(pg_repack) (O(method=repack)) - the online alternative - rewrites the named tables holding ACCESS EXCLUSIVE
    only briefly at its start and at the swap. Before anything runs, every table is checked - the extension installed
    in the database and a C(pg_repack) client of exactly its version; a primary key or a unique index on NOT NULL
    columns; free disk for about twice the table with its indexes on the data directory's (or the table's
    tablespace's) filesystem; no transaction of the database open for longer than O(wait_timeout), nor a prepared
    one (pg_repack waits for them). A table failing a check is skipped with the reason in RV(skipped_tables); a missing
    extension or client fails the module.
  - pg_repack runs with C(--no-kill-backend) by default (else it cancels, then terminates, the sessions that block
    it after O(wait_timeout)), C(--wait-timeout), the database as a quoted libpq value and the password in the
    environment, never on the command line. A table it did not rewrite (its file unchanged - pg_repack exits 0 when it
    skips a table) is reported C(failed).
  - B(Leftovers.) pg_repack killed (a cancel, the time budget, a crash) leaves C(repack.log_<oid>),
    C(repack.table_<oid>), the C(repack.pk_<oid>) type and its trigger on the table (which copies every write into
    the log table from then on), or an INVALID C(index_<oid>); pg_repack 1.4.8 does not remove them and skips the
    table on its next run. Every run finds them (RV(leftovers)) and drops them before anything else, holding
    pg_repack's own advisory lock of the table, so the objects of a pg_repack still running are never touched.
  - An AWX cancel (SIGTERM) ends pg_repack and its server sessions at once; the next run drops what it left.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  tables:
    description:
      - Tables to work on (C(table) or C(schema.table), SQL syntax - unquoted names fold to lower case); a
        partitioned table stands for its partitions. Each named table is worked on whatever its figures.
      - Without it, the tables of the database over O(thresholds). Required with O(full) and O(method=repack).
    type: list
    elements: str
  method:
    description:
      - V(vacuum) - C(VACUUM) (C(VACUUM FULL) with O(full)).
      - V(repack) - pg_repack of the named tables.
    type: str
    default: vacuum
    choices: [vacuum, repack]
  analyze:
    description: C(VACUUM (ANALYZE)) - update the planner statistics too.
    type: bool
    default: true
  freeze:
    description: C(VACUUM (FREEZE)) - freeze every tuple (the wraparound fix).
    type: bool
    default: false
  verbose:
    description: C(VACUUM (VERBOSE)) - its report per table in C(messages) of RV(tables).
    type: bool
    default: false
  full:
    description:
      - C(VACUUM FULL) - rewrite each table under an ACCESS EXCLUSIVE lock. Only with O(maintenance_window=true),
        O(lock_timeout) above 0 and O(tables).
    type: bool
    default: false
  maintenance_window:
    description: The play runs in a maintenance window (the runbook's condition for C(VACUUM FULL)).
    type: bool
    default: false
  time_budget:
    description:
      - Seconds for the whole run. No table is started once they are spent; the running one is bounded by what is
        left. Default - no limit.
    type: float
  statement_timeout:
    description:
      - How long one table may take (C(statement_timeout) of the C(VACUUM), the bound of the pg_repack process), in
        PostgreSQL's notation with a unit (V(30min), V(1h)). Default - no limit other than O(time_budget).
    type: str
  lock_timeout:
    description:
      - How long a C(VACUUM) (and the drop of leftovers) waits for its lock before giving up on the table (reported
        C(lock_timeout)), in PostgreSQL's notation with a unit (V(5s), V(500ms)); a bare number is refused (PostgreSQL
        would read it as milliseconds). V(0) waits for ever (refused with O(full)).
    type: str
    default: 5s
  wait_timeout:
    description: pg_repack's C(--wait-timeout) - seconds it waits for its locks before retrying (or killing, see
      O(no_kill_backend)); also the age from which an open transaction refuses a table in the preflight.
    type: int
    default: 60
  no_kill_backend:
    description:
      - pg_repack's C(--no-kill-backend) - never cancel or terminate the sessions that block it. V(false) lets
        pg_repack cancel them after O(wait_timeout) and terminate them after twice that.
    type: bool
    default: true
  jobs:
    description: pg_repack's C(--jobs) - parallel index builds of a table.
    type: int
    default: 1
  disk_check:
    description:
      - V(required) - a table whose free disk cannot be checked (the server's data directory is not on the module's
        host, or the role may not read C(data_directory)) is skipped with the reason.
      - V(best_effort) - go on with a warning then (Azure, a remote server - check the storage yourself).
      - Checked is always enforced.
    type: str
    default: required
    choices: [required, best_effort]
  thresholds:
    description:
      - The thresholds choosing tables when O(tables) is not given (the ones of M(procgenie.dbops.pg_perf_info)).
        Only C(dead_tuples), C(dead_ratio), C(wraparound_warn_ratio) and C(wraparound_critical_ratio) matter here.
    type: dict
    default: {}
    suboptions:
      dead_tuples:
        description: Dead tuples over which a table needs a vacuum (runbook - C(n_dead_tup > 10000)).
        type: int
        default: 10000
      dead_ratio:
        description: Share of dead tuples (dead / (live + dead)) from which a table needs a vacuum (both must hold).
        type: float
        default: 0.2
      seq_scans:
        description: Unused here (pg_perf_info's missing-index threshold).
        type: int
        default: 1000
      seq_scan_ratio:
        description: Unused here.
        type: float
        default: 0.5
      seq_scan_min_rows:
        description: Unused here.
        type: int
        default: 10000
      wraparound_warn_ratio:
        description: Warn (and vacuum) when C(age(relfrozenxid)) reaches this times C(autovacuum_freeze_max_age).
        type: float
        default: 1.5
      wraparound_critical_ratio:
        description: Critical when the age reaches this times C(vacuum_failsafe_age).
        type: float
        default: 0.9
      sequence_warn:
        description: Unused here.
        type: float
        default: 0.75
      sequence_critical:
        description: Unused here.
        type: float
        default: 0.9
      bloat_ratio:
        description: Unused here (pg_perf_info's bloat threshold; name bloated tables in O(tables)).
        type: float
        default: 0.3
      bloat_min_bytes:
        description: Unused here.
        type: int
        default: 10485760
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details: Lists the tables it would work on (with the reason, size and dead tuples), what it skips and why, and
      the leftovers it would drop; changes nothing.
  diff_mode:
    support: none
notes:
  - C(VACUUM) needs the table's owner (or C(MAINTAIN) from PostgreSQL 17, or a superuser); other named tables are
    skipped with the reason. pg_repack needs a superuser, or the owner with C(--no-superuser-check) (added when the
    login role is not a superuser; on Azure, a member of C(azure_pg_admin)).
  - pg_repack pastes the password into the connection strings of its C(--jobs) workers unescaped - a password with a
    quote or a backslash leaves it without workers (it warns and builds the indexes one by one).
  - Idempotence comes from the thresholds - a second run without O(tables) finds nothing over them and changes
    nothing; named tables are worked on every time.
seealso:
  - module: procgenie.dbops.pg_perf_info
  - name: pg_repack
    description: Reorganize tables in PostgreSQL databases with minimal locks.
    link: https://reorg.github.io/pg_repack/
  - name: VACUUM
    description: The statement, its options and locks.
    link: https://www.postgresql.org/docs/current/sql-vacuum.html
'''

EXAMPLES = r'''
- name: Vacuum and analyze the tables over the thresholds, the oldest first, for at most 30 minutes
  procgenie.dbops.pg_vacuum:
    login_db: procgenie
    time_budget: 1800
  register: vacuumed

- name: The runbook's VACUUM (VERBOSE, ANALYZE) of the critical tables
  procgenie.dbops.pg_vacuum:
    login_db: procgenie
    tables: [purchase_orders, request_items]
    verbose: true

- name: Rewrite a bloated table online
  procgenie.dbops.pg_vacuum:
    login_db: procgenie
    method: repack
    tables: [audit_events]
    wait_timeout: 30

- name: VACUUM FULL, in the maintenance window only
  procgenie.dbops.pg_vacuum:
    login_db: procgenie
    tables: [audit_events]
    full: true
    maintenance_window: "{{ dbops_maintenance_window | default(false) }}"
    lock_timeout: 10s
'''

RETURN = r'''
database:
  description: The database worked on.
  returned: always
  type: str
method:
  description: V(vacuum) or V(repack).
  returned: always
  type: str
tables:
  description:
    - The tables worked on (planned, in check mode), in the order run - C(table) (schema.table), C(action)
      (C(VACUUM (ANALYZE)), C(VACUUM (FULL, ANALYZE)), C(pg_repack)), C(status) (C(planned), C(done), C(timed_out),
      C(lock_timeout), C(failed)), C(reason) (why chosen), C(error), C(duration_s), C(bytes_before), C(bytes_after)
      (C(pg_total_relation_size)), C(dead_before), C(dead_after) (C(n_dead_tup)), C(xid_age), C(mxid_age), and
      C(messages) (VACUUM VERBOSE's or pg_repack's output).
  returned: always
  type: list
  elements: dict
  sample: [{table: public.audit_events, action: pg_repack, status: done, duration_s: 4.2, bytes_before: 73900032,
            bytes_after: 24600576, dead_before: 200000, dead_after: 0, reason: named}]
skipped_tables:
  description:
    - Tables not worked on, each with C(table) and C(reason) (preflight, rights, time budget spent).
    - Not named C(skipped) - Ansible reads a true C(skipped) in a result as the task skipped.
  returned: always
  type: list
  elements: dict
leftovers:
  description:
    - Leftovers of interrupted pg_repack runs, one entry a table - C(target) (its oid), C(table) (null when the table
      is gone), C(objects) (C(kind) table, type, trigger or index, and C(name)), C(running) and C(status)
      (C(planned), C(cleaned), C(running) - a pg_repack works on it, left alone - or C(lock_timeout)).
  returned: always
  type: list
  elements: dict
settings:
  description: The server's wraparound settings the thresholds are relative to.
  returned: always
  type: dict
thresholds:
  description: The effective thresholds.
  returned: always
  type: dict
time_budget:
  description: O(time_budget).
  returned: always
  type: float
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
commands:
  description: The pg_repack commands run (no password on them).
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import client_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule, ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.vacuum import operation


def main():
    module = postgres_spec().merge(client_spec(), operation.argument_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, operation.Vacuum, operation.ERRORS, 'The vacuum')


if __name__ == '__main__':
    main()
