"""pg_failover (provider postgres) against a lab of its own: status, planned switchover and back, forced failover."""

from __future__ import annotations

import os
import threading
import time

import psycopg2
import pytest

from tests.conftest import node_params


@pytest.fixture
def flab(workdir, request):
    import pglab
    instance = pglab.Lab(os.path.join(workdir, 'failover-%s' % request.node.name[-12:].strip('_')))
    instance.start(standby=True, seed=False)
    instance.psql('primary', 'CREATE TABLE fo_probe(id bigserial PRIMARY KEY, at timestamptz DEFAULT now())')
    instance.wait_replay()
    yield instance
    instance.destroy()


def spec(lab, node):
    n = lab.state['nodes'][node]
    return dict(host=n['host'], port=n['port'], data_directory=n['datadir'])


def fo_task(lab, primary, candidate, name='fo', **extra):
    params = node_params(lab, db='postgres')
    params.pop('login_host')
    params.pop('login_port')
    args = dict(params, primary=spec(lab, primary), candidate=spec(lab, candidate), **extra)
    return dict(name=name, **{'procgenie.dbops.pg_failover': args}, register='out')


def recovery(lab, node):
    return lab.psql(node, 'SELECT pg_is_in_recovery()')


def refuses_writes(lab, node):
    try:
        lab.psql(node, 'INSERT INTO fo_probe DEFAULT VALUES')
    except Exception as exc:  # pylint: disable=broad-except
        return 'read-only transaction' in str(exc) or 'recovery' in str(exc)
    return False


class Writer(threading.Thread):
    """Commits one row at a time on a node until it fails; remembers every acknowledged id."""

    def __init__(self, lab, node):
        super().__init__(daemon=True)
        n = lab.state['nodes'][node]
        self.dsn = dict(host=n['host'], port=n['port'], user=lab.state['superuser'],
                        password=lab.state['password'], dbname='postgres', application_name='fo-writer')
        self.acked = []
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            conn = psycopg2.connect(**self.dsn)
            conn.autocommit = True
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute('INSERT INTO fo_probe DEFAULT VALUES RETURNING id')
                    self.acked.append(cur.fetchone()[0])
        except psycopg2.Error as exc:
            self.error = exc


def test_status_reports_the_primary_and_the_lag(flab, play):
    run = play([fo_task(flab, 'primary', 'standby')])
    assert run.rc == 0, [r['result'].get('msg') for r in run.results]
    result = run.result('fo')
    assert result['changed'] is False and result['current_primary'] == 'primary'
    nodes = result['nodes']
    assert nodes['primary']['in_recovery'] is False and nodes['primary']['timeline'] == 1
    assert nodes['candidate']['in_recovery'] is True and nodes['candidate']['timeline'] == 1
    assert isinstance(nodes['candidate']['lag_bytes'], int) and nodes['candidate']['lag_bytes'] >= 0
    assert nodes['candidate']['wal_receiver']['status'] == 'streaming'
    assert [s['state'] for s in nodes['primary']['standbys']] == ['streaming']
    assert result['commands'] == []


def test_planned_switchover_loses_no_commit_and_switches_back(flab, play):
    check = play([fo_task(flab, 'primary', 'standby', mode='planned', old_primary_action='rejoin')], check=True,
                 diff=True)
    assert check.rc == 0, check
    planned = check.result('fo')
    assert planned['changed'] is True and all(c['ok'] for c in planned['checks'])
    assert any('pg_promote' in step for step in planned['plan'])
    assert recovery(flab, 'primary') == 'f' and recovery(flab, 'standby') == 't'

    writer = Writer(flab, 'primary')
    writer.start()
    time.sleep(0.5)
    run = play([fo_task(flab, 'primary', 'standby', mode='planned', old_primary_action='rejoin'),
                fo_task(flab, 'primary', 'standby', 'again', mode='planned', old_primary_action='rejoin')], diff=True)
    writer.stop.set()
    writer.join(10)
    assert run.rc == 0, [r['result'].get('msg') for r in run.results]
    result = run.result('fo')
    assert result['changed'] is True and result['current_primary'] == 'candidate'
    assert result['fenced'] == 'stopped' and result['rejoined'] is True and result['rewound'] is False
    assert result['timeline_before'] == 1 and result['new_timeline'] == 2
    assert 0 < result['duration_s'] < 30
    assert result['old_primary_final_lsn']
    assert result['diff']['after']['primary'].endswith(':%s' % flab.state['nodes']['standby']['port'])
    assert any(c[-1] == 'pg_controldata' or 'pg_controldata' in c[-3] for c in result['commands'])
    assert flab.state['password'] not in run.text
    assert run.result('again')['changed'] is False

    # every acknowledged commit is on the new primary; the old primary is a standby that refuses writes
    assert len(writer.acked) > 10, writer.acked
    on_new = set(int(x) for x in flab.psql('standby', 'SELECT id FROM fo_probe').split())
    assert set(writer.acked) <= on_new
    assert recovery(flab, 'standby') == 'f' and recovery(flab, 'primary') == 't'
    assert refuses_writes(flab, 'primary')
    flab.psql('standby', 'INSERT INTO fo_probe DEFAULT VALUES')
    assert flab.psql('standby', "SELECT state FROM pg_stat_replication") == 'streaming'

    # and back, the old standby rejoining through the lab's slot
    back = play([fo_task(flab, 'standby', 'primary', mode='planned', old_primary_action='rejoin',
                         old_primary_slot='pglab_standby')])
    assert back.rc == 0, back
    assert back.result('fo')['new_timeline'] == 3
    assert recovery(flab, 'primary') == 'f' and recovery(flab, 'standby') == 't'
    assert flab.psql('primary', "SELECT active FROM pg_replication_slots WHERE slot_name = 'pglab_standby'") == 't'
    flab.psql('primary', 'INSERT INTO fo_probe DEFAULT VALUES')
    flab.wait_replay()
    assert refuses_writes(flab, 'standby')


def test_forced_failover_with_the_primary_stopped_rewinds_and_rejoins(flab, play):
    flab.psql('primary', 'INSERT INTO fo_probe DEFAULT VALUES')
    flab.wait_replay()
    flab._stop_node('primary', mode='immediate')  # pylint: disable=protected-access
    run = play([fo_task(flab, 'primary', 'standby', mode='forced', old_primary_action='rejoin',
                        old_primary_slot='pglab_primary')])
    assert run.rc == 0, [r['result'].get('msg') for r in run.results]
    result = run.result('fo')
    assert result['changed'] is True and result['fenced'] is None and result['new_timeline'] == 2
    assert any('not reachable' in w for w in result.get('warnings', []))
    assert result['rewound'] is True and result['rejoined'] is True
    assert any('pg_rewind' in ' '.join(c) for c in result['commands'])
    assert recovery(flab, 'standby') == 'f' and recovery(flab, 'primary') == 't'
    flab.psql('standby', 'INSERT INTO fo_probe DEFAULT VALUES')
    assert flab.psql('standby', "SELECT active FROM pg_replication_slots WHERE slot_name = 'pglab_primary'") == 't'


def test_forced_failover_refuses_a_lagging_candidate(flab, play):
    flab.psql('standby', 'SELECT pg_wal_replay_pause()')
    flab.psql('primary', "INSERT INTO fo_probe(at) SELECT now() FROM generate_series(1, 20000)")
    run = play([fo_task(flab, 'primary', 'standby', mode='forced', max_lag_bytes=1024)])
    result = run.result('fo')
    assert result['failed'] is True and 'lag within max_lag_bytes' in result['msg']
    assert [c['ok'] for c in result['checks'] if c['name'] == 'lag within max_lag_bytes'] == [False]
    assert recovery(flab, 'standby') == 't' and recovery(flab, 'primary') == 'f'

    forced = play([fo_task(flab, 'primary', 'standby', mode='forced', max_lag_bytes=1024, force=True)])
    assert forced.rc == 0, forced
    result = forced.result('fo')
    assert result['fenced'] == 'stopped' and result['lag_at_promotion']['bytes'] > 1024
    assert recovery(flab, 'standby') == 'f'
    assert not flab.is_running('primary')
    assert int(flab.psql('standby', 'SELECT count(*) FROM fo_probe')) >= 20000  # the received WAL was replayed


def test_planned_refuses_without_the_data_directory(flab, play):
    task = fo_task(flab, 'primary', 'standby', mode='planned')
    task['procgenie.dbops.pg_failover']['primary'].pop('data_directory')
    result = play([task]).result('fo')
    assert result['failed'] is True and 'data directory' in result['msg']
    assert recovery(flab, 'primary') == 'f' and recovery(flab, 'standby') == 't'


def test_failover_playbook_switches_over_and_back(flab, collections_root, home, workdir):
    import json
    import sys
    from tests.harness.playbook import run_playbook
    from tests.integration.test_read_only import in_action_group
    in_action_group(collections_root, 'pg_failover', 'pg_read_only')
    hosts = {}
    for name, node in flab.state['nodes'].items():
        hosts['lab-' + name] = dict(dbops_data_directory=node['datadir'], dbops_connection=dict(
            login_host=node['host'], login_port=node['port'], login_user=flab.state['superuser'],
            login_password=flab.state['password'], login_db='postgres'))
    inventory = os.path.join(workdir, 'failover-inventory.json')
    with open(inventory, 'w') as handle:
        json.dump({'all': {'children': {'databases': {'hosts': hosts, 'vars': {
            'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}}, handle)
    playbook = os.path.join(collections_root, 'ansible_collections', 'procgenie', 'dbops', 'playbooks', 'failover.yml')
    prefix = 'procgenie.dbops.failover : '

    check = run_playbook(playbook, collections_root, home, inventory=inventory, check=True, extravars=dict(
        target='lab-primary', failover_candidate_host='lab-standby', failover_old_primary_action='rejoin'))
    assert check.rc == 0, check.text[-3000:]
    assert check.result(prefix + 'Run the safety checks')['changed'] is True
    assert recovery(flab, 'standby') == 't'

    over = run_playbook(playbook, collections_root, home, inventory=inventory, extravars=dict(
        target='lab-primary', failover_candidate_host='lab-standby', failover_old_primary_action='rejoin'))
    assert over.rc == 0, over.text[-3000:]
    assert over.result(prefix + 'Switch the primary')['new_timeline'] == 2
    assert over.result(prefix + 'Verify that the new primary accepts writes')['in_recovery'] is False
    assert recovery(flab, 'standby') == 'f' and recovery(flab, 'primary') == 't'

    back = run_playbook(playbook, collections_root, home, inventory=inventory, extravars=dict(
        target='lab-standby', failover_candidate_host='lab-primary', failover_old_primary_action='rejoin',
        failover_old_primary_slot='pglab_standby'))
    assert back.rc == 0, back.text[-3000:]
    assert recovery(flab, 'primary') == 'f' and recovery(flab, 'standby') == 't'
    again = run_playbook(playbook, collections_root, home, inventory=inventory, extravars=dict(
        target='lab-standby', failover_candidate_host='lab-primary', failover_old_primary_action='rejoin'))
    assert again.rc == 0, again.text[-3000:]
    assert again.result(prefix + 'Switch the primary')['changed'] is False


PRINTABLE = ''.join(chr(c) for c in range(32, 127))


def test_rejoin_keeps_a_replication_password_of_every_printable_character(flab, play):
    """Issue 11 item 4: primary_conninfo is quoted for libpq, then for postgresql.auto.conf. The old primary starts
    again, SHOW primary_conninfo reads back exactly the conninfo meant (libpq parses every value back), and it
    streams from the new primary with that role and password."""
    from psycopg2 import sql as psql
    from psycopg2.extensions import parse_dsn
    user = 'rep \'q"\\b:x$1'
    password = PRINTABLE
    app = 'rejoined \'a\\b" c'
    conn = psycopg2.connect(**flab.conninfo('primary'))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(psql.SQL('CREATE ROLE {} LOGIN REPLICATION PASSWORD %s').format(psql.Identifier(user)),
                    (password,))
    conn.close()
    flab.wait_replay()
    run = play([fo_task(flab, 'primary', 'standby', mode='planned', old_primary_action='rejoin',
                        replication_user=user, replication_password=password, application_name=app)], args=['-vvv'])
    assert run.rc == 0, [r['result'].get('msg') for r in run.results]
    assert run.result('fo')['rejoined'] is True
    assert password not in run.text

    new = flab.state['nodes']['standby']
    shown = flab.psql('primary', 'SHOW primary_conninfo')
    assert parse_dsn(shown) == dict(host=new['host'], port=str(new['port']), user=user, password=password,
                                    sslmode='prefer', application_name=app)
    assert recovery(flab, 'primary') == 't'
    assert flab.psql('primary', 'SELECT status FROM pg_stat_wal_receiver') == 'streaming'
    conn = psycopg2.connect(**flab.conninfo('standby'))
    with conn.cursor() as cur:
        cur.execute('SELECT usename, application_name, state FROM pg_stat_replication')
        assert cur.fetchall() == [(user, app, 'streaming')]
    conn.close()
    row = flab.psql('standby', 'INSERT INTO fo_probe DEFAULT VALUES RETURNING id')
    deadline = time.monotonic() + 30
    while flab.psql('primary', 'SELECT count(*) FROM fo_probe WHERE id = %d' % int(row)) != '1':
        assert time.monotonic() < deadline, 'the rejoined old primary does not replay the new primary\'s writes'
        time.sleep(0.1)
