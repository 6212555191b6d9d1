"""Pure logic of pg_tune_params provider azure: SKU sizes, Azure units, allowed values, values written."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.tuning.recommend import GB, TuningError
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning import azure


@pytest.mark.parametrize('sku, expected', [
    ('Standard_B1ms', (1, 2 * GB)),
    ('Standard_B2s', (2, 4 * GB)),
    ('Standard_B20ms', (20, 80 * GB)),
    ('Standard_D2ds_v4', (2, 8 * GB)),
    ('Standard_D4ds_v5', (4, 16 * GB)),
    ('Standard_D64ds_v5', (64, 256 * GB)),
    ('Standard_D8ads_v5', (8, 32 * GB)),
    ('Standard_D16s_v3', (16, 64 * GB)),
    ('Standard_E4ds_v5', (4, 32 * GB)),
    ('Standard_E32ds_v4', (32, 256 * GB)),
    ('Standard_E64ds_v4', (64, 504 * GB)),
    ('Standard_E96ds_v5', (96, 672 * GB)),
    ('standard_d4ds_v5', (4, 16 * GB)),
])
def test_sku_resources(sku, expected):
    assert azure.sku_resources(sku) == expected


@pytest.mark.parametrize('sku', [None, '', 'Standard_L8as_v3', 'Standard_M128ms', 'GP_Gen5_4'])
def test_unknown_sku(sku):
    assert azure.sku_resources(sku) is None


@pytest.mark.parametrize('unit, expected', [
    ('8KB', '8kB'), ('KB', 'kB'), ('MB', 'MB'), ('milliseconds', 'ms'), ('seconds', 's'), ('minutes', 'min'),
    ('microseconds', 'us'), ('bytes', 'B'), (None, None), ('', None), ('percentage', None)])
def test_unit_mapping(unit, expected):
    assert azure.pg_unit(unit) == expected


@pytest.mark.parametrize('allowed, expected', [
    ('16-1048576', ('16', '1048576')), ('-1-262143', ('-1', '262143')), ('0-1.79769e+308', ('0', '1.79769e+308')),
    ('0-1', ('0', '1')), ('on,off', (None, None)), ('', (None, None)), (None, (None, None))])
def test_allowed_range(allowed, expected):
    assert azure.allowed_range(allowed) == expected


def row(name, data_type, allowed, unit=None, value=None, default=None, dynamic=True, read_only=False):
    return azure.setting_row(name, dict(dataType=data_type, allowedValues=allowed, unit=unit, value=value,
                                        defaultValue=default, isDynamicConfig=dynamic, isReadOnly=read_only))


def test_setting_rows():
    shared = row('shared_buffers', 'Integer', '209715-1572864', '8KB', '524288', dynamic=False)
    assert (shared['vartype'], shared['unit'], shared['min_val'], shared['max_val']) == (
        'integer', '8kB', '209715', '1572864')
    assert shared['dynamic'] is False
    assert row('random_page_cost', 'Numeric', '0-1.79769e+308')['vartype'] == 'real'
    assert row('log_min_messages', 'Enumeration', 'debug1, info,warning')['enumvals'] == ['debug1', 'info', 'warning']
    assert row('shared_preload_libraries', 'Set', 'pg_cron,pgaudit')['vartype'] == 'set'


def test_values_in_other_units_are_the_same():
    shared = row('shared_buffers', 'Integer', '209715-1572864', '8KB')
    assert azure.normalize('2GB', shared) == azure.normalize('2048MB', shared) == azure.normalize(262144, shared)
    assert azure.display(262144, shared) == '2GB'
    timeout = row('statement_timeout', 'Integer', '0-2147483647', 'milliseconds')
    assert azure.normalize('15s', timeout) == azure.normalize('15000', timeout) == 15000
    assert azure.display(15000, timeout) == '15s'
    work = row('work_mem', 'Integer', '4096-2097151', 'KB')
    assert azure.normalize('8MB', work) == 8192


def test_validation_against_allowed_values():
    with pytest.raises(TuningError, match='below the minimum'):
        azure.normalize('1MB', row('work_mem', 'Integer', '4096-2097151', 'KB'))
    with pytest.raises(TuningError, match='above the maximum'):
        azure.normalize('64GB', row('shared_buffers', 'Integer', '209715-1572864', '8KB'))
    with pytest.raises(TuningError, match='not one of'):
        azure.normalize('loud', row('log_min_messages', 'Enumeration', 'info,warning,error'))
    with pytest.raises(TuningError, match='not among the allowed values'):
        azure.normalize(['pg_cron', 'nope'], row('shared_preload_libraries', 'Set', 'pg_cron,pgaudit'))
    with pytest.raises(TuningError, match='not one of the allowed values'):
        azure.normalize('off', row('fsync', 'Boolean', 'on'))
    with pytest.raises(TuningError, match='not a boolean'):
        azure.normalize('maybe', row('array_nulls', 'Boolean', 'on,off'))


@pytest.mark.parametrize('data_type, allowed, unit, given, written', [
    ('Integer', '209715-1572864', '8KB', '2GB', '262144'),
    ('Integer', '4096-2097151', 'KB', '16MB', '16384'),
    ('Integer', '32-65536', 'MB', '8GB', '8192'),
    ('Integer', '0-2147483647', 'milliseconds', '1min', '60000'),
    ('Integer', '-1-262143', '8KB', -1, '-1'),
    ('Numeric', '0-1.79769e+308', None, '1.10', '1.1'),
    ('Numeric', '0-1', None, 1, '1'),
    ('Boolean', 'on,off', None, False, 'off'),
    ('Boolean', 'on,off', None, 'yes', 'on'),
    ('Enumeration', 'DEBUG1,INFO,WARNING', None, 'info', 'INFO'),
    ('Set', 'pg_cron,pgaudit,pg_stat_statements', None, ['pg_cron', 'pgaudit'], 'pg_cron,pgaudit'),
    ('Set', 'pg_cron,pgaudit,pg_stat_statements', None, 'pg_cron, pgaudit', 'pg_cron,pgaudit'),
    ('String', '', None, 'UTC', 'UTC'),
])
def test_values_written_as_azure_takes_them(data_type, allowed, unit, given, written):
    item = row('p', data_type, allowed, unit)
    assert azure.azure_value(azure.normalize(given, item), item) == written


def test_computed_values_are_clamped_to_azure_limits():
    maint = row('maintenance_work_mem', 'Integer', '1024-2097151', 'KB')
    clamped = azure.clamp(dict(value='2GB', reason='memory / 16'), maint)
    assert clamped['value'] == '2097151kB' and "Azure's maximum" in clamped['reason']
    assert azure.clamp(dict(value='1GB', reason='x'), maint) == dict(value='1GB', reason='x')
    assert azure.clamp(dict(value='on', reason='x'), row('array_nulls', 'Boolean', 'on,off'))['value'] == 'on'


def test_restart_without_failover():
    assert azure.restart_body() == {'restartWithFailover': False}


def test_memory_warning_uses_wanted_then_configured_values():
    rows = dict(max_connections=row('max_connections', 'Integer', '25-5000', None, '5000'),
                work_mem=row('work_mem', 'Integer', '4096-2097151', 'KB', '4096'),
                shared_buffers=row('shared_buffers', 'Integer', '16-1048576', '8KB', '262144'))
    plan = [dict(name='work_mem', _after=65536)]  # 64MB x 5000 connections on 16 GiB
    assert 'exceeds' in azure.memory_warning(plan, rows, 16 * GB)
    assert 'exceeds' in azure.memory_warning([], rows, 16 * GB)  # 4MB x 5000 connections
    assert azure.memory_warning([dict(name='max_connections', _after=800)], rows, 16 * GB) is None
    assert azure.memory_warning([], rows, None) is None


# ------------------------------------------------ allowedValues exactly as Microsoft's ConfigurationsListByServer gives

@pytest.mark.parametrize('allowed, expected', [
    ('16-1073741823', ('16', '1073741823')),  # shared_buffers: the 10%-75% rule is only in the description
    ('-1-2147483647', ('-1', '2147483647')),  # log_min_duration_statement, auto_explain.log_min_duration
    ('-2147483648-2147483647', ('-2147483648', '2147483647')),  # max_pred_locks_per_relation
    ('-15-3', ('-15', '3')),  # extra_float_digits
    ('-1-100', ('-1', '100')),  # autovacuum_vacuum_cost_delay
    ('0-1.79769e+308', ('0', '1.79769e+308')),  # random_page_cost, cpu_tuple_cost
    ('0.0-1.0', ('0.0', '1.0')),  # auto_explain.sample_rate
    ('1.5-2', ('1.5', '2')),  # geqo_selection_bias
    ('8192-8192', ('8192', '8192')),  # block_size
    (',login_hook', (None, None)), ('[A-Za-z0-9._-]*', (None, None)), ('.*', (None, None))])
def test_allowed_range_of_microsofts_list(allowed, expected):
    assert azure.allowed_range(allowed) == expected


@pytest.mark.parametrize('allowed, expected', [
    (',login_hook', ['', 'login_hook']),  # session_preload_libraries (Set)
    (',TLSv1.2,TLSv1.3', ['', 'TLSv1.2', 'TLSv1.3']),  # ssl_max_protocol_version (Enumeration)
    ('on,off', ['on', 'off']),
    ('serializable,repeatable read,read committed,read uncommitted',
     ['serializable', 'repeatable read', 'read committed', 'read uncommitted']),
    ('', [])])
def test_allowed_choices_keep_the_empty_choice(allowed, expected):
    assert azure.allowed_list(allowed) == expected


def test_rows_of_microsofts_list_validate_values():
    lmds = row('log_min_duration_statement', 'Integer', '-1-2147483647', 'milliseconds', '-1')
    assert azure.normalize('5s', lmds) == 5000 and azure.normalize(-1, lmds) == -1
    with pytest.raises(TuningError, match='below the minimum -1'):
        azure.normalize(-2, lmds)
    digits = row('extra_float_digits', 'Integer', '-15-3')
    assert azure.normalize('-15', digits) == -15
    with pytest.raises(TuningError, match='below the minimum -15'):
        azure.normalize(-16, digits)
    cost = row('random_page_cost', 'Numeric', '0-1.79769e+308', value='2')
    assert azure.normalize('1.1', cost) == 1.1 and azure.azure_value(1.1, cost) == '1.1'
    with pytest.raises(TuningError, match='below the minimum'):
        azure.normalize(-1, cost)
    rate = row('auto_explain.sample_rate', 'Numeric', '0.0-1.0')
    with pytest.raises(TuningError, match='above the maximum'):
        azure.normalize(1.5, rate)
    wal = row('max_wal_size', 'Integer', '32-65536', 'megabytes', '2048')
    assert wal['unit'] == 'MB' and azure.normalize('4GB', wal) == 4096 and azure.azure_value(4096, wal) == '4096'
    spl = row('session_preload_libraries', 'Set', ',login_hook', value='')
    assert azure.normalize('', spl) == () and azure.normalize('login_hook', spl) == ('login_hook',)
    with pytest.raises(TuningError, match='not among the allowed values'):
        azure.normalize('auto_explain', spl)
    tls = row('ssl_max_protocol_version', 'Enumeration', ',TLSv1.2,TLSv1.3', value='')
    assert azure.normalize('', tls) == '' and azure.azure_value(azure.normalize('tlsv1.3', tls), tls) == 'TLSv1.3'
    path = row('search_path', 'String', '[A-Za-z0-9."$,_ -]+', value='"$user", public')
    assert azure.normalize(['$user', 'public'], path) == ('$user', 'public')
    assert azure.azure_value(('$user', 'public', 'app'), path) == '"$user", public, app'
    with pytest.raises(TuningError, match='does not match the allowed values'):
        azure.normalize('public; drop table x', path)
    with pytest.raises(TuningError, match='control character'):
        azure.normalize('public,\nx', path)
    assert azure.configured('"$user", public', path) == ('$user', 'public')


def test_shared_buffers_bounds_from_the_memory():
    rows = {'shared_buffers': row('shared_buffers', 'Integer', '16-1073741823', '8KB', '524288', dynamic=False)}
    azure.memory_bounds(rows, 16 * GB)
    shared = rows['shared_buffers']
    assert (shared['min_val'], shared['max_val']) == ('209716', '1572864')  # 10% rounded up, 75% rounded down
    assert shared['rule'] == "10%-75% of the server's 16GB"
    with pytest.raises(TuningError, match=r"below the minimum 209716 .*Azure allows 10%-75% of the server's 16GB"):
        azure.normalize('128MB', shared)
    assert azure.normalize('4GB', shared) == 524288
    raised = azure.clamp(dict(value='128MB', reason='runbook development table'), shared)
    assert raised['value'] == '1677728kB' and "at Azure's minimum" in raised['reason']
    assert azure.configured('16384', shared) == 16384  # a value set before stays readable
    assert azure.memory_bounds({}, 16 * GB) == {}
    untouched = {'shared_buffers': row('shared_buffers', 'Integer', '16-1073741823', '8KB')}
    assert azure.memory_bounds(untouched, None)['shared_buffers']['min_val'] == '16'
