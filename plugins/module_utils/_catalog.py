# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tables, their names and their foreign keys, as every concern reads them (row-level security, backups and
restores, and the coming diff and migrations). PRIVATE to the collection (as every `_` module).

* `parse_table_name`: a table name a user gave in SQL syntax (``vendors``, ``public.vendors``,
  ``"Odd ""Name"" x"``);
  `literal_table_name`: the literal convention of the row-level security modules (``schema.table`` split at the
  first dot, case and spaces kept, or ``{schema:, name:}``). Both pure.
* `resolve_tables`: the tables of such names (and, optionally, every table of some schemas with a given column),
  with their partitions, in ONE query whatever the number of tables.
* `foreign_keys` and `fk_order`: the (referencing, referenced) pairs among tables, and the tables ordered so that a
  referenced table comes before the tables referencing it (pure).

Names reach the server only as parameters (compared with the catalogs, or quoted by quote_ident before
to_regclass); identifiers reach statements only through psycopg2.sql.Identifier (`qualified`).
"""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import database_error_message, psycopg2, sql

# schemas whose tables are never user data
SYSTEM_SCHEMAS = ('pg_catalog', 'information_schema', 'pg_toast')
TABLE_KINDS = ('r', 'p')


class CatalogError(Exception):
    """A table name that is malformed, or names no table."""


# ---------------------------------------------------------------- names (pure)
def _fold(text):
    """PostgreSQL's folding of an unquoted identifier: ASCII letters only (downcase_identifier, UTF-8)."""
    return ''.join(chr(ord(ch) + 32) if 'A' <= ch <= 'Z' else ch for ch in text)


def parse_table_name(text, default_schema=None):
    """Pure: (schema, table) of a table name in SQL syntax: ``table`` or ``schema.table``, unquoted parts folded to
    lower case (as PostgreSQL folds them), "quoted" parts taken as written with a doubled quote as one. The schema
    is `default_schema` (None: the server's search_path decides) when the name has none. Raises CatalogError for a
    malformed name (unterminated quote, more than two parts, an empty part)."""
    parts, current, i = [], '', 0
    value = str(text or '').strip()
    while i < len(value):
        char = value[i]
        if char == '"':
            end = i + 1
            quoted = ''
            while True:
                if end >= len(value):
                    raise CatalogError('table name %r has an unterminated quote' % text)
                if value[end] == '"':
                    if end + 1 < len(value) and value[end + 1] == '"':
                        quoted += '"'
                        end += 2
                        continue
                    break
                quoted += value[end]
                end += 1
            current += quoted
            i = end + 1
        elif char == '.':
            parts.append(current)
            current = ''
            i += 1
        else:
            current += _fold(char)
            i += 1
    parts.append(current)
    if len(parts) > 2 or not all(parts) or any('\x00' in p for p in parts):
        raise CatalogError('%r is not a table name (table or schema.table)' % text)
    return (parts[0], parts[1]) if len(parts) == 2 else (default_schema, parts[0])


def literal_table_name(entry, default_schema='public'):
    """Pure: (schema, table) of 'schema.table', 'table' or {schema:, name:}, names taken literally (case, spaces
    and quotes kept; split at the first dot, so a name with a dot needs the dict). Raises CatalogError."""
    if isinstance(entry, dict):
        schema, name = entry.get('schema') or default_schema, entry.get('name')
    elif isinstance(entry, str) and '.' in entry:
        schema, name = entry.split('.', 1)
    else:
        schema, name = default_schema, entry
    for part in (schema, name):
        if not isinstance(part, str) or not part or '\x00' in part:
            raise CatalogError('invalid table %r' % (entry,))
    return schema, name


def quote_ident(name):
    """Pure: PostgreSQL's quote_ident for display (qname); statements use `qualified` (psycopg2.sql)."""
    plain = name and (name[0] == '_' or 'a' <= name[0] <= 'z') and all(
        ch == '_' or ch == '$' or 'a' <= ch <= 'z' or '0' <= ch <= '9' for ch in name)
    return name if plain else '"%s"' % name.replace('"', '""')


def qualified(schema, name):
    """schema.name as a psycopg2.sql composable (both parts identifiers)."""
    return sql.SQL('.').join([sql.Identifier(schema), sql.Identifier(name)])


# ---------------------------------------------------------------- foreign-key order (pure)
def fk_order(tables, edges):
    """Pure: `tables` (any hashable keys: oids, (schema, name) pairs, names) ordered so that every referenced table
    comes before the tables whose foreign keys point at it. `edges` are (referencing, referenced) pairs; self
    references and edges to tables not listed are ignored; a table listed twice counts once.

    Placed in passes over the given order: each pass places, in order, every table whose referenced tables are
    all placed (so ties keep the given order). Returns (ordered, cyclic): the tables left (in a foreign-key
    cycle, or referencing one) come last, in the given order, and are `cyclic` too."""
    wanted = list(dict.fromkeys(tables))
    parents = dict((t, set()) for t in wanted)
    for child, parent in edges:
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    ordered, placed = [], set()
    progress = True
    while progress:
        progress = False
        for table in wanted:
            if table not in placed and parents[table] <= placed:
                ordered.append(table)
                placed.add(table)
                progress = True
    cyclic = [t for t in wanted if t not in placed]
    return ordered + cyclic, cyclic


# ---------------------------------------------------------------- catalog reads
_TABLES_SQL = """
WITH RECURSIVE req AS (
    SELECT r.i::int AS i,
           CASE WHEN r.s IS NULL THEN to_regclass(quote_ident(r.t))::oid
                ELSE (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = r.s AND c.relname = r.t) END AS oid
      FROM unnest(%(schemas)s::text[], %(names)s::text[]) WITH ORDINALITY AS r(s, t, i)
), roots AS (
    SELECT oid, i FROM req WHERE oid IS NOT NULL
    UNION ALL
    SELECT c.oid, NULL::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(discover)s::text[]) AND c.relkind IN ('r', 'p')
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = %(column)s
                   AND a.attnum > 0 AND NOT a.attisdropped)
), tree AS (
    SELECT oid, i, 0 AS depth FROM roots
    UNION ALL
    SELECT h.inhrelid, tree.i, tree.depth + 1
      FROM pg_inherits h JOIN tree ON h.inhparent = tree.oid JOIN pg_class p ON p.oid = h.inhparent
     WHERE %(partitions)s AND (%(inheritance)s OR p.relkind = 'p')
), found AS (
    SELECT oid, min(i * 2 + (depth > 0)::int) AS sort_key, bool_or(depth = 0 AND i IS NOT NULL) AS requested,
           bool_or(depth = 0) AS root
      FROM tree GROUP BY oid
)
SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
       c.relispartition AS is_partition, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qname,
       found.requested AS _requested, found.sort_key AS _sort_key{details}{tenant}
  FROM found JOIN pg_class c ON c.oid = found.oid JOIN pg_namespace n ON n.oid = c.relnamespace{tenant_join}
 WHERE c.relkind IN ('r', 'p') OR found.root
 ORDER BY {order}
"""

_DETAILS = """,
       c.relrowsecurity AS rowsecurity, c.relforcerowsecurity AS forcerowsecurity,
       pg_get_userbyid(c.relowner) AS owner,
       ARRAY(SELECT k.attname FROM pg_index x JOIN pg_attribute k ON k.attrelid = x.indrelid
             AND k.attnum = ANY(x.indkey) WHERE x.indrelid = c.oid AND x.indisprimary
             ORDER BY array_position(x.indkey::int2[], k.attnum))::text[] AS primary_key"""

_TENANT = """,
       a.attnum IS NOT NULL AS has_tenant_column, format_type(a.atttypid, a.atttypmod) AS tenant_type,
       EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND a.attnum IS NOT NULL
               AND x.indkey[0] = a.attnum AND x.indisvalid) AS has_tenant_index"""

_TENANT_JOIN = """
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %(column)s AND a.attnum > 0 AND NOT a.attisdropped"""

_ORDERS = dict(given='_sort_key NULLS LAST, n.nspname, c.relname', name='n.nspname, c.relname')


def resolve_tables(session, names, discover=(), column=None, partitions=True, inheritance=False, details=False,
                   order='given', missing_ok=False):
    """The tables of `names`, in one query whatever their number.

    names: table names in SQL syntax (`parse_table_name`; a name without schema is looked up on the search_path,
      as to_regclass does), or (schema, table) pairs taken literally (schema None: the search_path).
    discover: schemas whose every table with `column` is added (partitions included, as they have it too).
    partitions: add the partitions of partitioned tables (every level); inheritance: add every inheritance child.
    details: add rowsecurity, forcerowsecurity, owner and primary_key (the key's columns in order).
    column: add has_tenant_column, tenant_type (format_type) and has_tenant_index (a valid index leading with it).
    order: 'given' (each named table, then its partitions by name; discovered tables last) or 'name'.

    Rows: oid, schema, name, relkind, is_partition, qname (quote_ident'ed schema.name), and the optional fields;
    a table reached twice comes once. Only ordinary and partitioned tables are returned. Unless `missing_ok`, a
    name that matches no table raises CatalogError naming the first such name (a view or sequence is "not a
    table"); with `missing_ok` such names are left out (compare the rows with what was asked)."""
    pairs = []
    for name in names:
        if isinstance(name, (tuple, list)):
            schema, table = name
        else:
            text = str(name or '').strip()
            if not text:
                raise CatalogError('an empty table name was given')
            try:
                schema, table = parse_table_name(text)
            except CatalogError as exc:
                raise CatalogError('%s is not a valid table name: %s' % (text, exc))
        pairs.append((schema, table))
    query = _TABLES_SQL.format(details=_DETAILS if details else '', tenant=_TENANT if column is not None else '',
                               tenant_join=_TENANT_JOIN if column is not None else '', order=_ORDERS[order])
    try:
        rows = session.rows(query, dict(
            schemas=[s for s, _t in pairs], names=[t for _s, t in pairs], discover=list(discover or []),
            column=column, partitions=bool(partitions), inheritance=bool(inheritance)))
    except psycopg2.Error as exc:
        raise CatalogError('the tables %s could not be looked up: %s' % (
            ', '.join(_shown(n) for n in names), database_error_message(exc)))
    tables, requested = [], []
    for row in rows:
        if row.pop('_requested'):
            requested.append(row)
        row.pop('_sort_key')
        if row['relkind'] in TABLE_KINDS:
            tables.append(row)
    if not missing_ok:
        _refuse_missing(pairs, names, requested)
    return tables


def _shown(name):
    return '%s.%s' % tuple(name) if isinstance(name, (tuple, list)) else str(name)


def _refuse_missing(pairs, names, requested):
    """CatalogError for the first name that matched no table (or a relation that is not a table)."""
    by_name = dict(((r['schema'], r['name']), r) for r in requested)
    unqualified = dict((r['name'], r) for r in requested)
    for (schema, table), given in zip(pairs, names):
        row = by_name.get((schema, table)) if schema is not None else unqualified.get(table)
        if row is None:
            raise CatalogError('table %s does not exist (or is not visible on the search_path; qualify it with its '
                               'schema)' % _shown(given))
        if row['relkind'] not in TABLE_KINDS:
            raise CatalogError('%s is not a table (relkind %s)' % (_shown(given), row['relkind']))


def foreign_keys(session, tables):
    """(referencing oid, referenced oid) of every foreign key of the tables (rows with an oid, or oids), in one
    query; edges to tables outside the list are kept (fk_order ignores them)."""
    oids = [t['oid'] if isinstance(t, dict) else t for t in tables]
    if not oids:
        return []
    rows = session.rows(sql.SQL(
        "SELECT DISTINCT conrelid::bigint AS child, confrelid::bigint AS parent FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid = ANY(%s::oid[]) ORDER BY 1, 2"), [oids])
    return [(r['child'], r['parent']) for r in rows]
