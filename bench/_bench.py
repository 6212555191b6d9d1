"""What every benchmark sets up: a scratch folder, the collection tree ansible-playbook runs from, a home folder,
and its labs, all removed at the end whatever happens.

    with _bench.workspace('bench-backup-') as bench:
        lab, work, root, home = bench.lab, bench.work, bench.root, bench.home
        lab.start(standby=False, seed=False)
        ...
        run_playbook(plays, root, home)

`bench.lab` is a pglab.Lab in <work>/lab, not started (`lab=False`: none; `bench.new_lab(name)` makes more). Every
lab made here is destroyed when the block ends (a lab the script destroyed itself is skipped), then the folder is
removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (os.path.join(REPO, 'tools'), REPO):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import pglab  # noqa: E402
from tests.harness.tree import make_tree  # noqa: E402


class Bench(object):
    """A benchmark's scratch folder `work` (mode 0755: the lab's OS user enters it), the collection tree `root`
    (ANSIBLE_COLLECTIONS_PATH) and `home` (HOME of the ansible-playbook runs), and the labs made in it."""

    def __init__(self, work):
        self.work = work
        self.root = os.path.join(work, 'collections')
        self.home = os.path.join(work, 'home')
        self.lab = None
        self.labs = []

    def new_lab(self, name='lab', **kwargs):
        """A pglab.Lab in <work>/<name> (kwargs: pglab.Lab's, e.g. pg), not started; destroyed at the end."""
        lab = pglab.Lab(os.path.join(self.work, name), **kwargs)
        self.labs.append(lab)
        return lab

    def cleanup(self):
        """Destroy every lab (each tried even when one fails), then remove the folder; raises the first error."""
        error = None
        for lab in reversed(self.labs):
            try:
                lab.destroy()
            except Exception as exc:  # pylint: disable=broad-except
                error = error or exc
        shutil.rmtree(self.work, ignore_errors=True)
        if error is not None:
            raise error


@contextlib.contextmanager
def workspace(prefix, lab=True, **lab_kwargs):
    """A Bench in a new temporary folder named prefix..., the collection tree made, with `bench.lab` (not started)
    unless `lab` is false; cleaned up when the block ends."""
    work = tempfile.mkdtemp(prefix=prefix)
    os.chmod(work, 0o755)
    bench = Bench(work)
    try:
        if lab:
            bench.lab = bench.new_lab('lab', **lab_kwargs)
        make_tree(bench.root)
        os.makedirs(bench.home)
        yield bench
    finally:
        bench.cleanup()
