"""Outside an execution environment (issue 12 item 6): a module run by a Python without psycopg2 says which
interpreter lacks what and how to point the modules at one that has it - never a traceback."""

from __future__ import annotations

import subprocess

import pytest

SYSTEM_PYTHON = '/usr/bin/python3'

TASKS = {
    'procgenie.dbops.pg_server_info': dict(login_host='127.0.0.1', login_port=5432),
    'procgenie.dbops.pg_backup': dict(login_host='127.0.0.1', login_db='postgres', dest='/tmp/dbops-no-psycopg2'),
    'procgenie.dbops.pg_failover': dict(primary=dict(host='127.0.0.1', port=5432)),
    'procgenie.dbops.pg_tune_params': dict(login_host='127.0.0.1'),
}


@pytest.fixture(scope='module')
def system_python():
    """The OS Python, which has no psycopg2 (that is what this test is about: check it)."""
    proc = subprocess.run([SYSTEM_PYTHON, '-c', 'import psycopg2'], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and 'psycopg2' in proc.stderr, \
        '%s can import psycopg2: this test needs a Python without it' % SYSTEM_PYTHON
    return SYSTEM_PYTHON


@pytest.mark.parametrize('module', sorted(TASKS))
def test_a_python_without_psycopg2_is_named_with_the_way_out(system_python, play, module):
    task = dict(name='t', register='out', ignore_errors=True, **{module: TASKS[module]})
    run = play([task], extravars=dict(ansible_python_interpreter=system_python))
    result = run.result('t')
    assert result['failed'] is True, result
    msg = result['msg']
    assert 'psycopg2 cannot be imported' in msg and system_python in msg, msg
    assert 'ansible_python_interpreter' in msg and 'ansible_playbook_python' in msg, msg
    assert '-m pip install psycopg2-binary' in msg and 'execution-environment' in msg, msg
    assert 'Traceback' not in run.text and "Module failed: '" not in run.text, run
