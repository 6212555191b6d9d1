"""The pure pieces of pg_restore's plan step: database names as libpq values, formats, options, target actions."""

from __future__ import annotations

import string

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import dbname_conninfo
from ansible_collections.procgenie.dbops.plugins.module_utils import _clients
from ansible_collections.procgenie.dbops.plugins.module_utils.backup import restore as rst

from psycopg2.extensions import parse_dsn  # noqa: E402  # libpq's own PQconninfoParse (psycopg2 is a test requirement)


NAMES = ['db', 'dbname=p2c_victim', "dbname='p2c_victim' host=evil", 'postgresql://evil/p2c_victim',
         "it's", 'back\\slash', "q'u\"o te\\ba:ck$1 x", 'trailing\\', '', ' lead', 'new\nline', 'é ü 数据',
         string.printable.replace('\0', '')]


@pytest.mark.parametrize('name', [n for n in NAMES if n])
def test_dbname_conninfo_reads_back_as_the_name_alone(name):
    value = dbname_conninfo(name)
    assert value.startswith("dbname='") and value.endswith("'")
    assert parse_dsn(value) == {'dbname': name}


def test_dbname_conninfo_quoting():
    assert dbname_conninfo('db') == "dbname='db'"
    assert dbname_conninfo('dbname=x') == "dbname='dbname=x'"
    assert dbname_conninfo("it's") == "dbname='it\\'s'"
    assert dbname_conninfo('a\\b') == "dbname='a\\\\b'"
    for bad in ('', None, 'nul\0byte'):
        with pytest.raises(ValueError):
            dbname_conninfo(bad)


def test_client_argv_never_carries_a_bare_database_name():
    weird = 'dbname=p2c_victim'
    for argv in (_clients.pg_restore_argv('pg_restore', '/a.dump', weird, clean=True),
                 _clients.psql_argv('psql', '/a.sql', weird)):
        dbnames = [a for a in argv if a.startswith('--dbname=')]
        assert dbnames == ["--dbname=dbname='dbname=p2c_victim'"]
        assert parse_dsn(dbnames[0][len('--dbname='):]) == {'dbname': weird}


def test_the_manifest_format_must_be_what_the_artifact_is():
    assert rst.artifact_format(None, 'custom') == 'custom'
    assert rst.artifact_format('directory', 'directory') == 'directory'
    with pytest.raises(rst.RestoreFailure, match='says the artifact is in the plain format, but it is a custom'):
        rst.artifact_format('plain', 'custom')
    with pytest.raises(rst.RestoreFailure, match='custom format, but it is a plain SQL script'):
        rst.artifact_format('custom', 'plain')
    with pytest.raises(rst.RestoreFailure, match='not one of'):
        rst.artifact_format('tar', 'custom')


def params(**kw):
    base = dict(login_db='app', maintenance_db='postgres', tables=[], jobs=1, clean=None, data_only=False,
                single_transaction=False, pre_restore_backup=False, backup_dest=None, timeout=None)
    base.update(kw)
    return base


def test_restore_options_defaults_and_subsets():
    opts = rst.restore_options(params(), '/a.dump', 'custom', 'full')
    assert opts == dict(tables=[], split=[], schemas=[], jobs=1, clean=True, data_only=False,
                        single_transaction=False)
    opts = rst.restore_options(params(tables=['public.Items', '"Odd"."A b"'], data_only=True), '/a', 'custom',
                               'full')
    assert opts['clean'] is False and opts['split'] == [('public', 'items'), ('Odd', 'A b')]
    assert opts['schemas'] == ['Odd', 'public']
    # a tenant script is data only by nature; a schema script restores as a whole
    assert rst.restore_options(params(data_only=True), '/t.sql', 'plain', 'tenant')['clean'] is False
    assert rst.restore_options(params(), '/s.sql', 'plain', 'schema_only')['clean'] is False


@pytest.mark.parametrize('kw,fmt,message', [
    (dict(maintenance_db='app'), 'custom', 'maintenance_db is app, the database restored into'),
    (dict(login_db='postgres', maintenance_db=None), 'custom', 'maintenance_db is postgres'),
    (dict(jobs=0), 'custom', 'jobs must be 1 or more'),
    (dict(jobs=-3), 'custom', 'jobs must be 1 or more'),
    (dict(timeout=-5), 'custom', 'timeout must be a positive'),
    (dict(timeout=0), 'custom', 'timeout must be a positive'),
    (dict(jobs=2, single_transaction=True), 'custom', 'single_transaction cannot be combined'),
    (dict(tables=['t']), 'plain', 'plain SQL script'),
    (dict(jobs=2), 'plain', 'plain SQL script'),
    (dict(clean=True), 'plain', 'plain SQL script'),
    (dict(clean=True, data_only=True), 'custom', 'clean and data_only exclude each other'),
    (dict(tables=['a.b.c']), 'custom', 'is not a table name'),
])
def test_restore_options_refusals(kw, fmt, message):
    with pytest.raises(rst.RestoreFailure, match=message):
        rst.restore_options(params(**kw), '/a', fmt, 'full')


SUPER = dict(rolname='dba', superuser=True, createdb=True, owner=True)
PLAIN = dict(rolname='app', superuser=False, createdb=False, owner=False)
SESSION = dict(pid=42, usename='app', application_name='web', can_end=True)


def test_target_actions():
    existing = dict(exists=True, others=[], rights=SUPER)
    assert rst.target_actions('app', existing, dict()) == dict(create_database=False, recreate_database=False,
                                                               terminate=[])
    assert rst.target_actions('app', existing, dict(recreate_database=True))['recreate_database'] is True
    missing = dict(exists=False, others=[], rights=SUPER)
    assert rst.target_actions('app', missing, dict(create_database=True)) == dict(
        create_database=True, recreate_database=False, terminate=[])
    # recreate of a missing database creates it
    assert rst.target_actions('app', missing, dict(recreate_database=True))['create_database'] is True
    busy = dict(exists=True, others=[SESSION], rights=SUPER)
    assert rst.target_actions('app', busy, dict(terminate_connections=True))['terminate'] == [42]


@pytest.mark.parametrize('target,kw,message', [
    (dict(exists=False, others=[], rights=SUPER), dict(), 'does not exist; set create_database'),
    (dict(exists=True, others=[SESSION], rights=SUPER), dict(recreate_database=True),
     r'1 other session\(s\) \(pid 42 app/web\).*terminate_connections=true'),
    (dict(exists=False, others=[], rights=PLAIN), dict(create_database=True), 'creating database app needs'),
    (dict(exists=True, others=[SESSION, dict(pid=7, usename='postgres', application_name='', can_end=False)],
          rights=PLAIN), dict(terminate_connections=True),
     r'app may not end 1 of the other sessions of app \(pid 7 postgres\).*nothing was ended'),
    (dict(exists=True, others=[], rights=dict(PLAIN, createdb=True)), dict(recreate_database=True),
     'only its owner or a superuser'),
    (dict(exists=True, others=[], rights=dict(PLAIN, owner=True)), dict(recreate_database=True),
     'recreating database app needs a superuser or a role with CREATEDB'),
])
def test_target_actions_refusals(target, kw, message):
    with pytest.raises(rst.RestoreFailure, match=message):
        rst.target_actions('app', target, kw)


def test_programs_needed():
    assert rst.programs_needed('custom', False) == [('pg_restore', True)]
    assert rst.programs_needed('directory', True) == [('pg_restore', True), ('pg_dump', True)]
    assert rst.programs_needed('plain', False) == [('psql', False)]


def test_a_plain_script_of_pg_dump_17_is_refused_before_17(tmp_path):
    script = tmp_path / 'a.sql'
    script.write_text('SET statement_timeout = 0;\nSET transaction_timeout = 0;\nSELECT 1;\n')
    old = tmp_path / 'b.sql'
    old.write_text('SET statement_timeout = 0;\nSELECT 1;\n')
    assert 'transaction_timeout' in rst.plain_script_too_new(dict(pg_dump_version='18.1'), str(old), 16)
    assert rst.plain_script_too_new(dict(pg_dump_version='15.18'), str(script), 15) is None
    assert rst.plain_script_too_new(dict(pg_dump_version='18.1'), str(script), 17) is None
    assert 'PostgreSQL 14' in rst.plain_script_too_new(None, str(script), 14)
    assert rst.plain_script_too_new(None, str(old), 14) is None
    assert rst.plain_script_too_new(dict(pg_dump_version='garbage'), str(old), 14) is None
