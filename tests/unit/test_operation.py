"""The one operation shape: plan, then apply unless in check mode; close always; failures through clean_failures."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _operation as op


class Exit(Exception):
    pass


class FakeModule(object):
    """Just what run_operation uses of an AnsibleModule (exit_json/fail_json end the module: here they raise)."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.warnings = []
        self.exited = None
        self.failed = None

    def warn(self, msg):
        self.warnings.append(msg)

    def exit_json(self, **kw):
        self.exited = kw
        raise Exit()

    def fail_json(self, **kw):
        self.failed = kw
        raise Exit()


class Refused(Exception):
    pass


class Counter(op.Operation):
    """A toy operation: plan reads and refuses, apply changes, close is recorded."""
    events = []

    @classmethod
    def make_runner(cls, params):
        return None  # no client programs

    def plan(self):
        self.events.append('plan')
        if self.params.get('refuse'):
            raise Refused('refused in plan: %s' % self.params['refuse'])
        self.log.add('SELECT 1')
        self.warn('planned')
        return dict(changed=True, plan=dict(add=self.params['add']))

    def apply(self, plan):
        self.events.append('apply')
        self.ctx.partial['half'] = 'done'
        if self.params.get('fail_in_apply'):
            raise Refused('apply failed')
        return dict(plan, value=plan['plan']['add'] + 1)

    def close(self):
        self.events.append('close')


def run(params, check_mode=False):
    Counter.events = []
    module = FakeModule(params, check_mode)
    with pytest.raises(Exit):
        op.run_operation(module, Counter, Refused, 'The toy')
    return module


def test_apply_runs_the_plan_and_returns_queries_and_commands():
    module = run(dict(add=1))
    assert Counter.events == ['plan', 'apply', 'close']
    assert module.exited == dict(changed=True, plan=dict(add=1), value=2, queries=['SELECT 1'], commands=[])
    assert module.warnings == ['planned']


def test_check_mode_returns_the_plan_and_never_applies():
    module = run(dict(add=1), check_mode=True)
    assert Counter.events == ['plan', 'close']
    assert module.exited == dict(changed=True, plan=dict(add=1), queries=['SELECT 1'], commands=[])


def test_a_refusal_in_plan_is_a_clean_failure_before_any_change():
    module = run(dict(add=1, refuse='no'))
    assert Counter.events == ['plan', 'close']
    assert module.failed == dict(msg='refused in plan: no', queries=[], commands=[])


def test_a_failure_in_apply_carries_the_partial_result():
    module = run(dict(add=1, fail_in_apply=True))
    assert Counter.events == ['plan', 'apply', 'close']
    assert module.failed == dict(msg='apply failed', half='done', queries=['SELECT 1'], commands=[])


def test_os_errors_are_clean_failures_too():
    class Broken(Counter):
        def plan(self):
            raise OSError(2, 'No such file or directory', '/nowhere')
    module = FakeModule(dict())
    with pytest.raises(Exit):
        op.run_operation(module, Broken, Refused, 'The toy')
    assert module.failed['msg'].startswith('The toy failed: ') and '/nowhere' in module.failed['msg']


def test_the_base_class_is_abstract_and_the_context_has_defaults():
    ctx = op.Context()
    assert ctx.check_mode is False and ctx.partial == {} and ctx.commands == [] and ctx.log.queries == []
    ctx.warn('ignored')
    base = op.Operation(dict(), ctx)
    with pytest.raises(NotImplementedError):
        base.plan()
    with pytest.raises(NotImplementedError):
        base.apply({})
    base.close()
    assert base.elapsed() >= 0
