"""connect_params: a secret there is refused and never shown, not even at -vvv (issue 11 item 5)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import node_params

SECRET = 'Sup3r-S3cret-connect-params'


def info_task(params, name='info', **extra):
    args = dict(params, **extra)
    return dict(name=name, **{'procgenie.dbops.pg_server_info': args}, register='out', ignore_errors=True)


def no_password(lab):
    params = node_params(lab, 'primary', db='postgres')
    params.pop('login_password')
    return params


@pytest.mark.parametrize('connect_params', [
    dict(password=SECRET),
    dict(password=SECRET, connect_timeout=7, sslmode='disable'),
    'password=%s connect_timeout=7' % SECRET,
    dict(sslpassword=SECRET),
])
def test_a_secret_in_connect_params_is_refused_and_never_printed(lab, play, connect_params):
    run = play([info_task(no_password(lab), connect_params=connect_params)], args=['-vvv'])
    result = run.result('info')
    assert result['failed'] is True
    assert 'connect_params must not hold' in result['msg']
    assert 'login_password' in result['msg'] or 'sslpassword' in result['msg']
    assert SECRET not in run.stdout and SECRET not in run.stderr and SECRET not in run.text
    assert result['queries'] == [] and result['commands'] == []


def test_the_right_password_in_connect_params_is_refused_too(lab, play):
    """Even the server's real password: the module never connects with it (nothing ran) and never prints it."""
    password = lab.state['password']
    run = play([info_task(no_password(lab), connect_params=dict(password=password))], args=['-vvv'])
    result = run.result('info')
    assert result['failed'] is True and 'login_password' in result['msg']
    assert password not in run.text


def test_harmless_connect_params_still_work_and_a_passfile_is_the_way(lab, play, home):
    """connect_timeout and friends pass through; a 0600 password file (libpq's format, ':' and '\\' escaped)
    gives the password without login_password."""
    n = lab.state['nodes']['primary']
    passfile = os.path.join(home, 'pgpass-connect-params')
    escaped = lab.state['password'].replace('\\', '\\\\').replace(':', '\\:')
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write('%s:%s:*:%s:%s\n' % (n['host'], n['port'], lab.state['superuser'], escaped))
    run = play([info_task(no_password(lab), connect_params=dict(connect_timeout=7, passfile=passfile))],
               args=['-vvv'])
    result = run.result('info')
    assert not result.get('failed'), result.get('msg')
    assert result['in_recovery'] is False
    assert lab.state['password'] not in run.text
