"""Benchmark pg_table_diff against a full compare, and reladiff beside.

Run: .venv/bin/python bench/table_diff.py  (starts and destroys two clusters of its own; prints the figures)
     BENCH_ROWS=2000000 (rows of the table), BENCH_DIFFS=100 (differing rows: a third updated, a third deleted,
     a third inserted in the target)
It times, on the same pair of clusters:
  module  pg_table_diff through ansible-playbook (BENCH_ATTEMPTS=3 times, alternating with the full compare so
          that both see the same machine; the best of each is compared): the module's own duration_s (both
          snapshots opened, the table described, the ranges compared and the differing leaves fetched), and its
          rows_fetched; with its defaults (no parallel workers), and beside it with parallel_workers=2
          (module_parallel_s: faster only where the servers have idle cores, which two lab servers sharing this
          machine's cores do not);
  full    both tables exported with COPY (in parallel, one thread per server), each sorted, and compared line by
          line - the simple way to the same answer;
  reladiff (if importable) reladiff's diff_tables (hashdiff, 4 threads a side) on the same pair.
Targets: module <= 0.3 x full; rows_fetched <= 1 % of the table; the three agree on the differences.
full_bytes: what the full compare moves from the two servers (the two COPY outputs) - free here, where both
servers are local, and the time a network between the servers and the comparing host adds to it; the module moves
the first level's groups (about 8,000 rows of four numbers a side) and the fetched rows' hashes.
projected_ratio_1gbit: module_s / (full_s + full_bytes over a 1 Gbit/s link into the comparing host) - a
projection for servers on other hosts, computed, not measured; targets_met uses the measured ratio only.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))

import psycopg2  # noqa: E402

import _bench  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402

ROWS = int(os.environ.get('BENCH_ROWS', '2000000'))
DIFFS = int(os.environ.get('BENCH_DIFFS', '100'))
ATTEMPTS = int(os.environ.get('BENCH_ATTEMPTS', '3'))
SETUP = """
CREATE TABLE orders (id bigint PRIMARY KEY, tenant text NOT NULL, status text NOT NULL, amount numeric(12,2),
                     created_at timestamptz NOT NULL);
INSERT INTO orders SELECT g, 'tenant-' || (g %% 50), 'open', g * 0.25,
       timestamptz '2025-01-01 00:00+00' + g * interval '1 second' FROM generate_series(1, %d) g;
VACUUM ANALYZE orders;
""" % ROWS


def damage(count):
    """SQL changing `count` rows of the target, spread over the key space: updates, deletes, inserts."""
    step = ROWS // (count + 1)
    ids = [step * (i + 1) for i in range(count)]
    third = count // 3
    updated, deleted = ids[:third], ids[third:2 * third]
    inserted = count - len(updated) - len(deleted)
    return ("UPDATE orders SET status = 'cancelled' WHERE id = ANY(ARRAY%s::bigint[]);" % updated
            + "DELETE FROM orders WHERE id = ANY(ARRAY%s::bigint[]);" % deleted
            + "INSERT INTO orders SELECT g, 'late', 'open', 1, now() FROM generate_series(%d, %d) g;"
            % (ROWS + 1, ROWS + inserted)), count


def connect(lab):
    c = lab.conninfo(db='postgres')
    return psycopg2.connect(host=c['host'], port=c['port'], user=c['user'], password=c['password'], dbname='postgres')


def full_compare(labs):
    """COPY both sides (a thread each), sort, compare; returns (seconds, differing keys)."""
    started = time.monotonic()
    out = [None, None]
    size = [0, 0]

    def export(index, lab):
        conn = connect(lab)
        buf = io.BytesIO()
        conn.cursor().copy_expert('COPY orders TO STDOUT', buf)
        conn.close()
        size[index] = buf.tell()
        out[index] = sorted(buf.getvalue().split(b'\n'))
    threads = [threading.Thread(target=export, args=(i, lab)) for i, lab in enumerate(labs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    src, tgt = out
    keys = set()
    i = j = 0
    while i < len(src) or j < len(tgt):  # a merge of the two sorted exports: lines only on one side
        if j >= len(tgt) or (i < len(src) and src[i] < tgt[j]):
            keys.add(src[i].split(b'\t', 1)[0])
            i += 1
        elif i >= len(src) or tgt[j] < src[i]:
            keys.add(tgt[j].split(b'\t', 1)[0])
            j += 1
        else:
            i += 1
            j += 1
    keys.discard(b'')
    return time.monotonic() - started, keys, sum(size)


def reladiff_compare(labs):
    try:
        import reladiff
    except ImportError as exc:
        return None, 'not importable: %s' % exc
    uris = []
    for lab in labs:
        c = lab.conninfo(db='postgres')
        uris.append('postgresql://%s:%s@%s:%s/postgres' % (c['user'], c['password'], c['host'], c['port']))
    started = time.monotonic()
    try:
        tables = [reladiff.connect_to_table(uri, 'orders', 'id', thread_count=4) for uri in uris]
        cols = ('tenant', 'status', 'amount', 'created_at')
        tables = [t.replace(extra_columns=cols) for t in tables]
        diff = list(reladiff.diff_tables(tables[0], tables[1], threaded=True, max_threadpool_size=4))
    except Exception as exc:  # pylint: disable=broad-except
        return None, 'failed: %s' % exc
    return time.monotonic() - started, set(str(row[1][0]).encode() for row in diff)


def main():
    with _bench.workspace('bench-diff-', lab=False) as bench:
        labs = [bench.new_lab(name) for name in ('source', 'target')]
        root, home = bench.root, bench.home
        for lab in labs:
            lab.start(standby=False, seed=False)
            lab.psql('primary', SETUP)
        sql, count = damage(DIFFS)
        labs[1].psql('primary', sql + 'VACUUM ANALYZE orders;')
        src, tgt = labs[0].state, labs[1].state
        task = {'procgenie.dbops.pg_table_diff': dict(
            login_host=tgt['nodes']['primary']['host'], login_port=tgt['nodes']['primary']['port'],
            login_user=tgt['superuser'], login_password=tgt['password'], login_db='postgres',
            source=dict(login_host=src['nodes']['primary']['host'], login_port=src['nodes']['primary']['port'],
                        login_password=src['password']),
            tables=[dict(name='orders')], limit=1000), 'name': 'diff'}
        figures = dict(rows=ROWS, differing_rows=count)
        parallel_task = dict(task, name='parallel')
        parallel_task['procgenie.dbops.pg_table_diff'] = dict(task['procgenie.dbops.pg_table_diff'], parallel_workers=2)
        module_runs, full_runs, parallel_runs = [], [], []
        for _attempt in range(ATTEMPTS):  # alternating, so that both see the same load; the best of each counts
            run = run_playbook([dict(name='b', hosts='localhost', gather_facts=False, tasks=[task])], root, home)
            res = run.result('diff')
            if run.rc != 0:
                raise SystemExit('pg_table_diff failed: %s' % res.get('msg'))
            module_runs.append(res)
            full_runs.append(full_compare(labs))
            run = run_playbook([dict(name='b', hosts='localhost', gather_facts=False, tasks=[parallel_task])], root,
                               home)
            parallel_runs.append(run.result('parallel').get('duration_s'))
        res = min(module_runs, key=lambda r: r['duration_s'])
        table = res['tables'][0]
        found = set(str(k[0]).encode() for k in table['only_in_source']['keys']) | set(
            str(r['key'][0]).encode() for r in table['only_in_target']['rows'] + table['changed']['rows'])
        full_s, full_keys, full_bytes = min(full_runs, key=lambda x: x[0])
        pairs = sorted(m['duration_s'] / f[0] for m, f in zip(module_runs, full_runs))
        figures.update(module_s=res['duration_s'], module_runs_s=[r['duration_s'] for r in module_runs],
                       module_parallel_s=min(parallel_runs), module_parallel_runs_s=parallel_runs,
                       rows_fetched=table['rows_fetched'], fetched_pct=round(100.0 * table['rows_fetched'] / ROWS, 4),
                       levels=table['levels'], found=len(found), full_s=round(full_s, 3),
                       full_runs_s=[round(f[0], 3) for f in full_runs], full_found=len(full_keys), full_bytes=full_bytes,
                       ratio=round(res['duration_s'] / full_s, 3), median_pair_ratio=round(pairs[len(pairs) // 2], 3),
                       agree=found == full_keys, load_average=os.getloadavg(),
                       projected_ratio_1gbit=round(res['duration_s'] / (full_s + full_bytes * 8 / 1e9), 3))
        reladiff_s, reladiff_keys = reladiff_compare(labs)
        if reladiff_s is None:
            figures['reladiff'] = reladiff_keys
        else:
            figures.update(reladiff_s=round(reladiff_s, 3), reladiff_found=len(reladiff_keys),
                           reladiff_agrees=reladiff_keys == full_keys)
        figures['targets_met'] = figures['ratio'] <= 0.3 and figures['fetched_pct'] <= 1 and figures['agree']
        print(json.dumps(figures, indent=2))
        return 0 if figures['targets_met'] else 1


if __name__ == '__main__':
    sys.exit(main())
