"""_timeouts: one notation for every module's lock_timeout and statement_timeout (PostgreSQL's, with a unit)."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _timeouts as t


@pytest.mark.parametrize('value, secs', [('10s', 10.0), ('500ms', 0.5), ('1min', 60.0), ('2h', 7200.0), ('0', 0.0),
                                         (' 1.5 s ', 1.5), ('0s', 0.0), ('250us', 0.00025), ('1d', 86400.0)])
def test_values_with_a_unit_are_read_exactly(value, secs):
    assert t.problem('lock_timeout', value) is None
    assert t.seconds(value) == pytest.approx(secs)


@pytest.mark.parametrize('value', ['10', 10, '5.0', '10 sec', 's', '-1s', "1s'; DROP TABLE x; --", '1 s 2', ''])
def test_a_bare_number_or_anything_else_is_refused_with_the_notation(value):
    message = t.problem('lock_timeout', value)
    assert message and 'give a unit' in message and "'10s'" in message


def test_zero_is_no_timeout_unless_a_positive_value_is_needed():
    assert t.problem('statement_timeout', '0') is None
    assert 'more than 0' in t.problem('statement_timeout', '0', positive=True)
    assert t.problem('statement_timeout', None) is None and t.seconds(None) is None
    assert t.milliseconds_setting('0') == '0' and t.milliseconds_setting('1.5s') == '1500ms'
    assert t.milliseconds_setting('100us') == '1ms'


def test_every_module_with_a_timeout_option_takes_this_notation():
    """No module keeps a float-seconds lock_timeout or statement_timeout beside the others' strings."""
    import glob
    import os
    import re
    import yaml
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    found = []
    for path in sorted(glob.glob(os.path.join(root, 'plugins', 'modules', '*.py'))):
        with open(path) as handle:
            text = handle.read()
        doc = yaml.safe_load(re.search(r"DOCUMENTATION = r'''(.*?)'''", text, re.S).group(1))
        for name in ('lock_timeout', 'statement_timeout'):
            option = (doc.get('options') or {}).get(name)
            if option is not None:
                found.append((os.path.basename(path), name, option.get('type')))
    assert found and all(kind == 'str' for _m, _n, kind in found), found
