# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: the undo script of a row restore. PRIVATE to the collection.

A plain SQL script that puts every row the restore touches back as it was before: the rows it deletes inserted
back (referenced tables first), the rows it updates updated back, the rows it inserts deleted (referencing tables
first), in one transaction. Every row is one string literal of its ``ROW(...)::text`` form, read back by the
table's row type (``unnest(ARRAY[...]::<table>[])``); literals and names are written by `_psql_script` (a value
with a control character becomes a U&'...' escape, so that no value ever spans lines), the comments hold counts
and the time only, and the script holds no psql meta-command (`_psql_script.scan_lines` finds nothing in it).

Run it with ``psql -v ON_ERROR_STOP=1 -f <file>`` against the database the restore changed (it has its own BEGIN
and COMMIT).
"""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils import _psql_script

CHUNK = 500


def _names(names, alias=None):
    prefix = '%s.' % alias if alias else ''
    return ', '.join(prefix + _psql_script.ident(n) for n in names)


def _array(table, rows):
    lines = ',\n'.join('  ' + _psql_script.literal(row) for row in rows)
    return 'ARRAY[\n%s\n]::%s[]' % (lines, _psql_script.qualified(table['schema'], table['name']))


def _chunks(rows):
    for start in range(0, len(rows), CHUNK):
        yield rows[start:start + CHUNK]


def _keys_equal(table):
    return '(%s) = (%s)' % (_names(table['key'], 't'), _names(table['key'], 'u'))


def insert_back(table, rows):
    name = _psql_script.qualified(table['schema'], table['name'])
    cols = _names(table['writable'])
    return ['INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE\nSELECT %s FROM unnest(%s);' % (
        name, cols, cols, _array(table, chunk)) for chunk in _chunks(rows)]


def update_back(table, rows):
    columns = [c for c in table['writable'] if c not in table['key']]
    if not columns:
        return []
    name = _psql_script.qualified(table['schema'], table['name'])
    sets = ', '.join('%s = u.%s' % (_psql_script.ident(c), _psql_script.ident(c)) for c in columns)
    return ['UPDATE %s AS t SET %s\nFROM unnest(%s) AS u\nWHERE %s;' % (name, sets, _array(table, chunk),
                                                                        _keys_equal(table)) for chunk in _chunks(rows)]


def delete_again(table, rows):
    name = _psql_script.qualified(table['schema'], table['name'])
    return ['DELETE FROM %s AS t\nUSING unnest(%s) AS u\nWHERE %s;' % (name, _array(table, chunk), _keys_equal(table))
            for chunk in _chunks(rows)]


def undo_script(steps, written_at, lock_timeout):
    """The script's text. `steps`: per table, in the restore's insert order (referenced tables first),
    {table, inserted: [source row texts the restore inserts], updated: [target row texts before the update],
    deleted: [target row texts before the delete]}. `written_at`: ISO time; `lock_timeout`: a setting value."""
    counts = dict(inserted=0, updated=0, deleted=0)
    for step in steps:
        for name in counts:
            counts[name] += len(step[name])
    out = [
        '-- Undo script of procgenie.dbops.pg_row_restore, written %s before the restore changed anything.' % written_at,
        '-- It deletes the %d row(s) the restore inserted, updates back the %d row(s) it updated and inserts back'
        % (counts['inserted'], counts['updated']),
        '-- the %d row(s) it deleted, in one transaction. Run it against the same database with' % counts['deleted'],
        '-- psql -v ON_ERROR_STOP=1 -f <this file>',
        "SET client_encoding = 'UTF8';",
        'SET standard_conforming_strings = on;',
        'SET row_security = off;',
        'SET default_transaction_read_only = off;',
        'BEGIN;',
        'SET LOCAL lock_timeout = %s;' % _psql_script.literal(lock_timeout),
        'SET CONSTRAINTS ALL DEFERRED;',
    ]
    for step in steps:
        if step['deleted']:
            out.extend(insert_back(step['table'], step['deleted']))
    for step in steps:
        if step['updated']:
            out.extend(update_back(step['table'], step['updated']))
    for step in reversed(steps):
        if step['inserted']:
            out.extend(delete_again(step['table'], step['inserted']))
    out.append('COMMIT;')
    return '\n'.join(out) + '\n'
