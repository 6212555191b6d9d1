"""Benchmark pg_vacuum's online rewrite (method: repack, pg_repack) against VACUUM FULL of the same bloated table,
with a writer writing all along.

Run: .venv/bin/python bench/maintenance.py  (starts and destroys its own lab; prints the figures)
     BENCH_ROWS=1000000 (rows of the table before two thirds of them are deleted)
For each method, on a fresh copy of the table (BENCH_ROWS rows of ~120 bytes with a primary key, two rows out of three
deleted, autovacuum off), a writer in its own session inserts a row and updates another one every 5 ms, each in its own
transaction, while pg_vacuum runs through ansible-playbook. It reports:
  max_write_wait_s  the longest a single write of the writer took (the time it waited for a lock, in practice)
  module_s          the module's own run (tables[0].duration_s), and total_s the whole playbook
  writes, lost      writes committed during the run, and how many of them are missing afterwards (must be 0)
  bytes_before / bytes_after of the table.
Target: pg_repack's longest write wait under 1 s, where VACUUM FULL blocks the writer for about its whole run.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))

import _bench  # noqa: E402
import psycopg2  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402

ROWS = int(os.environ.get('BENCH_ROWS', '1000000'))
DB = 'bench_maint'
FIRST_NEW_ID = 10 ** 12


class Writer(object):
    """Inserts a row and updates an existing one every 5 ms, each in its own transaction; times every write."""

    def __init__(self, conninfo):
        self.conn = psycopg2.connect(**conninfo)
        self.conn.autocommit = True
        self.stop = threading.Event()
        self.written = []
        self.errors = []
        self.longest = 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        cursor = self.conn.cursor()
        next_id = FIRST_NEW_ID
        while not self.stop.is_set():
            for statement, args in (("INSERT INTO bloated VALUES (%s, 'new')", [next_id]),
                                    ("UPDATE bloated SET note = 'upd' WHERE id = %s", [3 * (next_id % (ROWS // 3))])):
                started = time.monotonic()
                try:
                    cursor.execute(statement, args)
                except psycopg2.Error as exc:
                    self.errors.append(str(exc).strip())
                    return
                self.longest = max(self.longest, time.monotonic() - started)
            self.written.append(next_id)
            next_id += 1
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(60)
        self.conn.close()


def main():
    with _bench.workspace('bench-maintenance-') as bench:
        lab, root, home = bench.lab, bench.root, bench.home
        lab.start(tenants=1, scale=1, standby=False, seed=False)
        state = lab.state
        node = state['nodes']['primary']
        lab.psql('primary', 'CREATE DATABASE %s' % DB)
        lab.psql('primary', 'CREATE EXTENSION pg_repack', db=DB)
        conn = dict(login_host=node['host'], login_port=node['port'], login_user=state['superuser'],
                    login_password=state['password'], login_db=DB)

        def measure(name, args):
            lab.psql('primary', "DROP TABLE IF EXISTS bloated; "
                                "CREATE TABLE bloated (id bigint PRIMARY KEY, note text NOT NULL) "
                                "WITH (autovacuum_enabled = off); "
                                "INSERT INTO bloated SELECT g, repeat('x', 100) FROM generate_series(1, %d) g; "
                                "DELETE FROM bloated WHERE id %% 3 <> 0; CHECKPOINT" % ROWS, db=DB, timeout=1800)
            with Writer(lab.conninfo('primary', DB)) as writer:
                started = time.monotonic()
                run = run_playbook([dict(name='b', hosts='localhost', gather_facts=False, tasks=[
                    dict(name='v', **{'procgenie.dbops.pg_vacuum': dict(conn, tables=['bloated'], **args)})])],
                    root, home)
                total = time.monotonic() - started
                time.sleep(0.5)
            if run.rc != 0:
                raise SystemExit(run)
            table = run.result('v')['tables'][0]
            present = int(lab.psql('primary', 'SELECT count(*) FROM bloated WHERE id >= %d' % FIRST_NEW_ID, db=DB))
            return dict(method=name, max_write_wait_s=round(writer.longest, 3), module_s=table['duration_s'],
                        total_s=round(total, 3), writes=len(writer.written), lost=len(writer.written) - present,
                        writer_errors=writer.errors, bytes_before=table['bytes_before'],
                        bytes_after=table['bytes_after'])

        figures = dict(rows=ROWS, results=[
            measure('pg_repack', dict(method='repack', wait_timeout=30)),
            measure('VACUUM FULL', dict(full=True, maintenance_window=True, lock_timeout='30s')),
        ])
        print(json.dumps(figures, indent=2))
        repack, full = figures['results']
        print('target pg_repack longest write wait under 1 s: %s (%.3f s; VACUUM FULL %.3f s of a %.1f s run)' % (
            'met' if repack['max_write_wait_s'] < 1.0 else 'MISSED', repack['max_write_wait_s'],
            full['max_write_wait_s'], full['module_s']))


if __name__ == '__main__':
    main()
