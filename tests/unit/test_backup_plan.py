"""The plan steps of the backup operations (issue 19): pg_backup, pg_backup_verify, pg_base_backup and
pg_azure_backup_policy decide from what they read with pure functions, take their options with their constraints
from one ArgumentSpec each, build their diffs with DifferenceTracker, and the client programs' commands have one
home (_clients)."""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art
from ansible_collections.procgenie.dbops.plugins.module_utils import _catalog, _clients
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import (
    ArgumentSpec, azure_spec, client_spec, postgres_spec)
from ansible_collections.procgenie.dbops.plugins.module_utils._azure import AzureOperation
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import azure_policy, catalog, dump, verify
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import restore as rst
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr import base_backup as bb

START = datetime.datetime(2026, 2, 8, 12, 0, 0, tzinfo=datetime.timezone.utc)
TENANT = 'E000342E-22C2-B525-5299-B35C4D538065'


# ---------------------------------------------------------------- one shape, one spec each
def test_every_backend_is_an_operation():
    for cls in (dump.Backup, verify.Verify, bb.BaseBackup):
        assert issubclass(cls, Operation)
    assert issubclass(azure_policy.BackupPolicy, AzureOperation)
    assert not hasattr(dump, 'backup_argument_spec') and not hasattr(verify, 'verify_argument_spec')
    assert not hasattr(verify, 'verify') and not hasattr(bb, 'make_base_backup') and not hasattr(azure_policy, 'run')


@pytest.mark.parametrize('spec', [dump.argument_spec, verify.argument_spec, bb.argument_spec])
def test_specs_merge_with_the_connection_and_client_options(spec):
    merged = postgres_spec().merge(client_spec(), spec())
    assert isinstance(spec(), ArgumentSpec)
    assert 'login_db' in merged.options and 'pg_bindir' in merged.options
    assert set(spec().options) <= set(merged.options)


def test_verify_spec_carries_its_constraints():
    kwargs = postgres_spec().merge(client_spec(), verify.argument_spec()).module_kwargs()
    assert kwargs['required_one_of'] == [('path', 'dest')]
    assert kwargs['mutually_exclusive'] == [('path', 'dest')]


def test_backup_policy_spec_is_connection_azure_and_policy():
    spec = azure_policy.argument_spec()
    assert set(azure_spec(wait=True).options) <= set(spec.options)
    assert set(postgres_spec().options) <= set(spec.options)
    assert spec.required_one_of == [('environment', 'retention_days', 'geo_redundant_backup')]
    assert spec.options['resource_group']['required'] and spec.options['server_name']['required']


# ---------------------------------------------------------------- one home for the client programs' commands
def test_client_commands_have_one_home():
    assert dump.pg_dump_argv is _clients.pg_dump_argv
    from ansible_collections.procgenie.dbops.plugins.module_utils import _dump_restore
    assert _dump_restore.pg_restore_argv is _clients.pg_restore_argv and _dump_restore.psql_argv is _clients.psql_argv
    assert rst.run_restore is _dump_restore.run_restore
    assert not hasattr(dump, 'FORMAT_FLAG')
    weird = "x' host=elsewhere dbname=other"
    argv = _clients.psql_argv('psql', '/t.sql', weird, single_transaction=True)
    assert argv == ['psql', '--no-psqlrc', '--quiet', '--no-password', '--set=ON_ERROR_STOP=1',
                    '--dbname=%s' % _clients.dbname_conninfo(weird), '--single-transaction', '--file=/t.sql']


def test_foreign_keys_and_table_names_have_one_home():
    assert catalog.fk_order is _catalog.fk_order and rst.fk_order is _catalog.fk_order
    assert catalog.CatalogError is _catalog.CatalogError
    assert not hasattr(catalog, 'resolve_tables')
    assert rst.split_table_name('Public."Odd ""Name"""') == ('public', 'Odd "Name"')
    with pytest.raises(rst.RestoreFailure, match='unterminated quote'):
        rst.split_table_name('"open')


# ---------------------------------------------------------------- pg_backup's plan
def test_backup_target_names_the_artifact():
    target = dump.backup_target(dict(dest='rel/dir', login_db='procgenie'), 'full', 'custom', START)
    assert target == dict(dest=os.path.abspath('rel/dir'), database='procgenie', tenant=None,
                          name='backup_20260208_120000.dump',
                          final=os.path.join(os.path.abspath('rel/dir'), 'backup_20260208_120000.dump'))
    target = dump.backup_target(dict(dest='/b', tenant=TENANT, name='{database}_{tenant}{ext}'), 'tenant', 'plain',
                                START)
    assert target['database'] == 'postgres' and target['tenant'] == TENANT.lower()
    assert target['final'] == '/b/postgres_%s.sql' % TENANT.lower()


@pytest.mark.parametrize('params, kind, message', [
    (dict(dest='/b', tenant="x' OR '1'='1"), 'tenant', 'is not a UUID'),
    (dict(dest='/b', tenant='42', tenant_id_type='int', name='../x{ext}'), 'tenant', 'not a plain file name'),
    (dict(dest='/b', name='{timestamp.year}'), 'full', 'is not valid'),
])
def test_backup_target_refuses(params, kind, message):
    with pytest.raises(dump.BackupFailure, match=message):
        dump.backup_target(params, kind, 'plain' if kind == 'tenant' else 'custom', START)


def test_plan_result_of_a_backup():
    tables = [dict(qname='public.a'), dict(qname='public."B"')]
    result = dump.plan_result('tables', 'custom', tables, '/b/new.dump', ['/b/old.dump'],
                              [('/b/x.manifest.json', 'bad')])
    assert result['changed'] is True and result['path'] == '/b/new.dump'
    assert result['manifest'] == '/b/new.dump.manifest.json'
    assert result['deleted'] == ['/b/old.dump'] and result['skipped_manifests'] == ['/b/x.manifest.json']
    assert result['tables'] == ['public.a', 'public."B"'] and result['row_counts'] == {}
    assert result['diff'] == dict(before=dict(artifacts=[], deleted=[]),
                                  after=dict(artifacts=['/b/new.dump'], deleted=['/b/old.dump']))
    assert (result['kind'], result['format']) == ('tables', 'custom')
    assert result['sha256'] is None and result['size_bytes'] is None


def test_plan_result_of_a_prune():
    result = dump.plan_result('full', 'custom', [], '/b/new.dump', ['/b/old.dump'], [], prune_only=True)
    assert result['changed'] is True and result['path'] is None and result['manifest'] is None
    assert result['diff'] == dict(before=dict(artifacts=['/b/old.dump']), after=dict(artifacts=[]))
    result = dump.plan_result('full', 'custom', [], '/b/new.dump', [], [], prune_only=True)
    assert result['changed'] is False and result['deleted'] == []  # a second prune deletes nothing more


def test_folder_check_of_the_plan_creates_nothing(tmp_path):
    missing = tmp_path / 'a' / 'b'
    art.check_folder_can_be_written(str(missing))
    assert not (tmp_path / 'a').exists()
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(art.ArtifactError, match='Cannot create the backup folder'):
        art.check_folder_can_be_written(str(blocker / 'sub'))
    with pytest.raises(art.ArtifactError, match='is not a folder'):
        art.check_folder_can_be_written(str(blocker))
    with pytest.raises(art.ArtifactError, match='must not be empty'):
        art.check_folder_can_be_written('  ')


def test_folder_check_of_the_plan_refuses_an_unwritable_parent(tmp_path):
    """Run as an unprivileged user (root may write any folder: as root, the check runs in a child that drops to
    nobody), so the refusal is what a real unwritable parent gives."""
    base = tempfile.mkdtemp(prefix='dbops-unwritable-')
    os.chmod(base, 0o755)
    locked = os.path.join(base, 'locked')
    os.mkdir(locked, 0o555)
    os.chmod(locked, 0o555)
    try:
        if os.geteuid() != 0:
            with pytest.raises(art.ArtifactError, match='Permission denied'):
                art.check_folder_can_be_written(os.path.join(locked, 'sub'))
            return
        pid = os.fork()
        if pid == 0:  # the child: nobody, then the check; the exit code says what happened
            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                art.check_folder_can_be_written(os.path.join(locked, 'sub'))
                code = 1
            except art.ArtifactError as exc:
                code = 0 if 'Permission denied' in str(exc) else 2
            finally:
                os._exit(code)
        _pid, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert not os.path.exists(os.path.join(locked, 'sub'))
    finally:
        os.chmod(locked, 0o700)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- pg_backup_verify's plan
def test_program_of_a_format():
    assert verify.program_of(dict(format='custom')) == ('pg_restore', True)
    assert verify.program_of(dict(format='directory')) == ('pg_restore', True)
    assert verify.program_of(dict(format='plain')) == ('psql', False)


def test_first_result_and_failure_message():
    manifest = dict(kind='full', format='custom', database='procgenie')
    result = verify.first_result('/b/x.dump', manifest)
    assert result == dict(path='/b/x.dump', manifest='/b/x.dump.manifest.json', kind='full', format='custom',
                          database='procgenie', scratch_database=None, tables=[], mismatches=[], rls_problems=[],
                          checksum_ok=False, passed=False, drift={})
    result.update(mismatches=['a: 1 rows restored, the manifest says 2'], rls_problems=['a: policy p missing'])
    assert verify.failure_message(result) == ('Verification of /b/x.dump failed: a: 1 rows restored, the manifest '
                                              'says 2; a: policy p missing')


def test_verification_record():
    record = verify.verification_record(dict(passed=True, checksum_ok=True, mismatches=[], rls_problems=[],
                                             scratch_database='dbops_verify_x'), START, 1.5)
    assert record == dict(time=art.iso(START), result='passed', checksum_ok=True, mismatches=0, rls_problems=0,
                          scratch_database='dbops_verify_x', duration_s=1.5)
    assert verify.verification_record(dict(mismatches=['x']), START, 0)['result'] == 'failed'


def test_verify_failures_say_whether_they_are_recorded():
    assert verify.VerifyFailure('x').record is False and verify.VerifyFailure('x').result == {}
    assert verify.VerifyFailure('x', dict(path='p'), record=True).record is True


@pytest.mark.parametrize('params, message', [
    (dict(jobs=0, scratch_prefix='p'), 'jobs must be 1 or more'),
    (dict(timeout=0, scratch_prefix='p'), 'timeout must be 1 second or more'),
    (dict(path=' ', scratch_prefix='p'), 'path must not be empty'),
    (dict(scratch_prefix=''), 'scratch_prefix must not be empty'),
])
def test_verify_validation(params, message):
    with pytest.raises(verify.VerifyFailure, match=message):
        verify.validate(params)


# ---------------------------------------------------------------- pg_base_backup's plan
def test_verify_argv_of_a_base_backup():
    assert bb.verify_argv('v', '/t', 'plain', 'stream', 15) == (['v', '--quiet', '/t'], None)
    assert bb.verify_argv('v', '/t', 'plain', 'none', 15) == (['v', '--quiet', '--no-parse-wal', '/t'], None)
    assert bb.verify_argv('v', '/t', 'tar', 'stream', 18) == (['v', '--quiet', '--no-parse-wal', '/t'], None)
    argv, why = bb.verify_argv('v', '/t', 'tar', 'stream', 15)
    assert argv is None and why == 'pg_verifybackup of PostgreSQL 15 reads plain-format backups only'


def test_base_backup_diff():
    assert bb.backup_diff('/b/base_1', []) == dict(before='', after='/b/base_1\n')
    assert bb.backup_diff('/b/base_2', ['/b/base_0']) == dict(before='', after='/b/base_2\n- /b/base_0\n')


# ---------------------------------------------------------------- pg_azure_backup_policy's plan
def test_policy_plan_fixes_retention_and_reports_geo():
    before = dict(retention_days=7, geo_redundant_backup='Disabled', earliest_restore_date=None)
    decided = azure_policy.policy_plan(before, azure_policy.desired_policy('production'))
    assert decided['body'] == {'properties': {'backup': {'backupRetentionDays': 35}}}
    assert decided['after'] == dict(before, retention_days=35)
    assert [d['setting'] for d in decided['fixable']] == ['retention_days']
    assert [d['setting'] for d in decided['unfixable']] == ['geo_redundant_backup']
    assert azure_policy.settings_diff(before, decided['after']) == {
        'before': {'retention_days': 7, 'geo_redundant_backup': 'Disabled'},
        'after': {'retention_days': 35, 'geo_redundant_backup': 'Disabled'}}


def test_policy_plan_of_a_compliant_server():
    before = dict(retention_days=35, geo_redundant_backup='Enabled', earliest_restore_date=None)
    decided = azure_policy.policy_plan(before, azure_policy.desired_policy('production'))
    assert decided == dict(drift=[], body=None, after=before, fixable=[], unfixable=[])


def test_policy_validation_before_connecting():
    azure_policy.validate(dict(environment='production', retention_days=None, geo_redundant_backup=None))
    with pytest.raises(azure_policy.PolicyError, match='between 7 and 35'):
        azure_policy.validate(dict(environment=None, retention_days=90, geo_redundant_backup=None))
