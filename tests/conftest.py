"""Session fixtures: the collection on a collections path, an isolated HOME, the lab clusters, a playbook runner."""

from __future__ import annotations

import os
import socket
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tools'))

from tests.harness.playbook import run_playbook  # noqa: E402
from tests.harness.tree import make_tree  # noqa: E402

# Unit tests import the collection's module_utils by their real names; a symlinked tree gives them the source itself.
_IMPORT_ROOT = tempfile.mkdtemp(prefix='dbops-import-')
os.makedirs(os.path.join(_IMPORT_ROOT, 'ansible_collections', 'procgenie'))
os.symlink(REPO, os.path.join(_IMPORT_ROOT, 'ansible_collections', 'procgenie', 'dbops'))
sys.path.insert(0, _IMPORT_ROOT)


@pytest.fixture(scope='session')
def workdir():
    """A session folder for HOME, ANSIBLE_HOME, the collection copy and the lab (short path: sockets live there)."""
    path = tempfile.mkdtemp(prefix='dbops-')
    os.chmod(path, 0o755)  # the lab's unprivileged server user must be able to enter it
    return path


@pytest.fixture(scope='session')
def home(workdir):
    path = os.path.join(workdir, 'home')
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(scope='session')
def collections_root(workdir):
    root = os.path.join(workdir, 'collections')
    make_tree(root)
    return root


@pytest.fixture(scope='session')
def lab(workdir):
    """The lab: primary with WAL archiving, streaming standby, sample ProcGenie database. LAB_DIR reuses one."""
    import pglab
    reuse = os.environ.get('LAB_DIR')
    instance = pglab.Lab(reuse or os.path.join(workdir, 'lab'), pg=os.environ.get('LAB_PG', 'auto'))
    instance.start(tenants=3, scale=1, standby=True, seed=True)
    yield instance
    if not reuse:
        instance.destroy()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now (for a restored cluster of a test)."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def node_params(lab, node='primary', db='procgenie', user=None, password=None):
    """Module connection options for a lab node."""
    state = lab.state
    return dict(login_host=state['nodes'][node]['host'], login_port=state['nodes'][node]['port'],
                login_user=user or state['superuser'], login_password=password or state['password'], login_db=db)


@pytest.fixture
def play(collections_root, home):
    """play(tasks) runs a list of task dicts, play(plays=[...]) whole plays, play(playbook=path) a playbook file,
    through ansible-playbook; keyword arguments go to run_playbook (extravars, check, diff, env, inventory)."""
    def _play(tasks=None, plays=None, playbook=None, **kwargs):
        if playbook is not None:
            return run_playbook(playbook, collections_root, home, **kwargs)
        if plays is None:
            plays = [dict(name='test', hosts='localhost', gather_facts=False, tasks=tasks)]
        return run_playbook(plays, collections_root, home, **kwargs)
    return _play
