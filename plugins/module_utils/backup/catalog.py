# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the backup modules read from the catalogs: tables, row counts, RLS state, tenant tables in FK order.

Tables named by a user, foreign keys and their order come from the shared catalog module (`_catalog`: one home for
every concern); this module adds what only backups read. Identifiers go into SQL only through sql.Identifier, values
only as parameters; table names a user gives are resolved by the server, never pasted into SQL or into pg_dump's
patterns unquoted."""

from __future__ import annotations

import re
import uuid

from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, fk_order, foreign_keys
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql

TENANT_ID_TYPES = ('uuid', 'int', 'text')
UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z')


# ---------------------------------------------------------------- pure helpers
def validate_tenant_id(value, id_type='uuid'):
    """The tenant id in canonical form; raises CatalogError with a clear reason."""
    text = '' if value is None else str(value).strip()
    if not text:
        raise CatalogError('tenant is required for kind=tenant')
    if id_type != 'text' and any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f for ch in text):
        raise CatalogError('tenant %r holds control characters; only tenant_id_type=text allows them' % text)
    if id_type == 'uuid':
        if not UUID_RE.match(text):
            raise CatalogError('tenant %r is not a UUID (set tenant_id_type for other tenant keys)' % text)
        return str(uuid.UUID(text))
    if id_type == 'int':
        if not re.match(r'^-?[0-9]{1,19}\Z', text) or not -2 ** 63 <= int(text) < 2 ** 63:
            raise CatalogError('tenant %r is not an integer' % text)
        return int(text)
    if id_type == 'text':
        if '\x00' in text:
            raise CatalogError('tenant contains a NUL character')
        return text
    raise CatalogError('tenant_id_type must be one of %s' % ', '.join(TENANT_ID_TYPES))


def dump_pattern(schema, name):
    """A pg_dump -t pattern matching exactly one table: both parts double-quoted, so wildcards, dots and case
    are literal (quotes doubled, as in psql patterns)."""
    return '"%s"."%s"' % (schema.replace('"', '""'), name.replace('"', '""'))


# ---------------------------------------------------------------- catalog reads
TABLE_SELECT = (
    "SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind, "
    "c.relispartition AS is_partition, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qname "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ")


def table_query(tail):
    """The tables query (oid, schema, name, relkind, is_partition, qname) with a WHERE/ORDER BY tail."""
    return sql.SQL(TABLE_SELECT + tail)


def user_tables(session):
    """Every ordinary and partitioned table of user schemas (not extension members, not temporary)."""
    return session.rows(table_query(
        "WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp' "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
        "AND d.deptype = 'e') "
        "ORDER BY n.nspname, c.relname"))


def count_rows(session, tables, where_column=None, where_value=None):
    """Exact row count of every table ({qname: count}), in the session's transaction (its snapshot).

    A partitioned table counts its partitions' rows; an ordinary table only its own (ONLY), as pg_dump dumps it."""
    counts = {}
    for table in tables:
        query = sql.SQL('SELECT count(*) FROM {only}{table}').format(
            only=sql.SQL('' if table['relkind'] == 'p' else 'ONLY '),
            table=sql.Identifier(table['schema'], table['name']))
        params = None
        if where_column:
            query = query + sql.SQL(' WHERE {col} = %s').format(col=sql.Identifier(where_column))
            params = [where_value]
        counts[table['qname']] = session.scalar(query, params)
    return counts


def rls_state(session, tables):
    """RLS flags and policies of the tables: {qname: {enabled, forced, policies: [...]}} (policies by name)."""
    if not tables:
        return {}
    oids = [t['oid'] for t in tables]
    flags = session.rows(sql.SQL(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qname, c.relrowsecurity AS enabled, "
        "c.relforcerowsecurity AS forced FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = ANY(%s::oid[])"), [oids])
    policies = session.rows(sql.SQL(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qname, p.polname AS name, p.polcmd::text AS cmd, "
        "p.polpermissive AS permissive, "
        "ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END "
        "      FROM unnest(p.polroles) AS r ORDER BY 1) AS roles, "
        "pg_get_expr(p.polqual, p.polrelid) AS using_expr, pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr "
        "FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE p.polrelid = ANY(%s::oid[]) ORDER BY 1, 2"), [oids])
    state = dict((f['qname'], dict(enabled=f['enabled'], forced=f['forced'], policies=[])) for f in flags)
    for policy in policies:
        qname = policy.pop('qname')
        state[qname]['policies'].append(policy)
    return state


def rls_differences(expected, actual):
    """Pure: the ways the restored RLS state differs from the manifest's ({qname: ...} both)."""
    problems = []
    for qname in sorted(expected):
        want, have = expected[qname], actual.get(qname)
        if have is None:
            problems.append('%s: table missing after restore' % qname)
            continue
        for flag in ('enabled', 'forced'):
            if bool(want.get(flag)) != bool(have.get(flag)):
                problems.append('%s: row level security %s is %s, the source had %s'
                                % (qname, flag, have.get(flag), want.get(flag)))
        wanted = dict((p['name'], p) for p in want.get('policies') or [])
        got = dict((p['name'], p) for p in have.get('policies') or [])
        for name in sorted(set(wanted) | set(got)):
            if name not in got:
                problems.append('%s: policy %s missing after restore' % (qname, name))
            elif name not in wanted:
                problems.append('%s: policy %s was not in the source' % (qname, name))
            elif wanted[name] != got[name]:
                problems.append('%s: policy %s differs from the source' % (qname, name))
    return problems


def tenant_tables(session, column, root_table=None, root_key='id'):
    """The tables holding tenant rows, parents before children (FK order), and the column each is filtered on.

    Every top-level table with `column` (partitioned ones as a whole, their partitions not again), plus the
    root table (e.g. tenants) filtered on its key. Returns (tables, cyclic, notes)."""
    root_note = None
    tables = session.rows(table_query(
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't' "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp' "
        "AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = %s "
        "AND a.attnum > 0 AND NOT a.attisdropped) "
        "ORDER BY n.nspname, c.relname"), [column])
    if not tables:
        # the tenants row alone is no tenant backup: a misspelled column must not give a "successful" one
        raise CatalogError('no table has a column %s (tenant_column); a tenant backup needs the tables holding the '
                           "tenant's rows" % column)
    for table in tables:
        table['filter_column'] = column
    root = None
    if root_table:
        oid = session.scalar(sql.SQL('SELECT to_regclass(%s)::oid::bigint'), [root_table])
        root = session.row(table_query('WHERE c.oid = %s'), [oid]) if oid is not None else None
        if root is None:
            root_note = 'tenant_table %s does not exist; the artifact has no tenant row' % root_table
        elif root['oid'] not in [t['oid'] for t in tables]:
            root['filter_column'] = root_key
            tables.insert(0, root)
    by_oid = dict((t['oid'], t) for t in tables)
    ordered, cyclic = fk_order([t['oid'] for t in tables], foreign_keys(session, tables))
    return [by_oid[o] for o in ordered], [by_oid[o]['qname'] for o in cyclic], [root_note] if root_note else []


def copy_columns(session, table):
    """Columns COPY can write back: not dropped, not generated."""
    return [r['attname'] for r in session.rows(sql.SQL(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped "
        "AND attgenerated = '' ORDER BY attnum"), [table['oid']])]
