"""failover.postgres pure helpers: LSN arithmetic, pg_controldata, conninfo/config quoting, safety checks."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils.failover import postgres as fo


def test_lsn_arithmetic():
    assert fo.lsn_int('0/3000148') == 0x3000148
    assert fo.lsn_int('16/B374D848') == (0x16 << 32) | 0xB374D848
    assert fo.lsn_diff('1/0', '0/FFFFFFFF') == 1
    assert fo.lsn_diff('0/10', '0/20') == 0
    assert fo.lsn_diff(None, '0/20') is None


def test_parse_controldata():
    text = ('pg_control version number:            1300\nDatabase cluster state:               shut down\n'
            'Latest checkpoint location:           0/4000028\n')
    facts = fo.parse_controldata(text)
    assert facts['Database cluster state'] == 'shut down'
    assert facts['Latest checkpoint location'] == '0/4000028'


def test_conninfo_and_conf_quoting():
    text = fo.conninfo(host='db1', port=5432, user='rep', password="p'w\\d", sslmode=None)
    assert text == "host='db1' port='5432' user='rep' password='p\\'w\\\\d'"
    assert fo.conf_quote("a'b") == "'a''b'"


def test_rewrite_auto_conf_replaces_and_removes():
    text = "# Do not edit\nprimary_conninfo = 'old'\nwork_mem = '8MB'\nprimary_slot_name = 'x'\n"
    out = fo.rewrite_auto_conf(text, dict(primary_conninfo="host='b'", primary_slot_name=None))
    assert out == "# Do not edit\nwork_mem = '8MB'\nprimary_conninfo = 'host=''b'''\n"


PRIMARY = dict(reachable=True, in_recovery=False, timeline=1, data_directory='/d/p', current_lsn='0/5000000')
CANDIDATE = dict(reachable=True, in_recovery=True, timeline=1, replay_paused=False, lag_bytes=100,
                 wal_receiver=dict(status='streaming', sender_port=5432))
SPEC = dict(host='h', port=5432, data_directory='/d/p')


def failed(checks):
    return [c['name'] for c in checks if c['blocking'] and not c['ok']]


def test_planned_checks_pass_and_fail():
    assert failed(fo.planned_checks(PRIMARY, CANDIDATE, SPEC, 1000, False)) == []
    assert failed(fo.planned_checks(PRIMARY, dict(CANDIDATE, lag_bytes=5000), SPEC, 1000, False)) == [
        'lag within max_lag_bytes']
    assert failed(fo.planned_checks(PRIMARY, dict(CANDIDATE, lag_bytes=5000), SPEC, 1000, True)) == []
    assert failed(fo.planned_checks(PRIMARY, CANDIDATE, dict(SPEC, data_directory=None), 1000, False)) == [
        'old primary data directory known']
    assert failed(fo.planned_checks(PRIMARY, dict(CANDIDATE, replay_paused=True), SPEC, 1000, False)) == [
        'candidate replays WAL']
    assert failed(fo.planned_checks(dict(reachable=False, error='down'), CANDIDATE, SPEC, 1000, False)) == [
        'primary reachable and writable']


def test_forced_checks():
    assert failed(fo.forced_checks(dict(reachable=False), CANDIDATE, 1000, False)) == []
    assert failed(fo.forced_checks(dict(reachable=False), dict(CANDIDATE, lag_bytes=2000), 1000, False)) == [
        'lag within max_lag_bytes']
    assert failed(fo.forced_checks(PRIMARY, dict(CANDIDATE, in_recovery=False), 1000, False)) == [
        'candidate reachable and a standby']


def test_add_lag_uses_the_primary_when_it_answers():
    candidate = dict(CANDIDATE, receive_lsn='0/4000000', replay_lsn='0/3000000')
    fo.add_lag(PRIMARY, candidate)
    assert candidate['lag_bytes'] == 0x2000000
    fo.add_lag(dict(reachable=False), candidate)
    assert candidate['lag_bytes'] == 0x1000000


def test_node_params_aims_at_the_node():
    params = dict(login_host='x', login_port=1, login_unix_socket='/run', connect_params={}, connect_timeout=3)
    node = fo.node_params(params, dict(host='db2', port=6432))
    assert (node['login_host'], node['login_port'], node['login_unix_socket']) == ('db2', 6432, None)
    assert node['connect_params'] == {'connect_timeout': 3}
    assert params['connect_params'] == {}
