# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure WAL arithmetic: LSNs, segment file names, timeline history files, gaps in an archive, pg_waldump output.

Nothing here touches a server or a file; everything is unit-tested (tests/unit/test_wal.py).

Which segment recovery reads: PostgreSQL reads segment number N from the newest timeline of the recovery target's
history whose switch point lies in a segment <= N (XLogFileReadAnyTLI). The segment holding a switch point is
therefore read from the new timeline, the ones before it from the old.
"""

from __future__ import annotations

import datetime
import re

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
SEGMENT_RE = re.compile(r'^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$')
HISTORY_RE = re.compile(r'^([0-9A-F]{8})\.history$')
LSN_RE = re.compile(r'^\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*$')
WALDUMP_RE = re.compile(r'^rmgr: (\S+)\s+len \(rec/tot\):\s*\d+/\s*\d+, tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), '
                        r'prev [0-9A-F]+/[0-9A-F]+, desc: (\S+)(?: (.*))?$')
TIME_RE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)(?: ([A-Za-z0-9:+-]+))?')


class WalError(Exception):
    """Malformed WAL input (an LSN, a segment name, a history file); the message says which."""


# ---------------------------------------------------------------- LSNs
def parse_lsn(text):
    """'16/B374D848' -> integer byte position. Raises WalError."""
    if isinstance(text, int):
        return text
    match = LSN_RE.match(str(text or ''))
    if not match:
        raise WalError('%r is not an LSN (expected something like 0/16B3748)' % (text,))
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value):
    """Integer position -> 'X/XXXXXXXX' as PostgreSQL prints it."""
    return '%X/%X' % (value >> 32, value & 0xFFFFFFFF)


# ---------------------------------------------------------------- segments
def segments_per_xlogid(seg_size=DEFAULT_SEGMENT_SIZE):
    return 0x100000000 // seg_size


def segno(lsn, seg_size=DEFAULT_SEGMENT_SIZE):
    """Segment number holding an LSN (int or text)."""
    return parse_lsn(lsn) // seg_size


def segment_name(tli, number, seg_size=DEFAULT_SEGMENT_SIZE):
    """File name of segment `number` on timeline `tli` (XLogFileName)."""
    per = segments_per_xlogid(seg_size)
    return '%08X%08X%08X' % (tli, number // per, number % per)


def parse_segment_name(name, seg_size=DEFAULT_SEGMENT_SIZE):
    """(timeline, segment number) of a WAL segment file name, or None for any other file."""
    match = SEGMENT_RE.match(name or '')
    if not match:
        return None
    per = segments_per_xlogid(seg_size)
    return int(match.group(1), 16), int(match.group(2), 16) * per + int(match.group(3), 16)


def segment_start(number, seg_size=DEFAULT_SEGMENT_SIZE):
    return number * seg_size


def history_name(tli):
    return '%08X.history' % tli


# ---------------------------------------------------------------- timelines
def parse_history(text):
    """Lines of a timeline history file -> list of dicts (parent, switch_lsn, reason), oldest first.

    Format: '<parent tli>\\t<switch point>\\t<reason>' per line, # comments and blank lines ignored."""
    entries = []
    for number, line in enumerate((text or '').splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.split(None, 2)
        if len(fields) < 2:
            raise WalError('timeline history line %d is not "<timeline> <switch LSN> <reason>": %r' % (number, line))
        try:
            parent = int(fields[0])
        except ValueError:
            raise WalError('timeline history line %d: %r is not a timeline number' % (number, fields[0]))
        entries.append(dict(parent=parent, switch_lsn=parse_lsn(fields[1]),
                            reason=fields[2] if len(fields) > 2 else ''))
    for earlier, later in zip(entries, entries[1:]):
        if later['parent'] <= earlier['parent'] or later['switch_lsn'] < earlier['switch_lsn']:
            raise WalError('timeline history is not in ascending order')
    return entries


def timeline_path(target_tli, history=None):
    """The timelines recovery to `target_tli` goes through: list of dicts (tli, begin, end), begin/end as integers,
    end None for the target timeline itself. `history` is parse_history() of the target's history file."""
    path = []
    begin = 0
    for entry in history or []:
        path.append(dict(tli=entry['parent'], begin=begin, end=entry['switch_lsn']))
        begin = entry['switch_lsn']
    if path and path[-1]['tli'] >= target_tli:
        raise WalError('timeline %d cannot descend from timeline %d' % (target_tli, path[-1]['tli']))
    path.append(dict(tli=target_tli, begin=begin, end=None))
    return path


def timeline_of_segment(number, path, seg_size=DEFAULT_SEGMENT_SIZE):
    """The timeline recovery reads segment `number` from (the newest whose switch point lies in a segment <= it)."""
    chosen = path[0]['tli']
    for item in path:
        if item['begin'] // seg_size <= number:
            chosen = item['tli']
    return chosen


def timeline_of_lsn(lsn, path):
    """The timeline an LSN belongs to on the path."""
    lsn = parse_lsn(lsn)
    for item in path:
        if item['end'] is None or lsn < item['end']:
            return item['tli']
    return path[-1]['tli']


def required_segments(start_lsn, end_lsn, path, seg_size=DEFAULT_SEGMENT_SIZE):
    """File names of the segments recovery reads from start_lsn to end_lsn (both included)."""
    first, last = segno(start_lsn, seg_size), segno(end_lsn, seg_size)
    return [segment_name(timeline_of_segment(n, path, seg_size), n, seg_size) for n in range(first, last + 1)]


def contiguous_segments(names, start_lsn, path, seg_size=DEFAULT_SEGMENT_SIZE):
    """Walk the archive's file names from the segment of start_lsn along the path.

    Returns (present, missing): the segment names found without a hole, in order, and the name of the first
    missing segment after them when the archive holds a later segment of the path (a gap), else None."""
    available = set(names)
    highest = -1
    path_tlis = set(item['tli'] for item in path)
    for name in available:
        parsed = parse_segment_name(name, seg_size)
        if parsed and parsed[0] in path_tlis:
            highest = max(highest, parsed[1])
    present = []
    number = segno(start_lsn, seg_size)
    while number <= highest:
        name = segment_name(timeline_of_segment(number, path, seg_size), number, seg_size)
        if name not in available:
            later = any(segment_name(timeline_of_segment(n, path, seg_size), n, seg_size) in available
                        for n in range(number + 1, highest + 1))
            return present, (name if later else None)
        present.append(name)
        number += 1
    return present, None


def ranges_by_timeline(names, seg_size=DEFAULT_SEGMENT_SIZE):
    """Consecutive segment names grouped into (tli, first name, last name) runs (one pg_waldump call each)."""
    runs = []
    for name in names:
        tli, number = parse_segment_name(name, seg_size)
        if runs and runs[-1][0] == tli and runs[-1][3] == number - 1:
            runs[-1] = (tli, runs[-1][1], name, number)
        else:
            runs.append((tli, name, name, number))
    return [(tli, first, last) for tli, first, last, _n in runs]


# ---------------------------------------------------------------- pg_waldump
def parse_pg_time(text):
    """'2026-11-24 15:23:40.950342 UTC' (pg_waldump's commit time, run with TZ=UTC) -> aware datetime."""
    match = TIME_RE.match(text or '')
    if not match:
        return None
    zone = match.group(2)
    if zone and zone not in ('UTC', 'GMT', '+00', 'Z'):
        raise WalError('pg_waldump printed a time in zone %s; run it with TZ=UTC' % zone)
    stamp = match.group(1)
    fmt = '%Y-%m-%d %H:%M:%S.%f' if '.' in stamp else '%Y-%m-%d %H:%M:%S'
    return datetime.datetime.strptime(stamp, fmt).replace(tzinfo=datetime.timezone.utc)


def parse_waldump_line(line):
    """One pg_waldump line -> dict(kind, lsn, xid, time, name) for the records a recovery target can stop at
    (COMMIT, COMMIT_PREPARED, ABORT, ABORT_PREPARED, RESTORE_POINT), dict(kind='other', lsn) for any other record,
    None for a line that is no record."""
    match = WALDUMP_RE.match(line.rstrip('\n'))
    if not match:
        return None
    rmgr, xid, lsn, desc, rest = match.groups()
    record = dict(kind='other', lsn=parse_lsn(lsn), xid=int(xid), time=None, name=None)
    if rmgr == 'Transaction' and desc in ('COMMIT', 'COMMIT_PREPARED', 'ABORT', 'ABORT_PREPARED'):
        record['kind'] = 'commit' if desc.startswith('COMMIT') else 'abort'
        if desc.endswith('_PREPARED'):
            # "COMMIT_PREPARED 725: 2026-..." names the prepared transaction's xid
            head, _sep, tail = (rest or '').partition(': ')
            if head.isdigit():
                record['xid'] = int(head)
                rest = tail
        record['time'] = parse_pg_time(rest)
    elif rmgr == 'XLOG' and desc == 'RESTORE_POINT':
        record['kind'] = 'restore_point'
        record['name'] = (rest or '').strip()
    return record


def scan_waldump(lines):
    """Summary of pg_waldump output: the target records (list, in LSN order), the last record's LSN, the last
    commit time."""
    records = []
    last_lsn = None
    last_commit = None
    first_commit = None
    for line in lines:
        record = parse_waldump_line(line)
        if record is None:
            continue
        last_lsn = record['lsn']
        if record['kind'] == 'other':
            continue
        records.append(record)
        if record['kind'] in ('commit', 'abort') and record['time'] is not None:
            last_commit = record['time']
            first_commit = first_commit or record['time']
    return dict(records=records, last_lsn=last_lsn, last_commit_time=last_commit, first_commit_time=first_commit)


def find_stop(target, records, after_lsn, last_lsn, inclusive=True):
    """Where recovery to `target` stops, from the scanned records after the base backup's end (after_lsn).

    target: dict(kind=time|lsn|xid|name, value). Returns the stopping record (for lsn targets a pseudo record
    dict(kind='lsn', lsn=...)), or None when the WAL does not reach the target. Mirrors recoveryStopsBefore/After:
    a time target stops at the first commit/abort later than it (at or later when not inclusive); an xid target at
    that transaction's commit or abort; a name at the first restore point of that name; an LSN at a record at or
    beyond it."""
    kind, value = target['kind'], target['value']
    for record in records:
        if record['lsn'] < after_lsn:
            continue
        if kind == 'time' and record['kind'] in ('commit', 'abort') and record['time'] is not None:
            if record['time'] > value or (not inclusive and record['time'] >= value):
                return record
        elif kind == 'xid' and record['kind'] in ('commit', 'abort') and record['xid'] == value:
            return record
        elif kind == 'name' and record['kind'] == 'restore_point' and record['name'] == value:
            return record
    if kind == 'lsn' and last_lsn is not None and after_lsn <= value < last_lsn:
        return dict(kind='lsn', lsn=value, xid=None, time=None, name=None)
    return None
