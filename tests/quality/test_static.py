"""Static checks of the collection, run as part of the suite: ansible-test sanity, ansible-lint, ansible-doc."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.harness.playbook import ansible_env
from tests.harness.tree import REPO, make_tree

pytestmark = pytest.mark.quality
BIN = os.path.dirname(sys.executable)


def seed_get_pip(home):
    """ansible-test downloads pip's get-pip.py; give it a stand-in that uses ensurepip (no download)."""
    source = os.path.join(REPO, 'tests', 'harness', 'get_pip_offline.py')
    req = os.path.join(os.path.dirname(__import__('ansible_test').__file__), '_internal', 'python_requirements.py')
    with open(req) as handle:
        versions = set(re.findall(r"pip='([0-9.]+)'", handle.read())) or {'24.2'}
    cache = os.path.join(home, '.ansible', 'test', 'cache')
    os.makedirs(cache, exist_ok=True)
    for version in versions:
        shutil.copy(source, os.path.join(cache, 'get_pip_%s.py' % version.replace('.', '_')))


def test_ansible_test_sanity(workdir):
    root = os.path.join(workdir, 'sanity')
    tree = make_tree(root)
    home = os.path.join(workdir, 'sanity-home')
    seed_get_pip(home)
    env = dict(os.environ, HOME=home, ANSIBLE_HOME=os.path.join(home, '.ansible'),
               PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    argv = [os.path.join(BIN, 'ansible-test'), 'sanity', '--venv', '--python', '%d.%d' % sys.version_info[:2], '--color', 'no']
    proc = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=1500, check=False)
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(('ERROR', 'FATAL'))]
    assert proc.returncode == 0, '\n'.join(errors) or proc.stdout[-5000:] + proc.stderr[-5000:]


def test_ansible_lint_production_profile(collections_root, home):
    tree = os.path.join(collections_root, 'ansible_collections', 'procgenie', 'dbops')
    env = ansible_env(collections_root, home)
    proc = subprocess.run([os.path.join(BIN, 'ansible-lint'), '--offline', '--profile', 'production', '--nocolor'],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-8000:]


def module_names():
    return sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, 'plugins', 'modules', '*.py'))
                  if not p.endswith('__init__.py'))


def test_every_module_is_in_the_action_group():
    import yaml
    with open(os.path.join(REPO, 'meta', 'runtime.yml')) as handle:
        runtime = yaml.safe_load(handle)
    assert sorted(runtime['action_groups']['dbops']) == module_names()


@pytest.mark.parametrize('module', module_names())
def test_ansible_doc_renders(module, collections_root, home):
    env = ansible_env(collections_root, home)
    proc = subprocess.run([os.path.join(BIN, 'ansible-doc'), 'procgenie.dbops.%s' % module], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert 'EXAMPLES' in proc.stdout and 'RETURN VALUES' in proc.stdout
    assert 'login_password' in proc.stdout or 'procgenie.dbops.postgres' not in open(
        os.path.join(REPO, 'plugins', 'modules', module + '.py')).read()


def test_every_role_has_an_argument_spec():
    for role in glob.glob(os.path.join(REPO, 'roles', '*')):
        assert os.path.exists(os.path.join(role, 'meta', 'argument_specs.yml')), role


def test_changelog_fragments_are_valid():
    proc = subprocess.run([os.path.join(BIN, 'antsibull-changelog'), 'lint'], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
