# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_amcheck's command line and its report, as pure functions (unit-tested without a server)."""

from __future__ import annotations

import re

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import dbname_conninfo

HEADER = re.compile(r'^(heap table|btree index) "(.*)"(?:, block (\d+))?(?:, offset (\d+))?(?:, attribute (\d+))?:$')
BLOCK_IN_MESSAGE = re.compile(r'\bblock (\d+)\b')
# the severity prefix of a server error pg_amcheck prints under a relation
SEVERITY = re.compile(r'^(ERROR|FATAL|PANIC):\s+')


def problem(database, schema, relation, kind, block=None, offset=None, attribute=None, message=''):
    """Pure: one problem row, the same shape whichever method found it (pg_amcheck's report or the extension's
    functions): the block taken from the message ("invalid page in block N") when the check gave none."""
    message = (message or '').strip()
    if block is None:
        match = BLOCK_IN_MESSAGE.search(message)
        block = int(match.group(1)) if match else None
    return dict(database=database, schema=schema, relation=relation, kind=kind,
                block=int(block) if block is not None else None, offset=int(offset) if offset is not None else None,
                attribute=int(attribute) if attribute is not None else None, message=message)


def literal_pattern(*parts):
    """Pure: a psql pattern that matches exactly the given name parts (each double-quoted, so *, ?, . and upper case
    are literal)."""
    return '.'.join('"%s"' % str(p).replace('"', '""') for p in parts)


def build_argv(program, database, jobs=1, heapallindexed=False, parent_check=False, schemas=(), tables=(),
               rootdescend=False):
    """Pure: the pg_amcheck command line checking one database (given as a quoted connection string: never
    expanded), `schemas` (names) and `tables` ((schema, table) pairs) as literal patterns, their indexes and TOAST
    included. No password: the environment has it; -w never prompts."""
    argv = [program, '--no-password', '--jobs=%d' % int(jobs)]
    if heapallindexed:
        argv.append('--heapallindexed')
    if parent_check:
        argv.append('--parent-check')
    if rootdescend:
        argv.append('--rootdescend')
    for schema in schemas:
        argv.append('--schema=%s' % literal_pattern(schema))
    for schema, table in tables:
        argv.append('--table=%s' % literal_pattern(schema, table))
    argv.append(dbname_conninfo(database))
    return argv


def _split_relation(text, database, known):
    """(schema, relation) of pg_amcheck's "db.schema.rel" (printed unquoted): the database prefix removed, then the
    split that names a known relation (names may hold dots); else at the first dot."""
    rest = text[len(database) + 1:] if text.startswith(database + '.') else text
    for index in [i for i, ch in enumerate(rest) if ch == '.']:
        pair = (rest[:index], rest[index + 1:])
        if pair in known:
            return pair
    schema, dot, name = rest.partition('.')
    return (schema, name) if dot else (None, rest)


def parse_report(text, database, known=()):
    """Pure: pg_amcheck's standard output as problems: dict(database, schema, relation, kind (table, toast or
    index), block, offset, attribute, message), one per reported item, in order. `known`: (schema, relation) pairs
    of the database, to split names holding dots."""
    known = set(tuple(k) for k in known)
    problems, current, lines = [], None, []

    def flush():
        if current is None:
            return
        message = ' '.join(x for x in lines if not x.startswith('query was:')).strip()
        problems.append(problem(message=SEVERITY.sub('', message), **current))

    for line in (text or '').splitlines():
        match = HEADER.match(line)
        if match:
            flush()
            kind, name, block, offset, attribute = match.groups()
            schema, relation = _split_relation(name, database, known)
            current = dict(database=database, schema=schema, relation=relation,
                           kind='index' if kind == 'btree index' else ('toast' if schema == 'pg_toast' else 'table'),
                           block=int(block) if block is not None else None,
                           offset=int(offset) if offset is not None else None,
                           attribute=int(attribute) if attribute is not None else None)
            lines = []
        elif current is not None and line.strip():
            lines.append(line.strip())
    flush()
    return problems
