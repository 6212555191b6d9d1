# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_read_only with scope=tables on a PostgreSQL server: the tables resolved by the server, their record
(`procgenie_dbops.read_only_tables`, one row per stopped table with the write privileges revoked from it), the
sessions holding write locks on them or their sequences, the roles privileges cannot stop, and the helper with
which pg_row_restore writes a stopped table without being a superuser (`lift_for_restore`/`drop_lift`).

The grants themselves are read, revoked and put back with read_only.postgres (write_grants, run_grant_statements),
as revoke_writes does; the decisions are in read_only.plan."""

from __future__ import annotations

import json

from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, resolve_tables
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import psycopg2, sql
from ansible_collections.procgenie.dbops.plugins.module_utils.read_only.plan import (
    RECORD_SCHEMA, TABLES_RECORD, WRITE_LOCKS, ReadOnlyError)

# the privileges pg_row_restore needs on a table it restores rows of (FOR UPDATE needs UPDATE)
RESTORE_PRIVILEGES = ('INSERT', 'UPDATE', 'DELETE')


def _record():
    return sql.Identifier(RECORD_SCHEMA, TABLES_RECORD)


def resolve(dbs, names):
    """The tables of `names` (SQL syntax, resolved by the server; partitions of partitioned tables included, they
    are written directly too): rows oid, schema, name, qname, owner. Refuses a name that is no table and the
    module's own record."""
    # a name without schema is looked up on the search_path sessions of the database start with (the module's
    # sessions use pg_catalog only), for this lookup only
    dbs.execute(sql.SQL("SELECT set_config('search_path', reset_val, true) FROM pg_settings "
                        "WHERE name = 'search_path'"))
    try:
        tables = resolve_tables(dbs, names, details=True)
    except CatalogError as exc:
        raise ReadOnlyError('tables: %s' % exc)
    finally:
        if dbs.conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_INERROR:
            dbs.execute(sql.SQL("SELECT set_config('search_path', 'pg_catalog', true)"))
    ours = [t['qname'] for t in tables if t['schema'] == RECORD_SCHEMA]
    if ours:
        raise ReadOnlyError('tables: %s is pg_read_only\'s own record, not an application table' % ', '.join(ours))
    return tables


def owners(dbs, relids):
    """relid -> owner oid of the tables."""
    if not relids:
        return {}
    rows = dbs.rows(sql.SQL('SELECT oid::bigint AS relid, relowner::bigint AS owner FROM pg_class '
                            'WHERE oid = ANY (%s::oid[])'), ([int(r) for r in relids],))
    return dict((r['relid'], r['owner']) for r in rows)


def read_tables_record(dbs):
    """The stopped tables recorded in the database: None when the record table does not exist, else a list of rows
    relid, schema, table, since, revoked (today's names, or the recorded ones when the table is gone, `gone`).
    Refuses a record table that a role other than a superuser or the module's login role owns."""
    row = dbs.row(sql.SQL(
        "SELECT c.oid IS NOT NULL AS has_table, c.relkind, "
        "(SELECT r.rolsuper OR r.rolname = current_user FROM pg_roles r WHERE r.oid = c.relowner) AS table_ok, "
        "(SELECT r.rolsuper OR r.rolname = current_user FROM pg_roles r WHERE r.oid = n.nspowner) AS schema_ok "
        "FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = %s "
        "WHERE n.nspname = %s"), (TABLES_RECORD, RECORD_SCHEMA))
    if row is None or not row['has_table']:
        return None
    if not row['table_ok'] or not row['schema_ok'] or row['relkind'] != 'r':
        raise ReadOnlyError('The table %s.%s in this database belongs to a role that is neither a superuser nor the '
                            'module\'s login role: pg_read_only keeps its record there and does not trust it; drop '
                            'or rename it' % (RECORD_SCHEMA, TABLES_RECORD))
    rows = dbs.rows(sql.SQL(
        "SELECT r.relid::bigint AS relid, coalesce(n.nspname::text, r.schema) AS schema, "
        "coalesce(c.relname::text, r.\"table\") AS \"table\", c.oid IS NULL AS gone, r.since, r.revoked "
        "FROM {} r LEFT JOIN pg_class c ON c.oid = r.relid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace "
        "ORDER BY 2, 3").format(_record()))
    for item in rows:
        item['revoked'] = list(item['revoked'] or [])
        item['qname'] = '%s.%s' % (item['schema'], item['table'])
    return rows


def write_table_records(dbs, tables, revoked_by_table):
    """The record of each table whose writes this run stops (or whose newly found grants it revokes), written in
    the transaction of the REVOKEs, before them. The record is readable by every role (the ACLs it copies are
    public in pg_class anyway), so that pg_row_restore can find the tables it may lift the stop for."""
    dbs.execute(sql.SQL('CREATE SCHEMA IF NOT EXISTS {}').format(sql.Identifier(RECORD_SCHEMA)))
    dbs.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (relid oid PRIMARY KEY, schema text NOT NULL, \"table\" text NOT NULL, "
        "since timestamptz NOT NULL DEFAULT clock_timestamp(), revoked jsonb NOT NULL DEFAULT '[]', "
        "updated timestamptz NOT NULL DEFAULT clock_timestamp())").format(_record()))
    dbs.execute(sql.SQL(
        "COMMENT ON TABLE {} IS 'procgenie.dbops pg_read_only scope=tables: the tables whose writes are stopped and "
        "the write privileges revoked from them; state=off grants them back and drops this table'").format(
            _record()))
    dbs.execute(sql.SQL('GRANT USAGE ON SCHEMA {} TO PUBLIC').format(sql.Identifier(RECORD_SCHEMA)))
    dbs.execute(sql.SQL('GRANT SELECT ON TABLE {} TO PUBLIC').format(_record()))
    for table in tables:
        dbs.execute(sql.SQL(
            "INSERT INTO {} AS r (relid, schema, \"table\", revoked) VALUES (%s, %s, %s, %s::jsonb) "
            "ON CONFLICT (relid) DO UPDATE SET schema = EXCLUDED.schema, \"table\" = EXCLUDED.\"table\", "
            "revoked = EXCLUDED.revoked, updated = clock_timestamp()").format(_record()),
            (int(table['oid']), table['schema'], table['name'],
             json.dumps(revoked_by_table.get(int(table['oid'])) or [])))


def delete_table_records(dbs, relids, warn):
    """Forget the tables (after their grants are back); the record table, and the schema, go with the last one."""
    dbs.execute(sql.SQL('DELETE FROM {} WHERE relid = ANY (%s::oid[])').format(_record()),
                ([int(r) for r in relids],))
    if dbs.scalar(sql.SQL('SELECT count(*) FROM {}').format(_record())):
        return
    dbs.execute(sql.SQL('DROP TABLE {}').format(_record()))
    if dbs.scalar(sql.SQL("SELECT to_regclass(%s) IS NULL"), ('%s.%s' % (RECORD_SCHEMA, 'read_only_mode'),)):
        dbs.execute(sql.SQL('SAVEPOINT pg_read_only_schema'))
        try:
            dbs.execute(sql.SQL('DROP SCHEMA IF EXISTS {}').format(sql.Identifier(RECORD_SCHEMA)))
        except Exception:  # pylint: disable=broad-except  # psycopg2.Error: other objects in it
            dbs.execute(sql.SQL('ROLLBACK TO SAVEPOINT pg_read_only_schema'))
            warn('The schema %s holds other objects, so it was left in place' % RECORD_SCHEMA)
        dbs.execute(sql.SQL('RELEASE SAVEPOINT pg_read_only_schema'))


def tables_record_exists(dbs):
    return bool(dbs.scalar(sql.SQL('SELECT to_regclass(%s) IS NOT NULL'), ('%s.%s' % (RECORD_SCHEMA, TABLES_RECORD),)))


def owned_sequences(dbs, relids):
    """The sequences owned by the tables' columns (serial and identity): rows oid, qname."""
    if not relids:
        return []
    return dbs.rows(sql.SQL(
        "SELECT DISTINCT s.oid::bigint AS oid, quote_ident(n.nspname) || '.' || quote_ident(s.relname) AS qname "
        "FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "JOIN pg_namespace n ON n.oid = s.relnamespace WHERE d.classid = 'pg_class'::regclass "
        "AND d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY (%s::oid[]) AND d.deptype IN ('a', 'i') "
        "ORDER BY 2"), ([int(r) for r in relids],))


def lock_holders(session, database, relations, exclude):
    """{pid: [{mode, relation}]} of the sessions (other than `exclude`) holding a write lock (RowExclusiveLock or
    stronger, granted) on the relations ({oid: qname}) of `database`."""
    if not relations:
        return {}
    rows = session.rows(sql.SQL(
        "SELECT l.pid, l.relation::bigint AS relid, l.mode FROM pg_locks l "
        "WHERE l.locktype = 'relation' AND l.granted AND l.database = (SELECT oid FROM pg_database "
        "WHERE datname = %s) AND l.relation = ANY (%s::oid[]) AND l.mode = ANY (%s) "
        "AND l.pid <> ALL (%s::int[]) ORDER BY l.pid, l.relation"),
        (database, sorted(int(r) for r in relations), list(WRITE_LOCKS), list(exclude)))
    found = {}
    for row in rows:
        found.setdefault(row['pid'], []).append(dict(mode=row['mode'], relation=relations[row['relid']]))
    return found


def free_writers(session):
    """The roles privileges do not stop: superusers, and (PostgreSQL 14 and later) members of pg_write_all_data
    (INSERT, UPDATE, DELETE on every table)."""
    return session.rows(sql.SQL(
        "SELECT rolname::text AS role, 'superuser' AS why FROM pg_roles WHERE rolsuper "
        "UNION ALL SELECT r.rolname::text, 'member of pg_write_all_data' FROM pg_roles r "
        "WHERE to_regrole('pg_write_all_data') IS NOT NULL AND NOT r.rolsuper AND r.rolname !~ '^pg_' "
        "AND pg_has_role(r.oid, to_regrole('pg_write_all_data'), 'USAGE') ORDER BY 1"))


def referencing_tables(dbs, relids):
    """Tables outside `relids` with a foreign key to one of them (their writes of the key fail while stopped: the
    foreign-key check locks the referenced row as the referenced table's owner, which needs UPDATE)."""
    if not relids:
        return []
    oids = [int(r) for r in relids]
    return [r['qname'] for r in dbs.rows(sql.SQL(
        "SELECT DISTINCT conrelid::regclass::text AS qname FROM pg_constraint WHERE contype = 'f' "
        "AND confrelid = ANY (%s::oid[]) AND conrelid <> ALL (%s::oid[]) ORDER BY 1"), (oids, oids))]


# ---------------------------------------------------------------- pg_row_restore through a stopped table

def lift_for_restore(session, relids):
    """For pg_row_restore, inside its one transaction: when its login role is not a superuser and lacks a write
    privilege on a table pg_read_only stopped (scope=tables) - one of the tables it restores, or a table they
    reference (the foreign-key check locks the referenced row as that table's owner, which needs UPDATE) - and the
    login role is the table's owner or a member of it, grant the privileges the owner lacks (INSERT, UPDATE, DELETE)
    to the owner, as the owner. `drop_lift` revokes exactly those again before the commit, so no other session ever
    sees them and the ACL stays as recorded. Returns the grants made: [(owner, schema, table, [privileges])]; []
    when the login is a superuser or nothing it writes is stopped."""
    if not relids or session.scalar(sql.SQL('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')):
        return []
    record = '%s.%s' % (RECORD_SCHEMA, TABLES_RECORD)
    readable = session.scalar(sql.SQL(
        "SELECT to_regclass(%s) IS NOT NULL AND has_schema_privilege(%s, 'USAGE') "
        "AND has_table_privilege(%s, 'SELECT')"), (record, RECORD_SCHEMA, record))
    if not readable:
        return []
    oids = [int(r) for r in relids]
    rows = session.rows(sql.SQL(
        "SELECT pg_get_userbyid(c.relowner)::text AS owner, n.nspname::text AS schema, c.relname::text AS "
        "\"table\", array_agg(p.priv ORDER BY p.ord) AS privileges "
        "FROM {} r JOIN pg_class c ON c.oid = r.relid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN unnest(%s::text[]) WITH ORDINALITY AS p(priv, ord) "
        "WHERE (r.relid = ANY (%s::oid[]) OR r.relid IN (SELECT confrelid FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid = ANY (%s::oid[]))) AND NOT has_table_privilege(c.relowner, c.oid, p.priv) "
        "AND pg_has_role(c.relowner, 'MEMBER') GROUP BY 1, 2, 3 ORDER BY 2, 3").format(_record()),
        (list(RESTORE_PRIVILEGES), oids, oids))
    grants = [(r['owner'], r['schema'], r['table'], list(r['privileges'])) for r in rows]
    _lift(session, grants, grant=True)
    return grants


def drop_lift(session, grants):
    """Revoke what lift_for_restore granted, before the commit of the same transaction (deferred constraints are
    checked first, while the owner still holds the privileges their checks need)."""
    if grants:
        session.execute(sql.SQL('SET CONSTRAINTS ALL IMMEDIATE'))
    _lift(session, grants, grant=False)


def _lift(session, grants, grant):
    for owner, schema, table, privileges in grants:
        if any(p not in RESTORE_PRIVILEGES for p in privileges):
            raise ReadOnlyError('Unexpected privilege %s' % ', '.join(privileges))
        privs = sql.SQL(', ').join(sql.SQL(p) for p in privileges)
        session.execute(sql.SQL('SET LOCAL ROLE {}').format(sql.Identifier(owner)))
        session.execute(sql.SQL('GRANT {} ON TABLE {} TO {}' if grant else 'REVOKE {} ON TABLE {} FROM {}').format(
            privs, sql.Identifier(schema, table), sql.Identifier(owner)))
        session.execute(sql.SQL('RESET ROLE'))
