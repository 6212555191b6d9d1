# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance thresholds pg_perf_info reports against and pg_vacuum acts on: one home, one set of option names.
PRIVATE to the collection.

Defaults are the runbook's section 6 where it gives a number (`n_dead_tup > 10000`, `seq_scan > 1000`); the
wraparound levels are relative to the server's own settings (autovacuum_freeze_max_age, vacuum_failsafe_age and
their multixact twins), so a server tuned differently is judged by its own rules.
"""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec

# vacuum_failsafe_age and vacuum_multixact_failsafe_age exist from PostgreSQL 14; before that, their defaults.
FAILSAFE_DEFAULTS = dict(xid=1600000000, mxid=1600000000)

DEFAULTS = dict(
    dead_tuples=10000,          # runbook: WHERE n_dead_tup > 10000
    dead_ratio=0.2,             # dead / (live + dead), autovacuum_vacuum_scale_factor's default
    seq_scans=1000,             # runbook: WHERE seq_scan > 1000
    seq_scan_ratio=0.5,         # seq_scan / (seq_scan + idx_scan) above which a table is a missing-index candidate
    seq_scan_min_rows=10000,    # ... and only tables at least this large (PgHero's n_live_tup >= 10000)
    wraparound_warn_ratio=1.5,  # warn when age(relfrozenxid) >= ratio * autovacuum_freeze_max_age (same for mxid)
    wraparound_critical_ratio=0.9,  # critical when age >= ratio * vacuum_failsafe_age (failsafe about to start)
    sequence_warn=0.75,         # share of a sequence's range used
    sequence_critical=0.9,
    bloat_ratio=0.3,            # estimated wasted share of a table or btree index ...
    bloat_min_bytes=10485760,   # ... that is at least this large (10 MiB)
)

LEVELS = ('ok', 'warn', 'critical')


def thresholds_spec():
    """The `thresholds` option (a dict; unknown keys refused, negatives refused by `check_thresholds`)."""
    options = dict((name, dict(type='float' if isinstance(value, float) else 'int', default=value))
                   for name, value in DEFAULTS.items())
    return ArgumentSpec(dict(thresholds=dict(type='dict', default={}, options=options)))


def check_thresholds(values):
    """The effective thresholds (defaults filled in); a list of problems for negative or nonsensical values."""
    merged = dict(DEFAULTS)
    merged.update(dict((k, v) for k, v in (values or {}).items() if v is not None))
    problems = ['thresholds.%s must not be negative (got %s)' % (k, v) for k, v in sorted(merged.items()) if v < 0]
    for name in ('dead_ratio', 'seq_scan_ratio', 'sequence_warn', 'sequence_critical', 'bloat_ratio'):
        if merged[name] > 1:
            problems.append('thresholds.%s is a share between 0 and 1 (got %s)' % (name, merged[name]))
    if merged['sequence_warn'] > merged['sequence_critical']:
        problems.append('thresholds.sequence_warn must not exceed thresholds.sequence_critical')
    return merged, problems


def wraparound_level(age, freeze_max_age, failsafe_age, thresholds):
    """ok / warn / critical for a transaction-ID (or multixact) age against the server's settings."""
    if age is None:
        return 'ok'
    if age >= thresholds['wraparound_critical_ratio'] * failsafe_age:
        return 'critical'
    if age >= thresholds['wraparound_warn_ratio'] * freeze_max_age:
        return 'warn'
    return 'ok'


def share_level(used, warn, critical):
    """ok / warn / critical for a used share (a sequence's range)."""
    if used >= critical:
        return 'critical'
    if used >= warn:
        return 'warn'
    return 'ok'


def needs_vacuum(n_dead, n_live, thresholds):
    """A table over the runbook's dead-tuple threshold and the dead ratio."""
    n_dead = n_dead or 0
    total = (n_live or 0) + n_dead
    return n_dead > thresholds['dead_tuples'] and total > 0 and float(n_dead) / total >= thresholds['dead_ratio']
