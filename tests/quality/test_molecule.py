"""The molecule scenario (delegated driver, localhost) against the lab: converge, idempotence, verify."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.harness.playbook import ansible_env

BIN = os.path.dirname(sys.executable)


@pytest.mark.slow
def test_molecule_default_scenario(lab, collections_root, home):
    tree = os.path.join(collections_root, 'ansible_collections', 'procgenie', 'dbops')
    node = lab.state['nodes']['primary']
    env = ansible_env(collections_root, home, {
        'PGHOST': node['host'], 'PGPORT': str(node['port']), 'PGUSER': lab.state['superuser'],
        'PGPASSWORD': lab.state['password'], 'PGDATABASE': 'procgenie', 'MOLECULE_PYTHON': sys.executable,
        'MOLECULE_NO_LOG': 'false'})
    for key in ('ANSIBLE_CALLBACKS_ENABLED', 'ANSIBLE_CALLBACK_PLUGINS'):  # molecule sets up its own callbacks
        env.pop(key, None)
    proc = subprocess.run([os.path.join(BIN, 'molecule'), 'test', '-s', 'default'], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    plain = re.sub(r'\x1b\[[0-9;]*m', '', output)
    assert re.search(r'idempotence: Executed: Successful', plain), plain[-4000:]
    assert re.search(r'verify: Executed: Successful', plain), plain[-4000:]
    assert lab.state['password'] not in output
