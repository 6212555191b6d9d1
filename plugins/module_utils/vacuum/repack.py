# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_repack, the online alternative to VACUUM FULL: its client, the preflight of a table, its command, and the
leftovers of an interrupted run.

What pg_repack 1.4.8 does and does not do (read in its source and checked on the lab):

* It connects with ``PQconnectdb("dbname=%s host=%s ...")``, the database name pasted in as it is (from --dbname,
  else PGDATABASE): a name with a space or ``host=...`` in it would be read as further connection keywords. The
  module passes ``--dbname=<the name quoted as a libpq value>``, which that string reads back as the name itself.
* It takes the session-level advisory lock ``(16185446, oid - 2^31)`` for the table it works on, creates
  ``repack.pk_<oid>`` (type), ``repack.log_<oid>`` (table) and the trigger ``repack_trigger`` (``z_repack_trigger`` in
  older releases) on the table, commits, then builds ``repack.table_<oid>`` and its indexes ``repack.index_<oid>``,
  replays the log, and swaps. It has no SIGTERM handler: killed (a cancel, a timeout), it leaves all of these behind,
  and the trigger goes on copying every write of the table into the log table.
* On the next run it does NOT clean them: it prints ``WARNING: the table ... already has a trigger called
  "repack_trigger"``, skips the table and exits 0. Hence `find_leftovers` / `clean_leftovers` (run before any repack,
  holding pg_repack's own advisory lock so a pg_repack still running is never cut short) and the check after a run
  that the table was rewritten (its relfilenode changed), not only the exit code.
* ``--only-indexes`` builds ``index_<oid>`` CONCURRENTLY beside the table's own indexes; killed, an INVALID
  ``index_<oid>`` stays on the table: found here too and dropped concurrently.
* It waits (without limit) for every transaction of the database older than its start before copying; with
  ``--no-kill-backend`` it waits ``--wait-timeout`` seconds for its ACCESS EXCLUSIVE locks (retrying) and never
  cancels or terminates other sessions.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess

from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import qualified
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import candidate_dirs
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    conninfo_quote, database_error_message, psycopg2, sql)

LOCK_PREFIX = 16185446  # pg_repack's REPACK_LOCK_PREFIX_STR
VERSION_RE = re.compile(r'pg_repack\s+(\d+(?:\.\d+)+)')
DISK_FACTOR = 2  # free space wanted: twice the table with its indexes and TOAST


class RepackError(Exception):
    """pg_repack cannot be used: the extension or the client is missing, or their versions differ."""


EXTENSION_SQL = """
SELECT e.extversion AS version, n.nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_repack'
"""

KEYS_SQL = """
SELECT c.oid::bigint AS oid,
       EXISTS (SELECT 1 FROM pg_index i
                WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                  AND 0 <> ALL(i.indkey)
                  AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                   WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey) AND NOT a.attnotnull))
         AS has_key,
       ARRAY(SELECT quote_ident(ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
              WHERE i.indrelid = c.oid AND NOT i.indisvalid AND ic.relname !~ '^index_[0-9]+$'
              ORDER BY ic.relname)::text[] AS invalid_indexes,
       CASE WHEN c.reltablespace = 0 THEN NULL ELSE pg_tablespace_location(c.reltablespace) END AS location
  FROM pg_class c WHERE c.oid = ANY(%s::oid[])
"""

DATA_DIRECTORY_SQL = """
SELECT current_setting('data_directory') AS data_directory,
       (SELECT system_identifier FROM pg_control_system())::text AS system_identifier
"""

# what pg_repack would wait for: transactions of this database open for longer than the bound, prepared ones too
HOLDERS_SQL = """
SELECT pid, usename AS user, application_name, state, extract(epoch FROM now() - xact_start)::float AS transaction_s
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
   AND xact_start < now() - make_interval(secs => %(bound)s)
UNION ALL
SELECT NULL, owner::text, gid, 'prepared transaction', extract(epoch FROM now() - prepared)::float
  FROM pg_prepared_xacts WHERE database = current_database()
 ORDER BY transaction_s DESC
"""

LEFTOVERS_SQL = """
SELECT 'table' AS kind, c.relname::text AS name, substring(c.relname from '_([0-9]+)$')::bigint AS target
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'repack' AND c.relkind = 'r' AND c.relname ~ '^(log|table)_[0-9]+$'
UNION ALL
SELECT 'type', t.typname::text, substring(t.typname from '_([0-9]+)$')::bigint
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'repack' AND t.typtype = 'c' AND t.typname ~ '^pk_[0-9]+$'
UNION ALL
SELECT 'trigger', g.tgname::text, g.tgrelid::bigint
  FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
 WHERE pn.nspname = 'repack' AND p.proname = 'repack_trigger'
UNION ALL
SELECT 'index', c.relname::text, i.indrelid::bigint
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT i.indisvalid AND n.nspname <> 'repack' AND c.relname ~ '^index_[0-9]+$'
   AND EXISTS (SELECT 1 FROM pg_index o
                WHERE o.indrelid = i.indrelid AND o.indexrelid::bigint = substring(c.relname from '_([0-9]+)$')::bigint)
 ORDER BY 3, 1, 2
"""

TARGETS_SQL = """
SELECT t.target, n.nspname AS schema, c.relname AS name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qname,
       EXISTS (SELECT 1 FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.classid = %(prefix)s::oid
                  AND l.objid = ((t.target + 2147483648) %% 4294967296)::oid) AS running
  FROM unnest(%(targets)s::bigint[]) AS t(target)
  LEFT JOIN pg_class c ON c.oid = t.target::oid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
 ORDER BY t.target
"""


# ---------------------------------------------------------------- the client (pg_repack --version)
def client_version(path):
    """'1.4.8' of `pg_repack --version` (None if it cannot be told)."""
    try:
        out = subprocess.run([path, '--version'], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = VERSION_RE.search(out or '')
    return match.group(1) if match else None


def find_client(pg_bindir, wanted):
    """(path, version) of the first pg_repack (pg_bindir alone, else PATH, Debian's folders, ...) whose version is the
    extension's installed version `wanted`; RepackError naming what was found otherwise."""
    found = []
    for directory in candidate_dirs(pg_bindir):
        path = os.path.join(directory, 'pg_repack')
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        version = client_version(path)
        if version == wanted:
            return path, version
        found.append('%s (%s)' % (path, version or 'version unknown'))
    where = 'pg_bindir %s' % pg_bindir if pg_bindir else 'PATH or /usr/lib/postgresql/*/bin'
    if found:
        raise RepackError('pg_repack must be the version of the extension installed in the database (%s), as '
                          'pg_repack itself refuses any other; found only %s in %s. Install the matching client or '
                          'ALTER EXTENSION pg_repack UPDATE.' % (wanted, ', '.join(found), where))
    raise RepackError('Cannot find the pg_repack client in %s. Install it (Debian: postgresql-<major>-repack) or '
                      'set pg_bindir.' % where)


def extension(session):
    """The installed pg_repack extension ({version, schema}) or RepackError saying how to install it."""
    row = session.row(EXTENSION_SQL)
    if row is None:
        raise RepackError('the pg_repack extension is not installed in database %s: CREATE EXTENSION pg_repack '
                          '(Debian package postgresql-<major>-repack; on Azure allow-list pg_repack in '
                          'azure.extensions first)' % session.scalar('SELECT current_database()'))
    return row


def argv(path, database, table, wait_timeout, no_kill_backend=True, jobs=1, superuser=True):
    """Pure: the pg_repack command for one table (a quote_ident'ed schema.name). The database is quoted as a libpq
    value (see the module docstring); host, port, user and the password come from the environment."""
    command = [path, '--no-password', '--dbname=%s' % conninfo_quote(database), '--table=%s' % table,
               '--wait-timeout=%d' % wait_timeout]
    if no_kill_backend:
        command.append('--no-kill-backend')
    if jobs and jobs > 1:
        command.append('--jobs=%d' % jobs)
    if not superuser:
        command.append('--no-superuser-check')
    return command


# ---------------------------------------------------------------- preflight
def keys(session, oids):
    """{oid: {has_key, invalid_indexes, location}}: a valid unique index without expression or predicate on NOT NULL
    columns (what pg_repack's repack.primary_keys view wants); the table's INVALID indexes (pg_repack's own leftovers
    index_<oid> aside, dropped before); the tablespace's folder (None: the data directory)."""
    rows = session.rows(KEYS_SQL, [list(oids)]) if oids else []
    return dict((r['oid'], r) for r in rows)


def local_data_directory(session):
    """(path, None) when the server's data directory is on the module's host (its global/pg_control holds the
    server's system identifier), else (None, why it could not be checked)."""
    try:
        row = session.row(DATA_DIRECTORY_SQL)
    except psycopg2.Error as exc:
        return None, 'the server does not tell its data directory to this role (%s)' % database_error_message(exc)
    path = row['data_directory']
    try:
        with open(os.path.join(path, 'global', 'pg_control'), 'rb') as handle:
            ident = struct.unpack('=Q', handle.read(8))[0]
    except (OSError, struct.error) as exc:
        return None, 'the data directory %s is not readable on the module\'s host (%s)' % (
            path, getattr(exc, 'strerror', None) or exc)
    if str(ident) != str(row['system_identifier']):
        return None, 'the data directory %s on the module\'s host belongs to another cluster' % path
    return path, None


def free_bytes(path):
    """Bytes free to an unprivileged writer on the filesystem of `path` (os.statvfs)."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def disk_verdict(needed, free, where):
    """Pure: None when `free` bytes cover `needed`, else the reason."""
    if free >= needed:
        return None
    return 'not enough free disk on %s: %d bytes free, about %d needed (twice the table with its indexes)' % (
        where, free, needed)


def holders(session, bound):
    """Transactions of the database open for longer than `bound` seconds, and prepared transactions: pg_repack waits
    for them before copying (and for ever, in the prepared case)."""
    return session.rows(HOLDERS_SQL, dict(bound=float(bound)))


# ---------------------------------------------------------------- leftovers of an interrupted run
def find_leftovers(session):
    """The leftovers of interrupted pg_repack runs, one entry a table oid: {target, table (qname or None when the
    table is gone), schema, name, objects: [{kind, name}], running (a pg_repack holds the table's advisory lock)}."""
    if session.scalar("SELECT to_regnamespace('repack') IS NOT NULL") is not True:
        return []
    rows = session.rows(LEFTOVERS_SQL)
    if not rows:
        return []
    targets = sorted(set(r['target'] for r in rows))
    info = dict((r['target'], r) for r in session.rows(TARGETS_SQL, dict(prefix=LOCK_PREFIX, targets=targets)))
    groups = []
    for target in targets:
        meta = info.get(target) or {}
        groups.append(dict(target=target, table=meta.get('qname'), schema=meta.get('schema'), name=meta.get('name'),
                           running=bool(meta.get('running')),
                           objects=[dict(kind=r['kind'], name=r['name']) for r in rows if r['target'] == target]))
    return groups


def clean_leftovers(session, group, lock_timeout_ms):
    """Drop the leftovers of one table in one transaction, under pg_repack's own advisory lock of the table (not
    taken: a pg_repack runs on it, nothing is dropped) and lock_timeout; then its INVALID index_<oid>s
    concurrently. Returns 'cleaned', 'running' or 'lock_timeout' (nothing dropped)."""
    target = group['target']
    objects = group['objects']
    session.execute('BEGIN')
    try:
        session.execute("SELECT set_config('lock_timeout', %s, true)", ['%dms' % lock_timeout_ms])
        if not session.scalar('SELECT pg_try_advisory_xact_lock(%s, (-2147483648 + %s::bigint)::int)',
                              [LOCK_PREFIX, target]):
            session.execute('ROLLBACK')
            return 'running'
        for obj in objects:
            if obj['kind'] == 'trigger' and group.get('schema'):
                session.execute(sql.SQL('DROP TRIGGER IF EXISTS {} ON {}').format(
                    sql.Identifier(obj['name']), qualified(group['schema'], group['name'])))
        for obj in objects:
            if obj['kind'] == 'table':
                session.execute(sql.SQL('DROP TABLE IF EXISTS {}').format(qualified('repack', obj['name'])))
        for obj in objects:
            if obj['kind'] == 'type':
                session.execute(sql.SQL('DROP TYPE IF EXISTS {}').format(qualified('repack', obj['name'])))
        session.execute('COMMIT')
    except psycopg2.Error as exc:
        session.execute('ROLLBACK')
        if getattr(exc, 'pgcode', None) == '55P03':  # lock_not_available
            return 'lock_timeout'
        raise
    indexes = [o for o in objects if o['kind'] == 'index']
    if indexes and group.get('schema'):
        session.execute("SELECT set_config('lock_timeout', %s, false)", ['%dms' % lock_timeout_ms])
        try:
            for obj in indexes:
                session.execute(sql.SQL('DROP INDEX CONCURRENTLY IF EXISTS {}').format(
                    qualified(group['schema'], obj['name'])))
        except psycopg2.Error as exc:
            if getattr(exc, 'pgcode', None) == '55P03':
                return 'lock_timeout'
            raise
        finally:
            session.execute("SELECT set_config('lock_timeout', '0', false)")
    return 'cleaned'
