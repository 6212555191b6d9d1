#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_perf_info
short_description: Statements, index health, bloat, vacuum and wraparound, sequences and sizes of a PostgreSQL database
version_added: 0.1.0
description:
  - Reads what the runbook's performance section (section 6) looks at, and reports it with a list of findings (one
    line each, with the SQL that fixes it where there is one).
  - B(Statements) from C(pg_stat_statements) - the top O(top) by total time, by mean time and by calls, with calls,
    rows, mean and max time and shared-block hits and reads, per database and user, query text cut to
    O(query_length). The statistics are never reset unless O(reset=true). Given an earlier result (O(since)), the
    numbers are the deltas over the interval. Without the extension, a message says how to enable it (self-hosted
    or Azure).
  - B(Index health) - duplicates (same table, access method, key columns and expressions, operator classes,
    collations, ordering and predicate; each reported once with the index to keep; a unique or constraint index is
    never the one to drop), redundant indexes (a leading prefix of another with the same method, operator classes,
    collations and ordering, and the same predicate; never a unique, constraint, expression or partial-vs-plain
    one), unused ones (no scan since the statistics reset; not unique, no constraint's; with O(replicas), unused on
    every node), INVALID ones (not those a running C(CREATE INDEX CONCURRENTLY) is building), missing-index
    candidates (heavy sequential scans) and tenant tables with no index leading with O(tenant_column).
  - B(Bloat) of tables and btree indexes - measured by C(pgstattuple) when it is installed, else the usual catalog
    estimate (C(bloat.method) says which).
  - B(Vacuum and wraparound) - dead tuples, last vacuum and analyze, transaction-ID and multixact age per table and
    database against the server's C(autovacuum_freeze_max_age) and failsafe ages; B(sequences) near their maximum;
    B(sizes) of tables and databases.
  - A fixed number of catalog queries whatever the number of tables and indexes (one more a replica).
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  top:
    description: How many statements each top list holds, and how many tables the size and vacuum lists show (besides every table over a threshold).
    type: int
    default: 20
  query_length:
    description: Characters of statement text to return; V(0) returns none.
    type: int
    default: 200
  statements_scope:
    description: V(all) - the statements of every database; V(database) - those of O(login_db) only.
    type: str
    default: all
    choices: [all, database]
  since:
    description:
      - An earlier result of this module (registered), or its C(statements) part. The statement numbers are then
        the deltas since that result (its C(statements.snapshot)); C(max_ms) stays the maximum since the reset.
    type: dict
  reset:
    description:
      - Reset C(pg_stat_statements) after reading it (the result holds the statistics before the reset). Reports
        C(changed). The statistics are shared by everyone who reads them; prefer O(since).
    type: bool
    default: false
  tenant_column:
    description: The column that makes a table a tenant table (row-level security filters on it).
    type: str
    default: tenant_id
  bloat:
    description:
      - How bloat is found. V(auto) - C(pgstattuple) when it is installed in the database and the login role may
        run it, else the estimate. V(pgstattuple) - fail without it. V(estimate) - the catalog estimate (no table
        is read).
      - C(pgstattuple) measures only relations of at least C(thresholds.bloat_min_bytes) (smaller ones are never
        reported).
    type: str
    default: auto
    choices: [auto, pgstattuple, estimate]
  platform:
    description: Where the server runs; decides how the message without C(pg_stat_statements) says to enable it.
    type: str
    default: postgres
    choices: [postgres, azure]
  statement_timeout:
    description: How long each query may take, in PostgreSQL's notation with a unit (V(60s), V(2min)).
    type: str
    default: 60s
  lock_timeout:
    description:
      - How long a query waits for a lock (sizes take a share lock on each relation) before it fails, in
        PostgreSQL's notation with a unit (V(5s), V(500ms)); a bare number is refused.
    type: str
    default: 5s
  findings_limit:
    description:
      - At most this many findings of each kind of problem (unused indexes, duplicate, redundant or INVALID ones,
        missing-index candidates, tenant tables without a tenant index, bloat, vacuum, wraparound, sequences) - the
        worst ones (critical first, then the largest); one more finding of the kind says how many were left out
        (RV(findings_omitted)). The lists of RV(indexes), RV(bloat), RV(vacuum) and RV(sequences) stay complete.
      - V(0) lists every finding; a negative number is refused.
    type: int
    default: 50
  replicas:
    description:
      - Replicas whose own index statistics count for C(indexes.unused) - an index is unused only when no node
        scanned it. Options not given are the module's own.
    type: list
    elements: dict
    default: []
    suboptions:
      login_host:
        description: Host of the replica.
        type: str
      login_port:
        description: Port of the replica.
        type: int
      login_user:
        description: Role to log in as.
        type: str
      login_password:
        description: Its password.
        type: str
      login_db:
        description: Database (the same database as the module's).
        type: str
      login_unix_socket:
        description: Unix socket directory.
        type: path
      ssl_mode:
        description: libpq's sslmode.
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: CA certificate file.
        type: path
      ssl_cert:
        description: Client certificate file.
        type: path
      ssl_key:
        description: Client key file.
        type: path
  thresholds:
    description: The thresholds of the levels (shared with M(procgenie.dbops.pg_vacuum)).
    type: dict
    default: {}
    suboptions:
      dead_tuples:
        description: Dead tuples over which a table needs a vacuum (the runbook's 10000).
        type: int
        default: 10000
      dead_ratio:
        description: ... and the dead share of its rows at least this.
        type: float
        default: 0.2
      seq_scans:
        description: Sequential scans over which a table is a missing-index candidate (the runbook's 1000).
        type: int
        default: 1000
      seq_scan_ratio:
        description: ... with at least this share of its scans sequential.
        type: float
        default: 0.5
      seq_scan_min_rows:
        description: ... and at least this many live rows.
        type: int
        default: 10000
      wraparound_warn_ratio:
        description: Warn when an age reaches this times C(autovacuum_freeze_max_age) (its multixact twin for multixacts).
        type: float
        default: 1.5
      wraparound_critical_ratio:
        description: Critical when an age reaches this times C(vacuum_failsafe_age) (its multixact twin).
        type: float
        default: 0.9
      sequence_warn:
        description: Share of a sequence's range used that warns.
        type: float
        default: 0.75
      sequence_critical:
        description: Share of a sequence's range used that is critical.
        type: float
        default: 0.9
      bloat_ratio:
        description: Wasted share of a table or index that warns (twice that, at most 0.9, is critical).
        type: float
        default: 0.3
      bloat_min_bytes:
        description: Smaller relations are never reported as bloated.
        type: int
        default: 10485760
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details: Check mode reads everything and does not reset C(pg_stat_statements).
  diff_mode:
    support: none
notes:
  - Other roles' statements, and C(pgstattuple), need superuser or C(pg_read_all_stats) / C(pg_stat_scan_tables)
    (C(pg_monitor)).
  - Index statistics count since the last statistics reset (C(indexes.unused_since)) or, when never reset, since
    the server's statistics began (an unclean shutdown or crash discards them).
seealso:
  - module: procgenie.dbops.pg_activity_info
  - name: pg_stat_statements
    description: The extension the statement statistics come from.
    link: https://www.postgresql.org/docs/current/pgstatstatements.html
'''

EXAMPLES = r'''
- name: Weekly health check of the application database
  procgenie.dbops.pg_perf_info:
    login_db: procgenie
  register: perf

- name: Findings, one line each
  ansible.builtin.debug:
    msg: "{{ perf.findings | map(attribute='message') | list }}"

- name: What ran in the last hour (deltas against the earlier result, nothing reset)
  procgenie.dbops.pg_perf_info:
    login_db: procgenie
    since: "{{ perf }}"

- name: Unused only if no replica scanned them either
  procgenie.dbops.pg_perf_info:
    login_db: procgenie
    replicas:
      - login_host: replica1.internal
        login_password: "{{ vault_replica_password }}"
'''

RETURN = r'''
server:
  description: C(version), C(version_num), C(major), C(database), C(stats_reset) (of the database, ISO 8601 or null) and C(now).
  returned: always
  type: dict
statements:
  description:
    - C(available), C(message) (how to enable C(pg_stat_statements) when it is not), C(reset_done), C(since),
      C(reset_between) (the statistics were reset after the earlier result), C(stats_reset), C(snapshot) (every
      statement's counters, for a later O(since)).
    - C(top_total_time), C(top_mean_time), C(top_calls) - lists of C(queryid), C(query), C(query_truncated),
      C(database), C(user), C(toplevel), C(calls), C(total_ms), C(mean_ms), C(max_ms), C(rows),
      C(shared_blks_hit), C(shared_blks_read).
  returned: always
  type: dict
indexes:
  description:
    - C(duplicate) (C(table), C(index), C(keep), C(definition), C(keep_definition), C(bytes), C(fix_sql)),
      C(redundant) (C(covered_by), C(covered_by_definition) ...), C(unused) (C(idx_scan), C(foreign_keys) it
      serves ...), C(unused_since), C(invalid), C(missing) (C(seq_scan), C(seq_tup_read), C(idx_scan),
      C(n_live_tup), C(reason)), C(tenant_unindexed) (C(table), C(column), C(fix_sql)), C(replicas).
  returned: always
  type: dict
bloat:
  description: C(method) (V(pgstattuple) or V(estimate)), C(tables) and C(indexes) (C(bytes), C(wasted_bytes), C(ratio), C(level)).
  returned: always
  type: dict
vacuum:
  description:
    - C(settings) (the freeze and failsafe ages), C(tables) (dead tuples, last vacuum and analyze, C(xid_age),
      C(mxid_age), C(level), C(needs_vacuum)) and C(databases) (C(xid_age), C(mxid_age), C(level)).
  returned: always
  type: dict
sequences:
  description: Every sequence with C(last_value), C(max_value), C(used) (share of its range) and C(level).
  returned: always
  type: list
  elements: dict
sizes:
  description: C(tables) (the largest O(top) - C(total_bytes), C(table_bytes), C(index_bytes), C(toast_bytes), C(live_rows)) and C(databases) (C(bytes)).
  returned: always
  type: dict
findings:
  description:
    - One line a finding - C(level) (ok, warn, critical), C(area), C(object), C(message), C(fix_sql) (or null);
      critical first.
    - At most O(findings_limit) of each kind, and then a line that counts those left out.
  returned: always
  type: list
  elements: dict
findings_omitted:
  description:
    - Findings left out by O(findings_limit), per kind (C(unused), C(duplicate), C(redundant), C(invalid),
      C(missing), C(tenant_unindexed), C(bloat), C(vacuum), C(wraparound), C(sequences)); empty when none was.
  returned: always
  type: dict
  sample: {unused: 1950}
thresholds:
  description: The thresholds in effect.
  returned: always
  type: dict
counts:
  description: How many tables, indexes and sequences were read.
  returned: always
  type: dict
duration_s:
  description: Seconds the reading took.
  returned: always
  type: float
queries:
  description: The SQL the module ran.
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
from ansible_collections.procgenie.dbops.plugins.module_utils.perf import info


def main():
    module = postgres_spec().merge(info.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, info.PerfInfo, info.ERRORS, 'Reading the performance statistics')


if __name__ == '__main__':
    main()
