"""The inventory variables every role shares (dbops_environment, dbops_backup_dir), the refusal of what the roles do
not know, and the one-line summary each role ends with, through the playbooks as AWX runs them (extra variables)."""

from __future__ import annotations

import glob
import json
import os
import shutil

import pytest

from tests.conftest import REPO, node_params
from tests.harness.playbook import run_playbook

DB = 'env_roles'
ROLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, 'roles', '*')))
# Roles that only report: nothing they "would" do in check mode.
REPORTS_ONLY = {'server_info'}


@pytest.fixture(scope='module')
def env(lab, workdir):
    lab.seed(db=DB)
    root = os.path.join(workdir, 'roles-env')
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    os.chmod(root, 0o755)
    yield dict(root=root, conn=node_params(lab, db=DB), admin=node_params(lab, db='postgres'))
    shutil.rmtree(root, ignore_errors=True)
    for name in (DB, DB + '_restored'):
        lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def playbook(name, collections_root, home, check=False, **extravars):
    return run_playbook(os.path.join(REPO, 'playbooks', name), collections_root, home, check=check,
                        extravars=dict(target='localhost', **extravars))


def failures(run):
    return [(r['task'], r['result'].get('msg')) for r in run.results if r['status'] == 'failed']


def args(run, task):
    return run.result(task)['invocation']['module_args']


def test_dbops_environment_production_reaches_backup_tuning_and_pitr(lab, env, collections_root, home):
    backups = os.path.join(env['root'], 'env-backups')
    run = playbook('backup.yml', collections_root, home, dbops_connection=env['conn'], dbops_backup_dir=backups,
                   dbops_environment='production')
    assert run.rc == 0, failures(run)
    taken = run.result('procgenie.dbops.backup : Take the listed backups')['results']
    assert [r['invocation']['module_args']['max_age_days'] for r in taken] == [35.0]
    assert taken[0]['path'].startswith(backups + os.sep)
    assert '(production)' in run.result('procgenie.dbops.backup : Summary')['msg']
    # without it: development
    run = playbook('backup.yml', collections_root, home, check=True, dbops_connection=env['conn'],
                   dbops_backup_dir=backups)
    assert run.rc == 0, failures(run)
    assert run.result('procgenie.dbops.backup : Take the listed backups')['results'][0]['invocation'][
        'module_args']['max_age_days'] == 7.0

    run = playbook('tune.yml', collections_root, home, check=True, dbops_connection=env['admin'],
                   dbops_environment='production')
    assert run.rc == 0, failures(run)
    result = run.result('procgenie.dbops.tuning : Tune the server parameters and session settings')
    assert result['inputs']['profile'] == 'production'
    assert args(run, 'procgenie.dbops.tuning : Tune the server parameters and session settings')['profile'] == \
        'production'
    assert 'production profile' in run.result('procgenie.dbops.tuning : Summary')['msg']

    run = playbook('pitr_restore.yml', collections_root, home, check=True, dbops_connection=env['admin'],
                   dbops_backup_dir=backups, dbops_environment='production', pitr_restore_mode='base_backup')
    assert run.rc == 0, failures(run)
    base = args(run, 'procgenie.dbops.pitr_restore : Take a base backup')
    assert base['max_age_days'] == 35.0 and base['dest'] == os.path.join(backups, 'base')


def test_verify_backup_finds_what_backup_wrote_with_dbops_backup_dir_only(lab, env, collections_root, home):
    backups = os.path.join(env['root'], 'shared-dir')
    run = playbook('backup.yml', collections_root, home, dbops_connection=env['conn'], dbops_backup_dir=backups)
    assert run.rc == 0, failures(run)
    written = run.result('procgenie.dbops.backup : Take the listed backups')['results'][0]['path']
    run = playbook('verify_backup.yml', collections_root, home, dbops_connection=env['admin'],
                   dbops_backup_dir=backups)
    assert run.rc == 0, failures(run)
    verified = run.result('procgenie.dbops.backup_verify : Verify the backups')['results']
    assert [(v['path'], v['passed']) for v in verified] == [(written, True)]
    assert '1 of 1 backup(s) verified' in run.result('procgenie.dbops.backup_verify : Summary')['msg']
    # and restore_dump.yml restores the newest of them
    run = playbook('restore_dump.yml', collections_root, home, check=True, dbops_connection=env['conn'],
                   dbops_backup_dir=backups, backup_restore_database=DB + '_restored',
                   backup_restore_create_database=True)
    assert run.rc == 0, failures(run)
    assert run.result('procgenie.dbops.backup : Restore the dump')['path'] == written


@pytest.mark.parametrize('extravars, name', [
    (dict(backup_environment='staging'), 'backup_environment'),
    (dict(dbops_environment='staging'), 'backup_environment'),
])
def test_an_unknown_environment_is_refused_clearly(lab, env, collections_root, home, extravars, name):
    run = playbook('backup.yml', collections_root, home, check=True, dbops_connection=env['conn'],
                   dbops_backup_dir=os.path.join(env['root'], 'never'), **extravars)
    assert run.rc != 0
    message = failures(run)[0][1]
    assert name in message and 'development, production' in message and 'staging' in message, message
    assert 'has no attribute' not in run.text
    for book, role_var in (('tune.yml', 'tuning_environment'), ('pitr_restore.yml', 'pitr_restore_environment')):
        run = playbook(book, collections_root, home, check=True, dbops_connection=env['admin'],
                       dbops_environment='staging', pitr_restore_mode='base_backup')
        assert run.rc != 0
        message = failures(run)[0][1]
        assert role_var in message and 'development, production' in message, message


def test_failover_names_the_role_variable_it_needs(lab, env, collections_root, home):
    run = playbook('failover.yml', collections_root, home, check=True, dbops_connection=env['admin'])
    assert run.rc != 0
    message = failures(run)[0][1]
    assert 'failover_candidate_host' in message and 'failover_candidate' in message, message
    assert run.results[-1]['task'].endswith('Check the role\'s variables')


def role_runs(lab, env):
    """Per role: the playbook and the extra variables of a run in normal mode and of one in check mode. Normal
    runs change only what this test owns (its database, its folders) or nothing."""
    conn, admin = env['conn'], env['admin']
    backups = os.path.join(env['root'], 'summary-backups')
    nodes = dict(admin)
    nodes.pop('login_host')
    nodes.pop('login_port')
    standby = lab.state['nodes']['standby']
    primary = lab.state['nodes']['primary']
    fo = dict(dbops_connection=nodes,
              failover_primary=dict(host=primary['host'], port=primary['port'], data_directory=primary['datadir']),
              failover_candidate=dict(host=standby['host'], port=standby['port'], data_directory=standby['datadir']))
    migrations = os.path.join(env['root'], 'summary-migrations')
    os.makedirs(migrations, exist_ok=True)
    with open(os.path.join(migrations, '1_probe.sql'), 'w') as handle:
        handle.write('-- migrate:up\nCREATE TABLE IF NOT EXISTS summary_probe (id bigint PRIMARY KEY);\n\n'
                     '-- migrate:down\nDROP TABLE IF EXISTS summary_probe;\n')
    # an open restore checklist record (as a killed run leaves it): status reports it, a check-mode abort would
    # resume its traffic
    checklist = os.path.join(env['root'], 'summary-checklist.json')
    with open(checklist, 'w') as handle:
        json.dump(dict(format=1, status='running', key=dict(database=DB, method='dump', source='x.dump'),
                       artifact='x.dump', host='localhost', started='2026-01-01T00:00:00Z',
                       updated='2026-01-01T00:01:00Z', done=[1, 2, 3], step=4, runs=1, traffic='stopped',
                       traffic_spec=dict(method='none', database=DB)), handle)
    os.chmod(checklist, 0o600)
    return {
        'backup': ('backup.yml', dict(dbops_connection=conn, dbops_backup_dir=backups), {}),
        'backup_verify': ('verify_backup.yml', dict(dbops_connection=admin, dbops_backup_dir=backups), {}),
        'connections': ('connection_cleanup.yml', dict(dbops_connection=conn), {}),
        'performance': ('health_report.yml', dict(dbops_connection=conn, performance_report_path=os.path.join(
            env['root'], 'reports', 'health.html')), {}),
        'emergency_read_only': ('read_only.yml', dict(dbops_connection=conn, emergency_read_only_database=DB,
                                                      emergency_read_only_state='off'),
                                dict(emergency_read_only_state='on')),
        'migrations': ('migrate.yml', dict(dbops_connection=conn, migrations_path=migrations),
                       dict(migrations_mode='up')),
        'failover': ('failover.yml', dict(fo, failover_mode='status'), dict(failover_mode='planned')),
        'maintenance': ('maintenance_window.yml', dict(dbops_connection=conn),
                        dict(maintenance_window=True, dbops_environment='production')),
        'pitr_restore': ('pitr_restore.yml', dict(dbops_connection=admin, dbops_backup_dir=backups,
                                                  pitr_restore_mode='stop',
                                                  pitr_restore_data_directory=os.path.join(env['root'], 'none')),
                         dict(pitr_restore_mode='base_backup')),
        'restore_checklist': ('restore_checklist.yml', dict(dbops_connection=conn, restore_checklist_mode='status',
                                                            restore_checklist_state_file=checklist,
                                                            restore_checklist_notify='none'),
                              dict(restore_checklist_mode='abort')),
        'rls': ('rls.yml', dict(dbops_connection=conn), {}),
        'server_info': ('server_info.yml', dict(dbops_connection=admin), {}),
        'tuning': ('tune.yml', dict(dbops_connection=admin, tuning_mode='recommend'),
                   dict(tuning_mode='apply', dbops_environment='production')),
    }


@pytest.mark.parametrize('role', ROLES)
def test_every_role_ends_with_a_one_line_summary(role, lab, env, collections_root, home):
    runs = role_runs(lab, env)
    if role not in runs:
        pytest.fail('role %s has no run in tests/integration/test_roles_env.py role_runs()' % role)
    book, normal, check_extra = runs[role]
    for check in (True, False):
        extravars = dict(normal, **check_extra) if check else normal
        run = playbook(book, collections_root, home, check=check, **extravars)
        assert run.rc == 0, (role, check, failures(run))
        last = run.results[-1]
        assert last['task'] == 'procgenie.dbops.%s : Summary' % role and last['status'] == 'ok', (role, check, last)
        msg = last['result']['msg']
        assert isinstance(msg, str) and '\n' not in msg.strip() and msg.startswith('localhost'), (role, check, msg)
        if check and role not in REPORTS_ONLY:
            assert 'would' in msg, (role, msg)
        elif not check:
            assert 'would' not in msg, (role, msg)
