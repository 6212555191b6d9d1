# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tracking tables and the runner lock of pg_migrate, on the migration session.

* ``public.dbops_schema_history``: the collection's history (version, name, SHA-256 of the up and down sections,
  applied_at, applied_by, duration_s, transactional, started_at and finished_at: a non-transactional migration
  has its row written before its first statement and finished_at set after its last, so one killed half-way is
  seen as interrupted); a non-transactional down sets reverting_at before its first statement (the row goes at its
  end), so one killed half-way is reported as interrupted too.
* dbmate's ``schema_migrations(version)``, when it exists: its versions count as applied, and pg_migrate keeps it
  up to date (a version applied here is inserted, one reverted is deleted), so dbmate and pg_migrate agree.
* One runner at a time: a session-level advisory lock taken with ``pg_try_advisory_lock`` in a retry loop (never
  the blocking ``pg_advisory_lock`` nor a transaction-level lock: both deadlock or hang with CREATE INDEX
  CONCURRENTLY run by the lock holder).
"""

from __future__ import annotations

import time

from ansible_collections.procgenie.dbops.plugins.module_utils import _lock_retry
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import psycopg2

SCHEMA = 'public'
HISTORY = 'dbops_schema_history'
DBMATE = 'schema_migrations'
# the advisory lock key of pg_migrate (one runner per database): 'dbops' spelled in hex, plus 13
LOCK_KEY = 0x6462_6f70 + 13
LOCK_POLL = 0.2


def _sql():
    return psycopg2.sql


def history_exists(session):
    return session.scalar('SELECT to_regclass(%s) IS NOT NULL', ('%s.%s' % (SCHEMA, HISTORY),))


def read_history(session):
    """{version: row} of the history table ({} when it does not exist yet)."""
    if not history_exists(session):
        return {}
    query = _sql().SQL('SELECT version, name, up_sha256, down_sha256, applied_at::text AS applied_at, applied_by, '
                       'duration_s::float8 AS duration_s, transactional, started_at::text AS started_at, '
                       'finished_at::text AS finished_at, to_jsonb(h) ->> %s AS reverting_at FROM {} h ORDER BY version').format(
                           _sql().Identifier(SCHEMA, HISTORY))
    return dict((r['version'], r) for r in session.rows(query, ('reverting_at',)))


def dbmate_table(session):
    """The dbmate table to honour: the regclass text of a schema_migrations with a version column and no
    golang-migrate `dirty` column, else None."""
    row = session.row(
        "SELECT c.oid::regclass::text AS name, "
        "bool_or(a.attname = 'version') AS has_version, bool_or(a.attname = 'dirty') AS has_dirty "
        "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.oid = to_regclass(%s) GROUP BY c.oid", (DBMATE,))
    if row and row['has_version'] and not row['has_dirty']:
        return row['name']
    return None


def read_dbmate(session, table):
    if table is None:
        return []
    return [r['version'] for r in session.rows(
        _sql().SQL('SELECT version::text AS version FROM {}').format(_dbmate_identifier(table)))]


def _dbmate_identifier(table):
    return _sql().Identifier(*[part.strip('"') for part in table.split('.')])


def create_history(session):
    session.execute(_sql().SQL(
        'CREATE TABLE IF NOT EXISTS {} (version text PRIMARY KEY, name text NOT NULL, up_sha256 text NOT NULL, '
        'down_sha256 text NOT NULL, applied_at timestamptz, applied_by text NOT NULL DEFAULT current_user, '
        'duration_s numeric, transactional boolean NOT NULL, '
        'started_at timestamptz NOT NULL DEFAULT clock_timestamp(), finished_at timestamptz)').format(
            _sql().Identifier(SCHEMA, HISTORY)))
    # added after the first release: a history table made before it gains the column
    session.execute(_sql().SQL('ALTER TABLE {} ADD COLUMN IF NOT EXISTS reverting_at timestamptz').format(
        _sql().Identifier(SCHEMA, HISTORY)))


def record_start(session, migration, transactional):
    """The history row of a migration about to run (finished_at NULL until record_end)."""
    session.execute(_sql().SQL(
        'INSERT INTO {} (version, name, up_sha256, down_sha256, transactional, started_at, finished_at, '
        'applied_at, duration_s) VALUES (%s, %s, %s, %s, %s, clock_timestamp(), NULL, NULL, NULL) '
        'ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, up_sha256 = EXCLUDED.up_sha256, '
        'down_sha256 = EXCLUDED.down_sha256, transactional = EXCLUDED.transactional, '
        'started_at = EXCLUDED.started_at, finished_at = NULL, applied_at = NULL, duration_s = NULL, '
        'applied_by = current_user, reverting_at = NULL').format(_sql().Identifier(SCHEMA, HISTORY)),
        (migration.version, migration.name, migration.up.sha256,
         migration.down.sha256 if migration.down else _empty_sha(), transactional))


def _empty_sha():
    from ansible_collections.procgenie.dbops.plugins.module_utils.migrate.source import sha256_of
    return sha256_of(None)


def record_end(session, migration, duration, dbmate):
    session.execute(_sql().SQL(
        'UPDATE {} SET finished_at = clock_timestamp(), applied_at = clock_timestamp(), duration_s = %s, '
        'applied_by = current_user WHERE version = %s').format(_sql().Identifier(SCHEMA, HISTORY)),
        (round(duration, 3), migration.version))
    if dbmate is not None:
        session.execute(_sql().SQL('INSERT INTO {} (version) VALUES (%s) ON CONFLICT DO NOTHING').format(
            _dbmate_identifier(dbmate)), (migration.version,))


def record_down_start(session, version):
    """A non-transactional down about to run: until record_down removes the row, it shows as interrupted."""
    session.execute(_sql().SQL('UPDATE {} SET reverting_at = clock_timestamp() WHERE version = %s').format(
        _sql().Identifier(SCHEMA, HISTORY)), (version,))


def record_down(session, version, dbmate):
    if history_exists(session):
        session.execute(_sql().SQL('DELETE FROM {} WHERE version = %s').format(_sql().Identifier(SCHEMA, HISTORY)),
                        (version,))
    if dbmate is not None:
        session.execute(_sql().SQL('DELETE FROM {} WHERE version = %s').format(_dbmate_identifier(dbmate)),
                        (version,))


def try_runner_lock(session, wait, poll=LOCK_POLL):
    """Take the runner lock, retrying pg_try_advisory_lock for up to `wait` seconds. Returns None when taken, else
    the pids holding it."""
    deadline = time.monotonic() + wait
    while True:
        if session.scalar('SELECT pg_try_advisory_lock(%s)', (LOCK_KEY,)):
            return None
        if time.monotonic() >= deadline:
            return runner_lock_holders(session)
        time.sleep(poll)


def runner_lock_holders(session):
    return [r['pid'] for r in session.rows(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = %s "
        "AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY pid", (LOCK_KEY,))]


def release_runner_lock(session):
    session.scalar('SELECT pg_advisory_unlock(%s)', (LOCK_KEY,))


def invalid_indexes(session, names):
    """The INVALID indexes among `names` ((schema or None, name) pairs): [(schema, name)]."""
    found = []
    for schema, name in names:
        row = session.row(
            'SELECT n.nspname AS schema, c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid '
            'JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND i.indexrelid = '
            "to_regclass(CASE WHEN %s::text IS NULL THEN quote_ident(%s) ELSE quote_ident(%s) || '.' || "
            'quote_ident(%s) END)', (schema, name, schema, name))
        if row and (row['schema'], row['name']) not in found:
            found.append((row['schema'], row['name']))
    return found


def drop_index_concurrently(session, schema, name):
    session.execute(_sql().SQL('DROP INDEX CONCURRENTLY IF EXISTS {}').format(_sql().Identifier(schema, name)))


def lock_holders(session, relations):
    """Pids (other than ours) holding a granted lock on one of `relations` (names as written in the SQL; resolved
    by the server, those that do not exist any more left out)."""
    oids = [r['oid'] for r in session.rows(
        'SELECT to_regclass(r)::oid AS oid FROM unnest(%s::text[]) AS r WHERE to_regclass(r) IS NOT NULL',
        (list(relations),))]
    return _lock_retry.lock_holders(session, oids)
