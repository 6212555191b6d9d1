"""The rls role and playbooks/rls.yml on a fresh copy of the sample database: enforce, audit, prove; then a leak
(RLS switched off by hand) must fail the play."""

from __future__ import annotations

import os

import yaml

from tests.conftest import REPO, node_params
from tests.harness.tree import make_tree

DB = 'rls_role'


def own_tree(workdir):
    """A collection copy whose action group has the rls modules (until the lead adds them to meta/runtime.yml,
    module_defaults of group/procgenie.dbops.dbops would not reach them)."""
    root = os.path.join(workdir, 'rls-collections')
    dest = make_tree(root)
    path = os.path.join(dest, 'meta', 'runtime.yml')
    with open(path) as handle:
        runtime = yaml.safe_load(handle)
    group = runtime.setdefault('action_groups', {}).setdefault('dbops', [])
    group.extend(m for m in ('pg_rls_policy', 'pg_rls_info') if m not in group)
    with open(path, 'w') as handle:
        yaml.safe_dump(runtime, handle)
    return root


def test_role_enforces_audits_and_fails_on_a_leak(lab, workdir, home):
    from tests.harness.playbook import run_playbook
    collections_root = own_tree(workdir)

    def play(path, **kw):
        return run_playbook(path, collections_root, home, **kw)

    lab.seed(db=DB, tenants=3, scale=1)
    try:
        conn = node_params(lab, db=DB)
        playbook = os.path.join(REPO, 'playbooks', 'rls.yml')
        extravars = dict(target='localhost', dbops_connection=conn)
        check = play(playbook, extravars=extravars, check=True)
        assert check.rc == 0, check.stdout[-3000:]
        assert lab.psql('primary', "SELECT count(*) FROM pg_class WHERE relrowsecurity", db=DB).strip() == '0'
        run = play(playbook, extravars=extravars)
        assert run.rc == 0, run
        facts = run.result('procgenie.dbops.rls : Audit and prove tenant isolation')
        assert facts['verification']['isolated'] is True
        assert facts['audit']['problems'] == []
        assert 'HOLDS' in run.text
        again = play(playbook, extravars=extravars)
        assert again.rc == 0 and again.result('procgenie.dbops.rls : Enable, force and keep the tenant isolation policies')['changed'] is False
        # someone switches RLS off on a partition; a run that manages only vendors must not hide it:
        # the proof and the audit fail the play
        lab.psql('primary', 'ALTER TABLE audit_events_2025_02 DISABLE ROW LEVEL SECURITY', db=DB)
        leak = play(playbook, extravars=dict(extravars, rls_tables=['vendors']))
        assert leak.rc != 0
        assert 'Tenant isolation does not hold' in leak.text and 'audit_events_2025_02' in leak.text
    finally:
        lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
