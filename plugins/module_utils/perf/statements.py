# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_stat_statements, pure (unit-tested): whether it can be read and how to enable it, the snapshot a later run
compares with (`since`), the deltas, and the top lists by total time, mean time and calls.

The statistics are never reset unless asked (`reset: true`): PgHero's snapshots reset them after each capture and
so destroy them for everyone else. A later run given an earlier result reports what happened in between: the
numbers of every statement (the earlier result's `statements.snapshot`) minus the earlier ones; a statement whose
counters went down (evicted and seen again, or the statistics reset in between) counts from zero."""

from __future__ import annotations

LIBRARY = 'pg_stat_statements'
# snapshot row: the key, then the counters that are summed over time
SNAPSHOT_FIELDS = ('queryid', 'dbid', 'userid', 'toplevel', 'calls', 'total_ms', 'rows', 'shared_blks_hit',
                   'shared_blks_read')
COUNTERS = ('calls', 'total_ms', 'rows', 'shared_blks_hit', 'shared_blks_read')
ORDERS = dict(top_total_time='total_ms', top_mean_time='mean_ms', top_calls='calls')


def preloaded(shared_preload_libraries):
    names = [n.strip().strip('"').strip() for n in (shared_preload_libraries or '').split(',')]
    return LIBRARY in names


def unavailable_message(server, platform):
    """None when pg_stat_statements can be read; else what to do, for a self-hosted server or Azure."""
    loaded = preloaded(server.get('shared_preload_libraries'))
    created = server.get('pss_schema') is not None
    if loaded and created:
        return None
    db = server.get('database')
    create = 'then, in database %s: CREATE EXTENSION pg_stat_statements;' % db
    if platform == 'azure':
        steps = []
        if not created:
            steps.append("add pg_stat_statements to the server parameter azure.extensions (the allow-list)")
        if not loaded:
            steps.append('add pg_stat_statements to the server parameter shared_preload_libraries and restart the '
                         'server (az postgres flexible-server parameter set ...; az postgres flexible-server restart)')
        return 'pg_stat_statements is not available: %s; %s' % ('; '.join(steps), create)
    if not loaded:
        return ("pg_stat_statements is not available: the library is not in shared_preload_libraries. Add it "
                "(keeping what is listed there: ALTER SYSTEM SET shared_preload_libraries = '...,pg_stat_statements' "
                "or postgresql.conf), restart the server, %s" % create)
    return 'pg_stat_statements is loaded but not created in this database: %s' % create


def _key(row):
    return (row['queryid'], row['dbid'], row['userid'], bool(row.get('toplevel', True)))


def snapshot(rows, stats_reset, taken_at):
    """What a later run needs to report deltas: every statement's counters (compact lists)."""
    return dict(taken_at=taken_at, stats_reset=stats_reset,
                fields=list(SNAPSHOT_FIELDS),
                rows=[[r['queryid'], r['dbid'], r['userid'], bool(r.get('toplevel', True)), r['calls'],
                       round(r['total_ms'] or 0.0, 3), r['rows'], r['shared_blks_hit'], r['shared_blks_read']]
                      for r in rows])


def earlier_snapshot(since):
    """The snapshot in `since` (a whole pg_perf_info result, its `statements`, or the snapshot itself); None when
    it holds none. Raises ValueError for something else."""
    if not isinstance(since, dict):
        raise ValueError('since must be an earlier pg_perf_info result (a dict)')
    for candidate in (since.get('statements', {}).get('snapshot') if isinstance(since.get('statements'), dict)
                      else None, since.get('snapshot'), since):
        if isinstance(candidate, dict) and isinstance(candidate.get('rows'), list) and candidate.get('fields'):
            return candidate
    raise ValueError('since holds no statements snapshot (give the registered result of an earlier pg_perf_info '
                     'run with pg_stat_statements available)')


def deltas(rows, earlier, stats_reset):
    """The rows with their counters minus the earlier snapshot's (`reset_between`: the statistics were reset in
    between, so everything counts from the reset). Statements without calls in between are left out."""
    fields = earlier.get('fields') or list(SNAPSHOT_FIELDS)
    before = {}
    for values in earlier.get('rows') or []:
        item = dict(zip(fields, values))
        before[(item['queryid'], item['dbid'], item['userid'], bool(item.get('toplevel', True)))] = item
    reset_between = bool(earlier.get('stats_reset') and stats_reset and earlier['stats_reset'] != stats_reset)
    out = []
    for row in rows:
        old = None if reset_between else before.get(_key(row))
        if old is not None and (row['calls'] or 0) < (old.get('calls') or 0):
            old = None
        item = dict(row)
        if old is not None:
            for name in COUNTERS:
                item[name] = (row.get(name) or 0) - (old.get(name) or 0)
        if (item['calls'] or 0) <= 0:
            continue
        out.append(item)
    return out, reset_between


def top(rows, texts, n, query_length):
    """The three top lists, each of n statements, with the statement's text (cut) where known."""
    for row in rows:
        row['mean_ms'] = (row['total_ms'] or 0.0) / row['calls'] if row.get('calls') else 0.0
    lists = {}
    for name, field in ORDERS.items():
        chosen = sorted(rows, key=lambda r: (-(r.get(field) or 0), r['queryid']))[:n]
        lists[name] = [shown(r, texts, query_length) for r in chosen]
    return lists


def chosen_keys(rows, n):
    """The (queryid, dbid, userid) keys of every statement in a top list (their texts are read)."""
    for row in rows:
        row['mean_ms'] = (row['total_ms'] or 0.0) / row['calls'] if row.get('calls') else 0.0
    keys = set()
    for field in ORDERS.values():
        for r in sorted(rows, key=lambda r: (-(r.get(field) or 0), r['queryid']))[:n]:
            keys.add((r['queryid'], r['dbid'], r['userid']))
    return sorted(keys)


def shown(row, texts, query_length):
    text = texts.get((row['queryid'], row['dbid'], row['userid'])) or {}
    query = text.get('query')
    truncated = bool(query is not None and (text.get('query_chars') or 0) > query_length)
    return dict(queryid=row['queryid'], query=query, query_truncated=truncated, database=row.get('database'),
                user=row.get('user'), toplevel=bool(row.get('toplevel', True)), calls=row['calls'],
                total_ms=round(row['total_ms'] or 0.0, 3), mean_ms=round(row.get('mean_ms') or 0.0, 3),
                max_ms=round(row['max_ms'] or 0.0, 3) if row.get('max_ms') is not None else None,
                rows=row['rows'], shared_blks_hit=row['shared_blks_hit'], shared_blks_read=row['shared_blks_read'])
