"""Pure WAL arithmetic: LSNs, segment names, timeline histories, gaps, pg_waldump lines."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _wal as wal

UTC = datetime.timezone.utc


def test_lsn_round_trip():
    assert wal.parse_lsn('16/B374D848') == (0x16 << 32) | 0xB374D848
    assert wal.format_lsn(wal.parse_lsn('0/3000148')) == '0/3000148'
    assert wal.parse_lsn(' 0/0 ') == 0
    for bad in ('', 'x/1', '1', '1/2/3', None):
        with pytest.raises(wal.WalError):
            wal.parse_lsn(bad)


def test_segment_names():
    assert wal.segment_name(1, wal.segno('0/3000148')) == '000000010000000000000003'
    assert wal.segment_name(2, wal.segno('1/0')) == '000000020000000100000000'
    assert wal.segment_name(1, wal.segno('0/FFFFFFFF')) == '0000000100000000000000FF'
    assert wal.parse_segment_name('0000000200000001000000A0') == (2, 0x100 + 0xA0)
    assert wal.parse_segment_name('00000002.history') is None
    assert wal.parse_segment_name('000000010000000000000003.00000028.backup') is None
    # 64 MB segments: 64 per xlogid
    assert wal.segment_name(1, wal.segno('1/4000000', 64 << 20), 64 << 20) == '000000010000000100000001'


HISTORY3 = """1\t0/5000000\tno recovery target specified

2\t0/8000100\tbefore 2026-02-08 12:00:00+00
"""


def test_parse_history_and_path():
    entries = wal.parse_history(HISTORY3)
    assert [(e['parent'], e['switch_lsn']) for e in entries] == [(1, 0x5000000), (2, 0x8000100)]
    path = wal.timeline_path(3, entries)
    assert [(p['tli'], p['begin'], p['end']) for p in path] == [
        (1, 0, 0x5000000), (2, 0x5000000, 0x8000100), (3, 0x8000100, None)]
    assert wal.timeline_of_lsn('0/4FFFFFF', path) == 1
    assert wal.timeline_of_lsn('0/5000000', path) == 2
    assert wal.timeline_of_lsn('0/9000000', path) == 3
    with pytest.raises(wal.WalError):
        wal.parse_history('1 0/5000000 x\n# comment\nbad\n')
    with pytest.raises(wal.WalError):
        wal.parse_history('2 0/5000000 x\n1 0/6000000 y\n')
    with pytest.raises(wal.WalError):
        wal.timeline_path(2, entries)


def test_required_segments_follow_the_timeline_switches():
    path = wal.timeline_path(3, wal.parse_history(HISTORY3))
    names = wal.required_segments('0/3000028', '0/9000000', path)
    assert names == ['000000010000000000000003', '000000010000000000000004', '000000020000000000000005',
                     '000000020000000000000006', '000000020000000000000007', '000000030000000000000008',
                     '000000030000000000000009']


def test_contiguous_segments_and_gaps():
    path = wal.timeline_path(1)
    names = ['000000010000000000000002', '000000010000000000000003', '000000010000000000000004',
             '000000010000000000000006', '00000001.history', '000000010000000000000002.00000028.backup']
    present, missing = wal.contiguous_segments(names, '0/2000028', path)
    assert present == names[:3] and missing == '000000010000000000000005'
    present, missing = wal.contiguous_segments(names[:3], '0/2000028', path)
    assert present == names[:3] and missing is None
    present, missing = wal.contiguous_segments(names, '0/1000028', path)
    assert present == [] and missing == '000000010000000000000001'
    # a segment of an unrelated timeline is no continuation
    present, missing = wal.contiguous_segments(names[:3] + ['000000090000000000000009'], '0/2000028', path)
    assert missing is None


def test_ranges_by_timeline():
    names = ['000000010000000000000003', '000000010000000000000004', '000000020000000000000005',
             '000000020000000000000006']
    assert wal.ranges_by_timeline(names) == [(1, names[0], names[1]), (2, names[2], names[3])]


LINES = [
    'rmgr: Heap        len (rec/tot):     54/   170, tx:        725, lsn: 0/0175A200, prev 0/0175A1C8, '
    'desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/5/16384 blk 0 FPW',
    'rmgr: Transaction len (rec/tot):     34/    34, tx:        725, lsn: 0/0175A480, prev 0/0175A440, '
    'desc: COMMIT 2026-11-24 15:23:40.951317 UTC; inval msgs: catcache 80 catcache 79 snapshot 2608',
    'rmgr: XLOG        len (rec/tot):     98/    98, tx:          0, lsn: 0/0175A4A8, prev 0/0175A480, '
    'desc: RESTORE_POINT rp1',
    'rmgr: Transaction len (rec/tot):     34/    34, tx:        726, lsn: 0/0175A500, prev 0/0175A4A8, '
    'desc: ABORT 2026-11-24 15:23:41 UTC',
    'rmgr: Transaction len (rec/tot):     34/    34, tx:          0, lsn: 0/0175A550, prev 0/0175A500, '
    'desc: COMMIT_PREPARED 727: 2026-11-24 15:23:42.5 UTC',
    'rmgr: XLOG        len (rec/tot):     24/    24, tx:          0, lsn: 0/0175A578, prev 0/0175A550, desc: SWITCH ',
    'pg_waldump: error: error in WAL record at 0/175A578: invalid record length',
]


def test_scan_waldump():
    summary = wal.scan_waldump(LINES)
    kinds = [(r['kind'], r['xid']) for r in summary['records']]
    assert kinds == [('commit', 725), ('restore_point', 0), ('abort', 726), ('commit', 727)]
    assert summary['records'][1]['name'] == 'rp1'
    assert summary['records'][0]['time'] == datetime.datetime(2026, 11, 24, 15, 23, 40, 951317, tzinfo=UTC)
    assert summary['last_lsn'] == 0x175A578
    assert summary['last_commit_time'] == datetime.datetime(2026, 11, 24, 15, 23, 42, 500000, tzinfo=UTC)
    with pytest.raises(wal.WalError):
        wal.parse_waldump_line(LINES[1].replace('UTC', 'CET'))


def test_find_stop():
    records = wal.scan_waldump(LINES)['records']
    last = 0x175A578
    at = datetime.datetime(2026, 11, 24, 15, 23, 40, 951317, tzinfo=UTC)
    # a time exactly at a commit: inclusive keeps it (stops at the next one), exclusive stops before it
    assert wal.find_stop(dict(kind='time', value=at), records, 0, last)['xid'] == 726
    assert wal.find_stop(dict(kind='time', value=at), records, 0, last, inclusive=False)['xid'] == 725
    assert wal.find_stop(dict(kind='time', value=at.replace(second=50)), records, 0, last) is None
    assert wal.find_stop(dict(kind='xid', value=726), records, 0, last)['lsn'] == 0x175A500
    assert wal.find_stop(dict(kind='xid', value=725), records, 0x175A481, last) is None
    assert wal.find_stop(dict(kind='name', value='rp1'), records, 0, last)['lsn'] == 0x175A4A8
    assert wal.find_stop(dict(kind='name', value='nope'), records, 0, last) is None
    assert wal.find_stop(dict(kind='lsn', value=0x175A500), records, 0x1000000, last)['lsn'] == 0x175A500
    assert wal.find_stop(dict(kind='lsn', value=last), records, 0, last) is None
    assert wal.find_stop(dict(kind='lsn', value=0x10), records, 0x1000000, last) is None
