"""Benchmark pg_rls_policy: 500 tenant tables, one call that creates everything, one that changes nothing.

Run: .venv/bin/python bench/rls.py  (starts and destroys its own lab; prints the figures)
Target: the no-change call under 2 seconds, with a constant number of queries.
"""

from __future__ import annotations

import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))

import _bench  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402

TABLES = int(os.environ.get('BENCH_TABLES', '500'))
DB = 'rls_bench'


def main():
    with _bench.workspace('rls-bench-', pg=os.environ.get('LAB_PG', 'auto')) as bench:
        lab, root, home = bench.lab, bench.root, bench.home
        lab.start(standby=False, seed=False)
        lab.psql('primary', 'CREATE DATABASE %s' % DB)
        lab.psql('primary', """
DO $$ BEGIN
  FOR i IN 1..%d LOOP
    EXECUTE format('CREATE TABLE bench_%%s (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, v text)', i);
    EXECUTE format('CREATE INDEX ON bench_%%s (tenant_id, id)', i);
  END LOOP;
END $$;""" % TABLES, db=DB)
        st = lab.state
        conn = dict(login_host=st['nodes']['primary']['host'], login_port=st['nodes']['primary']['port'],
                    login_user=st['superuser'], login_password=st['password'], login_db=DB)
        task = {'procgenie.dbops.pg_rls_policy': dict(conn, schemas=['public']), 'register': 'out'}
        figures = {}
        for name in ('create', 'no change'):
            play = [dict(name='bench', hosts='localhost', gather_facts=False, tasks=[dict(task, name=name)])]
            started = time.monotonic()
            run = run_playbook(play, root, home)
            wall = time.monotonic() - started
            if run.rc != 0:
                print(run)
                return 1
            result = run.result(name)
            figures[name] = dict(changed=result['changed'], tables=len(result['managed_tables']),
                                 queries=len(result['queries']), module_duration_s=result['duration_s'],
                                 playbook_wall_s=round(wall, 2))
        print(json.dumps(dict(tables=TABLES, server_major=st['major'], calls=figures), indent=2))
        print('no-change call: %s s in the module, %d queries (target < 2 s, constant)' % (
            figures['no change']['module_duration_s'], figures['no change']['queries']))
        return 0


if __name__ == '__main__':
    sys.exit(main())
