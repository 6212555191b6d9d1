"""The Azure paths of playbooks/corruption_recovery.yml (runbook section 7) and playbooks/restore_checklist.yml
(section 2, step 4 a point-in-time restore) against the spec-validated Azure HTTPS double, with the lab.

The double makes the NEW flexible server (it validates the PUT and the answers against the REST specification); it
has no PostgreSQL behind it. Its PostgreSQL is a second lab cluster, "the restored copy": the test fills it with the
live database as it was at the restore time it then asks for (pg_dump taken at that moment), keeps it stopped, and
starts it from the double's long-running operation when the restore ends Succeeded (so only a restore that reached
Azure makes it reachable). The playbooks reach it through their connection override of the restored server
(corruption_recovery_copy_connection, restore_checklist_pitr_connection: what a private endpoint or a tunnel gives),
its host and port in place of the FQDN on 5432, without TLS (the lab has none). Nothing of the SDK is mocked."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import time

import pytest

from tests.azure_double.fixtures import (  # noqa: F401 pylint: disable=unused-import
    CLIENT_ID, PROD, PROD_RG, SECRET, SUBSCRIPTION, TENANT, checked_double, module_double, new_calls, writes)
from tests.azure_double.state import server_id
from tests.conftest import REPO, node_params
from tests.harness.http_receiver import Receiver
from tests.integration.test_corruption_recovery import CORRUPTION, LATER, SCHEMA

NEW = PROD + '-restored'  # the role's default name of the new server
CR_DB = 'cra_live'
RC_DB = 'rcha_live'
HOOK = """---
- name: Application traffic hook (test)
  ansible.builtin.shell: |
    echo "{{ restore_checklist_traffic_action }}" >> %(log)s
"""


def utc(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%f') + 'Z'


def playbook(name):
    return os.path.join(REPO, 'playbooks', name)


def failures(run):
    return [(r['task'], r['result'].get('msg')) for r in run.results if r['status'] == 'failed']


def azure(double):
    """dbops_azure of the production server (the SOURCE of the restore) through the double."""
    return dict(cloud_environment=double.url, subscription_id=SUBSCRIPTION, client_id=CLIENT_ID, secret=SECRET,
                tenant=TENANT, resource_group=PROD_RG, server_name=PROD)


def window(double, days=7):
    earliest = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=days)
    double.state.server(SUBSCRIPTION, PROD_RG, PROD)['properties']['backup']['earliestRestoreDate'] = utc(earliest)


def puts(double, start):
    return [c for c in new_calls(double, start) if c['method'] == 'PUT']


def now_utc(lab):
    return lab.psql('primary', "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                               "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")


@pytest.fixture(scope='module')
def copy(lab, workdir):
    """A second lab cluster, the PostgreSQL of the restored Azure server: the main lab's roles and passwords (a
    restore copies them), stopped until a test's restore ends in the double."""
    import pglab
    from pglab import seed as seedmod
    folder = os.path.join(workdir, 'azure-restored-copy')
    instance = pglab.Lab(folder, pg=os.environ.get('LAB_PG', 'auto'))
    instance.start(standby=False, seed=False)
    instance.psql('primary', seedmod.roles_sql(lab.state['password']))
    instance.psql('primary', "ALTER ROLE %s PASSWORD '%s'" % (instance.state['superuser'], lab.state['password']))
    instance.state['password'] = lab.state['password']
    instance._save_state()  # pylint: disable=protected-access
    yield instance
    instance.destroy()


def copy_database(lab, copy_lab, db):
    """The live database as it is now, into the copy cluster (what a restore to this moment holds)."""
    if not copy_lab.is_running('primary'):
        copy_lab.start(standby=False, seed=False)
    copy_lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
    copy_lab.psql('primary', 'CREATE DATABASE "%s"' % db)
    dump = subprocess.run([os.path.join(lab.client_bindir, 'pg_dump'), '--no-password', '-d', db],
                          env=dict(os.environ, **lab.env('primary', db)), capture_output=True, check=True)
    subprocess.run([os.path.join(copy_lab.client_bindir, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db],
                   input=dump.stdout, env=dict(os.environ, **copy_lab.env('primary', db)), capture_output=True,
                   check=True, cwd='/')
    copy_lab.stop()


@pytest.fixture
def restored_copy(checked_double, copy):
    """The double's hook: when a Servers_CreateOrUpdate (the restore) ends Succeeded, the copy cluster starts. Yields
    the ids of the servers so made."""
    state = checked_double.state
    original = state.start_operation
    made = []

    def start_operation(operation_id, subscription, location, resource_id, on_success=None, result=None,
                        on_end=None):
        if operation_id != 'Servers_CreateOrUpdate':
            return original(operation_id, subscription, location, resource_id, on_success=on_success,
                            result=result, on_end=on_end)

        def end(outcome):
            if on_end is not None:
                on_end(outcome)
            if outcome == 'Succeeded':
                copy.start(standby=False, seed=False)
                made.append(resource_id)
        return original(operation_id, subscription, location, resource_id, on_success=on_success, result=result,
                        on_end=end)

    state.start_operation = start_operation
    yield made
    del state.start_operation
    copy.stop()


def reach(copy_lab):
    """How this host reaches the restored server's PostgreSQL (the copy cluster)."""
    node = copy_lab.state['nodes']['primary']
    return dict(login_host=node['host'], login_port=node['port'], ssl_mode='disable')


def orders(lab, where='true', node='primary'):
    return lab.psql(node, "SELECT string_agg(format('%%s:%%s', id, amount), ',' ORDER BY id) FROM cr_orders "
                          "WHERE %s" % where, db=CR_DB)


@pytest.fixture
def incident(lab, copy, workdir):
    """cr_live's tables, the copy made at T (the restore time), then a bad UPDATE and DELETE and later writes."""
    root = os.path.join(workdir, 'azure-corruption')
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % CR_DB)
    lab.psql('primary', 'CREATE DATABASE %s' % CR_DB)
    lab.psql('primary', SCHEMA, db=CR_DB)
    good = orders(lab)
    at = now_utc(lab)
    copy_database(lab, copy, CR_DB)
    time.sleep(0.5)
    lab.psql('primary', CORRUPTION, db=CR_DB)
    lab.psql('primary', LATER, db=CR_DB)
    yield dict(root=root, at=at, good=good)
    shutil.rmtree(root, ignore_errors=True)
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % CR_DB)


def corruption_vars(lab, copy_lab, double, incident, **extra):
    scope = "created_at < '%s'" % incident['at']
    values = dict(
        target='localhost', dbops_connection=node_params(lab, db=CR_DB), corruption_recovery_provider='azure',
        dbops_azure=azure(double),
        corruption_recovery_tables=[dict(name='cr_accounts', where=scope), dict(name='public.cr_orders', where=scope)],
        corruption_recovery_restore_time=incident['at'], corruption_recovery_copy_connection=reach(copy_lab),
        corruption_recovery_undo_dir=os.path.join(incident['root'], 'undo'), corruption_recovery_delete_extra=True,
        corruption_recovery_rls_verify_role='procgenie_app')
    values.update(extra)
    return values


def test_corruption_recovery_azure_check_mode_creates_nothing(lab, copy, checked_double, restored_copy, incident,
                                                              play):
    window(checked_double)
    start = len(checked_double.state.requests)
    run = play(playbook=playbook('corruption_recovery.yml'), env=checked_double.env, check=True,
               extravars=corruption_vars(lab, copy, checked_double, incident, corruption_recovery_approved=True))
    assert run.rc == 0, failures(run) or run
    assert writes(checked_double, start) == [] and restored_copy == []
    assert checked_double.state.server(SUBSCRIPTION, PROD_RG, NEW) is None
    assert run.result('Restore the Azure server into a new server')['changed'] is True
    summary = run.results[-1]
    assert summary['task'] == 'Summary'
    assert 'would restore a copy to %s' % incident['at'] in summary['result']['msg'], summary['result']['msg']
    assert 'would then compare 2 table(s)' in summary['result']['msg']
    assert lab.psql('primary', 'SELECT count(*) FROM cr_orders WHERE amount = 0', db=CR_DB) == '10'
    assert SECRET not in run.text


def test_corruption_recovery_azure(lab, copy, checked_double, restored_copy, incident, play):
    window(checked_double)
    later = orders(lab, "created_at >= '%s'" % incident['at'])
    scope = "created_at < '%s'" % incident['at']
    extravars = corruption_vars(lab, copy, checked_double, incident)
    start = len(checked_double.state.requests)

    # the AWX workflow's first node: writes stopped, the NEW server restored in Azure, compared; nothing restored
    assess = play(playbook=playbook('corruption_recovery.yml'), env=checked_double.env,
                  extravars=dict(extravars, corruption_recovery_phase='assess'))
    assert assess.rc == 0, failures(assess) or assess
    made = puts(checked_double, start)
    assert [c['operation_id'] for c in made] == ['Servers_CreateOrUpdate']
    assert made[0]['path'].split('?')[0].endswith('/resourceGroups/%s/providers/Microsoft.DBforPostgreSQL/'
                                                  'flexibleServers/%s' % (PROD_RG, NEW))
    body = json.loads(made[0]['body'])
    assert body['properties'] == {'createMode': 'PointInTimeRestore', 'pointInTimeUTC': incident['at'],
                                  'sourceServerResourceId': server_id(SUBSCRIPTION, PROD_RG, PROD)}
    assert restored_copy == [server_id(SUBSCRIPTION, PROD_RG, NEW)]
    restore = assess.result('Restore the Azure server into a new server')
    assert restore['changed'] is True and restore['fqdn'] == NEW + '.postgres.database.azure.com'
    assert 'compared, nothing restored: 7 row(s) would be inserted, 10 updated, 0 deleted after approval' in \
        assess.results[-1]['result']['msg'], assess.results[-1]['result']['msg']
    assert lab.psql('primary', 'SELECT count(*) FROM cr_orders WHERE amount = 0', db=CR_DB) == '10'

    # approved (the AWX approval node): the restore of step 3 is found done in Azure, the rows restored and verified
    start = len(checked_double.state.requests)
    second = play(playbook=playbook('corruption_recovery.yml'), env=checked_double.env,
                  extravars=dict(extravars, corruption_recovery_approved=True))
    assert second.rc == 0, failures(second) or second
    assert second.result('Restore the Azure server into a new server')['changed'] is False
    assert writes(checked_double, start) == []
    done = second.result('5. Restore the affected rows')
    assert done['changed'] is True and os.path.isfile(done['undo_script'])
    assert orders(lab, scope) == incident['good']
    assert orders(lab, "created_at >= '%s'" % incident['at']) == later and later.count(':') == 4
    assert second.result('6. Verify: row-level security after the restore')['verification']['isolated'] is True
    assert 'inserted 7, updated 10, deleted 0 row(s)' in second.results[-1]['result']['msg']
    # the copy was only read
    assert copy.psql('primary', "SELECT string_agg(format('%s:%s', id, amount), ',' ORDER BY id) FROM cr_orders",
                     db=CR_DB) == incident['good']
    # the NEW server is kept as the runbook says (stopped or deleted in Azure once the incident is closed)
    server = checked_double.state.server(SUBSCRIPTION, PROD_RG, NEW)
    assert server['properties']['state'] == 'Ready'
    assert [c for c in new_calls(checked_double, 0) if c['method'] == 'DELETE'] == []
    assert SECRET not in assess.text + second.text


# --- the restore checklist, step 4 a point-in-time restore into a new Azure server ---

@pytest.fixture
def checklist(lab, copy, workdir, collections_root, home, play):
    """A seeded database with migration 1; the copy made at T; then migration 2 and later writes on the live one."""
    root = os.path.join(workdir, 'azure-checklist')
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    migrations = os.path.join(root, 'migrations')
    os.makedirs(migrations)
    with open(os.path.join(migrations, '1_notes.sql'), 'w') as handle:
        handle.write('-- migrate:up\nCREATE TABLE rcha_notes (id bigint PRIMARY KEY);\n\n'
                     '-- migrate:down\nDROP TABLE rcha_notes;\n')
    with open(os.path.join(migrations, '2_notes_text.sql'), 'w') as handle:
        handle.write('-- migrate:up\nALTER TABLE rcha_notes ADD COLUMN body text;\n\n'
                     '-- migrate:down\nALTER TABLE rcha_notes DROP COLUMN body;\n')
    lab.seed(db=RC_DB)
    conn = node_params(lab, db=RC_DB)

    def migrate(target):
        task = {'procgenie.dbops.pg_migrate': dict(conn, path=migrations, mode='up', target=target, lint='off')}
        run = play([task])
        assert run.rc == 0, run
    migrate('1')
    counts = lab.row_counts(RC_DB)
    at = now_utc(lab)
    copy_database(lab, copy, RC_DB)
    time.sleep(0.5)
    migrate('2')
    lab.psql('primary', 'DELETE FROM request_items WHERE ctid IN (SELECT ctid FROM request_items LIMIT 5)', db=RC_DB)
    live = lab.row_counts(RC_DB)
    assert live != counts
    yield dict(root=root, conn=conn, migrations=migrations, at=at, counts=counts, live=live)
    shutil.rmtree(root, ignore_errors=True)
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % RC_DB)


def checklist_vars(copy_lab, double, checklist, receiver, name):
    log = os.path.join(checklist['root'], name + '.log')
    hook = os.path.join(checklist['root'], name + '-hook.yml')
    with open(hook, 'w') as handle:
        handle.write(HOOK % dict(log=log))
    pitr = dict(azure(double), provider='azure', source_server=PROD, server_name=NEW,
                target_time=checklist['at'], timeout=120)
    return dict(
        target='localhost', dbops_connection=checklist['conn'],
        dbops_backup_dir=os.path.join(checklist['root'], 'backups'),
        restore_checklist_state_file=os.path.join(checklist['root'], 'state', name + '.json'),
        restore_checklist_method='pitr', restore_checklist_pitr=pitr,
        restore_checklist_pitr_connection=reach(copy_lab),
        restore_checklist_notify_url=receiver.url('/notify/' + name),
        restore_checklist_traffic='hook', restore_checklist_traffic_hook=hook,
        restore_checklist_migrations='dbmate', restore_checklist_migrations_path=checklist['migrations'],
        restore_checklist_migrations_lint='off',
        restore_checklist_health_url=receiver.url('/health/' + name), restore_checklist_health_delay=1,
        restore_checklist_watch_minutes=0.05, restore_checklist_watch_interval=1), log


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return handle.read().split()


def test_restore_checklist_azure_pitr_check_mode_creates_nothing(lab, copy, checked_double, restored_copy,
                                                                 checklist, play):
    window(checked_double)
    start = len(checked_double.state.requests)
    with Receiver() as receiver:
        extravars, log = checklist_vars(copy, checked_double, checklist, receiver, 'check')
        run = play(playbook=playbook('restore_checklist.yml'), env=checked_double.env, check=True,
                   extravars=extravars)
        assert run.rc == 0, failures(run) or run
        assert [r['path'] for r in receiver.requests] == []
    assert writes(checked_double, start) == [] and restored_copy == []
    assert checked_double.state.server(SUBSCRIPTION, PROD_RG, NEW) is None
    assert run.result('Step 4 - point-in-time restore into a new cluster or server')['changed'] is True
    assert not os.path.exists(extravars['restore_checklist_state_file'])
    summary = run.results[-1]
    assert summary['task'] == 'procgenie.dbops.restore_checklist : Summary'
    assert 'would restore' in summary['result']['msg'], summary['result']['msg']
    assert lab.row_counts(RC_DB) == checklist['live']
    assert SECRET not in run.text


def test_restore_checklist_azure_pitr(lab, copy, checked_double, restored_copy, checklist, play):
    window(checked_double)
    start = len(checked_double.state.requests)
    with Receiver() as receiver:
        receiver.statuses['/health/azure'] = [503, 200]
        extravars, log = checklist_vars(copy, checked_double, checklist, receiver, 'azure')
        run = play(playbook=playbook('restore_checklist.yml'), env=checked_double.env, extravars=extravars)
        assert run.rc == 0, failures(run) or run
        said = [body['text'] for body in receiver.bodies('/notify/azure')]
        assert len(said) == 2 and 'started' in said[0] and 'finished' in said[1], said
        assert len(receiver.of('/health/azure')) >= 3
    # step 4: the NEW server, asked of Azure for the time the checklist was given
    made = puts(checked_double, start)
    assert [c['operation_id'] for c in made] == ['Servers_CreateOrUpdate']
    body = json.loads(made[0]['body'])
    assert body['properties'] == {'createMode': 'PointInTimeRestore', 'pointInTimeUTC': checklist['at'],
                                  'sourceServerResourceId': server_id(SUBSCRIPTION, PROD_RG, PROD)}
    assert restored_copy == [server_id(SUBSCRIPTION, PROD_RG, NEW)]
    assert checked_double.state.server(SUBSCRIPTION, PROD_RG, NEW)['properties']['state'] == 'Ready'
    restore = run.result('Step 4 - point-in-time restore into a new cluster or server')
    assert restore['changed'] is True and restore['fqdn'] == NEW + '.postgres.database.azure.com'
    # step 5 read the copy (RLS flags and policies as before the restore); step 6 ran on it the migration applied
    # after the restore point
    assert run.task("Step 5 - read the RLS flags and policies, and prove the tenant isolation as the application's "
                    'role')['status'] == 'ok'
    assert run.task('Step 5 - check the counts, the RLS state and the isolation')['status'] == 'ok'
    assert copy.psql('primary', "SELECT string_agg(version::text, ',' ORDER BY version) FROM dbops_schema_history",
                     db=RC_DB) == '1,2'
    assert copy.row_counts(RC_DB) == checklist['counts']
    # the live database was not touched by the restore (the application now points at the new server)
    assert lab.row_counts(RC_DB) == checklist['live']
    assert lines(log) == ['stop', 'start']
    with open(extravars['restore_checklist_state_file']) as handle:
        state = json.load(handle)
    assert state['status'] == 'finished' and state['done'] == list(range(1, 11))
    assert state['restore']['connection']['login_host'] == NEW + '.postgres.database.azure.com'
    assert SECRET not in json.dumps(state) and SECRET not in run.text
    assert 'ran the restore checklist' in run.results[-1]['result']['msg']
    # the secret rotated since: the same restore, found finished (its record names it without credentials)
    again = dict(extravars, restore_checklist_pitr=dict(extravars['restore_checklist_pitr'], secret='rotated-secret'))
    start = len(checked_double.state.requests)
    run = play(playbook=playbook('restore_checklist.yml'), env=checked_double.env, extravars=again)
    assert run.rc == 0, failures(run) or run
    assert 'already finished' in run.results[-1]['result']['msg'], run.results[-1]['result']['msg']
    assert puts(checked_double, start) == [] and lines(log) == ['stop', 'start']
