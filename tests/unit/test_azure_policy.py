"""The backup policy of pg_azure_backup_policy: the runbook table, overrides, limits, drift and the PATCH body."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.backup.azure_policy import (
    PolicyError, compare, desired_policy, geo_value, patch_body, unfixable_message)


def test_runbook_table():
    assert desired_policy('development') == {'retention_days': 7, 'geo_redundant_backup': 'Disabled'}
    assert desired_policy('production') == {'retention_days': 35, 'geo_redundant_backup': 'Enabled'}


def test_explicit_values_override_the_environment():
    assert desired_policy('production', retention_days=21) == {'retention_days': 21, 'geo_redundant_backup': 'Enabled'}
    assert desired_policy('production', geo_redundant_backup=False)['geo_redundant_backup'] == 'Disabled'
    assert desired_policy(retention_days=10) == {'retention_days': 10, 'geo_redundant_backup': None}
    assert desired_policy(geo_redundant_backup=True) == {'retention_days': None, 'geo_redundant_backup': 'Enabled'}


@pytest.mark.parametrize('days', [0, 6, 36, 365])
def test_retention_outside_azure_limits(days):
    with pytest.raises(PolicyError, match='between 7 and 35'):
        desired_policy('production', retention_days=days)


def test_nothing_to_check():
    with pytest.raises(PolicyError, match='Nothing to check'):
        desired_policy()


def test_geo_value():
    assert (geo_value(True), geo_value(False), geo_value(None)) == ('Enabled', 'Disabled', None)


def test_compare_and_patch():
    current = {'retention_days': 7, 'geo_redundant_backup': 'Disabled', 'earliest_restore_date': None}
    assert compare(current, desired_policy('development')) == []
    drift = compare(current, desired_policy('production'))
    assert drift == [
        {'setting': 'retention_days', 'current': 7, 'desired': 35, 'fixable': True},
        {'setting': 'geo_redundant_backup', 'current': 'Disabled', 'desired': 'Enabled', 'fixable': False}]
    # geo-redundancy is never sent (create-only, read-only in ServerForPatch)
    assert patch_body(drift) == {'properties': {'backup': {'backupRetentionDays': 35}}}
    assert patch_body(drift[1:]) is None
    assert compare(current, {'retention_days': None, 'geo_redundant_backup': 'Disabled'}) == []


def test_unfixable_message():
    geo = {'setting': 'geo_redundant_backup', 'current': 'Disabled', 'desired': 'Enabled', 'fixable': False}
    text = unfixable_message('psql-x', [geo], [])
    assert 'geo_redundant_backup is Disabled, the policy wants Enabled' in text
    assert 'fail_on_unfixable=false' in text and 'was fixed' not in text
    assert unfixable_message('psql-x', [geo], [{'setting': 'retention_days'}]).endswith(
        'The fixable drift (retention_days) was fixed.')
