# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: a pg_table_diff result read and checked, the decision for every row, the foreign-key order of the steps.
PRIVATE to the collection.

A diff lists, per table, the keys of rows only in the source (``only_in_source.keys``: to insert), the rows only in
the target (``only_in_target.rows``: to delete, with ``delete_extra`` only) and the changed rows (``changed.rows``:
to update), the last two with ``target_hash``, ``md5(ROW(<every column in attnum order>)::text)`` of the row as
the diff saw it in the target. Every row becomes an item ``{action, key, target_hash}``; what the target holds
now decides (`decide`):

============  ==========================  =====================================  ==============================
action        target row absent           target row = what the diff saw         target row = the source's row
============  ==========================  =====================================  ==============================
insert        apply                       (the diff saw no row)                  done (restored before)
update        conflict (deleted since)    apply                                  done
delete        done (deleted before)       apply (kept without delete_extra)      (no source row)
============  ==========================  =====================================  ==============================

Anything else is a conflict: the row changed after the diff was taken, and the restore must not overwrite it.
"""

from __future__ import annotations

import re

from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import fk_order

ACTIONS = ('insert', 'update', 'delete')
HASH_RE = re.compile(r'^[0-9a-f]{32}$')
SCALARS = (str, int, float, bool)


class DiffError(Exception):
    """The diff given is not a pg_table_diff result this module can apply."""


def _key(value, width, where):
    if not isinstance(value, (list, tuple)) or len(value) != width:
        raise DiffError('%s: a key must be a list of %d value(s) (one per key column), got %r' % (where, width, value))
    for part in value:
        if part is None or not isinstance(part, SCALARS):
            raise DiffError('%s: key %r holds %r, not a key value (text or a number; a key is never NULL)' % (
                where, list(value), part))
    return list(value)


def _hash(value, where):
    if not isinstance(value, str) or not HASH_RE.match(value):
        raise DiffError('%s: target_hash must be the 32 hex digits of an md5, got %r' % (where, value))
    return value


def _section(table, name, where):
    section = table.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise DiffError('%s: %s must be a dict ({count, keys} or {count, rows}), got %r' % (where, name, section))
    return section


def _list(section, field, where):
    value = section.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DiffError('%s: %s must be a list' % (where, field))
    return value


def read_diff(diff):
    """The tables of a pg_table_diff result (the whole registered result or just its `tables`), each as
    {table, key, where, items: [{action, key, target_hash}], truncated}. Raises DiffError naming the first problem:
    not a diff, a table without name or key, a key of the wrong width, a malformed hash, one key listed twice."""
    if isinstance(diff, dict) and 'tables' in diff:
        tables = diff['tables']
    elif isinstance(diff, list):
        tables = diff
    else:
        raise DiffError('diff must be the result of procgenie.dbops.pg_table_diff (a dict with "tables")')
    if not isinstance(tables, list):
        raise DiffError('diff.tables must be a list')
    out = []
    seen_tables = set()
    for index, table in enumerate(tables):
        if not isinstance(table, dict) or not isinstance(table.get('table'), str) or not table['table'].strip():
            raise DiffError('diff.tables[%d] has no table name' % index)
        name = table['table']
        where = 'diff table %s' % name
        key = table.get('key')
        if not isinstance(key, list) or not key or not all(isinstance(k, str) and k for k in key):
            raise DiffError('%s: key must list the key columns' % where)
        if len(set(key)) != len(key):
            raise DiffError('%s: key names a column twice' % where)
        if name in seen_tables:
            raise DiffError('%s is listed twice in the diff' % name)
        seen_tables.add(name)
        items = []
        for value in _list(_section(table, 'only_in_source', where), 'keys', where + ' only_in_source'):
            items.append(dict(action='insert', key=_key(value, len(key), where + ' only_in_source'), target_hash=None))
        for action, section in (('delete', 'only_in_target'), ('update', 'changed')):
            for row in _list(_section(table, section, where), 'rows', '%s %s' % (where, section)):
                if not isinstance(row, dict):
                    raise DiffError('%s %s: a row must be a dict {key, target_hash}' % (where, section))
                items.append(dict(action=action, key=_key(row.get('key'), len(key), '%s %s' % (where, section)),
                                  target_hash=_hash(row.get('target_hash'), '%s %s' % (where, section))))
        keys = set()
        for item in items:
            marker = tuple((type(v).__name__, v) for v in item['key'])
            if marker in keys:
                raise DiffError('%s: key %r is listed twice' % (where, item['key']))
            keys.add(marker)
        out.append(dict(table=name, key=list(key), where=table.get('where'), items=items,
                        truncated=bool(table.get('truncated'))))
    return out


def decide(item, current, source, delete_extra):
    """The decision for one item: 'apply', 'done', 'kept' (an extra row left without delete_extra) or 'conflict',
    with the reason of a conflict. `current`: md5 of the target's row now (None: absent); `source`: md5 of the
    source's row read by the target (None: the source has no such row; unused for deletes)."""
    action = item['action']
    if action == 'delete':
        if not delete_extra:
            return 'kept', None
        if current is None:
            return 'done', None
        if current == item['target_hash']:
            return 'apply', None
        return 'conflict', 'the target row changed after the diff was taken'
    if source is None:
        return 'conflict', 'the source no longer has this row'
    if current is not None and current == source:
        return 'done', None
    if action == 'insert':
        if current is None:
            return 'apply', None
        return 'conflict', 'the row exists in the target now (inserted after the diff was taken)'
    if current is None:
        return 'conflict', 'the target row was deleted after the diff was taken'
    if current == item['target_hash']:
        return 'apply', None
    return 'conflict', 'the target row changed after the diff was taken'


def step_order(tables, edges):
    """Pure: (insert order, delete order) of table ids: referenced tables first for inserts and updates, their
    referencing tables first for deletes. `edges`: (referencing, referenced) pairs (`_catalog.fk_order`)."""
    ordered, cyclic = fk_order(tables, edges)
    return ordered, list(reversed(ordered)), cyclic


def summary(decisions):
    """{insert, update, delete, done, kept, conflict} counts of a table's decisions [(item, decision, reason)]."""
    counts = dict((name, 0) for name in ACTIONS + ('done', 'kept', 'conflict'))
    for item, decision, _reason in decisions:
        counts[item['action'] if decision == 'apply' else decision] += 1
    return counts
