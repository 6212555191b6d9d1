"""Every playbook as an AWX check job (extra variables only, --check) against the lab: each run succeeds, and
nothing changes although the variables ask for changes: server settings (postgresql.auto.conf, pg_file_settings,
database and role settings), roles, the schema of every database, the database list, row counts, the files under
the backup folders and the WAL archive, the data directories (file list and modification times), which server is
the primary, and whether the servers and their sessions still run.

The playbooks are found with a glob: a new playbook fails here until VARIABLES says how to run it."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import time

import psycopg2
import pytest

from tests.conftest import REPO, free_port, node_params
from tests.harness.playbook import run_playbook

DB = 'chk_jobs'
# Playbooks that only report: their check-mode summary has nothing it would do.
REPORTS_ONLY = {'server_info.yml', 'connections.yml'}
PLAYBOOKS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, 'playbooks', '*.yml')))
# Data directory entries PostgreSQL itself rewrites while it runs (statistics, WAL, relation files, logs): their
# names and times change without any job. Everything else (configuration, signal files, postmaster.pid, tablespaces,
# PG_VERSION...) is compared with its modification time.
VOLATILE = {'base', 'global', 'pg_wal', 'pg_stat', 'pg_stat_tmp', 'pg_subtrans', 'pg_xact', 'pg_multixact',
            'pg_logical', 'pg_notify', 'pg_snapshots', 'pg_serial', 'pg_commit_ts', 'pg_dynshmem', 'pg_replslot',
            'log', 'current_logfiles'}


def connect(lab, port, db='postgres'):
    return psycopg2.connect(host='127.0.0.1', port=port, user=lab.state['superuser'], password=lab.state['password'],
                            dbname=db, connect_timeout=5, application_name='check-jobs-probe')


def query(lab, port, sql, db='postgres'):
    conn = connect(lab, port, db)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return [tuple(row) for row in cur.fetchall()]
    finally:
        conn.close()


def tree(path, volatile=()):
    """Every file and folder under path with its size and modification time (None when path is absent)."""
    if not os.path.lexists(path):
        return None
    found = {}
    for top, dirs, names in os.walk(path):
        rel = os.path.relpath(top, path)
        if rel == '.':
            dirs[:] = sorted(d for d in dirs if d not in volatile)
            names = [n for n in names if n not in volatile]
        for name in sorted(dirs + names):
            full = os.path.join(top, name)
            st = os.lstat(full)
            found[os.path.normpath(os.path.join(rel, name))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def read(path):
    with open(path, 'rb') as handle:
        return handle.read().decode('utf-8', 'replace')


def schema_hash(lab, port, db):
    """sha256 of pg_dump --schema-only of db (tables, indexes, RLS state and policies, grants, functions)."""
    env = dict(os.environ, PGPASSWORD=lab.state['password'])
    out = subprocess.run([os.path.join(lab.state['bindir'], 'pg_dump'), '--schema-only', '-h', '127.0.0.1',
                          '-p', str(port), '-U', lab.state['superuser'], '-d', db],
                         env=env, capture_output=True, check=True).stdout
    # pg_dump 17.6/16.10/15.14 and later fence the script with \restrict and a random key
    lines = [line for line in out.splitlines() if not line.startswith((b'\\restrict ', b'\\unrestrict '))]
    return hashlib.sha256(b'\n'.join(lines)).hexdigest()


ROW_COUNTS = """
SELECT n.nspname || '.' || c.relname,
       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname),
                                            false, true, '')))[1]::text::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1
"""


def server_state(lab, port, datadir):
    """What a job could change on one running server."""
    state = dict(
        running=query(lab, port, 'SELECT pg_postmaster_start_time(), pg_is_in_recovery()'),
        auto_conf=read(os.path.join(datadir, 'postgresql.auto.conf')),
        file_settings=query(lab, port, 'SELECT sourcefile, sourceline, name, setting, applied, error '
                                       'FROM pg_file_settings ORDER BY 1, 2'),
        pending=query(lab, port, 'SELECT name, setting FROM pg_settings WHERE pending_restart ORDER BY 1'),
        databases=query(lab, port, 'SELECT datname, datallowconn, datconnlimit, datistemplate FROM pg_database '
                                   'ORDER BY 1'),
        db_role_settings=query(lab, port, 'SELECT coalesce(d.datname, \'\'), coalesce(r.rolname, \'\'), s.setconfig '
                                          'FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase '
                                          'LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2'),
        roles=query(lab, port, 'SELECT rolname, rolsuper, rolcanlogin, rolbypassrls, rolconnlimit FROM pg_roles '
                               'ORDER BY 1'),
        slots=query(lab, port, 'SELECT slot_name, slot_type, temporary FROM pg_replication_slots ORDER BY 1'),
        datadir=tree(datadir, VOLATILE),
    )
    if not state['running'][0][1]:
        for (db,) in query(lab, port, 'SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1'):
            state['schema ' + db] = schema_hash(lab, port, db)
            state['rows ' + db] = query(lab, port, ROW_COUNTS, db=db)
    return state


def snapshot(lab, ctx):
    state = {}
    for name, node in lab.state['nodes'].items():
        state[name] = server_state(lab, node['port'], node['datadir'])
    state['restored cluster'] = server_state(lab, ctx['restored_port'], ctx['restored'])
    for label, path in [('backup folder', ctx['backups']), ('base backup folder', ctx['base']),
                        ('WAL archive', lab.state['archive_dir']), ('new restore target', ctx['new_restore'])]:
        state[label] = tree(path)
    return state


@pytest.fixture(scope='module')
def ctx(lab, workdir, collections_root, home):
    """A seeded database without RLS, real backups and base backups, and a running restored cluster to stop."""
    lab.seed(db=DB)
    root = os.path.join(workdir, 'check-jobs')
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    os.chmod(root, 0o755)
    context = dict(backups=os.path.join(root, 'backups'), base=os.path.join(root, 'backups', 'base'),
                   restored=os.path.join(root, 'restored'), restored_port=free_port(),
                   new_restore=os.path.join(root, 'never-restored'), new_port=free_port())
    conn = node_params(lab, db=DB)
    tenant = lab.psql('primary', "SELECT md5('tenant-2')::uuid", db=DB)
    context['tenant'] = tenant
    setup = [
        ('backup.yml', dict(dbops_connection=conn, dbops_backup_dir=context['backups'],
                            backup_items=[dict(kind='full'), dict(kind='schema_only'),
                                          dict(kind='tenant', tenant=tenant)])),
        ('pitr_restore.yml', dict(dbops_connection=node_params(lab, db='postgres'),
                                  dbops_backup_dir=context['backups'], pitr_restore_mode='base_backup')),
        ('pitr_restore.yml', dict(dbops_connection=node_params(lab, db='postgres'),
                                  dbops_backup_dir=context['backups'], pitr_restore_mode='restore',
                                  pitr_restore_wal_archive=lab.state['archive_dir'], pitr_restore_target='immediate',
                                  pitr_restore_data_directory=context['restored'],
                                  pitr_restore_port=context['restored_port'],
                                  pitr_restore_pg_bindir=lab.state['bindir'])),
    ]
    for name, extravars in setup:
        run = run_playbook(os.path.join(REPO, 'playbooks', name), collections_root, home,
                           extravars=dict(extravars, target='localhost'))
        assert run.rc == 0, run
    yield context
    pg_ctl = os.path.join(lab.state['bindir'], 'pg_ctl')
    if os.path.exists(os.path.join(context['restored'], 'postmaster.pid')):
        subprocess.run(['runuser', '-u', lab.state['os_user'], '--', pg_ctl, 'stop', '-D', context['restored'],
                        '-m', 'immediate', '-w'], capture_output=True, check=False, cwd='/')
    shutil.rmtree(root, ignore_errors=True)
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % DB)


def node(lab, name):
    n = lab.state['nodes'][name]
    return dict(host=n['host'], port=n['port'], data_directory=n['datadir'])


def variables(lab, ctx):
    """Per playbook, the extra variables of each check job: each asks for a change (or for every change the job
    can make), the way an AWX job template with a survey would."""
    conn = node_params(lab, db=DB)
    admin = node_params(lab, db='postgres')
    backups = dict(dbops_backup_dir=ctx['backups'])
    nodes = dict(admin)
    nodes.pop('login_host')
    nodes.pop('login_port')
    migrations = os.path.join(os.path.dirname(ctx['backups']), 'migrations')
    os.makedirs(migrations, exist_ok=True)
    with open(os.path.join(migrations, '1_priority.sql'), 'w') as handle:
        handle.write("-- migrate:up\nALTER TABLE requisitions ADD COLUMN IF NOT EXISTS priority text;\n\n"
                     "-- migrate:down\nALTER TABLE requisitions DROP COLUMN IF EXISTS priority;\n")
    with open(os.path.join(migrations, '2_priority_index.sql'), 'w') as handle:
        handle.write("-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY IF NOT EXISTS idx_req_priority "
                     "ON requisitions (priority);\n")
    hook = os.path.join(os.path.dirname(ctx['backups']), 'traffic-hook.yml')
    with open(hook, 'w') as handle:
        handle.write('- name: Scale the application (a check job runs it in check mode)\n'
                     '  ansible.builtin.command: /bin/false\n')
    return {
        'migrate.yml': [dict(dbops_connection=conn, migrations_path=migrations, migrations_mode='up',
                             migrations_lint='off')],
        'maintenance_window.yml': [
            dict(dbops_connection=conn, maintenance_window=True, maintenance_advise_indexes=True,
                 maintenance_apply_advised_indexes=True, maintenance_advise_min_cost_savings=1,
                 maintenance_thresholds=dict(dead_tuples=0, dead_ratio=0)),
            dict(dbops_connection=conn, dbops_environment='production', maintenance_window=True,
                 maintenance_repack_method='vacuum_full', maintenance_vacuum_freeze=True,
                 maintenance_thresholds=dict(dead_tuples=0, dead_ratio=0, bloat_ratio=0, bloat_min_bytes=0))],
        'backup.yml': [dict(dbops_connection=conn, dbops_environment='production', backup_max_age_days=0.00001,
                            backup_items=[dict(kind='full'), dict(kind='schema_only'),
                                          dict(kind='tables', tables=['requisitions']),
                                          dict(kind='tenant', tenant=ctx['tenant'])], **backups)],
        'verify_backup.yml': [dict(dbops_connection=admin, backup_verify_kinds=['full', 'tenant'],
                                   backup_verify_compare_live=True, **backups)],
        'restore_dump.yml': [dict(dbops_connection=conn, backup_restore_database=DB,
                                  backup_restore_recreate_database=True, backup_restore_terminate_connections=True,
                                  **backups),
                             dict(dbops_connection=conn, backup_restore_database='chk_jobs_new',
                                  backup_restore_create_database=True, **backups)],
        'rls.yml': [dict(dbops_connection=conn, rls_bypass='role', rls_bypass_roles=['procgenie_owner'])],  # not the app's role: refused
        'server_info.yml': [dict(dbops_connection=admin, server_info_require_archiving=True)],
        'tune.yml': [dict(dbops_connection=admin, dbops_environment='production', tuning_check_only=False,
                          tuning_parameters={'work_mem': '77MB', 'log_min_duration_statement': '250ms'},
                          tuning_app_roles=[dict(role='procgenie_app', database=DB)],
                          tuning_allow_restart=True, tuning_maintenance_window=True,
                          tuning_pg_bindir=lab.state['bindir'], tuning_os_user=lab.state['os_user'])],
        'read_only.yml': [dict(dbops_connection=conn, emergency_read_only_state='on',
                               emergency_read_only_database=DB, emergency_read_only_sessions='terminate',
                               emergency_read_only_session_selection='all'),
                          dict(dbops_connection=conn, emergency_read_only_state='on',
                               emergency_read_only_scope='server', emergency_read_only_sessions='terminate',
                               emergency_read_only_session_selection='all')],
        'failover.yml': [dict(dbops_connection=nodes, failover_primary=node(lab, 'primary'),
                              failover_candidate=node(lab, 'standby'), failover_old_primary_action='rejoin'),
                         dict(dbops_connection=nodes, failover_primary=node(lab, 'primary'),
                              failover_candidate=node(lab, 'standby'), failover_mode='forced')],
        'connections.yml': [dict(dbops_connection=conn, connections_databases=[DB], connections_pool_replicas=2)],
        'health_report.yml': [dict(dbops_connection=conn, dbops_environment='production',
                                   performance_report_path=os.path.join(ctx['backups'], 'reports', 'health.html'))],
        'connection_cleanup.yml': [
            dict(dbops_connection=conn, connections_cleanup_states=['idle', 'idle in transaction'],
                 connections_cleanup_min_duration=0, connections_cleanup_users=[],
                 connections_cleanup_include_superusers=True),
            dict(dbops_connection=conn, connections_cleanup_blockers_only=True, connections_cleanup_users=[],
                 connections_cleanup_min_duration=0,
                 connections_cleanup_states=[], connections_cleanup_include_superusers=True,
                 connections_cleanup_grace=1)],
        'restore_checklist.yml': [
            dict(dbops_connection=conn, restore_checklist_state_file=os.path.join(ctx['backups'], 'checklist.json'),
                 restore_checklist_notify_url='http://127.0.0.1:9/never-posted',
                 restore_checklist_traffic='database', restore_checklist_recreate_database=True,
                 restore_checklist_migrations='dbmate', restore_checklist_migrations_path=migrations,
                 restore_checklist_migrations_lint='off', restore_checklist_health_url='http://127.0.0.1:9/health',
                 restore_checklist_watch_minutes=0.05, restore_checklist_watch_interval=1, **backups),
            dict(dbops_connection=conn, restore_checklist_state_file=os.path.join(ctx['backups'], 'checklist.json'),
                 restore_checklist_notify_url='http://127.0.0.1:9/never-posted', restore_checklist_method='pitr',
                 restore_checklist_pitr=dict(backup_dir=ctx['base'], wal_archive=lab.state['archive_dir'],
                                             target='latest', data_directory=ctx['new_restore'],
                                             restore_port=ctx['new_port'], pg_bindir=lab.state['bindir']),
                 restore_checklist_pitr_connection=dict(ssl_mode='prefer'),
                 restore_checklist_traffic='hook', restore_checklist_traffic_hook=hook,
                 restore_checklist_migrations='dbmate', restore_checklist_migrations_path=migrations,
                 restore_checklist_migrations_lint='off', **backups)],
        'corruption_recovery.yml': [
            dict(dbops_connection=conn,
                 corruption_recovery_tables=[dict(name='requisitions', where="created_at < '2025-03-01'"),
                                             dict(name='public.vendors')],
                 corruption_recovery_restore_target='immediate', corruption_recovery_create_amcheck=True,
                 corruption_recovery_backup_dir=ctx['base'], corruption_recovery_wal_archive=lab.state['archive_dir'],
                 corruption_recovery_data_directory=ctx['new_restore'], corruption_recovery_port=ctx['new_port'],
                 corruption_recovery_pg_bindir=lab.state['bindir'], corruption_recovery_delete_extra=True,
                 corruption_recovery_copy_connection=dict(ssl_mode='prefer'),
                 corruption_recovery_undo_dir=os.path.join(ctx['backups'], 'undo'), corruption_recovery_approved=True),
            # an already restored copy as the source: compared, and the restore planned, in check mode
            dict(dbops_connection=conn, corruption_recovery_tables=[dict(name='requisitions')],
                 corruption_recovery_source=dict(login_host='127.0.0.1', login_port=ctx['restored_port'], login_db=DB),
                 corruption_recovery_integrity_check=False, corruption_recovery_delete_extra=True,
                 corruption_recovery_undo_dir=os.path.join(ctx['backups'], 'undo'), corruption_recovery_approved=True),
        ],
        'pitr_restore.yml': [
            dict(dbops_connection=admin, pitr_restore_mode='base_backup', pitr_restore_keep_last=1,
                 pitr_restore_max_age_days=0.00001, **backups),
            dict(dbops_connection=admin, pitr_restore_mode='restore', pitr_restore_target='latest',
                 pitr_restore_wal_archive=lab.state['archive_dir'], pitr_restore_data_directory=ctx['new_restore'],
                 pitr_restore_port=ctx['new_port'], pitr_restore_pg_bindir=lab.state['bindir'], **backups),
            dict(dbops_connection=admin, pitr_restore_mode='stop', pitr_restore_remove=True,
                 pitr_restore_data_directory=ctx['restored'], pitr_restore_pg_bindir=lab.state['bindir']),
        ],
    }


def changes(before, after, path=''):
    """Readable differences between two snapshots."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            found += changes(before.get(key, '<absent>'), after.get(key, '<absent>'), '%s/%s' % (path, key))
        return found
    return [] if before == after else ['%s: %r -> %r' % (path, before, after)]


def test_every_playbook_has_check_job_variables(lab, ctx):
    missing = sorted(set(PLAYBOOKS) - set(variables(lab, ctx)))
    assert not missing, 'playbooks without check-job variables in this test: %s' % missing
    assert 'tune.yml' in PLAYBOOKS and len(PLAYBOOKS) >= 9


@pytest.mark.parametrize('playbook', PLAYBOOKS)
def test_check_job_changes_nothing(playbook, lab, ctx, collections_root, home):
    jobs = variables(lab, ctx).get(playbook)
    if not jobs:
        pytest.fail('%s has no check-job variables in tests/integration/test_check_jobs.py: add what an AWX job '
                    'template would pass, asking for a change' % playbook)
    for extravars in jobs:
        # a session of the application, in a transaction that wrote: read_only.yml would end it
        session = connect(lab, lab.state['nodes']['primary']['port'], DB)
        with session.cursor() as cur:
            cur.execute('CREATE TEMP TABLE probe(i int)')
            cur.execute('INSERT INTO probe VALUES (1)')
        lab.wait_replay()
        time.sleep(0.2)
        before = snapshot(lab, ctx)
        run = run_playbook(os.path.join(REPO, 'playbooks', playbook), collections_root, home, check=True,
                           extravars=dict(extravars, target='localhost'))
        failed = [(r['task'], r['result'].get('msg')) for r in run.results if r['status'] == 'failed']
        assert run.rc == 0, (playbook, extravars, failed, run)
        assert 'ERROR!' not in run.stdout + run.stderr
        lab.wait_replay()
        after = snapshot(lab, ctx)
        with session.cursor() as cur:  # still there, its transaction still open
            cur.execute('SELECT count(*) FROM probe')
            assert cur.fetchone()[0] == 1
        session.rollback()
        session.close()
        assert changes(before, after) == [], (playbook, extravars)
        summary = run.results[-1]
        assert summary['task'].endswith('Summary') and summary['status'] == 'ok', (playbook, summary)
        if playbook not in REPORTS_ONLY:
            assert 'would' in summary['result']['msg'].lower(), (playbook, summary['result']['msg'])
