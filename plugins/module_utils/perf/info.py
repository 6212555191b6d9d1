# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_perf_info: its options (argument_spec) and the operation `PerfInfo`. plan() reads everything in a fixed
number of queries (see `read`) and builds the report with the pure functions of `statements`, `indexes`,
`maintenance` and `findings`; it changes nothing. apply() resets pg_stat_statements when `reset: true` (the only
change the module ever makes), after the statistics were read into the result."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils import _thresholds
from ansible_collections.procgenie.dbops.plugins.module_utils._timeouts import (
    problem as timeout_problem, seconds as timeout_seconds, timeout_option)
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import open_session, psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import database_error_message
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.perf import findings as findings_mod
from ansible_collections.procgenie.dbops.plugins.module_utils.perf import indexes, maintenance, read, statements


class PerfError(Exception):
    """Options that make no sense, or a request the server cannot serve (pgstattuple asked for, not installed)."""


ERRORS = (PerfError,)

# the connection options of a replica (its own statistics: unused there too?)
REPLICA_OPTIONS = dict(
    login_host=dict(type='str'), login_port=dict(type='int'), login_user=dict(type='str'),
    login_password=dict(type='str', no_log=True), login_db=dict(type='str'), login_unix_socket=dict(type='path'),
    ssl_mode=dict(type='str', choices=['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']),
    ca_cert=dict(type='path'), ssl_cert=dict(type='path'), ssl_key=dict(type='path', no_log=False),
)


def replicas_spec():
    """The `replicas` option: a list of connections (unset keys: the module's own)."""
    return ArgumentSpec(dict(replicas=dict(type='list', elements='dict', default=[], options=REPLICA_OPTIONS)))


def argument_spec():
    spec = ArgumentSpec(dict(
        top=dict(type='int', default=20),
        query_length=dict(type='int', default=200),
        statements_scope=dict(type='str', default='all', choices=['all', 'database']),
        since=dict(type='dict'),
        reset=dict(type='bool', default=False),
        tenant_column=dict(type='str', default='tenant_id'),
        bloat=dict(type='str', default='auto', choices=['auto', 'pgstattuple', 'estimate']),
        platform=dict(type='str', default='postgres', choices=['postgres', 'azure']),
        statement_timeout=timeout_option('60s'),
        lock_timeout=timeout_option('5s'),
        findings_limit=dict(type='int', default=50),
    ))
    return spec.merge(_thresholds.thresholds_spec(), replicas_spec())


def check_options(params):
    """The effective thresholds; PerfError for nonsense (pure)."""
    problems = []
    if params['top'] < 1:
        problems.append('top must be at least 1 (got %s)' % params['top'])
    if params['query_length'] < 0:
        problems.append('query_length must not be negative (got %s)' % params['query_length'])
    if (params.get('findings_limit') or 0) < 0:
        problems.append('findings_limit must be 0 (no limit) or more (got %s)' % params['findings_limit'])
    for name in ('statement_timeout', 'lock_timeout'):
        trouble = timeout_problem(name, params[name], positive=True)
        if trouble:
            problems.append(trouble)
    if not (params.get('tenant_column') or '').strip():
        problems.append('tenant_column must not be empty')
    merged, more = _thresholds.check_thresholds(params.get('thresholds'))
    problems.extend(more)
    if params.get('since') is not None:
        try:
            statements.earlier_snapshot(params['since'])
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise PerfError('; '.join(problems))
    return merged


def _iso(value):
    return value.isoformat() if hasattr(value, 'isoformat') else value


class PerfInfo(SessionOperation):
    """pg_perf_info: plan() reads and reports; apply() resets pg_stat_statements when asked, nothing else."""

    def plan(self):
        params = self.params
        thresholds = check_options(params)
        session = self.open()
        read.guards(session, timeout_seconds(params['statement_timeout']) * 1000,
                    timeout_seconds(params['lock_timeout']) * 1000)
        srv = read.server(session)
        method = self.bloat_method(srv)
        idx_rows = read.indexes(session, srv['version_num'])
        tab_rows = read.tables(session, params['tenant_column'])
        if method == 'pgstattuple':
            measured, stats = read.pgstattuple(session, srv['pgstattuple_schema'], thresholds['bloat_min_bytes']), {}
        else:
            measured, stats = None, read.stats(session)
        seq_rows = read.sequences(session)
        db_rows = read.databases(session)
        stmts = self.statements(session, srv)
        if params['reset'] and not stmts['available']:
            raise PerfError('reset: true, but %s' % stmts['message'])
        replicas, replica_scans = self.replicas()
        index_health = indexes.health(idx_rows, tab_rows, thresholds, params['tenant_column'], replica_scans)
        named = indexes.named_indexes(index_health)
        oids = dict((r['index'], r['oid']) for r in idx_rows if r['index'] in named)
        found = read.definitions(session, list(oids.values()))
        indexes.fill_definitions(index_health, dict((name, found.get(oid)) for name, oid in oids.items()))

        top = params['top']
        result = dict(
            changed=bool(params['reset']),
            server=dict(version=srv['version'], version_num=srv['version_num'], major=server_major(srv['version_num']),
                        database=srv['database'], stats_reset=_iso(srv['stats_reset']), now=_iso(srv['now'])),
            statements=stmts,
            indexes=dict(index_health, unused_since=_iso(srv['stats_reset']), replicas=replicas),
            bloat=maintenance.bloat(method, tab_rows, idx_rows, stats, measured, srv['block_size'], thresholds, top),
            vacuum=maintenance.vacuum(tab_rows, db_rows, srv, thresholds, top),
            sequences=maintenance.sequences(seq_rows, thresholds),
            sizes=maintenance.sizes(tab_rows, idx_rows, db_rows, top),
            thresholds=thresholds,
            counts=dict(tables=len(tab_rows), indexes=len(idx_rows), sequences=len(seq_rows)),
        )
        result['findings'], result['findings_omitted'] = findings_mod.findings_omitted(result, params['findings_limit'])
        result['duration_s'] = self.elapsed()
        return result

    def bloat_method(self, srv):
        wanted = self.params['bloat']
        usable = bool(srv.get('pgstattuple_schema')) and bool(srv.get('pgstattuple_usable'))
        if wanted == 'pgstattuple' and not usable:
            raise PerfError('bloat: pgstattuple, but %s' % (
                'the pgstattuple extension is not created in database %s (CREATE EXTENSION pgstattuple)' % srv['database']
                if not srv.get('pgstattuple_schema') else 'the login role may not run pgstattuple_approx/pgstatindex '
                '(grant pg_stat_scan_tables)'))
        if wanted == 'estimate' or not usable:
            return 'estimate'
        return 'pgstattuple'

    def statements(self, session, srv):
        params = self.params
        result = dict(available=False, message=None, reset_done=False, since=params.get('since') is not None,
                      reset_between=False, top_total_time=[], top_mean_time=[], top_calls=[], snapshot=None,
                      extension_version=srv.get('pss_version'), stats_reset=None)
        message = statements.unavailable_message(srv, params['platform'])
        if message:
            result['message'] = message
            return result
        schema = srv['pss_schema']
        try:
            rows = read.statements(session, schema, srv['pss_columns'], params['statements_scope'] == 'database')
            stats_reset = _iso(read.statements_reset_time(session, schema)) if srv.get('pss_info') else None
        except psycopg2.Error as exc:  # pylint: disable=no-member
            result['message'] = 'pg_stat_statements cannot be read: %s' % database_error_message(
                exc, params.get('login_password'))
            return result
        result.update(available=True, stats_reset=stats_reset,
                      snapshot=statements.snapshot(rows, stats_reset, _iso(srv['now'])))
        if params.get('since') is not None:
            rows, result['reset_between'] = statements.deltas(
                rows, statements.earlier_snapshot(params['since']), stats_reset)
            result['since_taken_at'] = statements.earlier_snapshot(params['since']).get('taken_at')
        keys = statements.chosen_keys(rows, params['top'])
        texts = read.texts(session, schema, keys, params['query_length']) if params['query_length'] else {}
        result.update(statements.top(rows, texts, params['top'], params['query_length']))
        self.pss_schema = schema
        return result

    def replicas(self):
        """[{server, stats_reset, in_recovery}], [{index: idx_scan}] of every replica given (one query each)."""
        infos, scans = [], []
        for other in self.params.get('replicas') or []:
            options = dict((k, v) for k, v in other.items() if v is not None)
            session = open_session(dict(self.params, **options), log=self.log)
            try:
                rows = read.replica_indexes(session)
            finally:
                session.close()
            where = '%s:%s' % (options.get('login_host') or options.get('login_unix_socket')
                               or self.params.get('login_host') or 'socket',
                               options.get('login_port') or self.params.get('login_port'))
            infos.append(dict(server=where, stats_reset=_iso(rows[0]['stats_reset']) if rows else None,
                              in_recovery=rows[0]['in_recovery'] if rows else None))
            scans.append(dict((r['index'], r['idx_scan']) for r in rows))
        return infos, scans if scans else None

    def apply(self, plan):
        if self.params['reset']:
            read.reset(self.session, self.pss_schema)
            plan['statements']['reset_done'] = True
        return plan
