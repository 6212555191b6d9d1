#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_index
short_description: Build, drop or rebuild one index concurrently with lock-timeout retries, or advise indexes proven with hypopg
version_added: 0.1.0
description:
  - The runbook's index work (sections 3 and 6) - one index given by O(name), O(table), O(columns) (column names or
    expressions), O(method), O(unique), O(include) and O(where), built with C(CREATE INDEX CONCURRENTLY) by default.
  - B(Idempotent by what PostgreSQL stores.) The wanted index is created by the server on an empty temporary copy of
    the table's columns in a transaction that is rolled back (no data read, nothing left), and its definition as
    PostgreSQL stores it (access method, uniqueness, key columns and expressions as C(pg_get_indexdef) prints them,
    operator classes, ordering, collations, C(INCLUDE) columns, predicate) is compared with the index of that name.
    Equal - nothing to do. Different - the module fails naming the differences, unless O(replace).
  - B(No pasted SQL.) Identifiers are quoted by psycopg2; an element of O(columns) that is not a column of the table
    and O(where) are parsed alone by PostgreSQL's parser (pglast) and must be exactly one index element or one
    predicate; what runs is the parser's reprint of it.
  - B(Guarded builds.) Every statement runs outside any transaction with O(lock_timeout); a lock timeout is retried
    O(lock_retries) times with a growing pause (O(lock_retry_delay), doubled each time). A concurrent build that
    fails after its catalog entry exists (a lock timeout while it waits for older transactions, a duplicate key of a
    unique index, a cancel) leaves an INVALID index - before each attempt an INVALID index of that name is dropped
    concurrently, and reported in RV(dropped_invalid). After the build C(indisvalid) is checked; a failed build fails
    the module with PostgreSQL's reason and drops the invalid index unless O(keep_invalid).
  - O(state=rebuilt) is C(REINDEX INDEX CONCURRENTLY) (the invalid C(_ccnew) index of an earlier failed rebuild is
    dropped first); it always reports changed, as a service restart does.
  - B(Index advisor) (O(advise=true)) - the top O(statements) statements of this database from
    C(pg_stat_statements) by total time, or O(queries); single- and two-column btree candidates from the columns
    their WHERE and JOIN ON conditions compare; each candidate created as a hypothetical index (the hypopg
    extension), the statements planned again, and kept only when the plan cost of a statement drops by at least
    O(min_cost_savings) percent (50 - Dexter's default). Statements with parameters (C($1)) are planned with a
    generic plan (C(PREPARE), C(plan_cache_mode=force_generic_plan), C(EXPLAIN EXECUTE) with NULLs). RV(advice)
    lists, per index, the statements, the cost before and after and the C(CREATE INDEX CONCURRENTLY) statement;
    O(apply=true) builds them with the guards above.
  - The advisor changes nothing on the server - all of it runs in one transaction that is rolled back (read-only
    once hypopg is there); hypothetical indexes live in the session's memory. When hypopg is not created in the
    database, it is created inside that transaction only (it does not stay), unless O(create_extension=true), which
    creates it for good (and reports changed). Without hypopg on the server the module says so and how to install it.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  name:
    description:
      - The index name, without schema (the index lives in its table's schema). Required unless O(advise).
      - With O(state=absent) or O(state=rebuilt) and no O(table), the index is looked up on the search_path.
    type: str
  table:
    description:
      - The table (C(schema.table), or a name on the search_path). Required with O(state=present).
      - With O(state=absent) or O(state=rebuilt), the index must be on this table.
    type: str
  columns:
    description:
      - The key of the index, in order. An item that is exactly a column name of the table is that column; any other
        item is one index element in SQL - an expression (C(lower(email))), a column with ordering, operator class or
        collation (C(created_at DESC), C(email text_pattern_ops)). Required with O(state=present).
    type: list
    elements: str
  method:
    description: The index access method (C(btree), C(hash), C(gin), C(gist), C(brin), ... as the server has them).
    type: str
    default: btree
  unique:
    description: A unique index. A concurrent unique build over duplicate rows fails with PostgreSQL's reason.
    type: bool
    default: false
  include:
    description: Non-key columns stored in the index (C(INCLUDE)), names of the table's columns.
    type: list
    elements: str
    default: []
  where:
    description: The predicate of a partial index, one boolean SQL expression (C(deleted_at IS NULL)).
    type: str
  concurrently:
    description:
      - Build, drop and rebuild with C(CONCURRENTLY) (writes to the table go on during the build).
      - V(false) - plain statements, which block writes (a build) or everything (a drop) for their whole run; a
        replacement then runs in one transaction.
    type: bool
    default: true
  state:
    description:
      - V(present) - the index exists with this definition.
      - V(absent) - no index of that name (dropped concurrently).
      - V(rebuilt) - C(REINDEX INDEX CONCURRENTLY) of the existing index (bloated, or INVALID).
    type: str
    default: present
    choices: [present, absent, rebuilt]
  replace:
    description:
      - When an index of that name exists with another definition, rebuild it as asked. Concurrently, the new index
        is built beside the old one under a temporary name, then the old one is dropped concurrently and the new
        one renamed, so the table is never without it. An index that backs a constraint (primary key, unique,
        exclusion) is refused.
    type: bool
    default: false
  keep_invalid:
    description: Keep the INVALID index a failed build left (to look at it) instead of dropping it concurrently.
    type: bool
    default: false
  lock_timeout:
    description:
      - The session's C(lock_timeout) for every statement (checked by the server), so a build never queues behind a
        long transaction while the table's other queries queue behind it.
    type: str
    default: 5s
  lock_retries:
    description: How many times a statement that reached O(lock_timeout) is tried again.
    type: int
    default: 5
  lock_retry_delay:
    description: Seconds before the first retry; doubled before each further one.
    type: float
    default: 1.0
  advise:
    description: Run the index advisor (see the description) instead of managing one index.
    type: bool
    default: false
  apply:
    description: With O(advise), build the indexes advised (concurrently, with the guards of a single build).
    type: bool
    default: false
  queries:
    description:
      - With O(advise), the statements to advise on (SQL, C($1) parameters allowed) instead of pg_stat_statements'
        top statements. Each must be one SELECT (without INTO), UPDATE or DELETE; others are reported skipped.
    type: list
    elements: str
  statements:
    description: With O(advise), how many of pg_stat_statements' top statements (by total time) are examined.
    type: int
    default: 20
  min_cost_savings:
    description: With O(advise), the percentage by which a hypothetical index must lower a statement's plan cost.
    type: float
    default: 50
  create_extension:
    description:
      - With O(advise), create the hypopg extension in the database for good when it is not there (reported as a
        change). By default it is created for the advisor's own transaction only, which is rolled back.
    type: bool
    default: false
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Returns the plan - the action (create, replace, drop, rebuild), the statement, the INVALID index that would
        be dropped first; with O(advise), the advice itself (the advisor changes nothing anyway).
  diff_mode:
    support: none
requirements:
  - pglast (PostgreSQL's parser)
  - the hypopg extension on the server, for O(advise)
notes:
  - Creating an index needs the table's owner (or a member of its role); the advisor needs hypopg's functions
    (creating the extension needs superuser, or on Azure C(azure_pg_admin)), and pg_stat_statements in the
    database unless O(queries) are given.
  - Partitioned tables cannot be indexed concurrently - the module refuses and explains; index each partition.
  - Storage parameters (C(WITH (...))) and the tablespace are not compared.
  - An AWX cancel (SIGTERM) cancels the running statement; a concurrent build cancelled half-way leaves an INVALID
    index that the next run drops first.
seealso:
  - module: procgenie.dbops.pg_migrate
  - name: Dexter
    description: The automatic indexer for PostgreSQL whose method the advisor follows.
    link: https://github.com/ankane/dexter
  - name: HypoPG
    description: Hypothetical indexes for PostgreSQL.
    link: https://hypopg.readthedocs.io
  - name: Building indexes concurrently
    description: PostgreSQL's documentation of CREATE INDEX CONCURRENTLY and its INVALID leftovers.
    link: https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY
'''

EXAMPLES = r'''
- name: The runbook's index for the request list (concurrently, retried behind locks)
  procgenie.dbops.pg_index:
    login_db: procgenie
    name: requests_tenant_created_idx
    table: public.requests
    columns: [tenant_id, created_at DESC]
    lock_timeout: 3s
    lock_retries: 5

- name: A partial unique index on an expression
  procgenie.dbops.pg_index:
    login_db: procgenie
    name: users_email_active_key
    table: users
    columns: ['lower(email)']
    unique: true
    where: deleted_at IS NULL

- name: Rebuild a bloated or INVALID index without blocking writes
  procgenie.dbops.pg_index:
    login_db: procgenie
    name: requests_tenant_created_idx
    state: rebuilt

- name: Which indexes would the top statements need (changes nothing)
  procgenie.dbops.pg_index:
    login_db: procgenie
    advise: true
    statements: 30
  register: advisor

- name: Build what the advisor proved, concurrently
  procgenie.dbops.pg_index:
    login_db: procgenie
    advise: true
    apply: true
    queries:
      - SELECT * FROM request_items WHERE request_id = $1
'''

RETURN = r'''
state:
  description: O(state).
  returned: always
  type: str
database:
  description: The database worked on.
  returned: always
  type: str
concurrently:
  description: O(concurrently).
  returned: always
  type: bool
index:
  description:
    - Without O(advise), the index - C(name), C(schema), C(table), C(exists) and C(valid) (before), C(definition_before)
      (C(pg_get_indexdef)), C(action) (C(none), C(create), C(replace), C(drop), C(rebuild)), C(sql) (the statement),
      C(differences) (fields that differ, with O(replace)), C(invalid_before), C(definition) (after the change).
  returned: unless O(advise)
  type: dict
  sample: {name: requests_tenant_created_idx, schema: public, table: public.requests, exists: false, valid: null,
           action: create, sql: "CREATE INDEX CONCURRENTLY \"requests_tenant_created_idx\" ON \"public\".\"requests\"
           USING \"btree\" (\"tenant_id\", created_at DESC)"}
actions:
  description: Every index changed or to change (entries as in RV(index)), in order.
  returned: always
  type: list
  elements: dict
dropped_invalid:
  description: INVALID indexes (left by failed concurrent builds) dropped before or after a build, C(schema.name).
  returned: always
  type: list
  elements: str
lock_retries:
  description: How many times a statement was tried again after reaching O(lock_timeout).
  returned: always
  type: int
executed:
  description: The index statements run (also in RV(queries)).
  returned: when changed and not in check mode
  type: list
  elements: str
advice:
  description:
    - With O(advise), the indexes proven - C(table), C(columns), C(name), C(statements) (each C(query), C(calls),
      C(total_ms), C(cost_before), C(cost_after), C(savings_pct), C(generic_plan)), C(cost_before) and C(cost_after)
      (sums over those statements), C(savings_pct) and C(create_sql); with O(apply), C(action) as in RV(index).
  returned: with O(advise)
  type: list
  elements: dict
  sample: [{table: public.orders, columns: [customer_id], name: orders_customer_id_idx, cost_before: 339.0,
            cost_after: 8.3, savings_pct: 97.6, statements: [{query: "SELECT * FROM orders WHERE customer_id = $1",
            cost_before: 339.0, cost_after: 8.3, savings_pct: 97.6, generic_plan: true}],
            create_sql: "CREATE INDEX CONCURRENTLY \"orders_customer_id_idx\" ON \"public\".\"orders\" USING
            \"btree\" (\"customer_id\")"}]
advisor:
  description:
    - With O(advise), C(source) (C(pg_stat_statements) or C(queries)), C(statements) (each examined statement with
      C(cost_before), C(generic_plan), C(skipped) - why it was not advised on), C(rejected) (candidates that did not
      save enough - C(table), C(columns), C(best_savings_pct), C(statements)) and C(message).
  returned: with O(advise)
  type: dict
hypopg:
  description: With O(advise), C(installed), C(available), C(version), C(schema), C(created), C(message) (how to install).
  returned: with O(advise)
  type: dict
duration_s:
  description: Seconds the module ran.
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
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    PostgresModule, ensure_psycopg2, missing_requirement_message)
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.index import definition, operation


def main():
    module = postgres_spec().merge(operation.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    if definition.pglast is None:
        module.fail_json(msg=missing_requirement_message('pglast', 'pglast'), queries=[], commands=[])
    run_operation(module, operation.Index, operation.ERRORS, 'The index operation')


if __name__ == '__main__':
    main()
