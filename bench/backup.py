"""Benchmark pg_backup against the raw pg_dump command with the same options.

Run: .venv/bin/python bench/backup.py  (starts and destroys its own lab; prints the figures)
     BENCH_MB=300 (size of the bulk table in MB), BENCH_TENANTS=20, BENCH_SCALE=5 (the sample data)
For the custom format and the directory format with jobs 2 it times, on the same database:
  raw     pg_dump --format=... --file=... (what the runbook runs);
  module  pg_backup's own duration_s (snapshot export, pg_dump --snapshot, the row counts taken in parallel in the
          same snapshot, SHA-256 of the artifact, manifest, rename) and the whole ansible-playbook call.
Target: module duration within 1.10 times raw pg_dump; the directory format with jobs 2 faster than custom.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))

import _bench  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402

MB = int(os.environ.get('BENCH_MB', '300'))
TENANTS = int(os.environ.get('BENCH_TENANTS', '20'))
SCALE = float(os.environ.get('BENCH_SCALE', '5'))
DB = 'backup_bench'


def main():
    with _bench.workspace('bench-backup-') as bench:
        lab, work, root, home = bench.lab, bench.work, bench.root, bench.home
        lab.start(tenants=1, scale=1, standby=False, seed=False)
        lab.seed(db=DB, tenants=TENANTS, scale=SCALE)
        rows = MB * 1024 * 1024 // 180  # about 180 bytes a row on disk
        lab.psql('primary', 'CREATE TABLE bulk (id bigint PRIMARY KEY, tenant_id uuid, note text, amount numeric); '
                            "INSERT INTO bulk SELECT g, md5('tenant-' || (g %% %d + 1))::uuid, "
                            "repeat(md5(g::text), 3), g * 1.5 FROM generate_series(1, %d) g; "
                            'VACUUM ANALYZE bulk' % (TENANTS, rows), db=DB, timeout=3600)
        size = int(lab.psql('primary', "SELECT pg_database_size('%s')" % DB))
        print('database %s: %.0f MB (bulk %d rows), PostgreSQL %s' % (DB, size / 1048576.0, rows, lab.state['major']))
        state = lab.state
        node = state['nodes']['primary']
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
        env.update(PGHOST=node['host'], PGPORT=str(node['port']), PGUSER=state['superuser'],
                   PGPASSWORD=state['password'], PGDATABASE=DB)
        conn = dict(login_host=node['host'], login_port=node['port'], login_user=state['superuser'],
                    login_password=state['password'], login_db=DB)
        pg_dump = os.path.join(state['bindir'], 'pg_dump')
        figures = {}
        for fmt, jobs in (('custom', 1), ('directory', 2)):
            dest = os.path.join(work, 'out-%s' % fmt)
            os.makedirs(dest)
            argv = [pg_dump, '--format=%s' % fmt[0], '--file=%s' % os.path.join(dest, 'raw'), '--no-password']
            if jobs > 1:
                argv.append('--jobs=%d' % jobs)
            raw = []
            module = []
            playbook = []
            for _round in range(2):  # alternate, so neither side has the warmer cache
                shutil.rmtree(os.path.join(dest, 'raw'), ignore_errors=True)
                start = time.monotonic()
                subprocess.run(argv, env=env, check=True)
                raw.append(time.monotonic() - start)
                args = dict(conn, dest=dest, format=fmt, jobs=jobs, name='mod_%d_{timestamp}{ext}' % _round)
                start = time.monotonic()
                run = run_playbook([dict(name='b', hosts='localhost', gather_facts=False, tasks=[
                    dict(name='backup', **{'procgenie.dbops.pg_backup': args})])], root, home)
                playbook.append(time.monotonic() - start)
                if run.rc != 0:
                    raise SystemExit(run)
                result = run.result('backup')
                module.append(result['duration_s'])
            figures[fmt] = dict(raw_s=min(raw), module_s=min(module), playbook_s=min(playbook),
                                ratio=round(min(module) / min(raw), 3), size_bytes=result['size_bytes'],
                                tables=len(result['row_counts']))
            print('%-9s jobs=%d  raw pg_dump %6.2f s   pg_backup %6.2f s (x%.3f)   ansible-playbook %6.2f s   '
                  'artifact %.0f MB' % (fmt, jobs, min(raw), min(module), min(module) / min(raw), min(playbook),
                                        result['size_bytes'] / 1048576.0))
        print(json.dumps(figures, indent=2))
        ok_ratio = all(f['ratio'] <= 1.10 for f in figures.values())
        ok_parallel = figures['directory']['module_s'] < figures['custom']['module_s']
        print('target module <= 1.10 x raw: %s; directory jobs=2 faster than custom: %s'
              % ('met' if ok_ratio else 'MISSED', 'met' if ok_parallel else 'MISSED'))


if __name__ == '__main__':
    main()
