# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_migrate mode=rehearse: the pending migrations on a scratch copy (``CREATE DATABASE ... TEMPLATE``, or a restore
of a pg_backup artifact: unique name, always dropped): each one applied, reverted with its down section, the schema
compared with the one before (``pg_dump --schema-only``, normalized), then applied again. The real database is
never changed.

A TEMPLATE copy needs no other session on the database, which production never is; there the copy is a restore of
a pg_backup artifact (`rehearse_from`: a full backup -- a schema-only one carries no tracking rows, so the copy's
migration state would be unknown --, its manifest and checksum checked, a plain
script scanned, before anything is created). Migrations the database has and the older artifact lacks are applied
to the copy first (`caught_up`), so the pending ones are rehearsed on the schema they will meet."""

from __future__ import annotations

import difflib
import os
import re
import time

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art, _psql_script as script
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._dump_restore import (
    RestoreFailure, artifact_format, detect_format, plain_script_too_new, uses_pg_restore)
from ansible_collections.procgenie.dbops.plugins.module_utils.migrate.source import MigrationError

ARTIFACT_KINDS = ('full',)

NOISE = re.compile(r'^(--.*|SET .*|SELECT pg_catalog\.set_config\(.*|\\(un)?restrict .*|\s*)$')
DIFF_LINES = 60


def normalize(schema_sql):
    """pg_dump --schema-only output without comments, SET lines, psql's \\restrict lines and blank lines."""
    return [line.rstrip() for line in schema_sql.split('\n') if not NOISE.match(line)]


def schema_diff(before, after):
    """A unified diff of two normalized schemas (at most DIFF_LINES lines), empty when they are the same."""
    lines = list(difflib.unified_diff(before, after, 'before up', 'after down', lineterm='', n=1))
    return lines[:DIFF_LINES] + (['... (%d more lines)' % (len(lines) - DIFF_LINES)] if len(lines) > DIFF_LINES
                                 else [])


def scratch_name(database):
    """A unique name of the scratch copy (63 bytes at most)."""
    return ('dbops_rehearse_%d_%d_%s' % (os.getpid(), int(time.time()), database))[:63]


def others_on(session, database):
    """Pids of other sessions on `database` (CREATE DATABASE ... TEMPLATE needs none)."""
    return [r['pid'] for r in session.rows(
        'SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() ORDER BY pid', (database,))]


def check_artifact(runner, path, major):
    """The pg_backup artifact a rehearsal restores: {path, manifest, format, program}. Everything is checked here
    (manifest, kind, checksum, format, a plain script's content and age, the program) before a database exists.
    Raises MigrationError."""
    path = path.rstrip('/')
    if not os.path.exists(path):
        raise MigrationError('rehearse_from: %s does not exist' % path)
    try:
        manifest = art.read_manifest(path, kind='logical')
    except art.ArtifactError as exc:
        raise MigrationError('rehearse_from: %s (a pg_backup artifact with its manifest is needed)' % exc)
    if manifest['kind'] not in ARTIFACT_KINDS:
        raise MigrationError('rehearse_from: %s is a %s backup; a rehearsal needs a full backup (the schema and the '
                             'tracking rows that tell which migrations it has)' % (path, manifest['kind']))
    problems = art.verify_checksum(path, manifest)
    if problems:
        raise MigrationError('rehearse_from: %s does not match its manifest: %s' % (path, '; '.join(problems)))
    try:
        fmt = artifact_format(manifest.get('format'), detect_format(path))
    except RestoreFailure as exc:
        raise MigrationError('rehearse_from: %s' % exc)
    if fmt == 'plain':
        unsafe = script.scan_script(path)
        if unsafe:
            raise MigrationError('rehearse_from: %s holds what psql would run as meta-commands: %s' % (
                path, '; '.join(unsafe)))
        too_new = plain_script_too_new(manifest, path, major)
        if too_new:
            raise MigrationError('rehearse_from: %s' % too_new)
    program = runner.find('pg_restore', min_major=major) if uses_pg_restore(fmt) else runner.find('psql')
    return dict(path=path, manifest=manifest, format=fmt, program=program)


def create_empty(session, scratch):
    sql = psycopg2.sql
    session.execute(sql.SQL('CREATE DATABASE {} TEMPLATE template0').format(sql.Identifier(scratch)))


def create_copy(session, scratch, database):
    sql = psycopg2.sql
    session.execute(sql.SQL('CREATE DATABASE {} TEMPLATE {}').format(
        sql.Identifier(scratch), sql.Identifier(database)))


def drop_copy(session, scratch):
    sql = psycopg2.sql
    session.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(scratch)))
