"""pg_restore never touches the target before every check passed, and never restores into another database than
the one named (issue: restore target names became libpq connection strings). Run through ansible-playbook on the
lab's primary; each case proves the databases and the other sessions are exactly as before."""

from __future__ import annotations

import json
import os
import shutil

import psycopg2  # a test requirement: a missing one fails, never skips
import pytest
from psycopg2 import sql

from tests.conftest import node_params

SRC = 'rs_src'
TARGET = 'rs_target'


def task(lab, task_name, db, **args):
    args = dict(node_params(lab, db=db), **args)
    return dict(name=task_name, ignore_errors=True, **{'procgenie.dbops.pg_restore': args})


def connect(lab, db):
    """A psycopg2 session (keyword arguments: the name is a value, never a connection string)."""
    conn = psycopg2.connect(**lab.conninfo('primary', db))
    conn.autocommit = True
    return conn


def query(lab, db, statement, args=None):
    conn = connect(lab, db)
    try:
        cur = conn.cursor()
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def drop(lab, name):
    query(lab, 'postgres', sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))


def create(lab, name):
    drop(lab, name)
    query(lab, 'postgres', sql.SQL('CREATE DATABASE {}').format(sql.Identifier(name)))


def database_oid(lab, name):
    rows = query(lab, 'postgres', 'SELECT oid FROM pg_database WHERE datname = %s', [name])
    return rows[0][0] if rows else None


@pytest.fixture(scope='module')
def artifact(lab, workdir, collections_root, home):
    """A full custom-format pg_backup artifact of a seeded database."""
    from tests.harness.playbook import run_playbook
    lab.seed(db=SRC)
    dest = os.path.join(workdir, 'restore-safety')
    shutil.rmtree(dest, ignore_errors=True)
    tasks = [dict(name='full', **{'procgenie.dbops.pg_backup': dict(node_params(lab, db=SRC), dest=dest)})]
    run = run_playbook([dict(name='a', hosts='localhost', gather_facts=False, tasks=tasks)], collections_root, home)
    assert run.rc == 0, run
    yield run.result('full')['path']
    drop(lab, SRC)


@pytest.fixture
def target(lab):
    """A seeded database that differs from the artifact (rows deleted), with its state before the test."""
    lab.seed(db=TARGET)
    lab.psql('primary', 'DELETE FROM request_items WHERE id % 2 = 0; DELETE FROM audit_events WHERE id < 100',
             db=TARGET)
    yield dict(oid=database_oid(lab, TARGET), counts=lab.row_counts(TARGET))
    drop(lab, TARGET)


@pytest.fixture
def held(lab):
    """Another session of the target, held open (an application still connected)."""
    conn = connect(lab, TARGET)
    pid = conn.get_backend_pid()
    yield conn, pid
    conn.close()


def assert_unchanged(lab, before, held_session=None):
    assert database_oid(lab, TARGET) == before['oid'], 'the target was dropped and created again'
    assert lab.row_counts(TARGET) == before['counts']
    if held_session is not None:
        conn, pid = held_session
        cur = conn.cursor()
        cur.execute('SELECT 1')  # raises when the session was ended
        assert cur.fetchone() == (1,)
        assert query(lab, 'postgres', 'SELECT count(*) FROM pg_stat_activity WHERE pid = %s', [pid]) == [(1,)]


def assert_clean_failure(res, *words):
    assert res.get('failed') is True, res
    assert 'Traceback' not in json.dumps(res), res
    for word in words:
        assert word in res['msg'], res['msg']


# ------------------------------------------------------------------------------------------------ the target name
def test_a_target_name_is_never_expanded_as_a_connection_string(lab, play, workdir):
    """login_db='dbname=p2c_victim' creates and restores into the database of that very name; p2c_victim, which
    libpq would have connected to, keeps its 3 rows."""
    src, victim, weird = 'p2c_src', 'p2c_victim', 'dbname=p2c_victim'
    for name in (src, victim):
        create(lab, name)
        query(lab, name, 'CREATE TABLE currencies (code text PRIMARY KEY)')
    query(lab, src, "INSERT INTO currencies VALUES ('EUR')")
    query(lab, victim, "INSERT INTO currencies VALUES ('EUR'), ('USD'), ('CHF')")
    drop(lab, weird)
    try:
        run = play([dict(name='backup', **{'procgenie.dbops.pg_backup': dict(
            node_params(lab, db=src), dest=os.path.join(workdir, 'p2c-backups'))})])
        assert run.rc == 0, run
        path = run.result('backup')['path']
        run = play([task(lab, 'restore', weird, path=path, create_database=True)])
        res = run.result('restore')
        assert res.get('failed') is not True, res.get('msg')
        assert res['database'] == weird and res['plan']['create_database'] is True
        # the victim is untouched; the database named by login_db got the data
        assert query(lab, victim, 'SELECT code FROM currencies ORDER BY code') == [('CHF',), ('EUR',), ('USD',)]
        assert database_oid(lab, weird) is not None
        assert query(lab, weird, 'SELECT code FROM currencies') == [('EUR',)]
        assert res['row_counts'] == {'public.currencies': 1}
        restore_cmd = [c for c in res['commands'] if os.path.basename(c[0]) == 'pg_restore'][-1]
        assert "--dbname=dbname='dbname=p2c_victim'" in restore_cmd
        assert not any(a == '--dbname=' + weird for a in restore_cmd)
    finally:
        for name in (src, victim, weird):
            drop(lab, name)


# ------------------------------------------------------------------------- nothing destructive before the checks
def test_recreate_with_a_pg_bindir_without_pg_restore_changes_nothing(lab, play, artifact, target, workdir):
    bindir = os.path.join(workdir, 'empty-bindir')
    os.makedirs(bindir, exist_ok=True)
    for check in (True, False):  # check mode finds the programs too: it reports what the restore would do
        run = play([task(lab, 'recreate', TARGET, path=artifact, recreate_database=True, pg_bindir=bindir)],
                   check=check)
        res = run.result('recreate')
        assert_clean_failure(res, 'Cannot find the PostgreSQL client program pg_restore', bindir)
        assert not any('DROP DATABASE' in q or 'CREATE DATABASE' in q for q in res['queries']), res['queries']
        assert_unchanged(lab, target)


def test_a_manifest_that_lies_about_the_format_changes_nothing(lab, play, artifact, target, workdir):
    """The manifest says plain for a custom dump (its checksum still matches): refused before the drop."""
    liar = os.path.join(workdir, 'liar.dump')
    shutil.copy(artifact, liar)
    with open(artifact + '.manifest.json') as handle:
        manifest = json.load(handle)
    manifest['format'] = 'plain'
    with open(liar + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)
    run = play([task(lab, 'liar', TARGET, path=liar, recreate_database=True)])
    res = run.result('liar')
    assert_clean_failure(res, 'the manifest says the artifact is in the plain format, but it is a custom dump')
    assert res['commands'] == []
    assert_unchanged(lab, target)


def test_a_damaged_manifest_changes_nothing(lab, play, artifact, target, workdir):
    damaged = os.path.join(workdir, 'damaged.dump')
    shutil.copy(artifact, damaged)
    with open(artifact + '.manifest.json') as handle:
        manifest = json.load(handle)
    manifest['row_counts'] = list(manifest['row_counts'])
    with open(damaged + '.manifest.json', 'w') as handle:
        json.dump(manifest, handle)
    run = play([task(lab, 'damaged', TARGET, path=damaged)])
    res = run.result('damaged')
    assert_clean_failure(res, 'row_counts', damaged + '.manifest.json')
    assert res['commands'] == []
    assert_unchanged(lab, target)


def test_terminate_with_a_bad_pg_bindir_ends_no_session(lab, play, artifact, target, held, workdir):
    bindir = os.path.join(workdir, 'empty-bindir')
    os.makedirs(bindir, exist_ok=True)
    run = play([task(lab, 'terminate', TARGET, path=artifact, terminate_connections=True, pg_bindir=bindir),
                task(lab, 'recreate', TARGET, path=artifact, terminate_connections=True, recreate_database=True,
                     pg_bindir=bindir)])
    for name in ('terminate', 'recreate'):
        res = run.result(name)
        assert_clean_failure(res, 'Cannot find the PostgreSQL client program pg_restore')
        assert not any('pg_terminate_backend' in q for q in res['queries']), res['queries']
    assert_unchanged(lab, target, held)


def test_maintenance_db_equal_to_the_target_ends_no_session(lab, play, artifact, target, held):
    run = play([task(lab, 'recreate', TARGET, path=artifact, maintenance_db=TARGET, terminate_connections=True,
                     recreate_database=True),
                task(lab, 'terminate', TARGET, path=artifact, maintenance_db=TARGET, terminate_connections=True)])
    for name in ('recreate', 'terminate'):
        res = run.result(name)
        assert_clean_failure(res, 'maintenance_db is %s, the database restored into' % TARGET)
        assert res['queries'] == [] and res['commands'] == []
    assert_unchanged(lab, target, held)


def test_nonsense_options_are_refused_before_anything(lab, play, artifact, target, held):
    run = play([task(lab, 'jobs', TARGET, path=artifact, jobs=0, terminate_connections=True),
                task(lab, 'timeout', TARGET, path=artifact, timeout=-5, terminate_connections=True)])
    assert_clean_failure(run.result('jobs'), 'jobs must be 1 or more')
    assert_clean_failure(run.result('timeout'), 'timeout must be a positive number of seconds')
    assert_unchanged(lab, target, held)


def test_check_mode_reports_the_whole_plan(lab, play, artifact, target, held):
    run = play([task(lab, 'plan', TARGET, path=artifact, recreate_database=True, terminate_connections=True,
                     jobs=2)], check=True)
    res = run.result('plan')
    assert res.get('failed') is not True, res.get('msg')
    plan = res['plan']
    assert plan['recreate_database'] is True and plan['create_database'] is False
    assert held[1] in plan['terminate']
    assert plan['programs']['pg_restore'].split('.')[0].isdigit()
    assert res['commands'] == [] and res['format'] == 'custom' and res['kind'] == 'full'
    assert not any('pg_terminate_backend' in q or 'DATABASE' in q for q in res['queries'])
    assert_unchanged(lab, target, held)


def test_a_script_with_psql_meta_commands_is_never_run(lab, play, target, workdir):
    """A plain dump (not made by pg_backup, or with a manifest rewritten to match) that carries a shell command
    for psql: refused before psql sees it."""
    marker = os.path.join(workdir, 'PWNED')
    if os.path.exists(marker):
        os.unlink(marker)
    evil = os.path.join(workdir, 'evil.sql')
    with open(evil, 'w') as handle:
        handle.write('CREATE TABLE pwned_t (i int);\n\\! touch %s\nDROP TABLE vendors CASCADE;\n' % marker)
    run = play([task(lab, 'evil', TARGET, path=evil, verify_checksum=False)])
    res = run.result('evil')
    assert_clean_failure(res, 'meta-commands')
    assert res['commands'] == [] and not os.path.exists(marker)
    assert query(lab, TARGET, "SELECT to_regclass('pwned_t') IS NULL") == [(True,)]
    assert_unchanged(lab, target)


def test_sessions_the_login_may_not_end_are_refused_before_any_is_ended(lab, play, artifact, target):
    """A non-superuser owner of the target with terminate_connections: its own application session could be ended,
    a superuser's cannot; before, pg_terminate_backend went through the sessions and failed on the superuser's."""
    role, password = 'rs_owner', 'rs-owner-secret'
    query(lab, 'postgres', sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))
    query(lab, 'postgres', sql.SQL('CREATE ROLE {} LOGIN CREATEDB PASSWORD %s').format(sql.Identifier(role)),
          [password])
    query(lab, 'postgres', sql.SQL('ALTER DATABASE {} OWNER TO {}').format(
        sql.Identifier(TARGET), sql.Identifier(role)))
    own = psycopg2.connect(**dict(lab.conninfo('primary', TARGET), user=role, password=password))
    admin = connect(lab, TARGET)
    try:
        run = play([dict(name='restore', ignore_errors=True, **{'procgenie.dbops.pg_restore': dict(
            node_params(lab, db=TARGET, user=role, password=password), path=artifact, terminate_connections=True,
            recreate_database=True)})])
        res = run.result('restore')
        assert_clean_failure(res, 'rs_owner may not end 1 of the other sessions', 'pid %s' % admin.get_backend_pid(),
                             'nothing was ended')
        assert not any('pg_terminate_backend' in q or 'DROP' in q for q in res['queries']), res['queries']
        assert_unchanged(lab, target, (own, own.get_backend_pid()))
        assert_unchanged(lab, target, (admin, admin.get_backend_pid()))
    finally:
        own.close()
        admin.close()
        drop(lab, TARGET)
        query(lab, 'postgres', sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))
