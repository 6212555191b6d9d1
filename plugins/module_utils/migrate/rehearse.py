# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_migrate mode=rehearse: the pending migrations on a scratch copy (``CREATE DATABASE ... TEMPLATE``, unique name,
always dropped): each one applied, reverted with its down section, the schema compared with the one before
(``pg_dump --schema-only``, normalized), then applied again. The real database is never changed."""

from __future__ import annotations

import difflib
import os
import re
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import psycopg2

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


def create_copy(session, scratch, database):
    sql = psycopg2.sql
    session.execute(sql.SQL('CREATE DATABASE {} TEMPLATE {}').format(
        sql.Identifier(scratch), sql.Identifier(database)))


def drop_copy(session, scratch):
    sql = psycopg2.sql
    session.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(scratch)))
