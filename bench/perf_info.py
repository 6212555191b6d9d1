"""Benchmark pg_perf_info on a large schema: 5,000 tables and 15,000 indexes (issue 15: under 3 s in the module, a
fixed number of catalog queries whatever the size of the schema).

Run: .venv/bin/python bench/perf_info.py  (starts and destroys its own lab; prints the figures)
     BENCH_TABLES=5000 (tables, each with a primary key and two more indexes, one row, analyzed)
The machine's load average is printed with the figures (a loaded machine stretches every figure).
It times pg_perf_info's own duration_s (best of two runs; pg_stat_statements created, bloat by the estimate, which
reads pg_stats) on the big database, and counts its queries there and on a database of one table: the counts must
be equal.
Targets: duration_s under 3 s; the same number of queries on both databases.
Here (2 cores shared with other jobs, load average about 3): 2.63 s, 11 queries on both databases.
"""

from __future__ import annotations

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))

import _bench  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402

TABLES = int(os.environ.get('BENCH_TABLES', '5000'))
BATCH = 250  # tables a transaction (each takes a few locks)

SCHEMA_BATCH = """
DO $$
BEGIN
  FOR i IN %(first)d..%(last)d LOOP
    EXECUTE format('CREATE TABLE %%I (id int PRIMARY KEY, a int, b text, tenant_id int)', 'bench_' || i);
    EXECUTE format('CREATE INDEX %%I ON %%I (a)', 'bench_' || i || '_a', 'bench_' || i);
    EXECUTE format('CREATE INDEX %%I ON %%I (tenant_id, b)', 'bench_' || i || '_tb', 'bench_' || i);
    EXECUTE format('INSERT INTO %%I VALUES (1, 1, %%L, 1)', 'bench_' || i, 'row ' || i);
  END LOOP;
END $$;
"""


def main():
    with _bench.workspace('bench-perf-') as bench:
        lab, root, home = bench.lab, bench.root, bench.home
        lab.start(tenants=1, scale=1, standby=False, seed=False)
        state = lab.state
        node = state['nodes']['primary']
        lab.psql('primary', 'CREATE DATABASE bench_big; CREATE DATABASE bench_small')
        for db in ('bench_big', 'bench_small'):
            lab.psql('primary', 'CREATE EXTENSION pg_stat_statements', db=db)
        lab.psql('primary', 'CREATE TABLE one (id int PRIMARY KEY, tenant_id int); ANALYZE', db='bench_small')
        for first in range(1, TABLES + 1, BATCH):
            lab.psql('primary', SCHEMA_BATCH % dict(first=first, last=min(first + BATCH - 1, TABLES)),
                     db='bench_big', timeout=600)
        lab.psql('primary', 'ANALYZE', db='bench_big', timeout=600)
        counts = lab.psql('primary', "SELECT (SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE "
                          "'bench%') || ' ' || (SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relname LIKE "
                          "'bench%')", db='bench_big')

        def perf(db):
            conn = dict(login_host=node['host'], login_port=node['port'], login_user=state['superuser'],
                        login_password=state['password'], login_db=db)
            run = run_playbook([dict(name='b', hosts='localhost', gather_facts=False, tasks=[
                dict(name='p', **{'procgenie.dbops.pg_perf_info': dict(conn, bloat='estimate')})])], root, home)
            if run.rc != 0:
                raise SystemExit(run)
            return run.result('p')

        big = [perf('bench_big') for _run in range(2)]
        small = perf('bench_small')
        best = min(r['duration_s'] for r in big)
        figures = dict(tables=int(counts.split()[0]), indexes=int(counts.split()[1]), duration_s=best,
                       queries_big=len(big[0]['queries']), queries_small=len(small['queries']),
                       counted=big[0]['counts'], findings=len(big[0]['findings']),
                       small_duration_s=small['duration_s'],
                       load_average=[round(x, 2) for x in os.getloadavg()])
        print(json.dumps(figures, indent=2))
        print('target under 3 s: %s; fixed number of queries: %s' % (
            'met' if best < 3.0 else 'MISSED',
            'met' if figures['queries_big'] == figures['queries_small'] else 'MISSED'))


if __name__ == '__main__':
    main()
