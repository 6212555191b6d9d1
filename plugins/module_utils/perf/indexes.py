# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Index health, pure (unit-tested): duplicates, redundant prefixes, unused, invalid, missing-index candidates
and tenant tables without an index leading with the tenant column, from the rows of `read.indexes` and
`read.tables`.

An index row has: oid, table, table_sql, index, index_sql, name, method, relkind ('i', or 'I' for a partitioned
index), natts, nkeyatts, keys (attnums, 0 for an expression; key columns first, then INCLUDE columns), opclasses,
collations, options (indoption: DESC / NULLS FIRST bits) of the key columns, exprs, predicate (text or None),
unique, primary, exclusion, nulls_not_distinct, valid, ready, live, constraints (names of the constraints that use
it: its own primary key / unique / exclusion constraint, or a foreign key referencing through it), attached (a
partition's index attached to a partitioned one: never dropped alone), being_built, definition, bytes, idx_scan.

The rules (issue 15, where the runbook's `indkey::text` comparison goes wrong):
* duplicate: same table, access method, key columns and expressions, operator classes, collations, ordering
  options and predicate (and INCLUDE columns, uniqueness semantics aside); a group is reported once an index to
  drop, each with the one to keep; a unique or constraint-backing index is never the one to drop (in favour of a
  plain one);
* redundant: its key columns are a leading prefix of another index's with the same method, operator classes,
  collations and ordering on them and the same predicate; never a unique or constraint-backing index, never an
  expression index (nor one covered by an expression index's columns);
* unused: idx_scan = 0 since the statistics reset, not unique, not backing a constraint, not an attached
  partition's index; with replicas, unused on every node;
* invalid: indisvalid false, unless a running CREATE INDEX CONCURRENTLY is building it.
"""

from __future__ import annotations


def drop_sql(index):
    """DROP INDEX for an index (CONCURRENTLY unless it is a partitioned index, where PostgreSQL refuses it);
    identifiers as the server quoted them."""
    if index.get('relkind') == 'I':
        return 'DROP INDEX IF EXISTS %s;' % index['index_sql']
    return 'DROP INDEX CONCURRENTLY IF EXISTS %s;' % index['index_sql']


def _key_len(index):
    return index.get('nkeyatts') or index.get('natts') or len(index.get('keys') or [])


def key_columns(index):
    return list(index.get('keys') or [])[:_key_len(index)]


def include_columns(index):
    return list(index.get('keys') or [])[_key_len(index):]


def _key_props(index):
    n = _key_len(index)
    return [list(index.get(name) or [])[:n] for name in ('opclasses', 'collations', 'options')]


def has_expressions(index):
    return bool(index.get('exprs')) or 0 in key_columns(index)


def signature(index):
    """What makes two indexes the same index (pure)."""
    opclasses, collations, options = _key_props(index)
    return (index.get('table_oid'), index.get('method'), tuple(key_columns(index)), tuple(opclasses),
            tuple(collations), tuple(options), index.get('exprs') or None, index.get('predicate') or None,
            tuple(sorted(include_columns(index))))


def protected(index):
    """An index that must never be dropped in favour of another: unique, primary, exclusion, or used by a
    constraint (its own, or a foreign key referencing through it)."""
    return bool(index.get('unique') or index.get('primary') or index.get('exclusion') or index.get('constraints'))


def droppable(index):
    """Whether DROP INDEX can remove it on its own (not a constraint's index, not an attached partition's)."""
    return not index.get('constraints') and not index.get('attached')


def _usable(index):
    return index.get('valid') and index.get('ready') is not False and index.get('live') is not False


def _keep_rank(index):
    """Lower sorts first: the index to keep of a duplicate group."""
    return (0 if index.get('primary') else 1, 0 if index.get('constraints') else 1, 0 if index.get('unique') else 1,
            -(index.get('idx_scan') or 0), index.get('oid') or 0)


def duplicates(rows):
    """[{table, index, keep, definition, keep_definition, bytes, fix_sql, ...}]: one entry an index to drop."""
    groups = {}
    for row in rows:
        if not _usable(row) or row.get('attached'):
            continue
        groups.setdefault(signature(row), []).append(row)
    found = []
    for members in groups.values():
        if len(members) < 2:
            continue
        # unique-ness differences: two unique indexes with different NULLS [NOT] DISTINCT are not the same
        members = sorted(members, key=_keep_rank)
        keep = members[0]
        for other in members[1:]:
            if other.get('unique') and keep.get('unique') and \
                    bool(other.get('nulls_not_distinct')) != bool(keep.get('nulls_not_distinct')):
                continue
            if protected(other) and not keep.get('unique') and not keep.get('primary'):
                continue  # never drop a unique/constraint index in favour of a plain one (keep ranks them first)
            fix = drop_sql(other) if droppable(other) else None
            found.append(dict(table=other['table'], index=other['index'], keep=keep['index'],
                              definition=other.get('definition'), keep_definition=keep.get('definition'),
                              bytes=other.get('bytes') or 0, fix_sql=fix,
                              note=None if fix else 'backs constraint %s: drop or replace the constraint instead' % (
                                  ', '.join(other.get('constraints') or []) or '(partition index)')))
    found.sort(key=lambda d: (d['table'], d['index']))
    return found


def covers(small, big):
    """Whether `small` is made redundant by `big` (pure): a leading prefix of its keys with the same method,
    operator classes, collations and ordering on them and the same predicate; INCLUDE columns of the small one
    among the big one's columns."""
    if small is big or small.get('table_oid') != big.get('table_oid') or small.get('method') != big.get('method'):
        return False
    if small.get('method') != 'btree':
        return False
    if has_expressions(small) or has_expressions(big):
        return False
    if (small.get('predicate') or None) != (big.get('predicate') or None):
        return False
    if protected(small):
        return False
    skeys, bkeys = key_columns(small), key_columns(big)
    if len(skeys) > len(bkeys) or bkeys[:len(skeys)] != skeys:
        return False
    sprops, bprops = _key_props(small), _key_props(big)
    n = len(skeys)
    if any(s[:n] != b[:n] for s, b in zip(sprops, bprops)):
        return False
    sinc, binc = set(include_columns(small)), set(include_columns(big)) | set(bkeys)
    if not sinc <= binc:
        return False
    if len(skeys) == len(bkeys) and set(include_columns(small)) == set(include_columns(big)):
        return False  # the same index: a duplicate, not redundant
    return True


def redundant(rows, dropped=()):
    """[{table, index, covered_by, definition, covered_by_definition, bytes, fix_sql}]: each redundant index once,
    covered by the widest index (not itself to be dropped as a duplicate)."""
    dropped = set(dropped)
    usable = [r for r in rows if _usable(r) and not r.get('attached') and r['index'] not in dropped]
    by_table = {}
    for row in usable:
        by_table.setdefault(row.get('table_oid'), []).append(row)
    found = []
    for members in by_table.values():
        for small in members:
            covering = [big for big in members if covers(small, big)]
            if not covering:
                continue
            big = sorted(covering, key=lambda b: (_keep_rank(b), -len(key_columns(b))))[0]
            found.append(dict(table=small['table'], index=small['index'], covered_by=big['index'],
                              definition=small.get('definition'), covered_by_definition=big.get('definition'),
                              bytes=small.get('bytes') or 0, fix_sql=drop_sql(small) if droppable(small) else None))
    found.sort(key=lambda d: (d['table'], d['index']))
    return found


def unused(rows, replica_scans=None):
    """[{table, index, idx_scan, bytes, definition, fix_sql}]: never scanned since the statistics reset, not
    unique, no constraint's, not an attached partition's. `replica_scans`: a list (one a replica) of
    {index name: idx_scan}; an index is unused only when unused on every replica too (missing there: used)."""
    found = []
    for row in rows:
        if not _usable(row) or row.get('attached') or protected(row):
            continue
        if row.get('idx_scan') is None or row['idx_scan'] > 0:
            continue
        if replica_scans and any((scans.get(row['index']) is None or scans[row['index']] > 0)
                                 for scans in replica_scans):
            continue
        found.append(dict(table=row['table'], index=row['index'], idx_scan=row['idx_scan'],
                          bytes=row.get('bytes') or 0, definition=row.get('definition'), fix_sql=drop_sql(row),
                          last_idx_scan=row.get('last_idx_scan'), foreign_keys=list(row.get('foreign_keys') or [])))
    found.sort(key=lambda d: (-d['bytes'], d['table'], d['index']))
    return found


def invalid(rows):
    """[{table, index, definition, bytes, fix_sql}]: INVALID indexes no running CREATE INDEX CONCURRENTLY builds."""
    found = []
    for row in rows:
        if row.get('valid') or row.get('being_built'):
            continue
        found.append(dict(table=row['table'], index=row['index'], definition=row.get('definition'),
                          bytes=row.get('bytes') or 0, fix_sql=drop_sql(row), ready=row.get('ready')))
    found.sort(key=lambda d: (d['table'], d['index']))
    return found


def missing(tables, thresholds):
    """[{table, seq_scan, seq_tup_read, idx_scan, n_live_tup, reason}]: tables read mostly by sequential scans
    (runbook: seq_scan > 1000), large enough to matter, with the share of sequential scans over the ratio."""
    found = []
    for t in tables:
        seq, idx, live = t.get('seq_scan') or 0, t.get('idx_scan') or 0, t.get('n_live_tup') or 0
        if seq <= thresholds['seq_scans'] or live < thresholds['seq_scan_min_rows']:
            continue
        share = float(seq) / (seq + idx) if seq + idx else 0.0
        if share < thresholds['seq_scan_ratio']:
            continue
        found.append(dict(table=t['table'], seq_scan=seq, seq_tup_read=t.get('seq_tup_read') or 0, idx_scan=idx,
                          n_live_tup=live, seq_scan_share=round(share, 3),
                          reason='%d sequential scans (%.0f%% of scans) reading %d rows in all on %d live rows; '
                                 'look at its top statements for the column to index' % (
                                     seq, share * 100, t.get('seq_tup_read') or 0, live)))
    found.sort(key=lambda d: (-d['seq_tup_read'], d['table']))
    return found


def tenant_unindexed(tables, rows, column):
    """[{table, column, fix_sql}]: tables with the tenant column and no valid, non-partial index leading with it
    (partitions are judged by their partitioned table)."""
    leading = set()
    for row in rows:
        keys = key_columns(row)
        if row.get('valid') and not row.get('predicate') and keys:
            leading.add((row.get('table_oid'), keys[0]))
    found = []
    for t in tables:
        attnum = t.get('tenant_attnum')
        if attnum is None or t.get('partition') or (t['oid'], attnum) in leading:
            continue
        concurrently = '' if t.get('relkind') == 'p' else ' CONCURRENTLY'
        found.append(dict(table=t['table'], column=column,
                          fix_sql='CREATE INDEX%s ON %s (%s);' % (concurrently, t['table_sql'], t['tenant_sql'])))
    found.sort(key=lambda d: d['table'])
    return found


NAMED = (('index', 'definition'), ('keep', 'keep_definition'), ('covered_by', 'covered_by_definition'))


def named_indexes(health_result):
    """The names of every index the lists mention (their definitions are read afterwards)."""
    names = set()
    for kind in ('duplicate', 'redundant', 'unused', 'invalid'):
        for item in health_result[kind]:
            names.update(item[key] for key, _def in NAMED if item.get(key))
    return names


def fill_definitions(health_result, definitions):
    """Set definition / keep_definition / covered_by_definition from {index name: definition}."""
    for kind in ('duplicate', 'redundant', 'unused', 'invalid'):
        for item in health_result[kind]:
            for key, target in NAMED:
                if item.get(key):
                    item[target] = definitions.get(item[key])
    return health_result


def health(rows, tables, thresholds, tenant_column, replica_scans=None):
    """The `indexes` result: every list above."""
    dup = duplicates(rows)
    return dict(duplicate=dup, redundant=redundant(rows, [d['index'] for d in dup]),
                unused=unused(rows, replica_scans), invalid=invalid(rows), missing=missing(tables, thresholds),
                tenant_unindexed=tenant_unindexed(tables, rows, tenant_column))
