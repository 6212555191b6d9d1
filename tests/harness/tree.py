"""Place a copy of this checkout where Ansible and ansible-test find it: <root>/ansible_collections/procgenie/dbops."""

from __future__ import annotations

import os
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP_TOP = {'.git', '.venv', '.lab', '.cache', '.pytest_cache', 'tests/output'}


def collection_files(repo=REPO):
    """Files of the checkout: what git tracks plus what it does not ignore; without git, a walk with SKIP_TOP."""
    try:
        out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=repo, check=True,
                             capture_output=True).stdout.decode()
        files = [f for f in out.split('\0') if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for top, dirs, names in os.walk(repo):
            rel = os.path.relpath(top, repo)
            dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in SKIP_TOP]
            files.extend(os.path.normpath(os.path.join(rel, n)) for n in names)
    return sorted(f for f in files if os.path.lexists(os.path.join(repo, f)) and '__pycache__' not in f)


def make_tree(root, repo=REPO, files=None):
    """Copy the collection to <root>/ansible_collections/procgenie/dbops (fresh) and return that path."""
    dest = os.path.join(root, 'ansible_collections', 'procgenie', 'dbops')
    if os.path.exists(dest):
        shutil.rmtree(dest)
    for rel in files if files is not None else collection_files(repo):
        src = os.path.join(repo, rel)
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dest
