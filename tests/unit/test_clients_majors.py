"""_clients.find_program and servers before 17: pg_restore 17+ cannot restore into them (it always sends
SET transaction_timeout = 0, which they reject), and a pg_dump before 17 is taken first for them."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _clients


def fake(directory, name, version):
    directory.mkdir(exist_ok=True)
    path = os.path.join(str(directory), name)
    with open(path, 'w') as handle:
        handle.write('#!/bin/sh\necho "%s (PostgreSQL) %s"\n' % (name, version))
    os.chmod(path, stat.S_IRWXU)
    return path


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    new, old = tmp_path / 'v18', tmp_path / 'v16'
    monkeypatch.setenv('PATH', '%s:%s' % (new, old))
    monkeypatch.setattr(_clients, 'DEBIAN_BINDIRS', str(tmp_path / 'none' / '*' / 'bin'))
    monkeypatch.setattr(_clients, '_embedded_bindir', lambda: None)
    return new, old


def test_a_server_before_17_gets_the_older_pg_restore_and_pg_dump_even_when_a_newer_comes_first(dirs):
    new, old = dirs
    for name in ('pg_restore', 'pg_dump', 'psql'):
        fake(new, name, '18.6')
        fake(old, name, '16.4')
    assert _clients.find_program('pg_restore', min_major=16) == (str(old / 'pg_restore'), '16.4')
    assert _clients.find_program('pg_dump', min_major=14) == (str(old / 'pg_dump'), '16.4')
    assert _clients.find_program('psql', min_major=16)[1] == '18.6'  # psql itself talks to older servers
    assert _clients.find_program('pg_restore', min_major=17)[1] == '18.6'  # 17 knows transaction_timeout


def test_only_a_pg_restore_of_17_or_newer_is_refused_for_a_server_before_17(dirs):
    new, _old = dirs
    fake(new, 'pg_restore', '18.6')
    fake(new, 'pg_dump', '18.6')
    with pytest.raises(_clients.ClientError) as err:
        _clients.find_program('pg_restore', min_major=16)
    msg = str(err.value)
    assert 'older than 17' in msg and 'transaction_timeout' in msg and '18.6' in msg
    assert 'Install the PostgreSQL 16 client programs or set pg_bindir' in msg
    # pg_dump 18 still backs a 16 server up (the backup restores into 17 and newer)
    assert _clients.find_program('pg_dump', min_major=16) == (str(new / 'pg_dump'), '18.6')
