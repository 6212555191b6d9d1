# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL of pg_row_restore, composed with psycopg2.sql. PRIVATE to the collection.

Identifiers only through sql.Identifier. Values are always parameters, of two kinds:

* keys: one JSON array of objects ``{"<key column>": value, ...}``, read by ``json_populate_record(NULL::<table>,
  ...)``, so each value converts to its column's type through that type's own input function (no type name is ever
  written into the statement);
* whole rows: a text[] of ``ROW(...)::text`` forms cast to ``<table>[]`` (``unnest(%s::<table>[])``), read by the
  row type's input function in the same way.

`table` arguments are dicts with ``schema``, ``name``, ``columns`` (every column in attnum order), ``writable``
(the columns that are not generated) and ``key``.
"""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import qualified
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql

COLUMNS_SQL = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated <> '' AS generated,
       a.attidentity AS identity
  FROM pg_attribute a
 WHERE a.attrelid = %s::oid AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""

SEQUENCES_SQL = """
SELECT d.refobjid::bigint AS table_oid, a.attname AS column, n.nspname AS schema, s.relname AS name,
       quote_ident(n.nspname) || '.' || quote_ident(s.relname) AS sequence, q.seqincrement AS increment,
       format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_depend d
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_namespace n ON n.oid = s.relnamespace
  JOIN pg_sequence q ON q.seqrelid = s.oid
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
   AND d.refobjid = ANY(%s::oid[])
 ORDER BY 1, 2
"""

TRIGGERS_SQL = """
SELECT tgrelid::bigint AS oid, tgname AS name, tgenabled AS enabled, (tgtype & 2) <> 0 AS before,
       (tgtype & 1) <> 0 AS for_each_row
  FROM pg_trigger
 WHERE tgrelid = ANY(%s::oid[]) AND NOT tgisinternal
 ORDER BY 1, 2
"""

# foreign keys into the tables whose ON DELETE action changes other rows (cascade, set null, set default)
CASCADES_SQL = """
SELECT f.confrelid::bigint AS parent, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS child,
       f.conname AS name,
       CASE f.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END AS action
  FROM pg_constraint f JOIN pg_class c ON c.oid = f.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE f.contype = 'f' AND f.confrelid = ANY(%s::oid[]) AND f.confdeltype IN ('c', 'n', 'd')
 ORDER BY 1, 2, 3
"""

ROLE_SQL = "SELECT rolsuper AS superuser, rolbypassrls AS bypassrls FROM pg_roles WHERE rolname = current_user"


def _ids(names, alias=None):
    if alias is None:
        return sql.SQL(', ').join(sql.Identifier(n) for n in names)
    return sql.SQL(', ').join(sql.Identifier(alias, n) for n in names)


def table_name(table):
    return qualified(table['schema'], table['name'])


def _keyed_join(table):
    """FROM clause: the JSON keys (parameter 1) with their ordinal, joined to the table's rows of those keys."""
    return sql.SQL(
        "json_array_elements(%s::json) WITH ORDINALITY AS j(doc, ord) "
        "CROSS JOIN LATERAL json_populate_record(NULL::{tbl}, j.doc) AS k "
        "JOIN {tbl} AS t ON ({tkeys}) = ({kkeys})").format(
            tbl=table_name(table), tkeys=_ids(table['key'], 't'), kkeys=_ids(table['key'], 'k'))


def row_hash(table, alias='t'):
    """md5(ROW(<every column in attnum order>)::text): pg_table_diff's target_hash."""
    return sql.SQL('md5(ROW({cols})::text)').format(cols=_ids(table['columns'], alias))


def target_state(table, lock=False, with_rows=False):
    """(ord, hash[, row]) of the target's rows of the keys (parameter: JSON keys); FOR UPDATE OF the rows when
    `lock` (a missing row cannot be locked: its absence is checked, and an insert racing it fails on the key)."""
    return sql.SQL("SELECT j.ord::int AS ord, {hash} AS hash{row} FROM {join} ORDER BY 1{lock}").format(
        hash=row_hash(table), join=_keyed_join(table),
        row=sql.SQL(', ROW({cols})::text AS row').format(cols=_ids(table['columns'], 't')) if with_rows else sql.SQL(''),
        lock=sql.SQL(' FOR UPDATE OF t') if lock else sql.SQL(''))


def source_rows(table):
    """(ord, row) of the source's rows of the keys, each ROW(<the target's columns>)::text."""
    return sql.SQL("SELECT j.ord::int AS ord, ROW({cols})::text AS row FROM {join} ORDER BY 1").format(
        cols=_ids(table['columns'], 't'), join=_keyed_join(table))


def rows_hash(table):
    """(ord, hash) of source rows (parameters: their text forms, their ordinals) as the target reads them."""
    return sql.SQL("SELECT u.ord AS ord, md5((u.txt::{tbl})::text) AS hash "
                   "FROM unnest(%s::text[], %s::int[]) AS u(txt, ord) ORDER BY 1").format(tbl=table_name(table))


def insert_rows(table):
    return sql.SQL("INSERT INTO {tbl} AS t ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM unnest(%s::{tbl}[])").format(
        tbl=table_name(table), cols=_ids(table['writable']))


def update_rows(table):
    """UPDATE of every writable column that is not a key column (None when there is none)."""
    columns = [c for c in table['writable'] if c not in table['key']]
    if not columns:
        return None
    return sql.SQL("UPDATE {tbl} AS t SET {sets} FROM unnest(%s::{tbl}[]) AS u WHERE ({tkeys}) = ({ukeys})").format(
        tbl=table_name(table), sets=sql.SQL(', ').join(
            sql.SQL('{} = {}').format(sql.Identifier(c), sql.Identifier('u', c)) for c in columns),
        tkeys=_ids(table['key'], 't'), ukeys=_ids(table['key'], 'u'))


def delete_rows(table):
    return sql.SQL("DELETE FROM {tbl} AS t WHERE ({tkeys}) IN "
                   "(SELECT {kkeys} FROM json_populate_recordset(NULL::{tbl}, %s::json) AS k)").format(
        tbl=table_name(table), tkeys=_ids(table['key'], 't'), kkeys=_ids(table['key'], 'k'))


def mismatches(table):
    """Keys (JSON text) of written rows that differ from the source rows (parameter: their text forms): a trigger or
    a rule changed what was written."""
    return sql.SQL("SELECT json_build_array({ukeys})::text AS key FROM unnest(%s::{tbl}[]) AS u "
                   "WHERE NOT EXISTS (SELECT 1 FROM {tbl} AS t WHERE ({tkeys}) = ({ukeys}) "
                   "AND {thash} = {uhash})").format(
        tbl=table_name(table), ukeys=_ids(table['key'], 'u'), tkeys=_ids(table['key'], 't'),
        thash=row_hash(table, 't'), uhash=row_hash(table, 'u'))


def column_max(table, column, with_rows=False):
    """The largest value of a column in the table; `with_rows`: once the restore is done - without the rows it deletes
    (parameter: their keys as JSON) and with the rows it writes (parameter: their text forms)."""
    if not with_rows:
        return sql.SQL("SELECT max({col})::numeric FROM {tbl}").format(
            col=sql.Identifier(column), tbl=table_name(table))
    return sql.SQL("SELECT max(v)::numeric FROM (SELECT t.{col} AS v FROM {tbl} AS t WHERE ({tkeys}) NOT IN "
                   "(SELECT {kkeys} FROM json_populate_recordset(NULL::{tbl}, %s::json) AS k) UNION ALL "
                   "SELECT {col} FROM unnest(%s::{tbl}[])) AS x").format(
        col=sql.Identifier(column), tbl=table_name(table), tkeys=_ids(table['key'], 't'),
        kkeys=_ids(table['key'], 'k'))


def sequence_position(sequence):
    return sql.SQL("SELECT last_value::numeric AS last_value, is_called FROM {seq}").format(
        seq=qualified(sequence['schema'], sequence['name']))


SETVAL_SQL = "SELECT setval(%s::regclass, %s::bigint, true)"
