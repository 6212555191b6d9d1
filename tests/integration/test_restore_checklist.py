"""playbooks/restore_checklist.yml (the runbook's restore checklist, section 2) end to end on the lab: a local HTTP
receiver takes the notices and serves the health endpoint, a traffic hook logs its calls, a dump is restored over
later changes, the migration applied after the backup point runs again; and a run killed half-way (SIGTERM to the
ansible-playbook process group, as an AWX cancel) is continued by the next run, traffic resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, node_params
from tests.harness.http_receiver import Receiver
from tests.harness.playbook import ansible_env, run_playbook

DB = 'rchk'
PLAYBOOK = os.path.join(REPO, 'playbooks', 'restore_checklist.yml')

HOOK = """---
- name: Application traffic hook (test)
  ansible.builtin.shell: |
    echo "{{ restore_checklist_traffic_action }}" >> %(log)s
"""

VERIFY = """---
- name: Application checks (test) - marks its start and sleeps while the flag exists
  ansible.builtin.shell: |
    echo verify >> %(log)s
    while [ -e %(flag)s ]; do sleep 0.2; done
"""


def sql(lab, text, db=DB):
    return lab.psql('primary', text, db=db)


@pytest.fixture(scope='module')
def ctx(lab, workdir, collections_root, home):
    """A seeded database, migration 1 applied, a full backup, then migration 2 and later writes."""
    lab.seed(db=DB)
    root = os.path.join(workdir, 'restore-checklist')
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    os.chmod(root, 0o755)
    migrations = os.path.join(root, 'migrations')
    os.makedirs(migrations)
    with open(os.path.join(migrations, '1_notes.sql'), 'w') as handle:
        handle.write('-- migrate:up\nCREATE TABLE rchk_notes (id bigint PRIMARY KEY);\n\n'
                     '-- migrate:down\nDROP TABLE rchk_notes;\n')
    with open(os.path.join(migrations, '2_notes_text.sql'), 'w') as handle:
        handle.write('-- migrate:up\nALTER TABLE rchk_notes ADD COLUMN body text;\n\n'
                     '-- migrate:down\nALTER TABLE rchk_notes DROP COLUMN body;\n')
    conn = node_params(lab, db=DB)
    backups = os.path.join(root, 'backups')

    def migrate(target):
        run = run_playbook([dict(hosts='localhost', gather_facts=False, tasks=[
            {'procgenie.dbops.pg_migrate': dict(conn, path=migrations, mode='up', target=target, lint='off')}])],
            collections_root, home)
        assert run.rc == 0, run

    migrate('1')
    # the application's TypeORM table, one migration applied before the backup
    sql(lab, 'CREATE TABLE migrations (id serial PRIMARY KEY, "timestamp" bigint NOT NULL, name varchar NOT NULL); '
             "INSERT INTO migrations (\"timestamp\", name) VALUES (1700000000000, 'Init1700000000000')")
    run = run_playbook([dict(hosts='localhost', gather_facts=False, tasks=[
        {'procgenie.dbops.pg_backup': dict(conn, dest=backups), 'register': 'b'}])], collections_root, home)
    assert run.rc == 0, run
    artifact = run.results[-1]['result']['path']
    counts = lab.row_counts(DB)
    yield dict(root=root, conn=conn, backups=backups, migrations=migrations, artifact=artifact, counts=counts,
               migrate=migrate)
    shutil.rmtree(root, ignore_errors=True)
    sql(lab, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % DB, db='postgres')


def later_changes(lab, ctx):
    """What happened after the backup: migration 2, and writes the restore takes back."""
    ctx['migrate']('2')
    sql(lab, 'DELETE FROM request_items WHERE ctid IN (SELECT ctid FROM request_items LIMIT 5)')
    sql(lab, 'INSERT INTO rchk_notes VALUES (1)')
    assert lab.row_counts(DB) != ctx['counts']


def files(ctx, name, text=None):
    path = os.path.join(ctx['root'], name)
    if text is not None:
        with open(path, 'w') as handle:
            handle.write(text)
    return path


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return handle.read().split()


def variables(ctx, receiver, name, **extra):
    log = files(ctx, name + '.log')
    if os.path.exists(log):
        os.remove(log)
    extravars = dict(
        target='localhost', dbops_connection=ctx['conn'], dbops_backup_dir=ctx['backups'],
        restore_checklist_state_file=os.path.join(ctx['root'], 'state', name + '.json'),
        restore_checklist_dump_path=ctx['artifact'],
        restore_checklist_fresh_backup_dest=os.path.join(ctx['root'], name + '-fresh'),
        restore_checklist_notify_url=receiver.url('/notify/' + name),
        restore_checklist_traffic='hook',
        restore_checklist_traffic_hook=files(ctx, name + '-hook.yml', HOOK % dict(log=log)),
        restore_checklist_migrations='dbmate', restore_checklist_migrations_path=ctx['migrations'],
        restore_checklist_migrations_lint='off',
        restore_checklist_health_url=receiver.url('/health/' + name),
        restore_checklist_health_delay=1,
        restore_checklist_watch_minutes=0.05, restore_checklist_watch_interval=1)
    extravars.update(extra)
    return extravars, log


def notices(receiver, name):
    return [body['text'] for body in receiver.bodies('/notify/' + name)]


def failures(run):
    return [(r['task'], r['result'].get('msg')) for r in run.results if r['status'] == 'failed']


def applied(lab):
    return sql(lab, 'SELECT string_agg(version::text, \',\' ORDER BY version) FROM dbops_schema_history')


def test_restore_checklist_end_to_end(lab, ctx, collections_root, home):
    later_changes(lab, ctx)
    with Receiver() as receiver:
        receiver.statuses['/health/e2e'] = [503, 200]
        extravars, log = variables(ctx, receiver, 'e2e')
        start = time.time()
        run = run_playbook(PLAYBOOK, collections_root, home, extravars=extravars)
        assert run.rc == 0, failures(run) or run
        took = time.time() - start
        said = notices(receiver, 'e2e')
        assert len(said) == 2, said
        assert 'started' in said[0] and DB in said[0] and ctx['artifact'] in said[0], said[0]
        assert 'finished' in said[1] and 'traffic resumed' in said[1], said[1]
        assert all(text.startswith('[restore development]') for text in said)
        health = receiver.of('/health/e2e')
        # step 8: one 503 then 200; the watch window polled it again
        assert len(health) >= 3 and all(r['method'] == 'GET' for r in health)
    assert lines(log) == ['stop', 'start']
    # the restore took the later writes back; migration 2, applied after the backup point, ran again
    counts = lab.row_counts(DB)
    for table, rows in ctx['counts'].items():
        assert counts[table] == rows, table
    assert applied(lab) == '1,2'
    assert sql(lab, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'rchk_notes' "
                    "AND column_name = 'body'") == '1'
    # the fresh backup of the state before, the record finished (0600)
    fresh = [n for n in os.listdir(os.path.join(ctx['root'], 'e2e-fresh')) if n.endswith('.manifest.json')]
    assert len(fresh) == 1
    state_file = extravars['restore_checklist_state_file']
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    with open(state_file) as handle:
        state = json.load(handle)
    assert state['status'] == 'finished' and state['done'] == list(range(1, 11)) and state['traffic'] == 'running'
    summary = run.results[-1]
    assert summary['task'] == 'procgenie.dbops.restore_checklist : Summary'
    assert 'ran the restore checklist' in summary['result']['msg'], summary
    # a second identical run: nothing to do, nothing changed, no notice
    with Receiver() as receiver:
        extravars['restore_checklist_notify_url'] = receiver.url('/notify/e2e')
        run = run_playbook(PLAYBOOK, collections_root, home, extravars=extravars)
        assert run.rc == 0, failures(run)
        assert receiver.requests == []
    assert not [r['task'] for r in run.results if r['result'].get('changed')]
    assert 'already finished' in run.results[-1]['result']['msg']
    assert lines(log) == ['stop', 'start']
    print('end-to-end run took %.1f s' % took)


def start(collections_root, home, extravars, workdir):
    """ansible-playbook in its own process group, as AWX runs a job (and cancels it: SIGTERM to the group)."""
    path = os.path.join(workdir, 'killed-vars.json')
    with open(path, 'w') as handle:
        json.dump(extravars, handle)
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), PLAYBOOK, '-i', 'localhost,',
            '-c', 'local', '-e', '@' + path]
    return subprocess.Popen(argv, env=ansible_env(collections_root, home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def read_only(lab):
    """default_transaction_read_only of a new session of the database (what the application would get)."""
    return sql(lab, 'SHOW default_transaction_read_only')


def test_killed_during_verification_is_continued_with_traffic_resumed(lab, ctx, collections_root, home, workdir):
    """SIGTERM at step 5 (the application checks sleep there) with the database method stopping traffic: the record
    says steps 1-4 done and traffic stopped (the database, dropped and restored, is read-only again); the next run
    continues at step 5 - no second fresh backup, no second restore - runs the TypeORM migration applied after the
    backup point (the names read before the restore are in the record) and resumes traffic."""
    sql(lab, 'INSERT INTO rchk_notes VALUES (2)')
    # a TypeORM migration the application ran after the backup; its command (here psql) runs it again at step 6
    sql(lab, "INSERT INTO migrations (\"timestamp\", name) VALUES (1700000000001, 'AddPriority1700000000001')")
    command = [os.path.join(lab.state['bindir'], 'psql'), '-X', '-v', 'ON_ERROR_STOP=1', '-c',
               "INSERT INTO migrations (\"timestamp\", name) VALUES (1700000000001, 'AddPriority1700000000001')"]
    with Receiver() as receiver:
        log = files(ctx, 'killed-verify.log')
        flag = files(ctx, 'killed-verify.flag', '')
        extravars, unused = variables(
            ctx, receiver, 'killed', restore_checklist_traffic='database', restore_checklist_recreate_database=True,
            restore_checklist_migrations='typeorm', restore_checklist_migrations_command=command,
            restore_checklist_health_url='', restore_checklist_watch_minutes=0,
            restore_checklist_verify_tasks=files(ctx, 'killed-verify.yml', VERIFY % dict(log=log, flag=flag)))
        proc = start(collections_root, home, extravars, ctx['root'])
        try:
            deadline = time.time() + 240
            while 'verify' not in lines(log):
                assert proc.poll() is None, 'the run ended (rc %s) before step 5' % proc.returncode
                assert time.time() < deadline, 'step 5 not reached'
                time.sleep(0.2)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        os.remove(flag)
        assert proc.returncode != 0
        with open(extravars['restore_checklist_state_file']) as handle:
            state = json.load(handle)
        assert state['status'] == 'running' and state['done'] == [1, 2, 3, 4], state
        assert state['step'] == 5 and state['traffic'] == 'stopped', state
        assert read_only(lab) == 'on'
        assert len(notices(receiver, 'killed')) == 1

        # what an operator sees
        run = run_playbook(PLAYBOOK, collections_root, home, extravars=dict(extravars, restore_checklist_mode='status'))
        assert run.rc == 0, failures(run)
        msg = run.results[-1]['result']['msg']
        assert 'running' in msg and 'traffic stopped' in msg and '1, 2, 3, 4' in msg, msg

        # the same job again: continues at step 5
        run = run_playbook(PLAYBOOK, collections_root, home, extravars=extravars)
        assert run.rc == 0, failures(run) or run
        said = notices(receiver, 'killed')
    tasks = [r['task'] for r in run.results if r['status'] != 'skipped']
    assert not [t for t in tasks if 'Step 4 - restore' in t or 'Step 2 - take' in t], tasks
    assert lines(log) == ['verify', 'verify']
    assert len(said) == 3, said
    assert 'Continuing' in said[1] and 'after step 4' in said[1] and 'traffic is stopped' in said[1], said[1]
    assert 'finished' in said[2] and 'migrations: 1 run (AddPriority1700000000001)' in said[2], said[2]
    # the names read before the restore (step 2 of the killed run, kept in the record) told step 6 what was missing;
    # the application's command ran through the read-only mode
    assert sql(lab, 'SELECT string_agg(name, \',\' ORDER BY id) FROM migrations') == \
        'Init1700000000000,AddPriority1700000000001'
    assert read_only(lab) == 'off'
    assert sql(lab, 'SELECT count(*) FROM rchk_notes') == '0'  # the restore of the first run stays
    fresh = [n for n in os.listdir(os.path.join(ctx['root'], 'killed-fresh')) if n.endswith('.manifest.json')]
    assert len(fresh) == 1
    assert 'continued the restore checklist' in run.results[-1]['result']['msg']


FAILING_HOOK = """---
- name: Application traffic hook (test) - logs the call; stopping fails after the application is stopped
  ansible.builtin.shell: |
    echo "{{ restore_checklist_traffic_action }}" >> %(log)s
    test "{{ restore_checklist_traffic_action }}" = start
"""


def test_a_failed_step_says_traffic_is_stopped_and_abort_resumes_it(lab, ctx, collections_root, home):
    """The stop hook fails half-way (the application may be down): the failure notice names the traffic's state and
    the record keeps it; restore_checklist_mode=abort starts the application with the recorded hook (whatever the
    variables say now) and closes the record; a second abort has nothing to do."""
    with Receiver() as receiver:
        extravars, log = variables(ctx, receiver, 'failed', restore_checklist_fresh_backup=False,
                                   restore_checklist_migrations='none', restore_checklist_health_url='',
                                   restore_checklist_watch_minutes=0)
        with open(extravars['restore_checklist_traffic_hook'], 'w') as handle:
            handle.write(FAILING_HOOK % dict(log=log))
        run = run_playbook(PLAYBOOK, collections_root, home, extravars=extravars)
        assert run.rc != 0
        assert 'failed at step 3' in failures(run)[-1][1] and 'traffic is stopping' in failures(run)[-1][1], \
            failures(run)
        said = notices(receiver, 'failed')
        assert len(said) == 2 and 'FAILED at step 3' in said[1] and 'traffic is stopping' in said[1], said
        with open(extravars['restore_checklist_state_file']) as handle:
            state = json.load(handle)
        assert state['status'] == 'failed' and state['traffic'] == 'stopping' and state['failure']['step'] == 3, state
        assert lines(log) == ['stop']

        abort = dict(extravars, restore_checklist_mode='abort', restore_checklist_traffic='none')
        run = run_playbook(PLAYBOOK, collections_root, home, extravars=abort)
        assert run.rc == 0, failures(run)
        assert lines(log) == ['stop', 'start']
        said = notices(receiver, 'failed')
        assert len(said) == 3 and 'ABORTED after step 2' in said[2] and 'traffic resumed' in said[2], said
        with open(extravars['restore_checklist_state_file']) as handle:
            state = json.load(handle)
        assert state['status'] == 'aborted' and state['traffic'] == 'running', state
        assert 'aborted the restore checklist' in run.results[-1]['result']['msg']

        run = run_playbook(PLAYBOOK, collections_root, home, extravars=abort)
        assert run.rc == 0, failures(run)
        assert 'nothing to abort' in run.results[-1]['result']['msg']
        assert len(notices(receiver, 'failed')) == 3 and lines(log) == ['stop', 'start']


@pytest.mark.parametrize('extra, module', [
    (dict(restore_checklist_notify='slack', restore_checklist_slack=dict(token='xoxb-test', channel='#incidents')),
     'community.general.slack'),
    (dict(restore_checklist_traffic='k8s', restore_checklist_k8s=dict(name='procgenie-api', namespace='prod')),
     'kubernetes.core.k8s_scale'),
])
def test_an_optional_collection_that_is_missing_fails_before_any_change(lab, ctx, collections_root, home, extra,
                                                                        module):
    """The collection depends on neither community.general nor kubernetes.core: asking for Slack or k8s without them
    fails in the preflight, naming what to install - no notice, no record, no backup, traffic untouched."""
    with Receiver() as receiver:
        extravars, log = variables(ctx, receiver, 'optional', **extra)
        run = run_playbook(PLAYBOOK, collections_root, home, extravars=extravars)
        assert receiver.requests == []
    assert run.rc != 0
    msg = failures(run)[-1][1]
    assert module + ' is not installed' in msg and 'nothing was changed' in msg, msg
    assert 'traffic is' not in msg, msg
    assert not os.path.exists(extravars['restore_checklist_state_file'])
    assert not os.path.exists(extravars['restore_checklist_fresh_backup_dest'])
    assert lines(log) == []


def test_a_finished_record_of_the_newest_artifact_is_done_again_only_for_a_newer_one(lab, ctx, collections_root,
                                                                                     home):
    """A job template that restores "the newest backup": its finished record means nothing to do while the newest
    artifact is the one restored, and a new restore once a newer backup exists (check jobs: nothing changes)."""
    state_file = os.path.join(ctx['root'], 'state', 'newest.json')
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    newest = os.path.join(ctx['backups'], sorted(n for n in os.listdir(ctx['backups']) if n.endswith('.dump'))[-1])

    def record(artifact):
        with open(state_file, 'w') as handle:
            json.dump(dict(format=1, status='finished', artifact=artifact, traffic='running', done=list(range(1, 11)),
                           key=dict(database=DB, method='dump', source='newest full in ' + ctx['backups']),
                           started='2026-01-01T00:00:00Z', updated='2026-01-01T00:10:00Z', step=0, runs=1,
                           traffic_spec=dict(method='none', database=DB)), handle)

    extravars = dict(target='localhost', dbops_connection=ctx['conn'], dbops_backup_dir=ctx['backups'],
                     restore_checklist_state_file=state_file, restore_checklist_notify='none',
                     restore_checklist_traffic='none', restore_checklist_fresh_backup=False,
                     restore_checklist_watch_minutes=0)
    record(newest)
    run = run_playbook(PLAYBOOK, collections_root, home, extravars=extravars, check=True)
    assert run.rc == 0, failures(run)
    assert 'already finished' in run.results[-1]['result']['msg']
    record(os.path.join(ctx['backups'], 'backup_20200101_000000.dump'))
    run = run_playbook(PLAYBOOK, collections_root, home, extravars=extravars, check=True)
    assert run.rc == 0, failures(run)
    msg = run.results[-1]['result']['msg']
    assert 'would run the restore checklist' in msg and 'would restore ' + newest in msg, msg


def test_the_watch_window_fails_on_an_anomaly_with_the_production_thresholds(lab, ctx, collections_root, home):
    """A record that reached the watch window (steps 1-8 done, traffic running): in production no failed health
    poll is tolerated, so the first 503 of the window fails step 9 with the reason, and the failure notice says the
    traffic runs."""
    with Receiver() as receiver:
        receiver.statuses['/health/watch'] = [503]
        extravars, log = variables(ctx, receiver, 'watch', dbops_environment='production',
                                   restore_checklist_traffic='none', restore_checklist_migrations='none')
        os.makedirs(os.path.dirname(extravars['restore_checklist_state_file']), exist_ok=True)
        with open(extravars['restore_checklist_state_file'], 'w') as handle:
            json.dump(dict(format=1, status='running', artifact=ctx['artifact'], traffic='running',
                           done=list(range(1, 9)), step=9, runs=1, started='2026-01-01T00:00:00Z',
                           updated='2026-01-01T00:10:00Z', restore=dict(mismatches=[], row_counts={}),
                           key=dict(database=DB, method='dump', source=ctx['artifact']),
                           traffic_spec=dict(method='none', database=DB)), handle)
        run = run_playbook(PLAYBOOK, collections_root, home, extravars=extravars)
        assert run.rc != 0
        msg = failures(run)[-1][1]
        assert 'failed at step 9' in msg and 'the health endpoint failed 1 time(s) (last: HTTP 503; tolerated: 0)' in msg, msg
        said = notices(receiver, 'watch')
        assert len(said) == 2 and said[0].startswith('[restore production] Continuing'), said
        assert 'FAILED at step 9' in said[1] and 'traffic is running' in said[1], said[1]
    with open(extravars['restore_checklist_state_file']) as handle:
        state = json.load(handle)
    assert state['status'] == 'failed' and state['failure']['step'] == 9 and state['traffic'] == 'running', state
