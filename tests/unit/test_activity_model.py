"""The pure decisions of pg_activity_info and pg_sessions: secret masking and truncation, the blocking tree, the
selection of a policy and its protections, summaries, capacity (through the tuning package's pool check), the
report and the planned result."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.activity import info, model, sessions
from ansible_collections.procgenie.dbops.plugins.module_utils.activity.model import ActivityError
from ansible_collections.procgenie.dbops.plugins.module_utils.activity.text import MASK, mask_secrets, shown_query
from ansible_collections.procgenie.dbops.plugins.module_utils._capacity import pool_check


# ------------------------------------------------------------------------------------------------ masking
@pytest.mark.parametrize('text, secret', [
    ("ALTER ROLE app PASSWORD 's3cret'", 's3cret'),
    ("create role app login encrypted password 'it''s s3cret' valid until 'infinity'", "s3cret"),
    ("CREATE USER app WITH PASSWORD E'back\\'slash s3cret'", 's3cret'),
    ("ALTER ROLE app PASSWORD $pw$s3cret 'quoted'$pw$", 's3cret'),
    ("ALTER ROLE app PASSWORD $$s3cret$$", 's3cret'),
    ("ALTER ROLE app PASSWORD 's3cret-but-cut-by-track_activity_query_si", 's3cret'),
    ("CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'x', password 's3cret')", 's3cret'),
    ("SELECT dblink_connect('host=db user=x password=s3cret dbname=p')", 's3cret'),
    ("SELECT dblink_connect('host=db password=''s3 cret\\'' x'' dbname=p')", 's3 cret'),
    ("CREATE SUBSCRIPTION s CONNECTION 'host=db sslpassword=s3cret' PUBLICATION p", 's3cret'),
    ("primary_conninfo = 'user=r password = s3cret host=h'", 's3cret'),
    ("SELECT dblink('postgresql://app:s3cret@db:5432/p', 'select 1')", 's3cret'),
    ("SELECT dblink('postgres://h/p?user=a&password=s3cret&sslmode=require', 'x')", 's3cret'),
])
def test_passwords_are_masked(text, secret):
    masked = mask_secrets(text)
    assert secret not in masked and MASK in masked, masked


def test_masking_keeps_the_statement_readable():
    assert mask_secrets("ALTER ROLE app PASSWORD 'x' VALID UNTIL '2030-01-01'") == \
        "ALTER ROLE app PASSWORD '%s' VALID UNTIL '2030-01-01'" % MASK
    assert mask_secrets("SELECT dblink_connect('host=db password=x dbname=p')") == \
        "SELECT dblink_connect('host=db password=%s dbname=p')" % MASK
    # no secret: unchanged
    for text in ("SET password_encryption = 'scram-sha-256'", "ALTER ROLE app PASSWORD NULL",
                 "SELECT * FROM users WHERE password_hash = $1", "SELECT 'password'", None, ''):
        assert mask_secrets(text) == text


def test_query_text_is_masked_then_cut():
    assert shown_query("ALTER ROLE a PASSWORD 'abcdefgh'", 26) == ("ALTER ROLE a PASSWORD '***", True)
    assert shown_query('SELECT 1', 300) == ('SELECT 1', False)
    assert shown_query('SELECT 1', 300, total=5000) == ('SELECT 1', True)  # the server cut it
    assert shown_query('SELECT 1', 0) == ('', True)
    assert shown_query(None, 10) == (None, False)


# ------------------------------------------------------------------------------------------------ rows
def row(pid, **kw):
    base = dict(pid=pid, database='app', user='app', application_name='api', client_addr='10.0.0.5',
                backend_type='client backend', state='idle', backend_start=datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=pid),
                backend_s=1000.0, transaction_s=None, query_s=700.0, state_s=650.0, wait_event_type=None,
                wait_event=None, wait_s=None, blocked_by=[], superuser=False, own=False, can_signal=True,
                query='SELECT 1', query_truncated=False)
    base.update(kw)
    return base


def chain_rows():
    """101 holds a lock (idle in transaction); 102 waits for it and holds another that 103 waits for; 104 waits
    for 101 directly; 105 is idle."""
    return [row(101, state='idle in transaction', transaction_s=90.0, state_s=80.0),
            row(102, state='active', wait_event_type='Lock', wait_event='transactionid', blocked_by=[101],
                wait_s=40.0, transaction_s=45.0),
            row(103, state='active', wait_event_type='Lock', wait_event='relation', blocked_by=[102], wait_s=30.0),
            row(104, state='active', wait_event_type='Lock', wait_event='relation', blocked_by=[101], wait_s=50.0),
            row(105)]


def test_blocking_tree_chains_to_the_root():
    tree = model.blocking_tree(chain_rows())
    by_pid = dict((w['pid'], w) for w in tree['waiting'])
    assert sorted(by_pid) == [102, 103, 104]
    assert by_pid[103]['chain'] == [103, 102, 101] and by_pid[103]['depth'] == 2
    assert by_pid[102]['chain'] == [102, 101] and by_pid[104]['roots'] == [101]
    assert tree['roots'] == [dict(pid=101, waiters=3, direct_waiters=2, longest_wait_s=50.0,
                                  prepared_transaction=False)]


def test_blocking_tree_several_blockers_prepared_transactions_and_cycles():
    rows = [row(1, state='active'), row(2, blocked_by=[1, 0], wait_s=5.0),
            row(3, blocked_by=[4], wait_s=1.0), row(4, blocked_by=[3], wait_s=2.0),
            row(5, blocked_by=[2], wait_s=9.0)]
    tree = model.blocking_tree(rows)
    by_pid = dict((w['pid'], w) for w in tree['waiting'])
    assert by_pid[2]['roots'] == [0, 1] and by_pid[5]['roots'] == [0, 1]
    assert by_pid[5]['chain'] == [5, 2, 1]
    assert by_pid[3]['cycle'] and by_pid[3]['roots'] == [] and by_pid[4]['cycle']
    roots = dict((r['pid'], r) for r in tree['roots'])
    assert roots[0]['prepared_transaction'] and roots[1]['waiters'] == 2 and roots[1]['longest_wait_s'] == 9.0
    assert roots[1]['direct_waiters'] == 1


def test_durations_by_basis():
    r = row(1, query_s=3.0, transaction_s=None, backend_s=10.0, state_s=2.0)
    assert [model.duration(r, b) for b in model.BASES] == [3.0, None, 10.0, 2.0]
    assert model.over(r, 3, 'query') and not model.over(r, 3, 'transaction') and not model.over(r, 3.5, 'query')


# ------------------------------------------------------------------------------------------------ selection
def crit(**kw):
    base = dict(databases=['app'], basis='query', blockers_only=False, include_superusers=False)
    base.update(kw)
    return base


def pids(found):
    return [r['pid'] for r in found]


def test_selection_filters_and_excludes():
    rows = [row(1, application_name='api'), row(2, application_name='worker'),
            row(3, application_name='api', state='idle in transaction'), row(4, user='other', application_name='api'),
            row(5, client_addr=None), row(6, client_addr='192.168.1.9', application_name='cli'), row(7, state_s=5.0)]
    selected, skipped, _unused = model.select_sessions(rows, crit(application_names=['api'], states=['idle']))
    assert pids(selected) == [1, 4, 5, 7] and skipped == []
    selected, _unused, _unused2 = model.select_sessions(rows, crit(states=['idle'], min_duration=600, basis='state',
                                                                   exclude_users=['other'], exclude_pids=[2]))
    assert pids(selected) == [1, 5, 6]
    local = [model.parse_network('local')]
    assert pids(model.select_sessions(rows, crit(client_addrs=local))[0]) == [5]
    net = [model.parse_network('10.0.0.0/8')]
    assert pids(model.select_sessions(rows, crit(client_addrs=net))[0]) == [1, 2, 3, 4, 7]
    assert pids(model.select_sessions(rows, crit(exclude_client_addrs=net))[0]) == [5, 6]
    assert pids(model.select_sessions(rows, crit(pids=[3, 6], exclude_application_names=['api']))[0]) == [6]


def test_protected_sessions_are_never_selected_and_say_why():
    rows = [row(1, own=True), row(2, backend_type='autovacuum worker', state='active', user=None),
            row(3, database='other'), row(4, superuser=True, user='postgres'),
            row(5, backend_type='checkpointer', database=None, state=None), row(6),
            row(7, user='azuresu', superuser=True)]
    selected, skipped, _unused = model.select_sessions(rows, crit())
    assert pids(selected) == [6]
    reasons = dict((r['pid'], r['reason']) for r in skipped)
    assert sorted(reasons) == [1, 2, 4, 7]  # other databases and background outside them: silent
    assert 'own session' in reasons[1] and 'autovacuum worker' in reasons[2] and 'superuser' in reasons[4]
    # named by pid: said why, whatever database
    _unused, skipped, _unused2 = model.select_sessions(rows, crit(pids=[3, 5]))
    reasons = dict((r['pid'], r['reason']) for r in skipped)
    assert 'database other is not listed' in reasons[3] and 'checkpointer' in reasons[5]
    # superusers on request, but never the Azure platform's
    selected, skipped, _unused = model.select_sessions(rows, crit(include_superusers=True))
    assert pids(selected) == [4, 6, 7]
    selected, skipped, _unused = model.select_sessions(rows, crit(include_superusers=True), platform='azure')
    assert pids(selected) == [6]
    assert 'Azure platform' in dict((r['pid'], r['reason']) for r in skipped)[7]


def test_blockers_only_selects_the_root_only():
    selected, _unused, tree = model.select_sessions(chain_rows(), crit(blockers_only=True))
    assert pids(selected) == [101] and [r['pid'] for r in tree['roots']] == [101]
    # a prepared transaction (pid 0) is never a session to select
    rows = [row(2, blocked_by=[0], wait_s=1.0, state='active')]
    assert model.select_sessions(rows, crit(blockers_only=True))[0] == []


def test_limit_and_rights():
    with pytest.raises(ActivityError, match='3 sessions are selected, more than limit 2: nothing was signalled'):
        model.check_limit([row(1), row(2), row(3)], 2)
    model.check_limit([row(1)], 1)
    model.check_limit([row(1)], None)
    assert pids(model.unsignalable([row(1), row(2, can_signal=False)])) == [2]


@pytest.mark.parametrize('params, message', [
    (dict(min_duration=-1), 'min_duration must not be negative'),
    (dict(limit=-2), 'limit must not be negative'),
    (dict(action='cancel', grace=5), 'needs action=terminate'),
    (dict(client_addrs=['10.0.0.300']), 'neither an IP address'),
    (dict(pool=dict(db_max_connections=0, replicas=1, reserved=0)), 'pool.db_max_connections must be at least 1'),
])
def test_bad_options_are_refused(params, message):
    with pytest.raises(ActivityError, match=message):
        model.check_options(params)


# ------------------------------------------------------------------------------------------------ report
FACTS = dict(server_version_num=150000, max_connections=100, superuser_reserved_connections=3,
             reserved_connections=0, now=datetime.datetime(2026, 1, 1), login_role='postgres', own_pid=9,
             current_database='app')


def test_capacity_reuses_the_pool_check():
    rows = [row(1), row(2), row(3, backend_type='walsender')]
    cap = model.capacity(rows, FACTS, 15, pool_check)
    assert cap == dict(max_connections=100, superuser_reserved_connections=3, reserved_connections=0,
                       platform_reserved_connections=15, available=82, used=2, free=80, usage_percent=2.4)


def test_report():
    rows = chain_rows() + [row(9, own=True, state='active'), row(106, database='other', state='active', query_s=99.0),
                           row(107, backend_type='autovacuum worker', state='active', query_s=500.0)]
    params = dict(basis='query', min_duration=60, databases=['app'],
                  pool=dict(db_max_connections=20, replicas=4, reserved=5))
    out = info.report(rows, FACTS, params, 0)
    assert out['changed'] is False
    assert list(out['databases']) == ['app'] and out['databases']['app']['sessions'] == 5  # not the module's own
    assert out['databases']['app']['by_state'] == {'idle in transaction': 1, 'active': 3, 'idle': 1}
    assert out['databases']['app']['by_client'] == [dict(user='app', client_addr='10.0.0.5', sessions=5)]
    assert out['background'] == {'autovacuum worker': 1}
    assert [r['pid'] for r in out['long_running']] == [102, 103, 104]  # active, query over 60 s, own excluded
    assert [r['pid'] for r in out['idle_in_transaction']] == [101] and out['idle_in_transaction'][0]['idle_s'] == 80
    assert [r['pid'] for r in out['waiting']] == [104, 102, 103]
    assert [r['pid'] for r in out['blocking']['roots']] == [101]
    assert out['blocking']['roots'][0]['waiters'] == 3 and out['blocking']['roots'][0]['duration_s'] == 90.0
    assert [w['chain'] for w in out['blocking']['waiting']] == [[102, 101], [103, 102, 101], [104, 101]]
    assert out['pool']['needed'] == 85 and out['pool']['available'] == 97 and out['pool']['fits'] is True
    assert out['capacity']['used'] == 7  # client connections, the module's own included
    assert out['long_running'][0]['backend_start'] == '2026-01-01T00:01:42'


def test_planned_result_is_what_check_mode_reports():
    params = dict(action='terminate', grace=2.0, limit=None, basis='state')
    selected, skipped, _unused = model.select_sessions([row(1), row(2, own=True)], crit())
    out = sessions.planned_result(params, selected, skipped, crit(), True)
    assert out['changed'] is True and out['signalled'] == []
    assert [(s['pid'], s['signals'], s['outcome'], s['duration_s']) for s in out['sessions']] == [
        (1, ['cancel', 'terminate'], 'would cancel then terminate', 650.0)]
    assert [(s['pid'], 'own session' in s['reason']) for s in out['not_signalled']] == [(2, True)]
    empty = sessions.planned_result(dict(params, grace=0), [], [], crit(), False)
    assert empty['changed'] is False and empty['sessions'] == []


def test_criteria_default_to_the_login_database():
    params = dict(databases=None, users=None, application_names=None, client_addrs=['local', '10.1.0.0/16'],
                  exclude_client_addrs=None, states=['idle'], min_duration=None, basis='query', pids=None,
                  blockers_only=False, exclude_users=None, exclude_application_names=None, exclude_pids=None,
                  include_superusers=False)
    c = sessions.criteria(params, 'procgenie')
    assert c['databases'] == ['procgenie'] and c['client_addrs'][0] == 'local'
    assert sessions.criteria(dict(params, databases=['a', 'b']), 'x')['databases'] == ['a', 'b']


def test_argument_specs_merge_with_the_connection_options():
    from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import postgres_spec
    for spec in (info.argument_spec(), sessions.argument_spec()):
        merged = postgres_spec().merge(spec)
        assert 'login_db' in merged.options and 'query_length' in merged.options
    assert sessions.argument_spec().options['action']['required'] is True
