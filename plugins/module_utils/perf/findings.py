# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `findings` of pg_perf_info, pure (unit-tested): one line a problem, with the SQL that fixes it where there
is one (identifiers as the server quoted them), critical first; an `ok` line for every area without a problem,
so the summary shows what was checked.

Each kind of problem (duplicate, redundant, unused, invalid, missing and tenant-unindexed indexes, bloat, vacuum,
wraparound, sequences) lists at most `limit` findings (pg_perf_info's findings_limit): the worst ones are kept -
critical before warn, then the largest (bytes, wasted bytes, dead tuples, age, share used) - in their usual order,
and one more finding of that kind says how many were left out (the lists of the result stay complete)."""

from __future__ import annotations

ORDER = dict(critical=0, warn=1, ok=2)
TYPE_MAX = dict(smallint=32767, integer=2147483647, bigint=9223372036854775807)


def human_bytes(n):
    n = float(n or 0)
    for unit in ('B', 'kB', 'MB', 'GB', 'TB'):
        if abs(n) < 1024 or unit == 'TB':
            return ('%d %s' % (n, unit)) if unit == 'B' else ('%.1f %s' % (n, unit))
        n /= 1024.0
    return '%d B' % n  # pragma: no cover


# what a kind is called in the line that counts the findings left out, and where the complete list is
KINDS = dict(
    duplicate=('duplicate indexes', 'indexes.duplicate'), redundant=('redundant indexes', 'indexes.redundant'),
    unused=('unused indexes', 'indexes.unused'), invalid=('INVALID indexes', 'indexes.invalid'),
    missing=('missing-index candidates', 'indexes.missing'),
    tenant_unindexed=('tenant tables without a tenant index', 'indexes.tenant_unindexed'),
    bloat=('bloated tables and indexes', 'bloat'), vacuum=('tables needing a vacuum', 'vacuum.tables'),
    wraparound=('wraparound ages', 'vacuum'), sequences=('sequences near their maximum', 'sequences'))


def finding(level, area, obj, message, fix_sql=None, kind=None, weight=0):
    """One finding; `kind` and `weight` (how bad, larger is worse) are for the limit only and never returned."""
    out = dict(level=level, area=area, object=obj, message=message, fix_sql=fix_sql)
    if kind:
        out.update(_kind=kind, _weight=weight or 0)
    return out


def _statements(result):
    st = result['statements']
    if not st.get('available'):
        fix = 'CREATE EXTENSION pg_stat_statements;' if 'loaded but not created' in (st.get('message') or '') else None
        return [finding('warn', 'statements', 'pg_stat_statements', st.get('message') or 'not available', fix)]
    tops = st.get('top_total_time') or []
    if not tops:
        return [finding('ok', 'statements', 'pg_stat_statements', 'no statement recorded%s' % (
            ' since the earlier result' if st.get('since') else ''))]
    first = tops[0]
    return [finding('ok', 'statements', 'pg_stat_statements',
                    'top statement by total time%s: %.0f ms in %d calls (mean %.1f ms) by %s on %s' % (
                        ' since the earlier result' if st.get('since') else '', first['total_ms'], first['calls'],
                        first['mean_ms'], first.get('user'), first.get('database')))]


def _indexes(result):
    idx = result['indexes']
    out = []
    proposed = set()
    for d in idx['duplicate']:
        proposed.add(d['index'])
        out.append(finding('warn', 'indexes', d['index'], 'duplicate of %s (%s); %s' % (
            d['keep'], human_bytes(d['bytes']), 'drop it' if d['fix_sql'] else d.get('note') or 'keep both'),
            d['fix_sql'], 'duplicate', d['bytes']))
    for d in idx['redundant']:
        proposed.add(d['index'])
        out.append(finding('warn', 'indexes', d['index'], 'redundant: a leading prefix of %s (%s)' % (
            d['covered_by'], human_bytes(d['bytes'])), d['fix_sql'], 'redundant', d['bytes']))
    since = idx.get('unused_since')
    for d in idx['unused']:
        if d['index'] in proposed:
            continue
        fks = d.get('foreign_keys') or []
        out.append(finding('warn', 'indexes', d['index'], 'never scanned since %s (%s)%s%s' % (
            since or 'the statistics began', human_bytes(d['bytes']),
            ' on any node' if idx.get('replicas') else '',
            '; it serves foreign key %s (deletes and key updates on the referenced table): keep it if those happen'
            % ', '.join(fks) if fks else ''), d['fix_sql'], 'unused', d['bytes']))
    for d in idx['invalid']:
        out.append(finding('warn', 'indexes', d['index'], 'INVALID (a failed CREATE INDEX CONCURRENTLY?): it is '
                           'not used by queries%s; drop it (and create it again if it is needed)' % (
                               ' but still maintained on every write' if d.get('ready') else ''), d['fix_sql'],
                           'invalid', d.get('bytes')))
    for d in idx['missing']:
        out.append(finding('warn', 'indexes', d['table'], 'missing index? %s' % d['reason'], None, 'missing',
                           d.get('seq_tup_read')))
    for d in idx['tenant_unindexed']:
        out.append(finding('warn', 'indexes', d['table'], 'tenant table without an index leading with %s '
                           '(row-level security filters on it)' % d['column'], d['fix_sql'], 'tenant_unindexed'))
    if not out:
        out.append(finding('ok', 'indexes', result['server']['database'],
                           'no duplicate, redundant, unused or invalid index; no missing-index candidate'))
    return out


def _bloat(result):
    b = result['bloat']
    out = []
    for kind in ('tables', 'indexes'):
        for item in b[kind]:
            if item['level'] == 'ok':
                continue
            obj = item.get('index') or item['table']
            out.append(finding(item['level'], 'bloat', obj, '%s%% of %s wasted (%s, %s)%s' % (
                int(round(item['ratio'] * 100)), human_bytes(item['bytes']), human_bytes(item['wasted_bytes']),
                b['method'], '' if kind == 'indexes' else '; VACUUM makes the space reusable, pg_vacuum with '
                'method repack returns it'), item.get('fix_sql'), 'bloat', item['wasted_bytes']))
    if not out:
        out.append(finding('ok', 'bloat', result['server']['database'], 'no bloated table or index (%s)' % b['method']))
    return out


def _vacuum(result):
    v = result['vacuum']
    out = []
    for t in v['tables']:
        if t['level'] != 'ok':
            which = [n for n, lvl in (('transaction ID', t.get('xid_level')), ('multixact', t.get('mxid_level')))
                     if lvl and lvl != 'ok']
            out.append(finding(t['level'], 'wraparound', t['table'], '%s age %s near the wraparound limits '
                               '(autovacuum_freeze_max_age %s, failsafe %s)' % (
                                   ' and '.join(which) or 'age', t['xid_age'] if 'transaction ID' in which
                                   else t['mxid_age'], v['settings']['autovacuum_freeze_max_age'],
                                   v['settings']['vacuum_failsafe_age']),
                               'VACUUM (FREEZE, VERBOSE) %s;' % t['table_sql'] if t.get('table_sql') else None,
                               'wraparound', max(t.get('xid_age') or 0, t.get('mxid_age') or 0)))
        if t['needs_vacuum']:
            out.append(finding('warn', 'vacuum', t['table'], '%d dead tuples (%d%% of its rows); last vacuum %s' % (
                t['n_dead_tup'], int(round(t['dead_ratio'] * 100)), t.get('last_autovacuum') or t.get('last_vacuum')
                or 'never'), 'VACUUM (ANALYZE) %s;' % t['table_sql'] if t.get('table_sql') else None, 'vacuum',
                t['n_dead_tup']))
    for d in v['databases']:
        if d['level'] != 'ok':
            out.append(finding(d['level'], 'wraparound', d['database'], 'database transaction ID age %s / multixact '
                               'age %s: vacuum (freeze) its oldest tables' % (d['xid_age'], d['mxid_age']), None,
                               'wraparound', max(d.get('xid_age') or 0, d.get('mxid_age') or 0)))
    if not [f for f in out if f['area'] == 'vacuum']:
        out.append(finding('ok', 'vacuum', result['server']['database'], 'no table over the dead-tuple thresholds'))
    if not [f for f in out if f['area'] == 'wraparound']:
        oldest = max([d['xid_age'] or 0 for d in v['databases']] or [0])
        out.append(finding('ok', 'wraparound', result['server']['database'],
                           'transaction ID and multixact ages below the thresholds (oldest database: %d)' % oldest))
    return out


def _sequences(result):
    out = []
    for s in result['sequences']:
        if s['level'] == 'ok':
            continue
        fix = None
        note = ''
        if s.get('max_value') == TYPE_MAX.get(s.get('data_type')) and s.get('sequence_sql'):
            fix = 'ALTER SEQUENCE %s AS bigint;' % s['sequence_sql']
        elif s.get('max_value') is not None and s.get('max_value') < TYPE_MAX['bigint'] and (s.get('increment_by') or 1) > 0:
            note = '; its MAXVALUE is below its type\'s maximum: raise it if the column allows'
        if s.get('owned_by') and s.get('column_type') in ('smallint', 'integer'):
            note += '; column %s is %s: it needs bigint too (ALTER TABLE ... TYPE bigint rewrites the table)' % (
                s['owned_by'], s['column_type'])
        out.append(finding(s['level'], 'sequences', s['sequence'], '%d%% of its range used (%s of %s, %s)%s' % (
            int(s['used'] * 100), s['last_value'], s['max_value'], s.get('data_type'), note), fix, 'sequences',
            s['used']))
    if not out:
        out.append(finding('ok', 'sequences', result['server']['database'], 'every sequence far from its maximum'))
    return out


def _sizes(result):
    tables = result['sizes']['tables']
    if not tables:
        return [finding('ok', 'sizes', result['server']['database'], 'no table')]
    t = tables[0]
    return [finding('ok', 'sizes', t['table'], 'largest table: %s in all (%s table, %s indexes, %s TOAST), %d live rows' % (
        human_bytes(t['total_bytes']), human_bytes(t['table_bytes']), human_bytes(t['index_bytes']),
        human_bytes(t['toast_bytes']), t['live_rows']))]


def limited(found, limit, database):
    """`found` with at most `limit` findings of each kind (0: no limit), and {kind: how many were left out}. The
    worst of a kind are kept, in their order, followed by one finding that counts the others (as bad as the worst
    of them). Pure."""
    by_kind = {}
    for pos, item in enumerate(found):
        if item.get('_kind'):
            by_kind.setdefault(item['_kind'], []).append(pos)
    dropped, omitted, after = set(), {}, {}
    for kind, positions in by_kind.items():
        if not limit or len(positions) <= limit:
            continue
        worst_first = sorted(positions, key=lambda p: (ORDER[found[p]['level']], -found[p]['_weight'], p))
        left_out = worst_first[limit:]
        dropped.update(left_out)
        omitted[kind] = len(left_out)
        level = min((found[p]['level'] for p in left_out), key=lambda lvl: ORDER[lvl])
        name, where = KINDS[kind]
        after[max(worst_first[:limit])] = finding(
            level, found[positions[0]]['area'], database, '%d more %s not listed here (findings_limit %d keeps the '
            'worst); every one is in %s' % (len(left_out), name, limit, where))
    out = []
    for pos, item in enumerate(found):
        if pos not in dropped:
            out.append(dict((k, v) for k, v in item.items() if not k.startswith('_')))
        if pos in after:
            out.append(after[pos])
    return out, omitted


def findings_omitted(result, limit=0):
    """The findings (at most `limit` of each kind, 0: all), critical first; and {kind: findings left out}."""
    out = []
    for part in (_statements, _indexes, _bloat, _vacuum, _sequences, _sizes):
        out.extend(part(result))
    out, omitted = limited(out, limit, result['server']['database'])
    return sorted(out, key=lambda f: ORDER[f['level']]), omitted


def findings(result, limit=0):
    """The findings (at most `limit` of each kind, 0: all), critical first."""
    return findings_omitted(result, limit)[0]
