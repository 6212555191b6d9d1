"""Benchmark pg_restore_pitr against the same point-in-time restore done by hand with the PostgreSQL tools.

Run: .venv/bin/python bench/pitr.py  (starts and destroys its own lab; prints the figures)
     BENCH_MB=200 (data written before the base backup), BENCH_WAL_MB=200 (data written after it, replayed)
Both restores use the same tar base backup (pg_base_backup, gzip 1) and the same WAL archive, to the same time:
  manual  tar -xzf base.tar.gz and pg_wal.tar.gz, chown, recovery settings in postgresql.auto.conf, recovery.signal,
          pg_ctl start -w, poll until pg_is_in_recovery() is false (what the PostgreSQL documentation describes);
  module  pg_restore_pitr's own duration_s (validation with pg_waldump over the archive, the same steps, the marker)
          and the whole ansible-playbook call.
Target: module duration_s within 1.2 times the manual restore.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))

import _bench  # noqa: E402
from tests.harness.playbook import run_playbook  # noqa: E402

MB = int(os.environ.get('BENCH_MB', '200'))
WAL_MB = int(os.environ.get('BENCH_WAL_MB', '200'))


def fill(lab, table, megabytes):
    rows = megabytes * 1024 * 1024 // 180
    lab.psql('primary', 'CREATE TABLE %s (id bigint PRIMARY KEY, note text); INSERT INTO %s SELECT g, '
                        'repeat(md5(g::text), 4) FROM generate_series(1, %d) g' % (table, table, rows), timeout=3600)


def switch_and_wait(lab):
    name = lab.psql('primary', 'SELECT pg_walfile_name(pg_switch_wal())')
    while not os.path.exists(os.path.join(lab.state['archive_dir'], name)):
        time.sleep(0.1)


def stop(lab, datadir):
    subprocess.run(['runuser', '-u', lab.state['os_user'], '--', os.path.join(lab.state['bindir'], 'pg_ctl'), 'stop',
                    '-D', datadir, '-m', 'immediate', '-w'], capture_output=True, check=False, cwd='/')
    shutil.rmtree(datadir, ignore_errors=True)


def manual_restore(lab, backup, datadir, port, target_time):
    started = time.monotonic()
    user = lab.state['os_user']
    os.makedirs(os.path.join(datadir, 'pg_wal'), mode=0o700)
    subprocess.run(['tar', '-xzf', os.path.join(backup, 'base.tar.gz'), '-C', datadir], check=True)
    subprocess.run(['tar', '-xzf', os.path.join(backup, 'pg_wal.tar.gz'), '-C', os.path.join(datadir, 'pg_wal')],
                   check=True)
    subprocess.run(['chown', '-R', '%s:' % user, datadir], check=True)
    os.chmod(datadir, 0o700)
    archive = lab.state['archive_dir']
    with open(os.path.join(datadir, 'postgresql.auto.conf'), 'a') as handle:
        handle.write("port = %d\narchive_mode = off\nrestore_command = 'cp %s/%%f \"%%p\"'\n"
                     "recovery_target_time = '%s'\nrecovery_target_action = 'promote'\n" % (port, archive, target_time))
    open(os.path.join(datadir, 'recovery.signal'), 'w').close()
    subprocess.run(['runuser', '-u', user, '--', os.path.join(lab.state['bindir'], 'pg_ctl'), 'start', '-D', datadir,
                    '-w', '-l', os.path.join(datadir, 'pg_ctl.log')], check=True, capture_output=True, cwd='/')
    env = dict(os.environ, PGPASSWORD=lab.state['password'])
    while subprocess.run(['psql', '-h', '127.0.0.1', '-p', str(port), '-U', lab.state['superuser'], '-d', 'postgres',
                          '-Atc', 'SELECT pg_is_in_recovery()'], env=env, capture_output=True, text=True,
                         check=False).stdout.strip() != 'f':
        time.sleep(0.1)
    return time.monotonic() - started


def main():
    with _bench.workspace('bench-pitr-') as bench:
        lab, work, root, home = bench.lab, bench.work, bench.root, bench.home
        lab.start(standby=False, seed=False)
        fill(lab, 'before_base', MB)
        state = lab.state
        node = state['nodes']['primary']
        conn = dict(login_host=node['host'], login_port=node['port'], login_user=state['superuser'],
                    login_password=state['password'], login_db='postgres')
        backups = os.path.join(work, 'base')
        run = run_playbook([dict(name='b', hosts='localhost', gather_facts=False, tasks=[dict(
            name='base', register='out', **{'procgenie.dbops.pg_base_backup': dict(conn, dest=backups, compress=1)})])],
            root, home)
        assert run.rc == 0, run.text
        base = run.result('base')
        print('base backup %s: %.0f MB in %.1f s' % (base['path'], base['size_bytes'] / 1048576.0, base['duration_s']))
        fill(lab, 'after_base', WAL_MB)
        target = lab.psql('primary', "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                     "'YYYY-MM-DD HH24:MI:SS.US+00')")
        time.sleep(0.2)
        lab.psql('primary', 'CREATE TABLE after_target(i int)')
        switch_and_wait(lab)
        archived = sum(os.path.getsize(os.path.join(state['archive_dir'], n)) for n in os.listdir(state['archive_dir']))
        print('WAL archive: %.0f MB; target %s' % (archived / 1048576.0, target))
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
        sock.close()
        manuals, modules, wholes = [], [], []
        for round_ in range(2):  # alternate, best of two: neither side profits alone from a warm page cache
            manual_dir = os.path.join(work, 'manual%d' % round_)
            manuals.append(manual_restore(lab, base['path'], manual_dir, port, target))
            stop(lab, manual_dir)
            module_dir = os.path.join(work, 'module%d' % round_)
            args = dict(conn, backup_dir=backups, wal_archive=state['archive_dir'], data_directory=module_dir,
                        restore_port=port, target_time=target.replace(' ', 'T').replace('+00', 'Z'))
            args.pop('login_port')
            started = time.monotonic()
            run = run_playbook([dict(name='r', hosts='localhost', gather_facts=False, tasks=[dict(
                name='pitr', register='out', **{'procgenie.dbops.pg_restore_pitr': args})])], root, home)
            wholes.append(time.monotonic() - started)
            assert run.rc == 0, run.text
            modules.append(run.result('pitr')['duration_s'])
            stop(lab, module_dir)
        manual, module, whole = min(manuals), min(modules), min(wholes)
        print('manual restore             %6.2f s  (runs: %s)' % (manual, ', '.join('%.2f' % m for m in manuals)))
        print('pg_restore_pitr duration_s %6.2f s  (runs: %s; %.2f x manual; target <= 1.20)' % (
            module, ', '.join('%.2f' % m for m in modules), module / manual))
        print('whole ansible-playbook     %6.2f s' % whole)


if __name__ == '__main__':
    main()
