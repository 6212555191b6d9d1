"""The shared ArgumentSpec and DifferenceTracker."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker, text_diff


def test_merge_keeps_options_and_constraints_together():
    a = ArgumentSpec(dict(path=dict(type='path'), dest=dict(type='path')),
                     mutually_exclusive=[('path', 'dest')], required_one_of=[('path', 'dest')])
    b = ArgumentSpec(dict(provider=dict(type='str', default='postgres'), server=dict(type='str')),
                     required_if=[('provider', 'azure', ('server',))], required_by=dict(server=('provider',)))
    merged = a.copy().merge(b)
    kwargs = merged.module_kwargs()
    assert set(kwargs['argument_spec']) == {'path', 'dest', 'provider', 'server'}
    assert kwargs['mutually_exclusive'] == [('path', 'dest')]
    assert kwargs['required_if'] == [('provider', 'azure', ('server',))]
    assert kwargs['required_by'] == dict(server=['provider'])
    assert 'required_together' not in kwargs
    assert set(a.options) == {'path', 'dest'}  # copy() left the original alone


def test_an_option_defined_twice_differently_is_refused():
    a = ArgumentSpec(dict(timeout=dict(type='int')))
    with pytest.raises(ValueError, match='timeout'):
        a.merge(ArgumentSpec(dict(timeout=dict(type='int', default=5))))
    a.merge(ArgumentSpec(dict(timeout=dict(type='int'))))  # the same definition is fine


def test_remove_drops_the_constraints_naming_the_option():
    spec = ArgumentSpec(dict(a=dict(), b=dict(), c=dict()), mutually_exclusive=[('a', 'b')],
                        required_if=[('c', 1, ('a',)), ('c', 2, ('c',))], required_by=dict(b=('a',)))
    spec.remove('a')
    assert spec.mutually_exclusive == [] and spec.required_if == [('c', 2, ('c',))] and spec.required_by == {}


def test_create_module_refuses_constraints_outside_the_spec():
    with pytest.raises(ValueError, match='required_if'):
        ArgumentSpec().create_module(required_if=[])


def test_difference_tracker():
    tracker = DifferenceTracker()
    tracker.add('database', 'db', 'db', active=False)
    tracker.add('retention_days', 7, 35)
    tracker.add('geo', False, False)
    assert tracker.has_difference() and tracker.has_difference('retention_days') and not tracker.has_difference('geo')
    assert tracker.differences() == [dict(name='retention_days', before=7, after=35)]
    assert tracker.diff() == dict(before=dict(database='db', retention_days=7, geo=False),
                                  after=dict(database='db', retention_days=35, geo=False))
    assert tracker.diff(only_differences=True) == dict(before=dict(retention_days=7), after=dict(retention_days=35))
    tracker.add('retention_days', 35, 35)
    assert not tracker.has_difference()


def test_values_are_copied_when_added():
    after = ['x']
    tracker = DifferenceTracker().add('artifacts', [], after)
    after.append('y')
    assert tracker.diff()['after'] == dict(artifacts=['x'])


def test_text_diff():
    assert text_diff([], ['a', 'b']) == dict(before='', after='a\nb\n')


def test_a_created_object_has_nothing_before():
    tracker = DifferenceTracker().add('server', None, 'pg-restored').add('location', None, 'westeurope')
    assert tracker.diff(created=True) == dict(before={}, after=dict(server='pg-restored', location='westeurope'))
