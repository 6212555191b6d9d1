# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The comparison of tables by key between two sessions (see the package docstring for the algorithm)."""

from __future__ import annotations

import math
import threading

from ansible_collections.procgenie.dbops.plugins.module_utils import _clients
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, resolve_tables
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    database_error_message, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff.where import WhereError, check_where

# session settings that fix the text form of values, so that both servers print a row the same way; row_security
# off (a policy that would hide rows makes the queries fail); jit off (compiling the small range queries costs more
# than they take)
SESSION_SETTINGS = (('DateStyle', 'ISO, YMD'), ('IntervalStyle', 'postgres'), ('TimeZone', 'UTC'),
                    ('extra_float_digits', '3'), ('bytea_output', 'hex'), ('row_security', 'off'), ('jit', 'off'))
INTEGER_TYPES = ('smallint', 'integer', 'bigint')
# types whose default hash function hash_record_extended uses (equal values hash equal); other columns are hashed
# through their text form (json, xml, geometric types, ranges of them, ...)
HASHABLE = frozenset((
    'smallint', 'integer', 'bigint', 'numeric', 'real', 'double precision', 'text', 'character varying',
    'character', 'boolean', 'date', 'timestamp without time zone', 'timestamp with time zone',
    'time without time zone', 'time with time zone', 'interval', 'uuid', 'bytea', 'jsonb', 'inet', 'cidr',
    'macaddr', 'oid', '"char"', 'name', 'money'))
# types whose hash opclass's function takes another type: their hash through a cheap exact conversion (a
# timestamptz as its distance from an epoch, a date as days), keyed by a marker describe() gives
SPECIAL_HASHES = {
    '@timestamptz': sql.SQL("pg_catalog.interval_hash({} - TIMESTAMPTZ '2000-01-01 00:00:00+00')") if sql else None,
    '@date': sql.SQL("pg_catalog.hashint4({} - DATE '2000-01-01')") if sql else None,
}
MODERN = 140000  # hash_record_extended (PostgreSQL 14)
TOP_SEGMENT_ROWS = 256  # rows per first-level range/bucket
FANOUT = 64  # sub-ranges (or 2**FANOUT_BITS buckets) per differing range
FANOUT_BITS = 6
LEAF_ROWS = 16  # a range with at most this many rows on each side is fetched
MAX_TOP = 16384
MAX_BITS = 62


class TableDiffError(Exception):
    """A table that cannot be compared (no key, columns differ, a policy would hide rows, a bad where)."""


# ---------------------------------------------------------------- sessions
def begin_snapshot(session):
    """Fix the session's output settings, turn row_security off and open a REPEATABLE READ READ ONLY transaction
    whose snapshot is taken now. The session must be in autocommit mode (open_session's default)."""
    for name, value in SESSION_SETTINGS:
        session.execute(sql.SQL('SET {} = {}').format(sql.Identifier(name), sql.Literal(value)))
    session.execute('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    return session.scalar('SELECT pg_catalog.txid_current_snapshot()::text')


def end_snapshot(session):
    try:
        session.execute('ROLLBACK')
    except Exception:  # pylint: disable=broad-except  # a broken connection has nothing to roll back
        pass


def in_worker(fn, sessions=lambda: ()):
    """fn() in a worker thread (_clients.in_worker): a SIGTERM (AWX cancel) cancels the queries of `sessions()`
    (the sessions open at that moment) at once, even while one waits for a lock."""
    def cancel():
        for session in sessions():
            if session is not None:
                session.conn.cancel()
    return _clients.in_worker(fn, cancel)


def run_both(source, target, fn):
    """fn(source) and fn(target) at the same time (two servers work in parallel), each in its own thread, the main
    thread waiting in short joins so that a SIGTERM reaches it; a cancel cancels both queries. Returns the two
    results; raises the first error."""
    _clients.exit_on_sigterm()
    results, errors = [None, None], [None, None]
    # each worker's own end: Thread.is_alive() is wrong after a join() a signal handler interrupted (gh-90882)
    done = [threading.Event(), threading.Event()]

    def work(index, session):
        try:
            results[index] = fn(session)
        except BaseException as exc:  # pylint: disable=broad-except  # re-raised in the main thread
            errors[index] = exc
        finally:
            done[index].set()
    tokens = [_clients.on_cancel(s.conn.cancel) for s in (source, target)]
    threads = [threading.Thread(target=work, args=(i, s), daemon=True) for i, s in enumerate((source, target))]
    try:
        for thread in threads:
            thread.start()
        for event in done:
            while not event.wait(0.05):
                pass
    finally:
        for token in tokens:
            _clients.forget(token)
    for exc in errors:
        if exc is not None:
            raise exc
    return results


# ---------------------------------------------------------------- table descriptions
_COLUMNS_SQL = """
SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type,
       format_type(COALESCE(NULLIF(t.typbasetype, 0), a.atttypid), NULL) AS base,
       (SELECT p.proname::text
          FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod AND am.amname = 'hash'
          JOIN pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 1
               AND ap.amproclefttype = oc.opcintype AND ap.amprocrighttype = oc.opcintype
          JOIN pg_proc p ON p.oid = ap.amproc AND p.pronamespace = 'pg_catalog'::regnamespace
               AND p.pronargs = 1 AND p.proargtypes[0] = oc.opcintype
         WHERE oc.opcdefault AND oc.opcintype = COALESCE(NULLIF(t.typbasetype, 0), a.atttypid)
         ORDER BY p.proname LIMIT 1) AS hash_fn,
       CASE COALESCE(NULLIF(t.typbasetype, 0), a.atttypid) WHEN 'timestamptz'::regtype THEN '@timestamptz'
            WHEN 'date'::regtype THEN '@date' END AS special
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum"""


def describe(session, name, side):
    """The table `name` on one side: schema, name, qname, oid, columns [(name, type, base)], primary_key,
    estimated rows, rls flags."""
    try:
        rows = resolve_tables(session, [name], partitions=False, details=True)
    except CatalogError as exc:
        raise TableDiffError('%s: %s' % (side, exc))
    table = rows[0]
    rows = session.rows(_COLUMNS_SQL, [table['oid']])
    table['columns'] = [(r['name'], r['type'], r['base']) for r in rows]
    table['hash_functions'] = dict((r['name'], r['special'] or r['hash_fn']) for r in rows)
    table['estimate'] = session.scalar('SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = %s',
                                       [table['oid']]) or 0
    return table


def check_pair(name, src, tgt, key=None):
    """Pure: the comparison's columns and key from both descriptions; TableDiffError when they do not match.
    Returns dict(columns (target order), key, integer_key, hashable (names))."""
    tcols = dict((c[0], c) for c in tgt['columns'])
    scols = dict((c[0], c) for c in src['columns'])
    only_t = [c for c in tcols if c not in scols]
    only_s = [c for c in scols if c not in tcols]
    retyped = ['%s (%s in the source, %s in the target)' % (c, scols[c][1], tcols[c][1])
               for c in tcols if c in scols and scols[c][1] != tcols[c][1]]
    if only_t or only_s or retyped:
        parts = []
        if only_s:
            parts.append('only in the source: %s' % ', '.join(only_s))
        if only_t:
            parts.append('only in the target: %s' % ', '.join(only_t))
        if retyped:
            parts.append('types differ: %s' % ', '.join(retyped))
        raise TableDiffError('%s has different columns on the two servers (%s); compare tables of the same shape'
                             % (name, '; '.join(parts)))
    if key:
        missing = [k for k in key if k not in tcols]
        if missing:
            raise TableDiffError('%s: key column(s) %s do not exist' % (name, ', '.join(missing)))
        key = list(key)
    else:
        key = list(tgt.get('primary_key') or [])
        if not key:
            raise TableDiffError('%s has no primary key in the target: give the columns of a unique key as its '
                                 '`key`' % name)
        if list(src.get('primary_key') or []) != key:
            raise TableDiffError('%s: the primary key differs (%s in the source, %s in the target)' % (
                name, ', '.join(src.get('primary_key') or []) or 'none', ', '.join(key)))
    columns = [c[0] for c in tgt['columns']]
    integer_key = len(key) == 1 and tcols[key[0]][2] in INTEGER_TYPES
    hashable = [c for c in columns if tcols[c][2] in HASHABLE]
    functions = tgt.get('hash_functions') or {}
    if functions != (src.get('hash_functions') or {}):  # another major with other hash functions: text for those
        functions = dict((c, f) for c, f in functions.items() if f == (src.get('hash_functions') or {}).get(c))
    return dict(columns=columns, key=key, integer_key=integer_key, hashable=hashable,
                hash_functions=dict((c, functions.get(c)) for c in columns))


# ---------------------------------------------------------------- SQL pieces
class TableSql(object):
    """The SQL of one table's comparison (identical on both sides: columns in the target's order)."""

    def __init__(self, schema, name, columns, key, hashable, where, modern, hash_functions=None):
        self.table = sql.SQL('.').join([sql.Identifier(schema), sql.Identifier(name)])
        self.columns = columns
        self.key = key
        ident = sql.Identifier
        if modern:
            # per row: the columns' own hash functions (the type's default hash opclass; text for types without
            # one) weighted by position, as bigint; per range: bit_xor (PostgreSQL 14) - no numeric sums
            terms = []
            for index, column in enumerate(columns):
                function = (hash_functions or {}).get(column)
                if function in SPECIAL_HASHES:
                    value = SPECIAL_HASHES[function].format(ident(column))
                elif function:
                    value = sql.SQL('{}({})').format(sql.Identifier('pg_catalog', function), ident(column))
                else:
                    value = sql.SQL('pg_catalog.hashtext({}::text)').format(ident(column))
                terms.append(sql.SQL('{} * COALESCE({}, {})::bigint').format(
                    sql.Literal(2 * index + 1), value, sql.Literal(index + 1)))
            self.row_hash = sql.SQL(' + ').join(terms)
            self.aggregate = sql.SQL('bit_xor')
            self.key_hash = sql.SQL('pg_catalog.hash_record_extended(ROW({}), 0)').format(
                sql.SQL(', ').join(ident(k) if k in hashable else sql.SQL('{}::text').format(ident(k)) for k in key))
        else:
            self.row_hash = sql.SQL("('x' || substr(md5(ROW({})::text), 1, 16))::bit(64)::bigint").format(
                sql.SQL(', ').join(ident(c) for c in columns))
            self.key_hash = sql.SQL("('x' || substr(md5(ROW({})::text), 1, 16))::bit(64)::bigint").format(
                sql.SQL(', ').join(ident(k) for k in key))
            self.aggregate = sql.SQL('sum')
        self.md5 = sql.SQL('md5(ROW({})::text)').format(sql.SQL(', ').join(ident(c) for c in columns))
        self.col_md5 = sql.SQL('ARRAY[{}]').format(sql.SQL(', ').join(
            sql.SQL('md5({}::text)').format(ident(c)) for c in columns))
        self.key_text = sql.SQL('ARRAY[{}]').format(sql.SQL(', ').join(
            sql.SQL('{}::text').format(ident(k)) for k in key))
        # the closing parenthesis on a line of its own: a trailing -- comment in the where ends before it
        self.where = sql.SQL('({}\n)').format(sql.SQL(where)) if where else sql.SQL('true')
        self.k0 = ident(key[0])

    def probe(self):
        """Checks the where clause and the row-level security (no rows read)."""
        return sql.SQL('SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} LIMIT 1) AS probe').format(
            self.table, self.where)

    def bounds(self):
        return sql.SQL('SELECT min({k})::bigint AS lo, max({k})::bigint AS hi FROM {t} WHERE {w}').format(
            k=self.k0, t=self.table, w=self.where)

    def range_top(self, lo, width, wide):
        seg = sql.SQL('div({k}::numeric - {lo}, {w})') if wide else sql.SQL('({k}::bigint - {lo}) / {w}')
        seg = seg.format(k=self.k0, lo=sql.Literal(lo), w=sql.Literal(width))
        return sql.SQL('SELECT {lo}::bigint AS parent, {seg} AS seg, count(*) AS n, {agg}({h}) AS s '
                       'FROM {t} WHERE {w} GROUP BY 2').format(
            lo=sql.Literal(lo), seg=seg, h=self.row_hash, t=self.table, w=self.where, agg=self.aggregate)

    def range_level(self, width, wide):
        """Sub-ranges of the ranges %(a)s..%(b)s (arrays of first and last keys, inclusive)."""
        seg = sql.SQL('div({k}::numeric - r.a, {w})') if wide else sql.SQL('({k}::bigint - r.a) / {w}')
        seg = seg.format(k=self.k0, w=sql.Literal(width))
        return sql.SQL('SELECT r.a AS parent, {seg} AS seg, count(*) AS n, {agg}({h}) AS s '
                       'FROM unnest(%(a)s::bigint[], %(b)s::bigint[]) AS r(a, b) JOIN {t} '
                       'ON {k} >= r.a AND {k} <= r.b WHERE {w} GROUP BY 1, 2').format(
            seg=seg, h=self.row_hash, t=self.table, k=self.k0, w=self.where, agg=self.aggregate)

    def hash_level(self, bits, parent_bits):
        mask = sql.Literal((1 << bits) - 1)
        query = sql.SQL('SELECT 0 AS parent, {kh} & {m} AS seg, count(*) AS n, {agg}({h}) AS s FROM {t} WHERE {w}').format(
            kh=self.key_hash, m=mask, h=self.row_hash, t=self.table, w=self.where, agg=self.aggregate)
        if parent_bits:
            query += sql.SQL(' AND ({kh} & {pm}) = ANY(%(parents)s::bigint[])').format(
                kh=self.key_hash, pm=sql.Literal((1 << parent_bits) - 1))
        return query + sql.SQL(' GROUP BY 2')

    def _rows(self):
        return sql.SQL('SELECT {kt} AS key, {md5} AS row_hash, {cm} AS column_hashes').format(
            kt=self.key_text, md5=self.md5, cm=self.col_md5)

    def range_rows(self):
        return self._rows() + sql.SQL(' FROM unnest(%(a)s::bigint[], %(b)s::bigint[]) AS r(a, b) JOIN {t} '
                                      'ON {k} >= r.a AND {k} <= r.b WHERE {w}').format(
            t=self.table, k=self.k0, w=self.where)

    def hash_rows(self, bits):
        return self._rows() + sql.SQL(' FROM {t} WHERE {w} AND ({kh} & {m}) = ANY(%(buckets)s::bigint[])').format(
            t=self.table, w=self.where, kh=self.key_hash, m=sql.Literal((1 << bits) - 1))


# ---------------------------------------------------------------- pure steps
def differing(src_groups, tgt_groups):
    """Pure: the (parent, seg) of groups whose count or hash sum differ, with (n_source, n_target)."""
    out = {}
    for group in set(src_groups) | set(tgt_groups):
        s = src_groups.get(group, (0, 0))
        t = tgt_groups.get(group, (0, 0))
        if s != t:
            out[group] = (s[0], t[0])
    return out


def top_fanout(estimate):
    """Pure: first-level ranges or buckets for a table of about `estimate` rows."""
    return int(min(MAX_TOP, max(1, math.ceil(float(estimate) / TOP_SEGMENT_ROWS))))


def classify(src_rows, tgt_rows, columns):
    """Pure: rows of the differing leaves of both sides (key tuple -> (row_hash, column_hashes)) to
    (only_in_source keys, only_in_target [(key, hash)], changed [(key, columns, target hash)]), sorted by key."""
    only_s = sorted((k for k in src_rows if k not in tgt_rows), key=sort_key)
    only_t = sorted(((k, tgt_rows[k][0]) for k in tgt_rows if k not in src_rows), key=lambda x: sort_key(x[0]))
    changed = []
    for k in sorted((k for k in tgt_rows if k in src_rows), key=sort_key):
        (sh, scol), (th, tcol) = src_rows[k], tgt_rows[k]
        if sh != th:
            cols = [c for c, a, b in zip(columns, scol, tcol) if a != b]
            changed.append((k, cols, th))
    return only_s, only_t, changed


def sort_key(key):
    return tuple((0, int(v), '') if _is_int(v) else (1, 0, v) for v in key)


def _is_int(value):
    try:
        int(value)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- the comparison
# the first level of a table of at least this many rows compiles its expressions and tuple deforming (JIT,
# optimized, not inlined) where the server has JIT on: it reads every row and hashes every column. On 2M rows
# compiled in fresh sessions the whole comparison took about 12 % less; inlining too, 7 % less (it compiles longer);
# below a million rows compiling costs more than it saves
JIT_ROWS = 1000000
JIT_SETTINGS = (('jit', 'on'), ('jit_above_cost', '0'), ('jit_inline_above_cost', '-1'), ('jit_optimize_above_cost', '0'))


def jit_configured(session):
    """True when the server's own configuration (the session's reset value: server, database and role settings)
    has jit on - the diff turns it off for every other query and never turns on what the DBA turned off - and it
    can compile (pg_jit_available, which is true only while jit is on)."""
    if session.scalar("SELECT reset_val FROM pg_catalog.pg_settings WHERE name = 'jit'") != 'on':
        return False
    return bool(_with_settings(session, (('jit', 'on'),), lambda: session.scalar('SELECT pg_catalog.pg_jit_available()')))


def _with_settings(session, settings, fn):
    """fn() with the session's `settings` set, and their values before put back afterwards (RESET would give the
    server's values, not those of SESSION_SETTINGS)."""
    before = [(name, session.scalar('SELECT pg_catalog.current_setting(%s)', [name])) for name, _value in settings]
    for name, value in settings:
        session.scalar('SELECT pg_catalog.set_config(%s, %s, false)', [name, value])
    try:
        return fn()
    finally:
        for name, value in before:
            session.scalar('SELECT pg_catalog.set_config(%s, %s, false)', [name, value])


def first_level_settings(session, workers, estimate):
    """The settings of one side's first level: parallel_settings(workers), and JIT_SETTINGS for a table of at least
    JIT_ROWS rows where jit_configured."""
    settings = parallel_settings(workers)
    if estimate >= JIT_ROWS and jit_configured(session):
        settings += JIT_SETTINGS
    return settings


def parallel_settings(workers):
    """The settings of the first level, which reads the whole table. With `workers` (> 0): a parallel plan of that
    many workers (the planner takes every row for a group of its own, as it cannot know how many ranges an
    expression makes, and so never plans the partial aggregation without the zero costs). Without: no parallel
    workers - the target is the live server, and the workers' CPU is the application's (bench/table_diff.py: on
    two servers sharing two cores, the parallel plan made the first level about 30 % slower)."""
    if workers:
        return (('max_parallel_workers_per_gather', str(int(workers))), ('parallel_setup_cost', '0'),
                ('parallel_tuple_cost', '0'))
    return (('max_parallel_workers_per_gather', '0'),)


def _groups(session, query, params=None, settings=()):
    return _with_settings(session, settings, lambda: dict(
        ((r['parent'], r['seg']), (r['n'], r['s'])) for r in session.rows(query, params)))


def _fetch(session, query, params):
    rows = session.rows(query, params)
    return dict((tuple(r['key']), (r['row_hash'], r['column_hashes'])) for r in rows), len(rows)


def _compare_range(source, target, q, estimate, stats, first):
    """Key-range bisection on an integer key (index range scans below the first level); returns (src_rows,
    tgt_rows) of the differing leaves. Ranges are inclusive (first, last): no bound beyond the key's type."""
    bounds = run_both(source, target, lambda s: s.row(q.bounds()))
    los = [b['lo'] for b in bounds if b['lo'] is not None]
    his = [b['hi'] for b in bounds if b['hi'] is not None]
    if not los:
        stats.update(source_rows=0, target_rows=0, levels=0)
        return {}, {}
    lo, hi = int(min(los)), int(max(his))
    wide = hi - lo >= (1 << 62)
    width = max(1, -(-(hi - lo + 1) // top_fanout(estimate)))
    ends = {lo: hi}
    groups = run_both(source, target, lambda s: _groups(s, q.range_top(lo, width, wide), settings=first[s is target]))
    stats['source_rows'] = sum(v[0] for v in groups[0].values())
    stats['target_rows'] = sum(v[0] for v in groups[1].values())
    leaves, levels = [], 1
    while True:
        nxt = []
        for (parent, seg), counts in differing(*groups).items():
            first = int(parent) + int(seg) * width
            last = min(first + width - 1, ends[int(parent)])
            if max(counts) <= LEAF_ROWS or width == 1:
                leaves.append((first, last))
            else:
                nxt.append((first, last))
        if not nxt:
            break
        width = max(1, -(-width // FANOUT))
        ends = dict(nxt)
        params = dict(a=[a for a, b in nxt], b=[b for a, b in nxt])
        groups = run_both(source, target, lambda s, p=params, w=width: _groups(s, q.range_level(w, wide), p))
        levels += 1
    stats['levels'] = levels
    if not leaves:
        return {}, {}
    params = dict(a=[a for a, b in leaves], b=[b for a, b in leaves])
    fetched = run_both(source, target, lambda s: _fetch(s, q.range_rows(), params))
    stats['rows_fetched'] = fetched[0][1] + fetched[1][1]
    return fetched[0][0], fetched[1][0]


def _compare_hash(source, target, q, estimate, stats, first):
    """Key-hash buckets (any key type, collation-independent); returns (src_rows, tgt_rows) of differing leaves."""
    bits = max(1, int(math.ceil(math.log(top_fanout(estimate), 2)))) if top_fanout(estimate) > 1 else 1
    groups = run_both(source, target, lambda s: _groups(s, q.hash_level(bits, 0), settings=first[s is target]))
    stats['source_rows'] = sum(v[0] for v in groups[0].values())
    stats['target_rows'] = sum(v[0] for v in groups[1].values())
    leaves, levels = {}, 1
    while True:
        diff = differing(*groups)
        nxt = []
        for (parent, seg), counts in diff.items():
            if max(counts) <= LEAF_ROWS or bits >= MAX_BITS:
                leaves.setdefault(bits, []).append(int(seg))
            else:
                nxt.append(int(seg))
        if not nxt:
            break
        parent_bits, bits = bits, min(MAX_BITS, bits + FANOUT_BITS)
        params = dict(parents=nxt)
        groups = run_both(source, target,
                          lambda s, p=params, b=bits, pb=parent_bits: _groups(s, q.hash_level(b, pb), p))
        levels += 1
    stats['levels'] = levels
    src_rows, tgt_rows = {}, {}
    for leaf_bits, buckets in sorted(leaves.items()):
        params = dict(buckets=buckets)
        fetched = run_both(source, target, lambda s, b=leaf_bits, p=params: _fetch(s, q.hash_rows(b), p))
        src_rows.update(fetched[0][0])
        tgt_rows.update(fetched[1][0])
        stats['rows_fetched'] += fetched[0][1] + fetched[1][1]
    return src_rows, tgt_rows


def compare_table(source, target, spec, limit=100, parallel_workers=0):
    """Compare one table between two sessions, each already in its snapshot (begin_snapshot). spec: dict(table (a
    name in SQL syntax), where (text or None), key (columns or None)). Returns the result entry of the table (see
    the package docstring). Raises TableDiffError."""
    name = spec['table']
    try:
        where = check_where(spec.get('where'))
    except WhereError as exc:
        raise TableDiffError('%s: where: %s' % (name, exc))
    src, tgt = describe(source, name, 'source'), describe(target, name, 'target')
    pair = check_pair(tgt['qname'], src, tgt, spec.get('key'))
    modern = min(source.server_version_num, target.server_version_num) >= MODERN
    q = TableSql(tgt['schema'], tgt['name'], pair['columns'], pair['key'], pair['hashable'], where, modern,
                 pair['hash_functions'])
    for side, session in (('source', source), ('target', target)):
        try:
            session.execute('SAVEPOINT probe')
            session.scalar(q.probe())
            session.execute('RELEASE SAVEPOINT probe')
        except psycopg2.Error as exc:
            session.execute('ROLLBACK TO SAVEPOINT probe')
            if exc.pgcode == '42501' and 'row-level security' in str(exc):
                raise TableDiffError(
                    '%s: a row-level security policy would hide rows of %s from %s in the %s; the diff runs with '
                    'row_security = off so that it never compares a subset. Connect as the table owner (without '
                    'FORCE ROW LEVEL SECURITY), a superuser or a role with BYPASSRLS. (%s)' % (
                        side, tgt['qname'], session.scalar('SELECT current_user'), side,
                        database_error_message(exc)))
            raise TableDiffError('%s: the table %s with where %r cannot be read in the %s: %s' % (
                side, tgt['qname'], where, side, database_error_message(exc)))
    stats = dict(rows_fetched=0, source_rows=0, target_rows=0, levels=0)
    estimate = max(src['estimate'], tgt['estimate'], 1)
    first = run_both(source, target, lambda s: first_level_settings(s, parallel_workers, estimate))
    method = 'key_range' if pair['integer_key'] else 'key_hash'
    if pair['integer_key']:
        src_rows, tgt_rows = _compare_range(source, target, q, estimate, stats, first)
    else:
        src_rows, tgt_rows = _compare_hash(source, target, q, estimate, stats, first)
    only_s, only_t, changed = classify(src_rows, tgt_rows, pair['columns'])
    truncated = any(len(x) > limit for x in (only_s, only_t, changed))
    return dict(
        table=tgt['qname'], key=pair['key'], where=where, method=method,
        source_rows=stats['source_rows'], target_rows=stats['target_rows'], rows_fetched=stats['rows_fetched'],
        levels=stats['levels'],
        only_in_source=dict(count=len(only_s), keys=[list(k) for k in only_s[:limit]]),
        only_in_target=dict(count=len(only_t), rows=[dict(key=list(k), target_hash=h) for k, h in only_t[:limit]]),
        changed=dict(count=len(changed), rows=[dict(key=list(k), columns=c, target_hash=h)
                                               for k, c, h in changed[:limit]]),
        truncated=truncated)


def compare_tables(source, target, tables, limit=100, parallel_workers=0):
    """Compare `tables` (list of dict(table, where, key)) between the source and target sessions, each in its
    snapshot; returns the list of table results in the given order. `parallel_workers`: see parallel_settings."""
    return [compare_table(source, target, spec, limit, parallel_workers) for spec in tables]
