# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog reads for row-level security: a constant number of queries whatever the number of tables."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql
from ansible_collections.procgenie.dbops.plugins.module_utils._rls import CMD_LETTERS

TABLES_SQL = """
WITH RECURSIVE req AS (
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN unnest(%(schemas)s::text[], %(names)s::text[]) AS r(s, t) ON n.nspname = r.s AND c.relname = r.t
    UNION
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(discover)s::text[]) AND c.relkind IN ('r', 'p')
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = %(column)s
                   AND a.attnum > 0 AND NOT a.attisdropped)
), tree AS (
    SELECT oid FROM req
    UNION
    SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid WHERE %(partitions)s
)
SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
       c.relispartition AS is_partition,
       c.relrowsecurity AS rowsecurity, c.relforcerowsecurity AS forcerowsecurity,
       pg_get_userbyid(c.relowner) AS owner, a.attnum IS NOT NULL AS has_tenant_column,
       format_type(a.atttypid, a.atttypmod) AS tenant_type,
       EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND a.attnum IS NOT NULL
               AND x.indkey[0] = a.attnum AND x.indisvalid) AS has_tenant_index,
       ARRAY(SELECT k.attname FROM pg_index x JOIN pg_attribute k ON k.attrelid = x.indrelid
             AND k.attnum = ANY(x.indkey) WHERE x.indrelid = c.oid AND x.indisprimary
             ORDER BY array_position(x.indkey::int2[], k.attnum))::text[] AS primary_key
  FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %(column)s AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p')
 ORDER BY n.nspname, c.relname
"""

POLICIES_SQL = """
SELECT p.polrelid::bigint AS oid, n.nspname AS schema, c.relname AS table, p.polname AS name,
       p.polcmd::text AS cmd, p.polpermissive AS permissive,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END
               FROM unnest(p.polroles) AS r ORDER BY 1)::text[] AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using, pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {where}
 ORDER BY n.nspname, c.relname, p.polname
"""


def resolve_tables(session, requested, discover, column, partitions=True):
    """Tables asked for by name, plus every table of the `discover` schemas with the tenant column, plus
    (with partitions) all their partitions. One query."""
    return session.rows(TABLES_SQL, dict(
        schemas=[s for s, _t in requested], names=[t for _s, t in requested], discover=list(discover or []),
        column=column, partitions=bool(partitions)))


def _policy_row(row):
    row = dict(row)
    row['command'] = CMD_LETTERS.get(row.pop('cmd'), 'ALL')
    row['roles'] = list(row['roles'])
    return row


def policies_of(session, oids):
    """Policies of the given tables, with PostgreSQL's own deparse of their expressions. One query."""
    rows = session.rows(POLICIES_SQL.format(where='p.polrelid = ANY(%(oids)s::oid[])'), dict(oids=list(oids)))
    return [_policy_row(r) for r in rows]


def policies_in(session, schemas):
    """Policies of every table in the schemas (all schemas but the system ones when empty). One query."""
    if schemas:
        rows = session.rows(POLICIES_SQL.format(where='n.nspname = ANY(%(schemas)s::text[])'),
                            dict(schemas=list(schemas)))
    else:
        rows = session.rows(POLICIES_SQL.format(
            where="n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"), {})
    return [_policy_row(r) for r in rows]


def columns_named(session, oids, names):
    """{oid: {column: type}} for the given column names only. One query."""
    out = {}
    if not names or not oids:
        return out
    rows = session.rows(
        "SELECT attrelid::bigint AS oid, attname AS name, format_type(atttypid, atttypmod) AS type"
        "  FROM pg_attribute WHERE attrelid = ANY(%(oids)s::oid[]) AND attname = ANY(%(names)s::text[])"
        "   AND attnum > 0 AND NOT attisdropped", dict(oids=list(oids), names=sorted(names)))
    for r in rows:
        out.setdefault(r['oid'], {})[r['name']] = r['type']
    return out


def existing_roles(session, names):
    names = sorted(set(n for n in names if n != 'public'))
    if not names:
        return set()
    return set(r['rolname'] for r in session.rows(
        "SELECT rolname FROM pg_roles WHERE rolname = ANY(%(names)s::text[])", dict(names=names)))


def qualified(schema, name):
    return sql.SQL('.').join([sql.Identifier(schema), sql.Identifier(name)])


def roles_sql(roles):
    return sql.SQL(', ').join([sql.SQL('PUBLIC') if r == 'public' else sql.Identifier(r) for r in roles])
