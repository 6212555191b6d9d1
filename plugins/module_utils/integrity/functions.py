# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_integrity_check without the pg_amcheck program: the same checks through the amcheck extension's SQL functions,
in one session of the module (method: functions).

The relations are chosen as pg_amcheck chooses them (src/bin/pg_amcheck/pg_amcheck.c,
compile_relation_list_one_db): without schemas or tables, every heap table and materialized view of the database
outside pg_toast (the system catalogs included); with them, the heap tables of the schemas (and the btree indexes in
them) and the tables named; then the TOAST tables of those, and the btree indexes of both. Temporary tables are
never checked (they belong to other sessions), partitioned tables and indexes have no storage of their own (their
partitions are relations of their own), and an index that is not valid, ready and live is skipped when its turn
comes, as pg_amcheck skips it.

Each relation is one statement in autocommit mode (its own transaction), the relation given by its oid as a
parameter and looked up again in pg_class in that statement (a relation dropped meanwhile is no longer checked):
verify_heapam(relation, on_error_stop => false, check_toast => true, skip => 'none') for tables and TOAST (amcheck
1.3, PostgreSQL 14 and later; before, only the indexes can be checked and the result says so), bt_index_check(index,
heapallindexed) - or bt_index_parent_check(index, heapallindexed, rootdescend) with the parent check - for indexes.
bt_index_check raises at the first problem of an index (and verify_heapam raises on a page that fails its checksum):
that error becomes the relation's problem row, as pg_amcheck prints it, and the run goes on with the next relation.
Errors that say nothing about the data (the connection lost, a lock not granted, the query cancelled, no
permission) fail the module instead: they are not corruption.

The checks run in a worker thread while the main thread waits in short joins, so a SIGTERM (AWX cancel) is handled at
once: the running statement is cancelled, the session ended on the server (pg_terminate_backend from a second
connection, in case the cancel fell between two statements), and the module exits."""

from __future__ import annotations

import threading

from ansible_collections.procgenie.dbops.plugins.module_utils import _clients
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    open_session, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils.integrity.amcheck import problem

HEAP_CHECK_VERSION = (1, 3)  # verify_heapam: amcheck 1.3, PostgreSQL 14
# SQLSTATE classes of errors that are about the session, not the data: connection exceptions, invalid transaction
# state, syntax or access rule violations (no permission), insufficient resources, program limits, object not in
# prerequisite state (lock_timeout), operator intervention (cancelled, terminated)
OPERATIONAL_CLASSES = ('08', '25', '42', '53', '54', '55', '57')


class FunctionsError(Exception):
    """A check that could not run for a reason that is not corruption (the message says which relation and why)."""


def version_tuple(text):
    """Pure: '1.3' -> (1, 3); None or nonsense -> ()."""
    parts = []
    for piece in str(text or '').split('.'):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def checks_tables(version):
    """Pure: whether amcheck `version` (text) has verify_heapam (1.3: PostgreSQL 14 and later)."""
    return version_tuple(version) >= HEAP_CHECK_VERSION


def operational(pgcode):
    """Pure: whether an error's SQLSTATE says the check could not run (not that the relation is damaged)."""
    return bool(pgcode) and str(pgcode)[:2] in OPERATIONAL_CLASSES


def error_message(exc):
    """Pure (given the error): the server's message as pg_amcheck prints it (severity left out): the primary message,
    then 'DETAIL:  ...' and 'HINT:  ...' on the same line."""
    diag = getattr(exc, 'diag', None)
    primary = getattr(diag, 'message_primary', None) if diag is not None else None
    if not primary:
        return str(exc).strip().replace('\n', ' ')
    parts = [primary]
    for label, attr in (('DETAIL', 'message_detail'), ('HINT', 'message_hint')):
        text = getattr(diag, attr, None)
        if text:
            parts.append('%s:  %s' % (label, text))
    return ' '.join(p.strip().replace('\n', ' ') for p in parts)


def kind_of(rel):
    """Pure: the problem kind of a relation row (is_btree, schema) as pg_amcheck names it."""
    if rel['is_btree']:
        return 'index'
    return 'toast' if rel['schema'] == 'pg_toast' else 'table'


# every relation the chosen tables and schemas bring, as pg_amcheck chooses them (see the module docstring)
RELATIONS_SQL = """
WITH am AS (SELECT (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'heap') AS heap,
                   (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'btree') AS btree),
chosen AS (
  SELECT c.oid, c.reltoastrelid, c.relam = am.heap AS is_heap
    FROM pg_catalog.pg_class c CROSS JOIN am
   WHERE c.relpersistence <> 't'
     AND ((c.relam = am.heap AND c.relkind IN ('r', 'm', 't')) OR (c.relam = am.btree AND c.relkind = 'i'))
     AND CASE WHEN %(all)s THEN c.relam = am.heap AND c.relkind IN ('r', 'm')
                                AND c.relnamespace <> 'pg_toast'::pg_catalog.regnamespace
              ELSE c.relnamespace IN (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY(%(schemas)s))
                   OR (c.relam = am.heap AND c.oid = ANY(%(tables)s::pg_catalog.oid[])) END),
toast AS (
  SELECT t.oid FROM pg_catalog.pg_class t JOIN chosen r ON r.is_heap AND r.reltoastrelid = t.oid
   WHERE t.relpersistence <> 't'),
indexes AS (
  SELECT i.indexrelid AS oid
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid CROSS JOIN am
   WHERE c.relam = am.btree AND c.relkind = 'i' AND c.relpersistence <> 't'
     AND i.indrelid IN (SELECT oid FROM chosen WHERE is_heap UNION ALL SELECT oid FROM toast)),
everything AS (SELECT oid FROM chosen UNION SELECT oid FROM toast UNION SELECT oid FROM indexes)
SELECT c.oid::pg_catalog.int8 AS oid, n.nspname::text AS schema, c.relname::text AS name,
       c.relam = (SELECT btree FROM am) AS is_btree, c.relpages::pg_catalog.int8 AS pages
  FROM everything e JOIN pg_catalog.pg_class c ON c.oid = e.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 ORDER BY c.relam = (SELECT btree FROM am), n.nspname, c.relname
"""


def list_relations(session, schemas=(), table_oids=()):
    """The relations to check (oid, schema, name, is_btree, pages): tables first, then indexes, by name."""
    everything = not schemas and not table_oids
    return session.rows(RELATIONS_SQL, dict(all=everything, schemas=list(schemas), tables=[int(o) for o in table_oids]))


def heap_query(amcheck_schema):
    """verify_heapam over one relation (its oid: the parameter), as pg_amcheck calls it."""
    return sql.SQL(
        "SELECT v.blkno, v.offnum, v.attnum, v.msg FROM pg_catalog.pg_class c, "
        "{}.verify_heapam(relation => c.oid, on_error_stop => false, check_toast => true, skip => 'none') v "
        "WHERE c.oid = %(oid)s::pg_catalog.oid AND c.relpersistence <> 't'").format(sql.Identifier(amcheck_schema))


def btree_query(amcheck_schema, parent_check=False):
    """bt_index_check (or bt_index_parent_check) of one index (its oid: the parameter), skipped unless the index is
    valid, ready and live, as pg_amcheck calls it."""
    if parent_check:
        call = sql.SQL('{}.bt_index_parent_check(index => c.oid, heapallindexed => %(heapallindexed)s, '
                       'rootdescend => %(rootdescend)s)').format(sql.Identifier(amcheck_schema))
    else:
        call = sql.SQL('{}.bt_index_check(index => c.oid, heapallindexed => %(heapallindexed)s)').format(
            sql.Identifier(amcheck_schema))
    return sql.SQL(
        "SELECT {} FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid "
        "WHERE c.oid = %(oid)s::pg_catalog.oid AND c.relpersistence <> 't' "
        "AND i.indisready AND i.indisvalid AND i.indislive").format(call)


def check_relations(session, database, relations, amcheck_schema, heapallindexed=False, parent_check=False,
                    rootdescend=False, tables=True, stop=lambda: False):
    """Check each relation in its own statement; returns (problems, counts: the tables and the indexes checked,
    found damaged or not; an index skipped as not valid is not counted). An error about the relation becomes
    its problem row; an operational one raises FunctionsError. `tables`: whether verify_heapam exists (else the
    tables are left out); `stop()`: true once the module is cancelled (no further statement starts)."""
    problems, counts = [], dict(tables=0, indexes=0)
    heap, btree = heap_query(amcheck_schema), btree_query(amcheck_schema, parent_check)
    args = dict(heapallindexed=bool(heapallindexed), rootdescend=bool(rootdescend))
    for rel in relations:
        if not rel['is_btree'] and not tables:
            continue
        if stop():
            raise FunctionsError('cancelled')
        kind = kind_of(rel)
        try:
            rows = session.rows(btree if rel['is_btree'] else heap, dict(args, oid=rel['oid']))
        except psycopg2.Error as exc:
            if stop():
                raise FunctionsError('cancelled')
            if operational(exc.pgcode) or exc.pgcode is None:
                raise FunctionsError('the check of %s %s.%s in database %s could not run: %s' % (
                    'index' if rel['is_btree'] else 'table', rel['schema'], rel['name'], database, error_message(exc)))
            problems.append(problem(database, rel['schema'], rel['name'], kind, message=error_message(exc)))
            counts['indexes' if rel['is_btree'] else 'tables'] += 1
            continue
        if rel['is_btree']:  # one row when checked, none when the index is not valid, ready and live (skipped)
            counts['indexes'] += 1 if rows else 0
            continue
        counts['tables'] += 1
        for row in rows:
            problems.append(problem(database, rel['schema'], rel['name'], kind, row['blkno'], row['offnum'],
                                    row['attnum'], row['msg']))
    return problems, counts


def check_database(params, database, target, amcheck_schema, amcheck_version, log, stop_event=None):
    """Every check of one database in a session of its own, in a worker thread (see the module docstring). Returns
    dict(problems, tables_checked, relations=dict(tables, indexes))."""
    _clients.exit_on_sigterm()
    stop_event = stop_event or threading.Event()
    session = open_session(params, database=database, log=log)
    pid = session.conn.get_backend_pid()

    def work():
        relations = list_relations(session, target.get('schemas') or (), target.get('table_oids') or ())
        return check_relations(
            session, database, relations, amcheck_schema, heapallindexed=params.get('heapallindexed'),
            parent_check=params.get('parent_check'), rootdescend=params.get('rootdescend'),
            tables=checks_tables(amcheck_version), stop=stop_event.is_set)

    def cancel():
        stop_event.set()
        try:
            session.conn.cancel()
        except Exception:  # pylint: disable=broad-except
            pass
        _clients.terminate_sessions(params, 'pid = %s', [pid])

    try:
        problems, counts = _clients.in_worker(work, cancel)
    finally:
        session.close()
    return dict(problems=problems, tables_checked=checks_tables(amcheck_version), relations=counts)
