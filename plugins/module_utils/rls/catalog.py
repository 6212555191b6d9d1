# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog reads for row-level security: a constant number of queries whatever the number of tables."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils import _catalog
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql
from ansible_collections.procgenie.dbops.plugins.module_utils.rls.model import CMD_LETTERS

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


def managed_tables(session, requested, discover, column, partitions=True):
    """Tables asked for by (schema, name), taken literally, plus every table of the `discover` schemas with the
    tenant column, plus (with partitions) all their partitions and inheritance children, by name, with the RLS
    flags, owner, primary key and the tenant column's type and index. One query (_catalog.resolve_tables); a name
    that is no table is left out (the callers name what is missing)."""
    return _catalog.resolve_tables(session, requested, discover=discover, column=column, partitions=partitions,
                                   inheritance=partitions, details=True, order='name', missing_ok=True)


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


def roles_sql(roles):
    return sql.SQL(', ').join([sql.SQL('PUBLIC') if r == 'public' else sql.Identifier(r) for r in roles])
