"""Benchmark pg_migrate against psql -1 -f of the same migration files.

Run: .venv/bin/python bench/migrate.py  (starts and destroys its own lab; prints the figures)
     BENCH_MIGRATIONS=200 (small migrations applied in one run), BENCH_APPLIED=1000 (migrations applied before the
     status is timed)
It times, each on a fresh database:
  raw     psql -X -q -1 -v ON_ERROR_STOP=1 -f <file> for each of the files (their up sections), one after the other;
  module  pg_migrate mode=up's own duration_s with lint off (the files parsed, runner lock, tracking rows, one
          transaction a migration), then lint's own time apart (mode=up in check mode with lint=warn, less the same
          without lint);
  status  pg_migrate mode=status's duration_s with BENCH_APPLIED migrations applied.
Targets: module within 1.5 times raw; status under 1 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))

import _bench  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402

COUNT = int(os.environ.get('BENCH_MIGRATIONS', '200'))
APPLIED = int(os.environ.get('BENCH_APPLIED', '1000'))


def write_migrations(folder, count):
    """`count` small migrations: a table, a column, an index, a comment, in turns."""
    os.makedirs(folder)
    for i in range(1, count + 1):
        table = 't%d' % ((i - 1) // 4 + 1)
        up, down = [
            ('CREATE TABLE %s (id bigint PRIMARY KEY, note text);' % table, 'DROP TABLE %s;' % table),
            ('ALTER TABLE %s ADD COLUMN amount numeric;' % table, 'ALTER TABLE %s DROP COLUMN amount;' % table),
            ('CREATE INDEX %s_note ON %s (note);' % (table, table), 'DROP INDEX %s_note;' % table),
            ("COMMENT ON TABLE %s IS 'bench';" % table, 'COMMENT ON TABLE %s IS NULL;' % table),
        ][(i - 1) % 4]
        with open(os.path.join(folder, '%06d_m%d.sql' % (i, i)), 'w') as handle:
            handle.write('-- migrate:up\n%s\n\n-- migrate:down\n%s\n' % (up, down))


def up_sections(folder):
    """The up sections as plain SQL files (what psql -f runs)."""
    out = folder + '-up'
    os.makedirs(out)
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as handle:
            text = handle.read()
        with open(os.path.join(out, name), 'w') as handle:
            handle.write(text.split('-- migrate:down')[0].replace('-- migrate:up', ''))
    return out


def main():
    with _bench.workspace('bench-migrate-') as bench:
        lab, work, root, home = bench.lab, bench.work, bench.root, bench.home
        lab.start(tenants=1, scale=1, standby=False, seed=False)
        state = lab.state
        node = state['nodes']['primary']
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
        env.update(PGHOST=node['host'], PGPORT=str(node['port']), PGUSER=state['superuser'],
                   PGPASSWORD=state['password'])
        folder = os.path.join(work, 'migrations')
        write_migrations(folder, COUNT)
        plain = up_sections(folder)
        psql = os.path.join(state['bindir'], 'psql')

        def migrate(db, folder_, check=False, **args):
            conn = dict(login_host=node['host'], login_port=node['port'], login_user=state['superuser'],
                        login_password=state['password'], login_db=db)
            run = run_playbook([dict(name='b', hosts='localhost', gather_facts=False, tasks=[
                dict(name='m', **{'procgenie.dbops.pg_migrate': dict(conn, path=folder_, **args)})])],
                root, home, check=check)
            if run.rc != 0:
                raise SystemExit(run)
            return run.result('m')

        raw, module = [], []
        for rnd in range(2):
            lab.psql('primary', 'CREATE DATABASE raw_%d; CREATE DATABASE mod_%d' % (rnd, rnd))
            start = time.monotonic()
            for name in sorted(os.listdir(plain)):
                subprocess.run([psql, '-X', '-q', '-1', '-v', 'ON_ERROR_STOP=1', '-d', 'raw_%d' % rnd, '-f',
                                os.path.join(plain, name)], env=env, check=True)
            raw.append(time.monotonic() - start)
            result = migrate('mod_%d' % rnd, folder, mode='up', lint='off')
            assert len(result['applied']) == COUNT
            module.append(result['duration_s'])
        lab.psql('primary', 'CREATE DATABASE lint_db')
        without = migrate('lint_db', folder, check=True, mode='up', lint='off')['duration_s']
        with_lint = migrate('lint_db', folder, check=True, mode='up', lint='warn')['duration_s']
        big = os.path.join(work, 'many')
        write_migrations(big, APPLIED)
        lab.psql('primary', 'CREATE DATABASE status_db')
        migrate('status_db', big, mode='up', lint='off')
        status = min(migrate('status_db', big, mode='status')['duration_s'] for _run in range(2))
        figures = dict(migrations=COUNT, raw_s=round(min(raw), 3), module_s=min(module),
                       ratio=round(min(module) / min(raw), 3), lint_s=round(with_lint - without, 3),
                       status_applied=APPLIED, status_s=status)
        print(json.dumps(figures, indent=2))
        print('target module <= 1.5 x raw: %s; status of %d applied under 1 s: %s' % (
            'met' if figures['ratio'] <= 1.5 else 'MISSED', APPLIED, 'met' if status < 1.0 else 'MISSED'))


if __name__ == '__main__':
    main()
