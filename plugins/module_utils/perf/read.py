# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pg_perf_info reads: a fixed number of catalog queries whatever the size of the schema (the guards, the
server, the indexes, the tables, pg_stats for the bloat estimate or pgstattuple's measures, the sequences,
the databases, and pg_stat_statements' numbers and the texts of the top statements), plus one query a replica.

Identifiers that end up in fix SQL are quoted by the server (format('%I.%I') / quote_ident) and come back as text;
the extension's schema reaches statements only through psycopg2.sql.Identifier. Values are parameters."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql

USER_SCHEMAS = """n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
      AND n.nspname !~ '^pg_temp_'"""

SERVER = """
SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS version_num,
       current_database() AS database, now() AS now,
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset,
       current_setting('autovacuum_freeze_max_age')::bigint AS autovacuum_freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::bigint AS autovacuum_multixact_freeze_max_age,
       current_setting('vacuum_failsafe_age', true)::bigint AS vacuum_failsafe_age,
       current_setting('vacuum_multixact_failsafe_age', true)::bigint AS vacuum_multixact_failsafe_age,
       current_setting('block_size')::int AS block_size,
       current_setting('shared_preload_libraries') AS shared_preload_libraries,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       pss.nspname AS pss_schema, pss.extversion AS pss_version,
       (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
        JOIN pg_class v ON v.oid = a.attrelid
        WHERE v.relname = 'pg_stat_statements' AND v.relnamespace = pss.extnamespace
          AND a.attnum > 0 AND NOT a.attisdropped) AS pss_columns,
       (SELECT count(*) > 0 FROM pg_class v WHERE v.relname = 'pg_stat_statements_info'
          AND v.relnamespace = pss.extnamespace) AS pss_info,
       pst.nspname AS pgstattuple_schema,
       CASE WHEN pst.nspname IS NOT NULL THEN
         has_function_privilege(format('%I.pgstattuple_approx(regclass)', pst.nspname), 'EXECUTE')
         AND has_function_privilege(format('%I.pgstatindex(regclass)', pst.nspname), 'EXECUTE') END
         AS pgstattuple_usable
FROM (SELECT 1) one
LEFT JOIN (SELECT e.extnamespace, e.extversion, n.nspname FROM pg_extension e
           JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements') pss ON true
LEFT JOIN (SELECT n.nspname FROM pg_extension e
           JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgstattuple') pst ON true
"""

# work_mem: the index rows (with their definitions) are joined in memory; jit off: compiling these catalog
# queries (estimated large on a big schema) costs seconds and saves nothing
GUARDS = ("SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false), "
          "set_config('work_mem', '64MB', false), set_config('jit', 'off', false)")

# One row an index of the user schemas. Partitioned indexes (relkind 'I') sum the sizes and scans of their
# partitions (pg_partition_tree); attached partition indexes are marked (they cannot be dropped on their own).
INDEXES = """
WITH cons AS (SELECT conindid, array_agg(conname::text ORDER BY conname) AS names, bool_or(contype IN ('p', 'u', 'x')) AS owned
              FROM pg_constraint WHERE conindid <> 0 GROUP BY conindid),
     building AS (SELECT DISTINCT index_relid FROM pg_stat_progress_create_index WHERE index_relid <> 0)
SELECT i.indexrelid AS oid, i.indrelid AS table_oid, c.relname::text AS name,
       tn.nspname || '.' || t.relname AS "table", format('%I.%I', tn.nspname, t.relname) AS table_sql,
       n.nspname || '.' || c.relname AS "index", format('%I.%I', n.nspname, c.relname) AS index_sql,
       am.amname::text AS method, c.relkind::text AS relkind, t.relkind::text AS table_kind,
       i.indnatts AS natts, i.indnkeyatts AS nkeyatts,
       coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 90)
         AS fillfactor, i.indkey::int2[] AS keys, i.indclass::oid[] AS opclasses,
       i.indcollation::oid[] AS collations, i.indoption::int2[] AS options,
       pg_get_expr(i.indexprs, i.indrelid) AS exprs, pg_get_expr(i.indpred, i.indrelid) AS predicate,
       i.indisunique AS "unique", i.indisprimary AS "primary", i.indisexclusion AS exclusion,
       {nulls_not_distinct} AS nulls_not_distinct,
       i.indisvalid AS valid, i.indisready AS ready, i.indislive AS live,
       coalesce(cons.names, '{{}}') AS constraints, coalesce(cons.owned, false) AS constraint_owned,
       c.relispartition AS attached, b.index_relid IS NOT NULL AS being_built,
       (SELECT array_agg(f.conname::text ORDER BY f.conname) FROM pg_constraint f
        WHERE f.conrelid = i.indrelid AND f.contype = 'f' AND i.indnkeyatts >= cardinality(f.conkey)
          AND (SELECT array_agg(k) FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(k, o)
               WHERE o <= cardinality(f.conkey)) @> f.conkey
          AND (SELECT array_agg(k) FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(k, o)
               WHERE o <= cardinality(f.conkey)) <@ f.conkey) AS foreign_keys,
       CASE WHEN c.relkind = 'I'
            THEN (SELECT coalesce(sum(pg_relation_size(p.relid)), 0) FROM pg_partition_tree(i.indexrelid) p)
            ELSE pg_relation_size(i.indexrelid) END::bigint AS bytes,
       CASE WHEN c.relkind = 'I'
            THEN (SELECT coalesce(sum(s2.idx_scan), 0) FROM pg_partition_tree(i.indexrelid) p
                  JOIN pg_stat_all_indexes s2 ON s2.indexrelid = p.relid)
            ELSE s.idx_scan END::bigint AS idx_scan,
       {last_idx_scan} AS last_idx_scan,
       c.reltuples::float8 AS reltuples, c.relpages::bigint AS relpages
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
LEFT JOIN cons ON cons.conindid = i.indexrelid
LEFT JOIN building b ON b.index_relid = i.indexrelid
WHERE t.relkind IN ('r', 'p', 'm') AND {user_schemas}
"""

# One row a table (ordinary, partitioned, materialized view) of the user schemas: statistics, ages, sizes (the
# indexes' sizes come from the index rows: no relation is measured twice) and the tenant column's number.
TABLES = """
SELECT c.oid, n.nspname || '.' || c.relname AS "table", format('%%I.%%I', n.nspname, c.relname) AS table_sql,
       c.relkind::text AS relkind, c.relispartition AS partition,
       s.seq_scan, s.seq_tup_read, s.idx_scan, s.n_live_tup, s.n_dead_tup,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       CASE WHEN c.relkind IN ('r', 'm') THEN greatest(age(c.relfrozenxid),
            CASE WHEN tc.oid IS NOT NULL THEN age(tc.relfrozenxid) END) END::bigint AS xid_age,
       CASE WHEN c.relkind IN ('r', 'm') THEN greatest(mxid_age(c.relminmxid),
            CASE WHEN tc.oid IS NOT NULL THEN mxid_age(tc.relminmxid) END) END::bigint AS mxid_age,
       CASE WHEN c.relkind IN ('r', 'm') THEN pg_relation_size(c.oid) ELSE 0 END AS table_bytes,
       CASE WHEN c.relkind IN ('r', 'm') THEN pg_relation_size(c.oid, 'fsm') + pg_relation_size(c.oid, 'vm')
            ELSE 0 END AS map_bytes,
       CASE WHEN tc.oid IS NOT NULL THEN pg_total_relation_size(tc.oid) ELSE 0 END AS toast_bytes,
       c.reltuples::float8 AS reltuples, c.relpages::bigint AS relpages,
       (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = %(tenant)s
          AND a.attnum > 0 AND NOT a.attisdropped) AS tenant_attnum,
       quote_ident(%(tenant)s) AS tenant_sql, c.relnatts AS columns,
       coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 100)
         AS fillfactor
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class tc ON tc.oid = c.reltoastrelid
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p', 'm') AND {user_schemas}
"""

# pg_stats by relation oid and column number (the estimate's widths): a table's columns, and an expression
# index's own columns (ANALYZE gathers statistics of index expressions under the index)
STATS = """
SELECT c.oid AS relid, a.attnum, st.avg_width::float8 AS avg_width, st.null_frac::float8 AS null_frac
FROM pg_stats st
JOIN pg_namespace n ON n.nspname = st.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = st.tablename
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = st.attname
WHERE NOT st.inherited AND {user_schemas}
"""

# pgstattuple's measures of the tables and btree indexes at least `min_bytes` large (smaller ones are never
# reported): pgstattuple_approx (visibility-map based, reads only pages not all-visible) and pgstatindex.
PGSTATTUPLE_TABLES = """
SELECT c.oid, (x).table_len::bigint AS bytes,
       ((x).dead_tuple_len + (x).approx_free_space)::bigint AS wasted_bytes
FROM (SELECT c.oid, {schema}.pgstattuple_approx(c.oid::regclass) AS x
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm') AND {user_schemas} AND pg_relation_size(c.oid) >= %(min_bytes)s) c
"""
PGSTATTUPLE_INDEXES = """
SELECT c.oid, (x).index_size::bigint AS bytes, (x).avg_leaf_density::float8 AS avg_leaf_density,
       coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 90)
         AS fillfactor
FROM (SELECT c.oid, c.reloptions, {schema}.pgstatindex(c.oid::regclass) AS x
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam
      JOIN pg_index i ON i.indexrelid = c.oid
      WHERE c.relkind = 'i' AND am.amname = 'btree' AND i.indisvalid AND {user_schemas}
        AND pg_relation_size(c.oid) >= %(min_bytes)s) c
"""

SEQUENCES = """
SELECT s.schemaname || '.' || s.sequencename AS sequence, format('%I.%I', s.schemaname, s.sequencename) AS sequence_sql,
       s.data_type::text AS data_type, s.start_value, s.min_value, s.max_value, s.increment_by, s.cycle,
       s.last_value,
       (SELECT tn.nspname || '.' || t.relname || '.' || a.attname FROM pg_depend d
        JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i') LIMIT 1) AS owned_by,
       (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_depend d
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i') LIMIT 1) AS column_type
FROM pg_sequences s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
WHERE {user_schemas}
ORDER BY 1
"""

DATABASES = """
SELECT datname AS database, age(datfrozenxid)::bigint AS xid_age, mxid_age(datminmxid)::bigint AS mxid_age,
       CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END AS bytes,
       datallowconn AS allow_connections
FROM pg_database ORDER BY datname
"""

# pg_stat_statements without the texts (pg_stat_statements(false) does not read the text file); the columns of
# the installed extension version (total_exec_time from 1.8, total_time before; toplevel from 1.9)
STATEMENTS = """
SELECT s.queryid, s.dbid, s.userid, {toplevel} AS toplevel, d.datname::text AS database, r.rolname::text AS "user",
       s.calls::bigint AS calls, s.{total}::float8 AS total_ms, s.{max}::float8 AS max_ms, s.rows::bigint AS rows,
       s.shared_blks_hit::bigint AS shared_blks_hit, s.shared_blks_read::bigint AS shared_blks_read
FROM {schema}.pg_stat_statements(false) s
LEFT JOIN pg_database d ON d.oid = s.dbid
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.queryid IS NOT NULL {scope}
"""
STATEMENTS_RESET_TIME = "SELECT stats_reset FROM {schema}.pg_stat_statements_info"
TEXTS = """
SELECT DISTINCT ON (s.queryid, s.dbid, s.userid) s.queryid, s.dbid, s.userid,
       left(s.query, %(chars)s) AS query, length(s.query) AS query_chars
FROM {schema}.pg_stat_statements(true) s
JOIN unnest(%(queryids)s::bigint[], %(dbids)s::oid[], %(userids)s::oid[]) AS k(queryid, dbid, userid)
  ON k.queryid = s.queryid AND k.dbid = s.dbid AND k.userid = s.userid
"""
RESET = "SELECT {schema}.pg_stat_statements_reset()"

# a replica's index scans (its own statistics), by the index's schema-qualified name; a partitioned index with
# the sum of its partitions' (as on the primary)
REPLICA_INDEXES = """
WITH facts AS (SELECT (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset,
                      pg_is_in_recovery() AS in_recovery)
SELECT s.schemaname || '.' || s.indexrelname AS "index", s.idx_scan::bigint AS idx_scan, f.stats_reset, f.in_recovery
FROM pg_stat_all_indexes s CROSS JOIN facts f
WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema') AND s.schemaname !~ '^pg_toast'
UNION ALL
SELECT n.nspname || '.' || c.relname, (SELECT coalesce(sum(s2.idx_scan), 0) FROM pg_partition_tree(c.oid) p
                                       JOIN pg_stat_all_indexes s2 ON s2.indexrelid = p.relid)::bigint,
       f.stats_reset, f.in_recovery
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN facts f
WHERE c.relkind = 'I'
"""


def _rows(session, query, params=None):
    """Session.rows for the large reads: plain tuples zipped into dicts (a RealDictCursor sets every value through
    Python, seconds on 15,000 indexes); recorded in the query log like every statement."""
    with session.conn.cursor() as cur:
        text = cur.mogrify(query, params)
        session.log.add(text.decode('utf-8', 'replace') if isinstance(text, bytes) else text)
        cur.execute(query, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, values)) for values in cur.fetchall()]


def _q(text, **parts):
    return sql.SQL(text).format(user_schemas=sql.SQL(USER_SCHEMAS), **parts)


def guards(session, statement_timeout_ms, lock_timeout_ms):
    session.execute(sql.SQL(GUARDS), ('%dms' % statement_timeout_ms, '%dms' % lock_timeout_ms))


def server(session):
    return session.row(sql.SQL(SERVER))


def indexes(session, version_num):
    nnd = 'i.indnullsnotdistinct' if version_num >= 150000 else 'false'
    last = 's.last_idx_scan' if version_num >= 160000 else 'NULL::timestamptz'
    return _rows(session, _q(INDEXES, nulls_not_distinct=sql.SQL(nnd), last_idx_scan=sql.SQL(last)))


# the definitions of the indexes a result names (pg_get_indexdef is the costliest part of reading every index)
DEFINITIONS = "SELECT d.oid, pg_get_indexdef(d.oid) AS definition FROM unnest(%s::oid[]) AS d(oid)"


def definitions(session, oids):
    """{oid: CREATE INDEX ...} of the given indexes (the query runs for none too: a fixed number of queries)."""
    return dict((r['oid'], r['definition']) for r in _rows(session, sql.SQL(DEFINITIONS), (sorted(set(oids)),)))


def tables(session, tenant_column):
    return _rows(session, _q(TABLES), dict(tenant=tenant_column))


def stats(session):
    """{(relid, attnum): (avg_width, null_frac)} of pg_stats."""
    return dict(((r['relid'], r['attnum']), (r['avg_width'], r['null_frac'])) for r in _rows(session, _q(STATS)))


def pgstattuple(session, schema, min_bytes):
    """(tables, indexes) measured by pgstattuple: two queries."""
    params = dict(min_bytes=min_bytes)
    tabs = session.rows(_q(PGSTATTUPLE_TABLES, schema=sql.Identifier(schema)), params)
    idxs = session.rows(_q(PGSTATTUPLE_INDEXES, schema=sql.Identifier(schema)), params)
    return tabs, idxs


def sequences(session):
    return session.rows(_q(SEQUENCES))


def databases(session):
    return session.rows(sql.SQL(DATABASES))


def statement_columns(columns):
    """The total/max column names of the installed pg_stat_statements (pure)."""
    columns = set(columns or ())
    total = 'total_exec_time' if 'total_exec_time' in columns else 'total_time'
    longest = 'max_exec_time' if 'max_exec_time' in columns else 'max_time'
    return dict(total=total, max=longest, toplevel='toplevel' in columns)


def statements(session, schema, columns, database_only):
    cols = statement_columns(columns)
    scope = 'AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())' if database_only else ''
    query = sql.SQL(STATEMENTS).format(
        toplevel=sql.SQL('s.toplevel') if cols['toplevel'] else sql.SQL('true'),
        total=sql.Identifier(cols['total']), max=sql.Identifier(cols['max']), schema=sql.Identifier(schema),
        scope=sql.SQL(scope))
    return _rows(session, query)


def statements_reset_time(session, schema):
    return session.scalar(sql.SQL(STATEMENTS_RESET_TIME).format(schema=sql.Identifier(schema)))


def texts(session, schema, keys, chars):
    if not keys:
        return {}
    rows = session.rows(sql.SQL(TEXTS).format(schema=sql.Identifier(schema)), dict(
        chars=chars, queryids=[k[0] for k in keys], dbids=[k[1] for k in keys], userids=[k[2] for k in keys]))
    return dict(((r['queryid'], r['dbid'], r['userid']), r) for r in rows)


def reset(session, schema):
    session.execute(sql.SQL(RESET).format(schema=sql.Identifier(schema)))


def replica_indexes(session):
    return session.rows(sql.SQL(REPLICA_INDEXES))
