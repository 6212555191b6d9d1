"""Issue 11, backup side: nothing a value puts into a tenant script leaves its literal, plain artifacts with a psql
meta-command are refused by pg_backup_verify, private file modes, bad input and damaged manifests fail clearly or
are skipped. Everything runs through ansible-playbook against the lab's real primary."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest

from tests.conftest import node_params

SRC = 'bk_safety'
SCHEMA = (
    'CREATE TABLE tenants (id text PRIMARY KEY, name text NOT NULL); '
    'CREATE TABLE orders (id serial PRIMARY KEY, tenant_id text NOT NULL REFERENCES tenants, note text); '
    'CREATE TABLE canary (x int); INSERT INTO canary VALUES (1); ')
# a table and a column whose names hold a newline, a CR and a psql meta-command
ODD_SCHEMA = SCHEMA + (
    'CREATE TABLE U&"odd\\000A\\\\! touch x" (id serial PRIMARY KEY, tenant_id text REFERENCES tenants, '
    'U&"n\\000Dote" text); ')
ODD = 'U&"odd\\000A\\\\! touch x"'


def attack(marker):
    """The reproduction of issue 11: a tenant value that ends the script's header comment."""
    return 'acme\n\\! touch %s\nDROP TABLE canary;\n--' % marker


def task(lab, module, task_name, db, **args):
    return dict(name=task_name, ignore_errors=True, **{'procgenie.dbops.' + module: dict(node_params(lab, db=db), **args)})


def drop_db(lab, name):
    lab.psql('primary', 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def fresh_db(lab, name, schema=SCHEMA):
    drop_db(lab, name)
    lab.psql('primary', 'CREATE DATABASE "%s"' % name)
    lab.psql('primary', schema, db=name)
    return name


def quote(value):
    return "'%s'" % value.replace("'", "''")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def psql_file(lab, db, path, *options):
    """The stock psql of the lab running a script as the docs say (`psql -f`), as root, like an operator would."""
    state = lab.state
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
    env.update(PGHOST=state['nodes']['primary']['host'], PGPORT=str(state['nodes']['primary']['port']),
               PGUSER=state['superuser'], PGPASSWORD=state['password'], PGDATABASE=db)
    return subprocess.run([os.path.join(state['bindir'], 'psql'), '--no-psqlrc'] + list(options) + ['-f', path],
                          env=env, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture
def dest(workdir, request):
    path = os.path.join(workdir, 'safety', request.node.name.replace('[', '_').replace(']', ''))
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


@pytest.fixture
def source(lab, workdir):
    """A database whose tenant keys are text; the attacking tenant's rows carry every character COPY escapes."""
    marker = os.path.join(workdir, 'pwned-by-tenant')
    if os.path.exists(marker):
        os.unlink(marker)
    value = attack(marker)
    fresh_db(lab, SRC)
    note = 'tab\there, back\\slash, CR\r, LF\n\\! touch %s\n\\.\nend' % marker
    lab.psql('primary', "INSERT INTO tenants VALUES (%s, 'Evil Corp'), ('other', 'Other'); "
                        "INSERT INTO orders (tenant_id, note) VALUES (%s, %s), (%s, 'plain'), ('other', 'x');"
                        % (quote(value), quote(value), quote(note), quote(value)), db=SRC)
    yield dict(db=SRC, marker=marker, tenant=value)
    drop_db(lab, SRC)


def rows(lab, db, table, tenant):
    return lab.psql('primary', 'SELECT md5(string_agg(t::text, %s ORDER BY t::text)), count(*) FROM %s t '
                               'WHERE %s = %s' % (quote('|'), table, 'id' if table == 'tenants' else 'tenant_id',
                                                  quote(tenant)), db=db)


def test_a_tenant_value_never_leaves_its_literal(lab, play, source, dest):
    marker, tenant = source['marker'], source['tenant']
    targets = ('bk_safety_module', 'bk_safety_psql', 'bk_safety_psql1')
    for name in targets:
        fresh_db(lab, name)
    try:
        run = play([task(lab, 'pg_backup', 'schema', SRC, dest=dest, kind='schema_only'),
                    task(lab, 'pg_backup', 'tenant', SRC, dest=dest, kind='tenant', tenant=tenant,
                         tenant_id_type='text')])
        res = run.result('tenant')
        assert res.get('failed') is not True, res.get('msg')
        artifact = res['path']
        assert res['row_counts'] == {'public.orders': 2, 'public.tenants': 1}
        with open(artifact, 'rb') as handle:
            text = handle.read().decode('utf-8')
        assert tenant not in text and 'touch %s\n' % marker not in text
        assert not any(line.startswith('\\') and line != '\\.' for line in text.split('\n')), text
        run = play([task(lab, 'pg_backup_verify', 'verify', 'postgres', path=artifact),
                    task(lab, 'pg_restore', 'restore', targets[0], path=artifact)])
        verification = run.result('verify')
        assert verification.get('failed') is not True and verification['passed'] is True, verification.get('msg')
        restored = run.result('restore')
        assert restored.get('failed') is not True, restored.get('msg')
        # the operator's way: psql -f (with and without ON_ERROR_STOP and a single transaction)
        proc = psql_file(lab, targets[1], artifact)
        assert proc.returncode == 0, proc.stderr
        proc = psql_file(lab, targets[2], artifact, '-v', 'ON_ERROR_STOP=1', '-1')
        assert proc.returncode == 0, proc.stderr
        assert not os.path.exists(marker)
        for db in (SRC,) + targets:
            assert lab.psql('primary', 'SELECT count(*) FROM canary', db=db) == '1'  # not dropped
        for db in targets:  # every value arrived as itself
            for table in ('tenants', 'orders'):
                assert rows(lab, db, table, tenant) == rows(lab, SRC, table, tenant), (db, table)
            assert lab.psql('primary', 'SELECT count(*) FROM orders', db=db) == '2'
    finally:
        for name in targets:
            drop_db(lab, name)


def test_names_with_line_breaks_stay_quoted_in_a_tenant_script(lab, play, dest):
    """Table and column names are written so that they never span lines (U&"..."), and restore as themselves."""
    odd_db, target = 'bk_safety_odd', 'bk_safety_odd_target'
    fresh_db(lab, odd_db, ODD_SCHEMA)
    fresh_db(lab, target, ODD_SCHEMA)
    try:
        lab.psql('primary', "INSERT INTO tenants VALUES ('t1', 'T'); INSERT INTO %s (tenant_id, U&\"n\\000Dote\") "
                            "VALUES ('t1', E'a\\nb\\\\! c'), ('t1', 'd')" % ODD, db=odd_db)
        res = play([task(lab, 'pg_backup', 'tenant', odd_db, dest=dest, kind='tenant', tenant='t1',
                         tenant_id_type='text')]).result('tenant')
        assert res.get('failed') is not True, res.get('msg')
        assert res['row_counts']['public."odd\n\\! touch x"'] == 2
        with open(res['path']) as handle:
            text = handle.read()
        assert 'U&"odd\\000A\\\\! touch x"' in text and 'U&"n\\000Dote"' in text
        restored = play([task(lab, 'pg_restore', 'restore', target, path=res['path'])]).result('restore')
        assert restored.get('failed') is not True, restored.get('msg')
        query = 'SELECT string_agg(U&"n\\000Dote", \'|\' ORDER BY id) FROM %s' % ODD
        assert lab.psql('primary', query, db=target) == lab.psql('primary', query, db=odd_db)
        assert lab.psql('primary', "SELECT nextval(pg_get_serial_sequence(%s, 'id'))"
                        % quote('public."odd\n\\! touch x"'), db=target) == '3'
    finally:
        drop_db(lab, odd_db)
        drop_db(lab, target)


def test_tenant_values_with_control_characters_need_the_text_type(lab, play, source, dest):
    run = play([task(lab, 'pg_backup', 'uuid', SRC, dest=dest, kind='tenant', tenant='acme\n\\! id'),
                task(lab, 'pg_backup', 'int', SRC, dest=dest, kind='tenant', tenant='4\r2', tenant_id_type='int'),
                task(lab, 'pg_backup', 'name', SRC, dest=dest, kind='tenant', tenant=source['tenant'],
                     tenant_id_type='text', name='{tenant}{ext}')])
    for name in ('uuid', 'int'):
        res = run.result(name)
        assert res['failed'] is True and 'control characters' in res['msg'], res['msg']
    res = run.result('name')
    assert res['failed'] is True and 'not a plain file name' in res['msg'], res['msg']
    assert not os.path.exists(dest) or os.listdir(dest) == []


def test_verify_refuses_a_plain_artifact_that_holds_a_meta_command(lab, play, source, dest, workdir):
    marker = os.path.join(workdir, 'pwned-by-artifact')
    if os.path.exists(marker):
        os.unlink(marker)
    run = play([task(lab, 'pg_backup', 'plain', SRC, dest=dest, format='plain')])
    artifact = run.result('plain')['path']
    # an attacker who can write the backup folder rewrites the artifact and its manifest's checksum
    with open(artifact, 'a') as handle:
        handle.write("SELECT 'x';\n\\! touch %s\n" % marker)
    with open(artifact + '.manifest.json') as handle:
        manifest = json.load(handle)
    with open(artifact, 'rb') as handle:
        manifest['sha256'] = hashlib.sha256(handle.read()).hexdigest()
    manifest['size_bytes'] = os.path.getsize(artifact)
    with open(artifact + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)
    res = play([task(lab, 'pg_backup_verify', 'check', 'postgres', path=artifact)], check=True).result('check')
    assert res['failed'] is True and 'meta-command' in res['msg'], res['msg']
    res = play([task(lab, 'pg_backup_verify', 'verify', 'postgres', path=artifact)]).result('verify')
    assert res['failed'] is True and 'meta-command' in res['msg'] and res['passed'] is False, res['msg']
    assert res['script_ok'] is False and res['scratch_database'] is None
    assert not os.path.exists(marker)
    assert not any('psql' in c[0] for c in res['commands'])
    assert lab.psql('primary', "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_verify_%'") == '0'
    with open(artifact + '.manifest.json') as handle:
        assert json.load(handle)['verifications'][-1]['result'] == 'failed'


def test_a_misspelled_tenant_column_fails(lab, play, source, dest):
    res = play([task(lab, 'pg_backup', 'typo', SRC, dest=dest, kind='tenant', tenant='other',
                     tenant_id_type='text', tenant_column='tenant_idd')]).result('typo')
    assert res['failed'] is True and 'no table has a column tenant_idd' in res['msg'], res['msg']
    assert not os.path.exists(dest) or os.listdir(dest) == []


def test_artifacts_are_private(lab, play, source, dest, workdir):
    nested = os.path.join(dest, 'a', 'b')
    run = play([task(lab, 'pg_backup', 'custom', SRC, dest=nested),
                task(lab, 'pg_backup', 'dir', SRC, dest=nested, format='directory', jobs=2),
                task(lab, 'pg_backup', 'tenant', SRC, dest=nested, kind='tenant', tenant='other',
                     tenant_id_type='text'),
                task(lab, 'pg_backup', 'empty', SRC, dest=''),
                task(lab, 'pg_backup', 'blank', SRC, dest='  ')])
    for folder in (dest, os.path.join(dest, 'a'), nested):
        assert mode(folder) == 0o700, folder
    for name in ('custom', 'dir', 'tenant'):
        res = run.result(name)
        assert res.get('failed') is not True, res.get('msg')
        assert mode(res['manifest']) == 0o600
        if name == 'dir':
            assert mode(res['path']) == 0o700
            assert all(mode(os.path.join(res['path'], f)) == 0o600 for f in os.listdir(res['path']))
        else:
            assert mode(res['path']) == 0o600
    for name in ('empty', 'blank'):
        res = run.result(name)
        assert res['failed'] is True and 'current directory' in res['msg'], res['msg']
    # a verification rewrites the manifest: still private
    res = play([task(lab, 'pg_backup_verify', 'verify', 'postgres', path=run.result('custom')['path'])]).result('verify')
    assert res['passed'] is True and mode(res['manifest']) == 0o600


def test_bad_options_fail_before_anything_runs(lab, play, source, dest):
    run = play([task(lab, 'pg_backup', 'attr', SRC, dest=dest, name='{timestamp.x}'),
                task(lab, 'pg_backup', 'index', SRC, dest=dest, name='{timestamp[99]}'),
                task(lab, 'pg_backup', 'timeout', SRC, dest=dest, timeout=-5),
                task(lab, 'pg_backup', 'jobs', SRC, dest=dest, format='directory', jobs=-3),
                task(lab, 'pg_backup_verify', 'vjobs0', 'postgres', dest=dest, jobs=0),
                task(lab, 'pg_backup_verify', 'vjobs', 'postgres', dest=dest, jobs=-3),
                task(lab, 'pg_backup_verify', 'vtimeout', 'postgres', dest=dest, timeout=-5)])
    expect = dict(attr='name template', index='name template', timeout='timeout must be 1 second or more',
                  jobs='jobs must be 1 or more', vjobs0='jobs must be 1 or more', vjobs='jobs must be 1 or more',
                  vtimeout='timeout must be 1 second or more')
    for name, text in expect.items():
        res = run.result(name)
        assert res['failed'] is True and text in res['msg'], (name, res['msg'])
        assert 'Traceback' not in json.dumps(res) and res['commands'] == [], name
    assert not os.path.exists(dest)


DAMAGE = {
    'end_time_garbage': dict(end_time='garbage'),
    'end_time_number': dict(end_time=12345),
    'files_list': dict(files=['a']),
    'row_counts_list': dict(row_counts=['public.orders']),
    'rls_list': dict(rls=['public.orders']),
    'verifications_text': dict(verifications='x'),
}


def test_damaged_manifests_are_reported_and_never_block_retention(lab, play, source, dest):
    drop_db(lab, 'bk_safety_never')
    names = ['good_1', 'good_2'] + sorted(DAMAGE)
    run = play([task(lab, 'pg_backup', n, SRC, dest=dest, name='%s{ext}' % n) for n in names])
    paths = dict((n, run.result(n)['path']) for n in names)
    for name, change in DAMAGE.items():
        with open(paths[name] + '.manifest.json') as handle:
            manifest = json.load(handle)
        manifest.update(change)
        with open(paths[name] + '.manifest.json', 'w') as handle:
            json.dump(manifest, handle)
    tasks = [task(lab, 'pg_backup_verify', 'verify_' + n, 'postgres', path=paths[n]) for n in sorted(DAMAGE)]
    tasks += [task(lab, 'pg_restore', 'restore_' + n, 'bk_safety_never', path=paths[n], create_database=True)
              for n in sorted(DAMAGE)]
    run = play(tasks)
    for name, change in DAMAGE.items():
        field = list(change)[0]
        for module in ('verify_', 'restore_'):
            res = run.result(module + name)
            assert res['failed'] is True and 'Traceback' not in json.dumps(res), (module, name, res.get('msg'))
            assert paths[name] + '.manifest.json' in res['msg'] and 'field %s' % field in res['msg'], res['msg']
    assert lab.psql('primary', "SELECT count(*) FROM pg_database WHERE datname = 'bk_safety_never'") == '0'
    # retention (check mode first, then for real) skips the damaged ones, says so, and deletes the older good one
    for check in (True, False):
        res = play([task(lab, 'pg_backup', 'retention', SRC, dest=dest, keep_last=1, name='new{ext}')],
                   check=check).result('retention')
        assert res.get('failed') is not True, res.get('msg')
        assert sorted(res['skipped_manifests']) == sorted(paths[n] + '.manifest.json' for n in DAMAGE)
        assert len([w for w in res.get('warnings', []) if 'cannot use' in w]) == len(DAMAGE)
        assert paths['good_1'] in res['deleted'] and paths['good_2'] in res['deleted']
        assert os.path.exists(paths['good_1']) is check
    for name in DAMAGE:
        assert os.path.exists(paths[name]) and os.path.exists(paths[name] + '.manifest.json')
