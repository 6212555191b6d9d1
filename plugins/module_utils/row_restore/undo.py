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


def _keys_equal(table, left='t', right='u'):
    return '(%s) = (%s)' % (_names(table['key'], left), _names(table['key'], right))


def _same_row(table, left='t', right='r'):
    return 'md5(ROW(%s)::text) = md5(ROW(%s)::text)' % (_names(table['columns'], left), _names(table['columns'], right))


def _counted(statement, count, table, what):
    """The statement as a CTE whose row count must be `count`; otherwise the script stops with an error that says so
    (a text that is not a number cast to int: plain SQL, no procedural block; the text depends on the count, so the
    planner cannot fold it into an error before the CASE is reached)."""
    head = 'undo stopped: %s of %s changed after the restore (' % (what, '%s.%s' % (table['schema'], table['name']))
    tail = ' of %d as the restore wrote them); nothing was undone' % count
    return ('WITH done AS (\n%s\nRETURNING 1)\nSELECT CASE WHEN count(*) = %d THEN count(*) ELSE (%s || count(*) || %s)::int '
            'END AS rows FROM done;' % (statement, count, _psql_script.literal(head), _psql_script.literal(tail)))


def insert_back(table, rows):
    """The rows the restore deleted, inserted back (a row with the key there now fails on the key)."""
    name = _psql_script.qualified(table['schema'], table['name'])
    cols = _names(table['writable'])
    return ['INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE\nSELECT %s FROM unnest(%s);' % (
        name, cols, cols, _array(table, chunk)) for chunk in _chunks(rows)]


def update_back(table, pairs):
    """The rows the restore updated, updated back: `pairs` (row before, row the restore wrote); only where the row
    is still what the restore wrote, every row or the script stops."""
    columns = [c for c in table['writable'] if c not in table['key']]
    if not columns:
        return []
    name = _psql_script.qualified(table['schema'], table['name'])
    sets = ', '.join('%s = u.%s' % (_psql_script.ident(c), _psql_script.ident(c)) for c in columns)
    out = []
    for chunk in _chunks(pairs):
        statement = 'UPDATE %s AS t SET %s\nFROM unnest(%s) AS u,\nunnest(%s) AS r\nWHERE %s AND %s AND %s' % (
            name, sets, _array(table, [before for before, _after in chunk]),
            _array(table, [after for _before, after in chunk]), _keys_equal(table), _keys_equal(table, 'r', 'u'),
            _same_row(table))
        out.append(_counted(statement, len(chunk), table, 'rows updated by the restore'))
    return out


def delete_again(table, rows):
    """The rows the restore inserted, deleted: only where the row is still what the restore wrote."""
    name = _psql_script.qualified(table['schema'], table['name'])
    return [_counted('DELETE FROM %s AS t\nUSING unnest(%s) AS u\nWHERE %s AND %s' % (
        name, _array(table, chunk), _keys_equal(table), _same_row(table, 't', 'u')), len(chunk), table,
        'rows inserted by the restore') for chunk in _chunks(rows)]


def undo_script(steps, written_at, lock_timeout):
    """The script's text. `steps`: per table, in the restore's insert order (referenced tables first),
    {table, inserted: [source row texts the restore inserts], updated: [(target row text before the update, source
    row text the update writes)], deleted: [target row texts before the delete]}. `written_at`: ISO time;
    `lock_timeout`: a setting value."""
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
        '-- Each step checks that the rows are still what the restore wrote; if one is not, the script stops with an',
        '-- error saying which table, and nothing is undone.',
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
