"""pg_tune_params' plan steps that need no server: one parameter's plan, session settings, the diff, the restart's
argv and user, the options checked before anything is read, the provider table and the Azure plan."""

from __future__ import annotations

import os
import pwd

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _provider
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning import azure, options, postgres
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning.recommend import TuningError, check_options

WORK_MEM = dict(name='work_mem', setting='4096', unit='kB', vartype='integer', context='user', source='default',
                min_val='64', max_val='2147483647', enumvals=None, boot_val='4096', reset_val='4096',
                pending_restart=False)
SHARED_BUFFERS = dict(WORK_MEM, name='shared_buffers', setting='16384', unit='8kB', context='postmaster',
                      min_val='16', max_val='1073741823', boot_val='16384', reset_val='16384')
SEARCH_PATH = dict(WORK_MEM, name='search_path', setting='"$user", public', unit=None, vartype='string',
                   min_val=None, max_val=None, boot_val='"$user", public', reset_val='"$user", public')
AUTO = '/var/lib/postgresql/15/main/postgresql.auto.conf'
CONF = '/etc/postgresql/15/main/postgresql.conf'


# ------------------------------------------------------------------------------------------- postgres: parameters
def test_a_wanted_value_in_other_units_is_no_change():
    item, warning = postgres.parameter_item('work_mem', WORK_MEM, [(AUTO, '8MB')],
                                            dict(value='8192kB', reason='parameters option'), 8192)
    assert warning is None
    assert item['changed'] is False and item['action'] == 'set'
    assert item['before'] == '8MB' and item['after'] == '8MB' and item['running'] == '4MB'
    assert item['_write'] == '8192kB' and item['reason'] == 'parameters option'


def test_a_wanted_value_is_a_change_and_a_list_is_written_element_by_element():
    item, _unused = postgres.parameter_item('work_mem', WORK_MEM, [], dict(value='16MB', reason='r'), 16384)
    assert item['changed'] is True and item['before'] == '4MB' and item['after'] == '16MB'
    item, _unused = postgres.parameter_item('search_path', SEARCH_PATH, [],
                                            dict(value=['$user', 'public', 'My Schema'], reason='r'),
                                            ('$user', 'public', 'My Schema'))
    assert item['_write'] == ['$user', 'public', 'My Schema'] and item['changed'] is True


def test_reset_goes_back_to_the_configuration_file_or_the_default():
    item, _unused = postgres.parameter_item('work_mem', WORK_MEM, [(CONF, '2MB'), (AUTO, '8MB')])
    assert item['action'] == 'reset' and item['changed'] is True
    assert item['before'] == '8MB' and item['after'] == '2MB'
    item, _unused = postgres.parameter_item('work_mem', WORK_MEM, [(AUTO, '8MB')])
    assert item['after'] == '4MB' and item['changed'] is True
    item, _unused = postgres.parameter_item('work_mem', WORK_MEM, [(CONF, '2MB')])
    assert item['changed'] is False  # nothing in postgresql.auto.conf: nothing to reset


def test_reset_without_pg_file_settings_changes_nothing_and_says_so():
    item, warning = postgres.parameter_item('work_mem', WORK_MEM, [], file_settings_readable=False)
    assert item['changed'] is False and item['after'] == item['before']
    assert 'cannot tell whether postgresql.auto.conf sets it' in warning


def test_restart_required_compares_the_running_value():
    item, _unused = postgres.parameter_item('shared_buffers', SHARED_BUFFERS, [(AUTO, '256MB')],
                                            dict(value='256MB', reason='r'), 32768)
    assert item['changed'] is False and item['_running'] == 16384 and item['_after'] == 32768
    assert not postgres.takes_effect('shared_buffers', item['_running'], item['_after'], None)
    # wal_buffers = -1: shared_buffers / 32, between 8 and 2048 pages
    assert postgres.takes_effect('wal_buffers', 512, -1, 16384)
    assert postgres.takes_effect('wal_buffers', 2048, -1, 1000000)
    assert not postgres.takes_effect('wal_buffers', 64, -1, 16384)


def test_session_settings_set_reset_and_unchanged():
    known = dict(work_mem=WORK_MEM, search_path=SEARCH_PATH)
    items = postgres.role_setting_items('app', None, known, dict(
        work_mem=('8MB', 8192), search_path=None), {'work_mem': '8192kB', 'search_path': 'public'})
    by_name = dict((i['name'], i) for i in items)
    assert by_name['work_mem']['changed'] is False and by_name['work_mem']['action'] == 'set'
    assert by_name['search_path']['action'] == 'reset' and by_name['search_path']['changed'] is True
    assert by_name['search_path']['after'] is None
    items = postgres.role_setting_items(None, 'db', known, dict(work_mem=('16MB', 16384)), {})
    assert items[0]['changed'] is True and items[0]['before'] is None and items[0]['after'] == '16MB'


# ------------------------------------------------------------------------------------------- the diff
def test_the_diff_holds_the_changes_only_and_is_empty_without_them():
    params = [dict(name='work_mem', before='4MB', after='8MB'), dict(name='shared_buffers', before='128MB',
                                                                     after='256MB')]
    roles = [dict(role='app', database='shop', name='statement_timeout', before=None, after='30s')]
    assert options.changes_diff(params, roles) == dict(
        before=dict(parameters={'work_mem': '4MB', 'shared_buffers': '128MB'},
                    role_settings={'role app database shop: statement_timeout': None}),
        after=dict(parameters={'work_mem': '8MB', 'shared_buffers': '256MB'},
                   role_settings={'role app database shop: statement_timeout': '30s'}))
    # a reset whose value reads the same is still shown: it is a change of postgresql.auto.conf
    same = [dict(name='work_mem', before='4MB', after='4MB')]
    assert options.changes_diff(same, [])['after']['parameters'] == {'work_mem': '4MB'}
    assert options.changes_diff([], []) == dict(before=dict(parameters={}, role_settings={}),
                                                after=dict(parameters={}, role_settings={}))
    # mode=recommend changes nothing: an empty diff
    assert options.changes_diff(params, roles, recommend_only=True) == dict(before={}, after={})


def test_public_items_hide_the_operations_own_keys():
    assert options.public(dict(name='x', _write='1', changed=True)) == dict(name='x', changed=True)
    assert options.label('app', None) == 'role app' and options.label(None, 'db') == 'database db'


# ------------------------------------------------------------------------------------------- the restart
RESTART = dict(restart_command=None, restart_mode='fast', restart_timeout=120, restart_log=None)


def test_restart_argv_with_pg_ctl_or_the_given_command():
    argv, cwd = postgres.restart_argv(RESTART, '/usr/bin/pg_ctl', '/data')
    assert argv == ['/usr/bin/pg_ctl', 'restart', '-D', '/data', '-m', 'fast', '-w', '-t', '120'] and cwd == '/data'
    argv, _unused = postgres.restart_argv(dict(RESTART, restart_log='/tmp/x.log'), 'pg_ctl', '/data')
    assert argv[-2:] == ['-l', '/tmp/x.log']
    assert postgres.restart_argv(dict(RESTART, restart_command=['systemctl', 'restart', 1])) == (
        ['systemctl', 'restart', '1'], '/')


def test_os_user_is_checked_before_anything_runs():
    with pytest.raises(TuningError, match='os_user no_such_user_p19 does not exist'):
        postgres.os_user_ids('no_such_user_p19')
    assert postgres.os_user_ids(None) == {}
    assert postgres.os_user_ids(pwd.getpwuid(os.geteuid()).pw_name) == {}


# ------------------------------------------------------------------------------------------- options
def test_every_wrong_option_is_named_at_once():
    with pytest.raises(TuningError) as exc:
        check_options(dict(cpus=0, max_connections=-1, restart_timeout=120, timeout=1800, memory='lots'))
    msg = str(exc.value)
    assert msg.startswith('Invalid options, nothing was read or changed: ')
    assert 'cpus must be at least 1, got 0' in msg and 'max_connections must be at least 1, got -1' in msg
    assert "memory: 'lots' is not a size" in msg
    check_options(dict(cpus=4, parameters={'work_mem': '8MB'}))


def test_the_azure_options_rename_the_credential_profile():
    spec = azure.argument_spec()
    assert 'profile' not in spec.options and spec.options['azure_profile'] == dict(type='str')
    assert spec.options['timeout']['default'] == 1800
    assert ('provider', 'azure', ('resource_group', 'server_name')) in spec.required_if
    params = dict(profile='production', azure_profile='ops')
    assert azure.azure_params(params)['profile'] == 'ops' and params['profile'] == 'production'


def test_the_module_spec_merges_without_a_conflict():
    spec = options.argument_spec().merge(postgres.argument_spec(), azure.argument_spec())
    assert spec.options['profile']['choices'] == ['recommended', 'development', 'production', 'none']
    assert 'restart_timeout' in spec.options and 'login_host' in spec.options and 'pg_bindir' in spec.options


class FailModule(object):
    def __init__(self, params):
        self.params = params

    def fail_json(self, **kwargs):
        raise SystemExit(kwargs)


def test_a_provider_validates_before_connecting():
    class Never(object):  # an operation that must not be reached
        needs_psycopg2 = False

    provider = _provider.Provider(Never, 'Tuning', TuningError, validate=check_options)
    with pytest.raises(SystemExit) as exc:
        provider.run(FailModule(dict(cpus=-4)))
    assert exc.value.args[0] == dict(msg='Invalid options, nothing was read or changed: cpus must be at least 1, '
                                         'got -4', queries=[], commands=[])


# ------------------------------------------------------------------------------------------- Azure plan
def azure_rows():
    return dict(
        work_mem=azure.setting_row('work_mem', dict(dataType='Integer', allowedValues='64-2097151', unit='KB',
                                                    defaultValue='4096', value='4096', source='system-default')),
        max_connections=azure.setting_row('max_connections', dict(
            dataType='Integer', allowedValues='25-5000', defaultValue='1718', value='1718', isDynamicConfig=False,
            source='system-default')),
        log_min_messages=azure.setting_row('log_min_messages', dict(
            dataType='Enumeration', allowedValues='debug5,debug1,info,notice,warning,error', defaultValue='warning',
            value='error', source='user-override')),
        server_version=azure.setting_row('server_version', dict(dataType='String', value='16.4', isReadOnly=True)))


def test_azure_plan_refuses_every_wrong_value_together():
    with pytest.raises(TuningError) as exc:
        azure.parameter_items(azure_rows(), dict(
            work_mem=dict(value='1kB', reason='r'), no_such=dict(value='1', reason='r'),
            server_version=dict(value='17', reason='r')), [])
    msg = str(exc.value)
    assert msg.startswith('Invalid parameters, nothing was changed: ')
    for text in ('no_such: unknown parameter', 'server_version: read-only on Azure', 'work_mem'):
        assert text in msg, (text, msg)


def test_azure_plan_items():
    items = dict((i['name'], i) for i in azure.parameter_items(azure_rows(), dict(
        work_mem=dict(value='8MB', reason='r'), max_connections=dict(value=2000, reason='r')),
        ['log_min_messages']))
    assert items['work_mem']['changed'] is True and items['work_mem']['_write'] == ('8192', 'user-override')
    assert items['work_mem']['restart_required'] is False
    assert items['max_connections']['restart_required'] is True and items['max_connections']['context'] == 'static'
    reset = items['log_min_messages']
    assert reset['action'] == 'reset' and reset['changed'] is True and reset['_write'] == ('warning', 'system-default')
    same = azure.parameter_items(azure_rows(), dict(work_mem=dict(value='4MB', reason='r')), [])
    assert same[0]['changed'] is False


def test_azure_version_major():
    assert azure.version_major('16') == 16 and azure.version_major('17.2') == 17
    assert azure.version_major(None) is None and azure.version_major('x') is None
