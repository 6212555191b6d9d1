# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bloat, vacuum and wraparound, sequences and sizes, pure (unit-tested), from the rows of `read`; levels from
`_thresholds` (the numbers pg_vacuum acts on)."""

from __future__ import annotations

import math

from ansible_collections.procgenie.dbops.plugins.module_utils import _thresholds

PAGE_HEADER = 24        # PageHeaderData
BTREE_SPECIAL = 16      # BTPageOpaqueData
HEAP_TUPLE_HEADER = 23  # HeapTupleHeaderData (before alignment)
INDEX_TUPLE_HEADER = 8  # IndexTupleData
LINE_POINTER = 4        # ItemIdData
MAXALIGN = 8


def _align(n):
    return int(math.ceil(float(n) / MAXALIGN) * MAXALIGN)


def _iso(value):
    return value.isoformat() if hasattr(value, 'isoformat') else value


def _ratio(wasted, total):
    return round(float(wasted) / total, 4) if total else 0.0


def bloat_level(nbytes, wasted, thresholds):
    """warn when the wasted share is over bloat_ratio on a relation of at least bloat_min_bytes; critical at twice
    the ratio (capped at 0.9)."""
    if not nbytes or nbytes < thresholds['bloat_min_bytes']:
        return 'ok'
    share = float(wasted) / nbytes
    if share >= min(thresholds['bloat_ratio'] * 2, 0.9) and share > 0:
        return 'critical'
    if share >= thresholds['bloat_ratio'] and share > 0:
        return 'warn'
    return 'ok'


def table_estimate(table, block_size):
    """Estimated wasted bytes of a heap (the usual catalog estimate: rows x aligned tuple width from pg_stats
    against its pages, at its fillfactor); None without statistics (never analyzed)."""
    tuples, pages, width = table.get('reltuples'), table.get('relpages') or 0, table.get('width')
    if width is None or tuples is None or tuples < 0 or not pages:
        return None
    header = HEAP_TUPLE_HEADER
    if table.get('has_nulls'):
        header += int(math.ceil((table.get('columns') or 1) / 8.0))
    tuple_bytes = _align(header) + _align(width) + LINE_POINTER
    usable = (block_size - PAGE_HEADER) * (table.get('fillfactor') or 100) / 100.0
    per_page = max(int(usable // tuple_bytes), 1)
    expected = int(math.ceil(tuples / per_page)) if tuples else 0
    return max(pages - max(expected, 1), 0) * block_size


def index_estimate(index, width, fillfactor, block_size):
    """Estimated wasted bytes of a btree index (rows x aligned index tuple against its pages at its fillfactor,
    plus the meta page); None without row estimates."""
    tuples, pages = index.get('reltuples'), index.get('relpages') or 0
    if tuples is None or tuples < 0 or not pages or width is None:
        return None
    tuple_bytes = _align(INDEX_TUPLE_HEADER + width) + LINE_POINTER
    usable = (block_size - PAGE_HEADER - BTREE_SPECIAL) * (fillfactor or 90) / 100.0
    per_page = max(int(usable // tuple_bytes), 1)
    expected = int(math.ceil(tuples / per_page)) + 1
    return max(pages - expected, 0) * block_size


def table_width(table, stats):
    """(width, has_nulls) of a table's rows from pg_stats ({(relid, attnum): (avg_width, null_frac)}); (None, None)
    when it has no statistics."""
    found = [stats[(table['oid'], n)] for n in range(1, (table.get('columns') or 0) + 1) if (table['oid'], n) in stats]
    if not found:
        return None, None
    return sum((1 - (nf or 0)) * (w or 0) for w, nf in found), any((nf or 0) > 0 for _w, nf in found)


def index_width(index, stats):
    """The average width of an index's leaf tuples' columns (keys and INCLUDE columns) from pg_stats: a table
    column's, or an expression's own statistics (32 bytes when ANALYZE has none); None when the table was never
    analyzed."""
    width = 0.0
    for pos, attnum in enumerate(index.get('keys') or []):
        if attnum:
            found = stats.get((index['table_oid'], attnum))
            if found is None:
                return None
            width += found[0] or 0
        else:
            width += (stats.get((index['oid'], pos + 1)) or (32.0, 0))[0] or 0
    return width


def bloat(method, tables, indexes, stats, measured, block_size, thresholds, top):
    """The `bloat` result. method 'pgstattuple': `measured` = (table rows, index rows) of read.pgstattuple; else
    the estimate from the catalog rows and `stats` (read.stats)."""
    table_items, index_items = [], []
    by_oid = dict((t['oid'], t) for t in tables)
    idx_by_oid = dict((i['oid'], i) for i in indexes)
    if method == 'pgstattuple':
        mtables, mindexes = measured
        for m in mtables:
            t = by_oid.get(m['oid'])
            if t is not None:
                table_items.append((t, m['bytes'] or 0, m['wasted_bytes'] or 0))
        for m in mindexes:
            i = idx_by_oid.get(m['oid'])
            if i is None or m.get('avg_leaf_density') is None:
                continue
            density = m['avg_leaf_density'] / 100.0
            target = (m.get('fillfactor') or 90) / 100.0
            wasted = 0 if math.isnan(density) else int(max(0.0, 1 - density / target) * (m['bytes'] or 0))
            index_items.append((i, m['bytes'] or 0, wasted))
    else:
        for t in tables:
            if t.get('relkind') not in ('r', 'm'):
                continue
            width, has_nulls = table_width(t, stats)
            wasted = table_estimate(dict(t, width=width, has_nulls=has_nulls), block_size)
            if wasted is not None:
                table_items.append((t, (t.get('relpages') or 0) * block_size, min(wasted, t.get('table_bytes') or 0)))
        for i in indexes:
            if i.get('relkind') != 'i' or not i.get('valid') or i.get('method') != 'btree':
                continue
            wasted = index_estimate(i, index_width(i, stats), i.get('fillfactor'), block_size)
            if wasted is not None:
                index_items.append((i, i.get('bytes') or 0, min(wasted, i.get('bytes') or 0)))

    def shown(items, index):
        out = []
        for rel, nbytes, wasted in sorted(items, key=lambda x: (-x[2], x[0]['table'])):
            item = dict(table=rel['table'], bytes=int(nbytes), wasted_bytes=int(wasted), ratio=_ratio(wasted, nbytes),
                        level=bloat_level(nbytes, wasted, thresholds))
            if index:
                item['index'] = rel['index']
                item['fix_sql'] = ('REINDEX INDEX CONCURRENTLY %s;' % rel['index_sql']) if item['level'] != 'ok' else None
            else:
                item['fix_sql'] = None
            if item['level'] != 'ok' or len(out) < top:
                out.append(item)
        return out
    return dict(method=method, tables=shown(table_items, False), indexes=shown(index_items, True))


def _worse(*levels):
    return max(levels, key=_thresholds.LEVELS.index)


def settings(server):
    """The server's freeze and failsafe ages (the failsafe's default before PostgreSQL 14)."""
    return dict(autovacuum_freeze_max_age=server['autovacuum_freeze_max_age'],
                autovacuum_multixact_freeze_max_age=server['autovacuum_multixact_freeze_max_age'],
                vacuum_failsafe_age=server.get('vacuum_failsafe_age') or _thresholds.FAILSAFE_DEFAULTS['xid'],
                vacuum_multixact_failsafe_age=(server.get('vacuum_multixact_failsafe_age')
                                               or _thresholds.FAILSAFE_DEFAULTS['mxid']))


def age_levels(xid_age, mxid_age, ages, thresholds):
    xid = _thresholds.wraparound_level(xid_age, ages['autovacuum_freeze_max_age'], ages['vacuum_failsafe_age'],
                                       thresholds)
    mxid = _thresholds.wraparound_level(mxid_age, ages['autovacuum_multixact_freeze_max_age'],
                                        ages['vacuum_multixact_failsafe_age'], thresholds)
    return _worse(xid, mxid), xid, mxid


def vacuum(tables, dbs, server, thresholds, top):
    """The `vacuum` result: per table (those needing a vacuum or over a wraparound level, and the `top` oldest)
    and per database."""
    ages = settings(server)
    items = []
    for t in tables:
        if t.get('relkind') not in ('r', 'm'):
            continue
        live, dead = t.get('n_live_tup') or 0, t.get('n_dead_tup') or 0
        level, xid_level, mxid_level = age_levels(t.get('xid_age'), t.get('mxid_age'), ages, thresholds)
        items.append(dict(table=t['table'], n_live_tup=live, n_dead_tup=dead,
                          dead_ratio=_ratio(dead, live + dead), last_vacuum=_iso(t.get('last_vacuum')),
                          last_autovacuum=_iso(t.get('last_autovacuum')), last_analyze=_iso(t.get('last_analyze')),
                          last_autoanalyze=_iso(t.get('last_autoanalyze')), xid_age=t.get('xid_age'),
                          mxid_age=t.get('mxid_age'), level=level, xid_level=xid_level, mxid_level=mxid_level,
                          needs_vacuum=_thresholds.needs_vacuum(dead, live, thresholds), table_sql=t['table_sql']))
    items.sort(key=lambda x: (-max(x['xid_age'] or 0, x['mxid_age'] or 0), x['table']))
    shown = [x for i, x in enumerate(items) if i < top or x['level'] != 'ok' or x['needs_vacuum']]
    databases = []
    for d in dbs:
        level, xid_level, mxid_level = age_levels(d.get('xid_age'), d.get('mxid_age'), ages, thresholds)
        databases.append(dict(database=d['database'], xid_age=d.get('xid_age'), mxid_age=d.get('mxid_age'),
                              level=level, xid_level=xid_level, mxid_level=mxid_level))
    return dict(settings=ages, tables=shown, databases=databases)


def sequences(rows, thresholds):
    """[{sequence, last_value, max_value, used, level, ...}]: the share of each sequence's range used (in its
    direction); a sequence never called counts as unused."""
    out = []
    for s in rows:
        inc = s.get('increment_by') or 1
        lo, hi = s.get('min_value'), s.get('max_value')
        last = s.get('last_value')
        if last is None or lo is None or hi is None or hi == lo:
            used = 0.0
        elif inc > 0:
            used = float(last - lo) / (hi - lo)
        else:
            used = float(hi - last) / (hi - lo)
        used = round(max(0.0, min(used, 1.0)), 4)
        level = 'ok' if s.get('cycle') else _thresholds.share_level(
            used, thresholds['sequence_warn'], thresholds['sequence_critical'])
        out.append(dict(sequence=s['sequence'], last_value=last, max_value=hi, min_value=lo, increment_by=inc,
                        data_type=s.get('data_type'), owned_by=s.get('owned_by'), column_type=s.get('column_type'),
                        used=used, level=level, sequence_sql=s.get('sequence_sql')))
    out.sort(key=lambda x: (-x['used'], x['sequence']))
    return out


def sizes(tables, indexes, dbs, top):
    """The largest tables (total = main fork, free space and visibility maps, TOAST, and its indexes, each sized once:
    the indexes in the index rows) and the databases."""
    index_bytes = {}
    for i in indexes:
        if i.get('relkind') == 'i':
            index_bytes[i['table_oid']] = index_bytes.get(i['table_oid'], 0) + (i.get('bytes') or 0)
    items = [dict(table=t['table'], total_bytes=sum(t.get(k) or 0 for k in ('table_bytes', 'map_bytes', 'toast_bytes'))
                  + index_bytes.get(t['oid'], 0),
                  table_bytes=t.get('table_bytes') or 0, index_bytes=index_bytes.get(t['oid'], 0),
                  toast_bytes=t.get('toast_bytes') or 0, live_rows=t.get('n_live_tup') or 0)
             for t in tables if t.get('relkind') in ('r', 'm')]
    items.sort(key=lambda x: (-x['total_bytes'], x['table']))
    databases = [dict(database=d['database'], bytes=d.get('bytes')) for d in dbs]
    databases.sort(key=lambda x: (-(x['bytes'] or 0), x['database']))
    return dict(tables=items[:top], databases=databases)
