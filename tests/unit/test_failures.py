"""_failures.clean_failures: every error family ends in fail_json with queries and commands, never a traceback."""

from __future__ import annotations

import psycopg2
import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import ConnectionFailure, QueryLog
from ansible_collections.procgenie.dbops.plugins.module_utils._failures import clean_failures


class Failed(Exception):
    pass


class Module(object):
    """Stands in for AnsibleModule's fail_json only: records the result and stops like it."""

    def fail_json(self, **result):
        self.result = result
        raise Failed()


class DomainError(Exception):
    def __init__(self, msg, result=None):
        super(DomainError, self).__init__(msg)
        self.result = result


@pytest.mark.parametrize('error, message', [
    (DomainError('table "x" does not exist', {'plan': 'p'}), 'table "x" does not exist'),
    (ClientError('pg_dump failed (exit code 1): boom'), 'pg_dump failed (exit code 1): boom'),
    (ConnectionFailure('Unable to connect: refused'), 'Unable to connect: refused'),
    (psycopg2.errors.InsufficientPrivilege('permission denied for table t'),
     'The backup failed: permission denied for table t'),
    (PermissionError(13, 'Permission denied', '/backups'), "The backup failed: [Errno 13] Permission denied: '/backups'"),
])
def test_each_error_family_fails_cleanly(error, message):
    module, log, commands = Module(), QueryLog(), []
    with pytest.raises(Failed):
        with clean_failures(module, log, commands, 'The backup', DomainError):
            log.add('SELECT 1')
            commands.append(['pg_dump', '--version'])
            raise error
    assert module.result['msg'] == message
    assert module.result['queries'] == ['SELECT 1']
    assert module.result['commands'] == [['pg_dump', '--version']]
    if isinstance(error, DomainError):
        assert module.result['plan'] == 'p'


def test_database_errors_never_carry_the_password():
    module = Module()
    module.params = {'login_password': 'Sup3rSecret'}
    with pytest.raises(Failed):
        with clean_failures(module, QueryLog(), [], 'The failover'):
            raise psycopg2.errors.SyntaxError('near "Sup3rSecret"')
    assert 'Sup3rSecret' not in module.result['msg'] and '********' in module.result['msg']


def test_other_errors_are_not_swallowed():
    with pytest.raises(KeyError):
        with clean_failures(Module(), QueryLog(), [], 'The backup'):
            raise KeyError('a bug shows as a bug')


def test_no_error_no_failure():
    module = Module()
    with clean_failures(module, QueryLog(), [], 'The backup'):
        value = 1
    assert value == 1 and not hasattr(module, 'result')
