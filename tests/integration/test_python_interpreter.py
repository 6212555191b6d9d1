"""Outside an execution environment (issue 12 item 6): a module run by a Python without psycopg2 (or the Azure SDK)
says which interpreter lacks what and how to point the modules at one that has it - never a traceback."""

from __future__ import annotations

import subprocess

import pytest

SYSTEM_PYTHON = '/usr/bin/python3'

AZURE = dict(provider='azure', subscription_id='5b0c2f1e-7d3a-4c8e-9f61-2a4b6c8d0e1f', client_id='x', secret='not-a-real-secret-value',
             tenant='z', resource_group='rg', server_name='srv')
# (module, options, the library the message must name, the pip install it must give)
CASES = [
    ('procgenie.dbops.pg_server_info', dict(login_host='127.0.0.1', login_port=5432), 'psycopg2', 'psycopg2-binary'),
    ('procgenie.dbops.pg_backup', dict(login_host='127.0.0.1', login_db='postgres', dest='/tmp/dbops-no-psycopg2'),
     'psycopg2', 'psycopg2-binary'),
    ('procgenie.dbops.pg_failover', dict(primary=dict(host='127.0.0.1', port=5432)), 'psycopg2', 'psycopg2-binary'),
    ('procgenie.dbops.pg_tune_params', dict(login_host='127.0.0.1'), 'psycopg2', 'psycopg2-binary'),
    ('procgenie.dbops.pg_server_info', AZURE, 'azure-mgmt-postgresqlflexibleservers', 'azure-identity'),
]


@pytest.fixture(scope='module')
def system_python():
    """The OS Python, which has no psycopg2 (that is what this test is about: check it)."""
    proc = subprocess.run([SYSTEM_PYTHON, '-c', 'import psycopg2'], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and 'psycopg2' in proc.stderr, \
        '%s can import psycopg2: this test needs a Python without it' % SYSTEM_PYTHON
    return SYSTEM_PYTHON


@pytest.mark.parametrize('module, options, library, pip_spec', CASES, ids=[
    '%s-%s' % (c[0].split('.')[-1], c[2].split('-')[0]) for c in CASES])
def test_a_python_without_the_requirements_is_named_with_the_way_out(system_python, play, module, options, library,
                                                                     pip_spec):
    task = dict(name='t', register='out', ignore_errors=True, **{module: options})
    run = play([task], extravars=dict(ansible_python_interpreter=system_python))
    result = run.result('t')
    assert result['failed'] is True, result
    msg = result['msg']
    assert msg.startswith('Failed to import the required Python library (%s' % library), msg
    assert "Python %s (Python 3." % system_python in msg and 'No module named' in msg, msg
    assert 'ansible_python_interpreter' in msg and 'ansible_playbook_python' in msg, msg
    assert '%s -m pip install' % system_python in msg and pip_spec in msg and 'execution-environment' in msg, msg
    assert 'Traceback' not in run.text and "Module failed: '" not in run.text, run
