"""A pg_perf_info result of the agreed shape (tests of the health report that do not need the lab), with values a
page must escape: a table and a query holding markup."""

from __future__ import annotations

import copy

EVIL_TABLE = 'public."<script>alert(1)</script>"'
EVIL_QUERY = "SELECT '<script>document.title=\"pwned\"</script>' || $1 FROM public.\"</pre><b>x</b>\""

SAMPLE = {
    'server': {'version': '15.14', 'major': 15, 'database': 'procgenie', 'stats_reset': '2026-11-01T00:00:00+00:00'},
    'statements': {
        'available': True, 'message': None, 'reset_done': False, 'since': False,
        'top_total_time': [
            {'queryid': 11, 'query': EVIL_QUERY, 'database': 'procgenie', 'user': 'procgenie_app', 'calls': 1200,
             'total_ms': 98765.4, 'mean_ms': 82.3, 'max_ms': 912.0, 'rows': 1200, 'shared_blks_hit': 900,
             'shared_blks_read': 100},
            {'queryid': 12, 'query': 'SELECT * FROM requisitions WHERE tenant_id = $1', 'database': 'procgenie',
             'user': 'procgenie_app', 'calls': 50000, 'total_ms': 4321.0, 'mean_ms': 0.09, 'max_ms': 3.1,
             'rows': 50000, 'shared_blks_hit': 100000, 'shared_blks_read': 0},
        ],
        'top_mean_time': [],
        'top_calls': [],
    },
    'indexes': {
        'duplicate': [{'table': 'public.orders', 'index': 'public.orders_a_idx1', 'keep': 'public.orders_a_key',
                       'definition': 'CREATE INDEX orders_a_idx1 ON public.orders USING btree (a)',
                       'keep_definition': 'CREATE UNIQUE INDEX orders_a_key ON public.orders USING btree (a)',
                       'bytes': 16384, 'fix_sql': 'DROP INDEX CONCURRENTLY public.orders_a_idx1;'}],
        'redundant': [{'table': 'public.orders', 'index': 'public.orders_b_idx', 'covered_by': 'public.orders_b_c_idx',
                       'definition': 'CREATE INDEX orders_b_idx ON public.orders USING btree (b)',
                       'covered_by_definition': 'CREATE INDEX orders_b_c_idx ON public.orders USING btree (b, c)',
                       'bytes': 8192, 'fix_sql': 'DROP INDEX CONCURRENTLY public.orders_b_idx;'}],
        'unused': [{'table': EVIL_TABLE, 'index': 'public.evil_idx', 'idx_scan': 0, 'bytes': 40960,
                    'definition': 'CREATE INDEX evil_idx ON public."<script>alert(1)</script>" USING btree (x)',
                    'fix_sql': 'DROP INDEX CONCURRENTLY public.evil_idx;'}],
        'unused_since': '2026-11-01T00:00:00+00:00',
        'invalid': [{'table': 'public.orders', 'index': 'public.orders_code_key_ccnew', 'bytes': 8192,
                     'definition': 'CREATE UNIQUE INDEX orders_code_key_ccnew ON public.orders USING btree (code)',
                     'fix_sql': 'DROP INDEX CONCURRENTLY public.orders_code_key_ccnew;'}],
        'missing': [{'table': 'public.audit_events', 'seq_scan': 5000, 'seq_tup_read': 50000000, 'idx_scan': 3,
                     'n_live_tup': 100000, 'reason': 'seq_scan 5000 > 1000, 99.9% of scans sequential'}],
        'tenant_unindexed': [{'table': 'public.notes', 'column': 'tenant_id',
                              'fix_sql': 'CREATE INDEX CONCURRENTLY ON public.notes (tenant_id);'}],
    },
    'bloat': {'method': 'estimate',
              'tables': [{'table': 'public.orders', 'bytes': 104857600, 'wasted_bytes': 52428800, 'ratio': 0.5,
                          'level': 'warn'}],
              'indexes': [{'table': 'public.orders', 'index': 'public.orders_pkey', 'bytes': 20971520,
                           'wasted_bytes': 10485760, 'ratio': 0.5, 'level': 'warn'}]},
    'vacuum': {
        'settings': {'autovacuum_freeze_max_age': 200000000, 'autovacuum_multixact_freeze_max_age': 400000000,
                     'vacuum_failsafe_age': 1600000000, 'vacuum_multixact_failsafe_age': 1600000000},
        'tables': [{'table': 'public.orders', 'n_live_tup': 1000, 'n_dead_tup': 20000, 'dead_ratio': 0.95,
                    'last_vacuum': None, 'last_autovacuum': '2026-11-20T03:00:00+00:00', 'last_analyze': None,
                    'last_autoanalyze': None, 'xid_age': 320000000, 'mxid_age': 12, 'level': 'warn',
                    'needs_vacuum': True}],
        'databases': [{'database': 'procgenie', 'xid_age': 320000000, 'mxid_age': 12, 'level': 'warn'},
                      {'database': 'postgres', 'xid_age': 1000, 'mxid_age': 1, 'level': 'ok'}],
    },
    'sequences': [{'sequence': 'public.orders_id_seq', 'last_value': 2000000000, 'max_value': 2147483647,
                   'used': 0.93, 'level': 'critical'}],
    'sizes': {'tables': [{'table': 'public.orders', 'total_bytes': 130000000, 'table_bytes': 100000000,
                          'index_bytes': 25000000, 'toast_bytes': 5000000, 'live_rows': 1000},
                         {'table': EVIL_TABLE, 'total_bytes': 81920, 'table_bytes': 40960, 'index_bytes': 40960,
                          'toast_bytes': 0, 'live_rows': 3}],
              'databases': [{'database': 'procgenie', 'bytes': 140000000}]},
    'findings': [
        {'level': 'warn', 'area': 'indexes', 'object': EVIL_TABLE, 'message': 'index public.evil_idx never scanned',
         'fix_sql': 'DROP INDEX CONCURRENTLY public.evil_idx;'},
        {'level': 'critical', 'area': 'sequences', 'object': 'public.orders_id_seq',
         'message': '93% of the range used', 'fix_sql': None},
        {'level': 'critical', 'area': 'indexes', 'object': 'public.orders_code_key_ccnew',
         'message': 'invalid index (a failed CREATE UNIQUE INDEX CONCURRENTLY)',
         'fix_sql': 'DROP INDEX CONCURRENTLY public.orders_code_key_ccnew;'},
    ],
    'queries': [],
}


def sample():
    return copy.deepcopy(SAMPLE)
