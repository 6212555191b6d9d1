"""pg_base_backup and pg_restore_pitr (provider postgres) against a lab of their own: PITR to a time, an LSN, a
restore point and `immediate`; refusals before anything is written; check mode and idempotence."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import free_port, node_params


def wait_archived(lab, timeout=30):
    """Switch WAL and wait until the segment holding everything so far is in the archive."""
    name = lab.psql('primary', 'SELECT pg_walfile_name(pg_switch_wal())')
    path = os.path.join(lab.state['archive_dir'], name)
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert time.time() < deadline, 'segment %s was not archived' % name
        time.sleep(0.1)
    return name


def mark(lab, number):
    lab.psql('primary', 'INSERT INTO pitr_marks(id) VALUES (%d)' % number)
    return lab.psql('primary', "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                               'FROM pitr_marks WHERE id = %d' % number)


@pytest.fixture(scope='module')
def plab(workdir):
    import pglab
    instance = pglab.Lab(os.path.join(workdir, 'pitr'))
    instance.start(standby=False, seed=False)
    instance.psql('primary', 'CREATE TABLE pitr_marks(id int PRIMARY KEY, at timestamptz NOT NULL '
                             'DEFAULT clock_timestamp())')
    yield instance
    instance.destroy()


@pytest.fixture(scope='module')
def history(plab, workdir, collections_root, home):
    """A base backup, then marked rows with WAL switches, a restore point and LSNs between them."""
    from tests.harness.playbook import run_playbook
    dest = os.path.join(workdir, 'pitr-base')
    task = dict(name='base', register='out', **{'procgenie.dbops.pg_base_backup': dict(
        node_params(plab, db='postgres'), dest=dest, compress=5, keep_last=2)})
    run = run_playbook([dict(name='t', hosts='localhost', gather_facts=False, tasks=[task])], collections_root, home)
    assert run.rc == 0, run.text
    base = run.result('base')
    facts = dict(base=base, dest=dest, times={}, lsn={})
    plab.psql('primary', 'CREATE TABLE pitr_ddl(i int)')  # a COMMIT record with invalidation messages
    time.sleep(0.3)
    facts['times'][1] = mark(plab, 1)
    wait_archived(plab)
    time.sleep(0.3)
    facts['times'][2] = mark(plab, 2)
    facts['xid'] = {2: int(plab.psql('primary', 'SELECT xmin::text FROM pitr_marks WHERE id = 2'))}
    plab.psql('primary', "SELECT pg_create_restore_point('pitr_after_2')")
    wait_archived(plab)
    facts['times'][3] = mark(plab, 3)
    facts['lsn'][3] = plab.psql('primary', 'SELECT pg_current_wal_insert_lsn()')
    wait_archived(plab)
    time.sleep(0.3)
    facts['times'][4] = mark(plab, 4)
    facts['last_segment'] = wait_archived(plab)
    return facts


class Restored(object):
    """Restored clusters of a test, stopped and removed at teardown."""

    def __init__(self, lab, root):
        self.lab, self.root, self.dirs = lab, root, []

    def new(self, name):
        path = os.path.join(self.root, name)
        self.dirs.append(path)
        return path, free_port()

    def marks(self, port):
        env = dict(os.environ, PGPASSWORD=self.lab.state['password'])
        out = subprocess.run(['psql', '-h', '127.0.0.1', '-p', str(port), '-U', self.lab.state['superuser'],
                              '-d', 'postgres', '-Atc', 'SELECT coalesce(string_agg(id::text, \',\' ORDER BY id), '
                              "'') FROM pitr_marks"], env=env, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def in_recovery(self, port):
        env = dict(os.environ, PGPASSWORD=self.lab.state['password'])
        return subprocess.run(['psql', '-h', '127.0.0.1', '-p', str(port), '-U', self.lab.state['superuser'], '-d',
                               'postgres', '-Atc', 'SELECT pg_is_in_recovery()'], env=env, capture_output=True,
                              text=True, check=True).stdout.strip()

    def cleanup(self):
        pg_ctl = os.path.join(self.lab.state['bindir'], 'pg_ctl')
        for path in self.dirs:
            if os.path.isfile(os.path.join(path, 'postmaster.pid')):
                subprocess.run(['runuser', '-u', self.lab.state['os_user'], '--', pg_ctl, 'stop', '-D', path,
                                '-m', 'immediate', '-w'], capture_output=True, check=False, cwd='/')
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def restored(plab, workdir):
    root = os.path.join(workdir, 'pitr-restored')
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)
    instance = Restored(plab, root)
    yield instance
    instance.cleanup()
    processes = subprocess.run(['pgrep', '-a', 'postgres'], capture_output=True, text=True, check=False).stdout
    ports = [line for line in processes.splitlines() if root in line]
    assert not ports, ports


def restore_task(lab, history, dest, port, name='pitr', **target):
    args = dict(node_params(lab, db='postgres'), backup_dir=history['dest'], wal_archive=lab.state['archive_dir'],
                data_directory=dest, restore_port=port, **target)
    args.pop('login_port')
    return dict(name=name, register='out', ignore_errors=True, **{'procgenie.dbops.pg_restore_pitr': args})


def between(first, second):
    a = datetime.datetime.fromisoformat(first.replace('Z', '+00:00'))
    b = datetime.datetime.fromisoformat(second.replace('Z', '+00:00'))
    return (a + (b - a) / 2).isoformat().replace('+00:00', 'Z')


def test_base_backup_manifest(plab, history):
    base = history['base']
    assert base['changed'] is True and os.path.isdir(base['path'])
    with open(base['manifest']) as handle:
        manifest = json.load(handle)
    assert manifest['kind'] == 'base' and manifest['timeline'] == 1
    assert manifest['system_identifier'] == plab.psql('primary', 'SELECT system_identifier FROM pg_control_system()')
    assert manifest['start_lsn'] == base['start_lsn'] and manifest['end_lsn'] == base['end_lsn']
    assert os.path.isfile(os.path.join(base['path'], 'backup_manifest'))
    assert os.path.isfile(os.path.join(base['path'], 'base.tar.gz'))
    assert not [n for n in os.listdir(history['dest']) if n.startswith('.')]
    assert base['commands'][0][0].endswith('pg_basebackup')
    assert not any(plab.state['password'] in ' '.join(c) for c in base['commands'])


def test_pitr_to_a_time_holds_exactly_the_earlier_marks(plab, history, restored, play):
    dest, port = restored.new('time')
    target = between(history['times'][1], history['times'][2])
    run = play([restore_task(plab, history, dest, port, target_time=target)])
    result = run.result('pitr')
    assert result.get('failed') is not True, result.get('msg')
    assert result['changed'] is True and result['base_backup'] == history['base']['path']
    assert restored.marks(port) == '1'
    assert restored.in_recovery(port) == 'f'
    assert result['timeline'] == 2 and result['reached_lsn'] and result['duration_s'] > 0
    assert result['connection']['login_port'] == port
    # the restored cluster (now on timeline 2) does not archive into the source's archive
    assert plab.psql('primary', "SHOW archive_mode") == 'on'
    assert not os.path.exists(os.path.join(plab.state['archive_dir'], '00000002.history'))
    with open(os.path.join(dest, 'dbops_pitr.json')) as handle:
        assert json.load(handle)['status'] == 'done'
    # idempotence: the same target again is unchanged
    again = play([restore_task(plab, history, dest, port, target_time=target)]).result('pitr')
    assert again.get('failed') is not True, again.get('msg')
    assert again['changed'] is False and again['running'] is True
    checked = play([restore_task(plab, history, dest, port, target_time=target)], check=True).result('pitr')
    assert checked.get('failed') is not True and checked['changed'] is False
    # another target into the same folder is refused
    other = play([restore_task(plab, history, dest, port, target='latest')]).result('pitr')
    assert other['failed'] is True and 'another target' in other['msg']


def test_pitr_to_a_restore_point_an_lsn_an_xid_and_immediate(plab, history, restored, play):
    cases = [('name', dict(target_name='pitr_after_2'), '1,2'),
             ('lsn', dict(target_lsn=history['lsn'][3]), '1,2,3'),
             ('immediate', dict(target='immediate'), ''),
             ('xid', dict(target_xid=history['xid'][2]), '1,2'),
             ('xid_exclusive', dict(target_xid=history['xid'][2], target_inclusive=False), '1'),
             ('latest', dict(target='latest'), '1,2,3,4')]
    tasks, ports = [], {}
    for name, target, _want in cases:
        dest, port = restored.new(name)
        ports[name] = port
        tasks.append(restore_task(plab, history, dest, port, name=name, **target))
    run = play(tasks)
    for name, _target, want in cases:
        result = run.result(name)
        assert result.get('failed') is not True, (name, result.get('msg'))
        assert restored.marks(ports[name]) == want, name


def test_check_mode_plans_and_writes_nothing(plab, history, restored, play):
    dest, port = restored.new('check')
    run = play([restore_task(plab, history, dest, port, target_name='pitr_after_2')], check=True, diff=True)
    result = run.result('pitr')
    assert result.get('failed') is not True, result.get('msg')
    assert result['changed'] is True and result['plan'] and result['stop']['name'] == 'pitr_after_2'
    assert not os.path.exists(dest)
    assert result['window']['earliest'] == history['base']['end_time']


@pytest.mark.parametrize('case', ['before_base', 'after_archive', 'unknown_name'])
def test_targets_outside_the_window_fail_before_writing(plab, history, restored, play, case):
    dest, port = restored.new('refuse-' + case)
    target = dict(before_base=dict(target_time=history['base']['start_time']),
                  after_archive=dict(target_time=(datetime.datetime.now(datetime.timezone.utc)
                                                  + datetime.timedelta(hours=1)).isoformat()),
                  unknown_name=dict(target_name='no_such_point'))[case]
    result = play([restore_task(plab, history, dest, port, **target)]).result('pitr')
    assert result['failed'] is True
    assert 'restorable window: earliest %s' % history['base']['end_time'] in result['msg']
    assert not os.path.exists(dest)


def test_missing_segment_fails_before_writing(plab, history, restored, play, workdir):
    archive = os.path.join(workdir, 'pitr-gap-archive')
    shutil.rmtree(archive, ignore_errors=True)
    shutil.copytree(plab.state['archive_dir'], archive)
    segments = sorted(n for n in os.listdir(archive) if len(n) == 24)
    # remove a segment between mark 1 and mark 4 (the archive goes on after it)
    gone = segments[-3]
    os.unlink(os.path.join(archive, gone))
    dest, port = restored.new('gap')
    task = restore_task(plab, history, dest, port, target_time=history['times'][4])
    task['procgenie.dbops.pg_restore_pitr']['wal_archive'] = archive
    result = play([task]).result('pitr')
    assert result['failed'] is True and gone in result['msg'] and 'missing' in result['msg']
    assert not os.path.exists(dest)
    task = restore_task(plab, history, dest, port, target='latest')
    task['procgenie.dbops.pg_restore_pitr']['wal_archive'] = archive
    result = play([task]).result('pitr')
    assert result['failed'] is True and 'gap' in result['msg'] and gone in result['msg']
    assert not os.path.exists(dest)
    # the port of a running cluster is refused too
    dest2, _port = restored.new('busy')
    busy = restore_task(plab, history, dest2, plab.state['nodes']['primary']['port'], target='immediate')
    result = play([busy]).result('pitr')
    assert result['failed'] is True and 'in use' in result['msg'] and not os.path.exists(dest2)
    shutil.rmtree(archive, ignore_errors=True)


def role_play(lab, **variables):
    connection = node_params(lab, db='postgres')
    return [dict(name='pitr role', hosts='localhost', gather_facts=False,
                 vars=dict(dbops_connection=connection, **variables),
                 roles=[dict(role='procgenie.dbops.pitr_restore')])]


def in_action_group(collections_root):
    import yaml
    with open(os.path.join(collections_root, 'ansible_collections', 'procgenie', 'dbops', 'meta', 'runtime.yml')) as f:
        group = (yaml.safe_load(f).get('action_groups') or {}).get('dbops') or []
    return {'pg_base_backup', 'pg_restore_pitr'} <= set(group)


def test_role_backup_restore_and_stop(plab, history, restored, play, workdir, collections_root):
    if os.environ.get('PITR_PATCH_GROUP'):  # lets the role be tried before the action group lists the modules
        path = os.path.join(collections_root, 'ansible_collections', 'procgenie', 'dbops', 'meta', 'runtime.yml')
        with open(path) as f:
            text = f.read()
        with open(path, 'w') as f:
            f.write(text.replace('  dbops:\n', '  dbops:\n    - pg_base_backup\n    - pg_restore_pitr\n', 1))
    assert in_action_group(collections_root), \
        'the role needs pg_base_backup and pg_restore_pitr in the dbops action group (meta/runtime.yml)'
    backups = os.path.join(workdir, 'pitr-role-base')
    run = play(plays=role_play(plab, pitr_restore_mode='base_backup', pitr_restore_backup_dir=backups))
    assert run.rc == 0, run.text
    time.sleep(0.3)
    first = mark(plab, 10)
    time.sleep(0.3)
    second = mark(plab, 11)
    wait_archived(plab)
    dest, port = restored.new('role')
    common = dict(pitr_restore_backup_dir=backups, pitr_restore_wal_archive=plab.state['archive_dir'],
                  pitr_restore_data_directory=dest, pitr_restore_port=port)
    run = play(plays=role_play(plab, pitr_restore_target_time=between(first, second), **common))
    assert run.rc == 0, run.text
    assert restored.marks(port) == '1,2,3,4,10'
    assert run.result('procgenie.dbops.pitr_restore : Restore to the target in a new cluster')['base_backup'].startswith(backups)
    again = play(plays=role_play(plab, pitr_restore_target_time=between(first, second), **common))
    assert again.rc == 0 and again.result('procgenie.dbops.pitr_restore : Restore to the target in a new cluster')['changed'] is False
    run = play(plays=role_play(plab, pitr_restore_mode='stop', pitr_restore_remove=True, **common))
    assert run.rc == 0, run.text
    assert not os.path.exists(dest)


def test_pitr_follows_a_newer_timeline_in_the_archive(plab, history, restored, play, workdir):
    """A cluster promoted from the base backup (timeline 2) writes on; its history file and segments in the archive
    are followed by a restore from the same timeline-1 base backup."""
    archive = os.path.join(workdir, 'pitr-tl-archive')
    shutil.rmtree(archive, ignore_errors=True)
    shutil.copytree(plab.state['archive_dir'], archive)
    subprocess.run(['chown', '-R', plab.state['os_user'], archive], check=True)
    first_dir, first_port = restored.new('tl2-source')
    task = restore_task(plab, history, first_dir, first_port, name='tl2', target='immediate',
                        base_backup=history['base']['path'])
    del task['procgenie.dbops.pg_restore_pitr']['backup_dir']
    task['procgenie.dbops.pg_restore_pitr']['wal_archive'] = archive
    result = play([task]).result('tl2')
    assert result.get('failed') is not True, result.get('msg')
    assert result['timeline'] == 2

    def sql(query):
        env = dict(os.environ, PGPASSWORD=plab.state['password'])
        return subprocess.run(['psql', '-h', '127.0.0.1', '-p', str(first_port), '-U', plab.state['superuser'],
                               '-d', 'postgres', '-Atc', query], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()
    sql('INSERT INTO pitr_marks(id) VALUES (20)')
    time.sleep(0.3)
    sql('INSERT INTO pitr_marks(id) VALUES (21)')
    at = sql("SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM pitr_marks "
             'ORDER BY id')
    last = sql('SELECT pg_walfile_name(pg_switch_wal())')
    wal_dir = os.path.join(first_dir, 'pg_wal')
    for name in os.listdir(wal_dir):
        if name == '00000002.history' or (name.startswith('00000002') and len(name) == 24 and name <= last):
            shutil.copy(os.path.join(wal_dir, name), os.path.join(archive, name))
    subprocess.run(['chown', '-R', plab.state['os_user'], archive], check=True)
    dest, port = restored.new('tl3')
    task = restore_task(plab, history, dest, port, target_time=between(*at.splitlines()))
    task['procgenie.dbops.pg_restore_pitr']['wal_archive'] = archive
    result = play([task]).result('pitr')
    assert result.get('failed') is not True, result.get('msg')
    assert restored.marks(port) == '20' and result['timeline'] == 3
    # without the history file the timeline-2 WAL is unreachable: refused before anything is written
    os.unlink(os.path.join(archive, '00000002.history'))
    dest, port = restored.new('tl-nohistory')
    task = restore_task(plab, history, dest, port, target_time=between(*at.splitlines()))
    task['procgenie.dbops.pg_restore_pitr']['wal_archive'] = archive
    result = play([task]).result('pitr')
    assert result['failed'] is True and 'restorable window' in result['msg'] and not os.path.exists(dest)
    shutil.rmtree(archive, ignore_errors=True)
