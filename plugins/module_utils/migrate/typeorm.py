# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The application's TypeORM migrations table (pg_migrate source=typeorm).

TypeORM records applied migrations in ``migrations(id serial PK, timestamp int8, name varchar)`` (the table name is
the DataSource's ``migrationsTableName``). ``timestamp`` is the 13-digit suffix of the class name, not when the
migration ran; ``migration:show`` and ``migration:revert`` match by ``name`` - so does this module: migrations are
compared by name, never by timestamp."""

from __future__ import annotations


class TypeOrmError(Exception):
    """The TypeORM table or command cannot be used."""


def read_table(session, table):
    """The rows of the TypeORM table in id order ([] when it does not exist), and its regclass text (or None)."""
    regclass = session.scalar('SELECT to_regclass(%s)::text', (table,))
    if regclass is None:
        return [], None
    from ansible_collections.procgenie.dbops.plugins.module_utils._connection import psycopg2
    oid = session.scalar('SELECT to_regclass(%s)::oid', (table,))
    row = session.row('SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n '
                      'ON n.oid = c.relnamespace WHERE c.oid = %s', (oid,))
    columns = set(r['attname'] for r in session.rows(
        'SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped', (oid,)))
    if not {'id', 'timestamp', 'name'} <= columns:
        raise TypeOrmError('%s is not a TypeORM migrations table (it needs the columns id, timestamp, name)' % regclass)
    query = psycopg2.sql.SQL('SELECT id, "timestamp"::text AS "timestamp", name FROM {} ORDER BY id')
    rows = session.rows(query.format(psycopg2.sql.Identifier(row['schema'], row['name'])))
    return rows, regclass


def compare(rows, expected):
    """By name: the expected migrations not in the table (pending, in the expected order) and the applied ones not
    expected (unexpected, in id order). `expected` None: nothing to compare (both None)."""
    if expected is None:
        return None, None
    applied = set(r['name'] for r in rows)
    wanted = set(expected)
    pending = [name for name in expected if name not in applied]
    unexpected = [r['name'] for r in rows if r['name'] not in wanted]
    return pending, unexpected


def ran(before, after):
    """The rows added between two reads of the table (id order), and the names removed (reverted)."""
    seen = set((r['id'], r['name']) for r in before)
    now = set((r['id'], r['name']) for r in after)
    ran = [r for r in after if (r['id'], r['name']) not in seen]
    return ran, [r['name'] for r in before if (r['id'], r['name']) not in now]
