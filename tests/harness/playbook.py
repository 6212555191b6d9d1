"""Run ansible-playbook the way users do, with this collection on the collections path, and return the results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CALLBACKS = os.path.join(HERE, 'callback_plugins')


class PlaybookRun(object):
    """Outcome of one ansible-playbook run: exit code, output, and every task result in order."""

    def __init__(self, rc, stdout, stderr, results):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.results = results

    def task(self, name):
        """The result record of the (last) task with that name (a role's tasks also match without 'role : ')."""
        found = [r for r in self.results if r['task'] == name or r['task'].endswith(' : ' + name)]
        if not found:
            raise KeyError('no task %r among %s' % (name, [r['task'] for r in self.results]))
        return found[-1]

    def result(self, name):
        return self.task(name)['result']

    @property
    def text(self):
        return self.stdout + self.stderr + json.dumps(self.results)

    def __repr__(self):
        return 'PlaybookRun(rc=%s)\n%s\n%s' % (self.rc, self.stdout[-6000:], self.stderr[-3000:])


def ansible_env(collections_root, home, extra=None):
    """Environment for ansible-playbook/molecule: isolated HOME and ANSIBLE_HOME, our collection tree first."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env.update({
        'HOME': home,
        'ANSIBLE_HOME': os.path.join(home, '.ansible'),
        'ANSIBLE_COLLECTIONS_PATH': collections_root,
        'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS,
        'ANSIBLE_CALLBACKS_ENABLED': 'dbops_results',
        'ANSIBLE_PYTHON_INTERPRETER': sys.executable,
        'ANSIBLE_LOCALHOST_WARNING': 'false',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'false',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_RETRY_FILES_ENABLED': 'false',
        'ANSIBLE_DEPRECATION_WARNINGS': 'false',
        'PATH': bindir + os.pathsep + env.get('PATH', ''),
    })
    for key in [k for k in env if k.startswith('PG')]:
        del env[key]
    env.update(extra or {})
    return env


def run_playbook(playbook, collections_root, home, extravars=None, check=False, diff=False, inventory=None,
                 env=None, timeout=900, args=()):
    """Run a playbook (a path, or a list of plays to write to a temp file) against localhost by default."""
    tmpdir = tempfile.mkdtemp(prefix='play-', dir=home)
    if not isinstance(playbook, str):
        path = os.path.join(tmpdir, 'playbook.yml')
        with open(path, 'w') as handle:
            yaml.safe_dump(playbook, handle, sort_keys=False)
        playbook = path
    results_file = os.path.join(tmpdir, 'results.jsonl')
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), playbook,
            '-i', inventory or 'localhost,', '-c', 'local']
    if extravars:
        vars_file = os.path.join(tmpdir, 'extravars.json')
        with open(vars_file, 'w') as handle:
            json.dump(extravars, handle)
        argv += ['-e', '@' + vars_file]
    if check:
        argv.append('--check')
    if diff:
        argv.append('--diff')
    argv += list(args)
    run_env = ansible_env(collections_root, home, dict(env or {}, DBOPS_RESULTS_FILE=results_file))
    proc = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    results = []
    if os.path.exists(results_file):
        with open(results_file) as handle:
            results = [json.loads(line) for line in handle if line.strip()]
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)
