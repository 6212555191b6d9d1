# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which tables pg_vacuum works on, in which order, and the time budget it keeps (flexible-freeze's rules).

* A table is chosen when it is named (``tables``) or, without names, when it is over the thresholds pg_perf_info
  reports against (`_thresholds.needs_vacuum`: dead tuples and dead ratio; `_thresholds.wraparound_level` of the
  transaction-ID or multixact age: warn or critical).
* The oldest first: ``greatest(age(relfrozenxid), age(toast's relfrozenxid))`` descending, then the most dead tuples.
* The budget: a table is started only while time is left; a running one is bounded by ``statement_timeout`` set to
  the smaller of the option and what is left.
"""

from __future__ import annotations

import time

from ansible_collections.procgenie.dbops.plugins.module_utils._thresholds import (
    FAILSAFE_DEFAULTS, needs_vacuum, wraparound_level)

# the tables of these schemas are never chosen by thresholds (pg_repack's own work tables live in `repack`)
SKIP_SCHEMAS = ('pg_catalog', 'information_schema', 'pg_toast', 'repack')

SETTINGS_SQL = """
SELECT current_setting('autovacuum_freeze_max_age')::bigint AS autovacuum_freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::bigint AS autovacuum_multixact_freeze_max_age,
       current_setting('vacuum_failsafe_age', true)::bigint AS vacuum_failsafe_age,
       current_setting('vacuum_multixact_failsafe_age', true)::bigint AS vacuum_multixact_failsafe_age,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       current_database() AS database
"""

# {maintain}: the privilege test of the server's version (MAINTAIN from PostgreSQL 17, ownership before)
TABLES_SQL = """
SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qname,
       c.relkind::text AS relkind, c.relpersistence::text AS persistence,
       c.relfilenode::bigint AS relfilenode, c.reltablespace::bigint AS tablespace,
       pg_total_relation_size(c.oid) AS bytes,
       coalesce(s.n_live_tup, 0) AS n_live_tup, coalesce(s.n_dead_tup, 0) AS n_dead_tup,
       greatest(age(c.relfrozenxid), age(t.relfrozenxid))::bigint AS xid_age,
       greatest(mxid_age(c.relminmxid), mxid_age(t.relminmxid))::bigint AS mxid_age,
       {maintain} AS allowed
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
  LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
 WHERE c.relkind = 'r' AND c.relpersistence <> 't'
   AND (c.oid = ANY(%(oids)s::oid[])
        OR (%(all)s AND n.nspname <> ALL(%(skip)s::text[]) AND n.nspname !~ '^pg_(toast_)?temp_'))
 ORDER BY n.nspname, c.relname
"""

STATS_SQL = """
SELECT c.oid::bigint AS oid, pg_total_relation_size(c.oid) AS bytes, c.relfilenode::bigint AS relfilenode,
       coalesce(s.n_live_tup, 0) AS n_live_tup, coalesce(s.n_dead_tup, 0) AS n_dead_tup
  FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
 WHERE c.oid = %s
"""


def maintain_condition(server_version_num):
    """SQL of "the login role may VACUUM this table" (pg_class c) for the server's version."""
    if server_version_num >= 170000:
        return "has_table_privilege(c.oid, 'MAINTAIN')"
    return "pg_has_role(c.relowner, 'USAGE')"


def settings_of(row):
    """The server's wraparound settings, the failsafe ages filled with their defaults before PostgreSQL 14."""
    return dict(freeze_max_age=int(row['autovacuum_freeze_max_age']),
                mxid_freeze_max_age=int(row['autovacuum_multixact_freeze_max_age']),
                failsafe_age=int(row['vacuum_failsafe_age'] or FAILSAFE_DEFAULTS['xid']),
                mxid_failsafe_age=int(row['vacuum_multixact_failsafe_age'] or FAILSAFE_DEFAULTS['mxid']))


def reasons_over(row, thresholds, settings):
    """Pure: why a table is over the thresholds (an empty list: it is not)."""
    reasons = []
    dead, live = row.get('n_dead_tup') or 0, row.get('n_live_tup') or 0
    if needs_vacuum(dead, live, thresholds):
        reasons.append('%d dead tuples (%.0f%% of %d), over %d and %.0f%%' % (
            dead, 100.0 * dead / (dead + live), dead + live, thresholds['dead_tuples'], 100 * thresholds['dead_ratio']))
    xid_level = wraparound_level(row.get('xid_age'), settings['freeze_max_age'], settings['failsafe_age'],
                                 thresholds)
    if xid_level != 'ok':
        reasons.append('transaction ID age %s (%s)' % (row.get('xid_age'), xid_level))
    mxid_level = wraparound_level(row.get('mxid_age'), settings['mxid_freeze_max_age'],
                                  settings['mxid_failsafe_age'], thresholds)
    if mxid_level != 'ok':
        reasons.append('multixact age %s (%s)' % (row.get('mxid_age'), mxid_level))
    return reasons


def order_key(row):
    """The oldest relfrozenxid first (table or TOAST, the greater age), then the most dead tuples, then the name."""
    return (-(row.get('xid_age') or 0), -(row.get('n_dead_tup') or 0), row.get('schema') or '', row.get('name') or '')


def choose(rows, thresholds, settings, named=None):
    """Pure: (chosen, skipped). `named`: oids the user named (every one is chosen, whatever its figures); without it
    the tables over the thresholds. Each chosen row gets `reason`; the order is `order_key`'s. A named table the
    login role may not vacuum is skipped with the reason."""
    chosen, skipped = [], []
    for row in rows:
        reasons = reasons_over(row, thresholds, settings)
        if named is not None:
            if row['oid'] not in named:
                continue
            if not row.get('allowed'):
                reason = 'the login role does not own the table (nor has MAINTAIN on it): VACUUM would skip it'
                skipped.append(dict(table=row['qname'], reason=reason))
                continue
            chosen.append(dict(row, reason='; '.join(reasons) or 'named'))
        elif reasons and row.get('allowed'):
            chosen.append(dict(row, reason='; '.join(reasons)))
    chosen.sort(key=order_key)
    return chosen, skipped


def vacuum_options(params):
    """Pure: the options of the VACUUM statement, in PostgreSQL's order (FULL, FREEZE, VERBOSE, ANALYZE)."""
    names = []
    for option, wanted in (('FULL', params.get('full')), ('FREEZE', params.get('freeze')),
                           ('VERBOSE', params.get('verbose')), ('ANALYZE', params.get('analyze'))):
        if wanted:
            names.append(option)
    return names


class Budget(object):
    """A time budget in seconds (None: unlimited) on a monotonic clock: `left()` seconds, `spent()`, and
    `timeout(statement_timeout)`, the bound of the next statement (the smaller of the option and what is left;
    None: unbounded)."""

    def __init__(self, seconds, clock=time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.start = clock()

    def left(self):
        if self.seconds is None:
            return None
        return self.seconds - (self.clock() - self.start)

    def spent(self):
        left = self.left()
        return left is not None and left <= 0

    def timeout(self, statement_timeout=None):
        """(seconds, by_budget): the bound of the next statement and whether the budget (not the option) sets it."""
        bounds = []
        if statement_timeout:
            bounds.append((float(statement_timeout), False))
        left = self.left()
        if left is not None:
            bounds.append((max(left, 0.001), True))
        if not bounds:
            return None, False
        return min(bounds, key=lambda b: (b[0], b[1]))
