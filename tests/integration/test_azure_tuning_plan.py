"""pg_tune_params provider azure: what its plan step refuses before any update (issue 19), through ansible-playbook
against the HTTPS Azure double."""

from __future__ import annotations

from tests.azure_double import fixtures
from tests.azure_double.fixtures import (  # noqa: F401 pylint: disable=unused-import
    PROD, PROD_RG, SUBSCRIPTION, checked_double, module_double, new_calls, options)

WRITES = ('Configurations_Update', 'Configurations_Put', 'Servers_Restart', 'Servers_Update')


def task(args, name='tune'):
    return dict(name=name, **{'procgenie.dbops.pg_tune_params': args}, register='out', ignore_errors=True)


def test_a_server_that_is_not_ready_is_refused_in_check_mode_too(checked_double, play):
    # the Ready check is part of the plan: check mode no longer reports a change that apply would refuse
    server = checked_double.state.server(SUBSCRIPTION, PROD_RG, PROD)
    start = len(checked_double.state.requests)
    server['properties']['state'] = 'Stopped'
    try:
        result = play([task(options(checked_double, profile='none', parameters=dict(work_mem='24MB')))],
                      env=checked_double.env, check=True)
    finally:
        server['properties']['state'] = 'Ready'
    out = fixtures.clean_failure(result, 'tune')
    assert 'is Stopped, not Ready' in out['msg'] and 'nothing was changed' in out['msg'], out['msg']
    assert [c for c in new_calls(checked_double, start) if c.get('operation_id') in WRITES] == []


def test_recommend_returns_an_empty_diff(checked_double, play):
    start = len(checked_double.state.requests)
    result = play([task(options(checked_double, mode='recommend', profile='none', parameters=dict(work_mem='24MB')))],
                  env=checked_double.env, diff=True)
    assert result.rc == 0, result.text
    out = result.result('tune')
    assert out['changed'] is False and out['parameters']['work_mem']['changed'] is True
    assert out['diff'] == {'before': {}, 'after': {}}
    assert [c for c in new_calls(checked_double, start) if c.get('operation_id') in WRITES] == []
