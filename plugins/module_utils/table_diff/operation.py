# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_table_diff: its options (argument_spec) and the operation `TableDiff`, whose plan() opens both snapshots and
compares; it changes nothing, so apply() returns the plan as it is."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff import compare, source
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff.compare import TableDiffError
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff.source import SourceError

ERRORS = (TableDiffError, SourceError)


def tables_spec():
    """The `tables` option: a list of dict(name, where, key)."""
    return ArgumentSpec(dict(tables=dict(type='list', elements='dict', required=True, options=dict(
        name=dict(type='str', required=True),
        where=dict(type='str'),
        key=dict(type='list', elements='str', no_log=False),
    ))))


def argument_spec():
    spec = source.source_spec().merge(tables_spec())
    return spec.add(limit=dict(type='int', default=100), parallel_workers=dict(type='int', default=0))


def table_specs(params):
    """The module's tables as compare_tables takes them; refuses an empty list and a nonsense limit."""
    if params.get('limit') is not None and params['limit'] < 0:
        raise TableDiffError('limit must be 0 or more (keys listed per table and kind)')
    if (params.get('parallel_workers') or 0) < 0:
        raise TableDiffError('parallel_workers must be 0 (no parallel workers) or more')
    tables = params.get('tables') or []
    if not tables:
        raise TableDiffError('tables must name at least one table')
    return [dict(table=t['name'], where=t.get('where'), key=t.get('key') or None) for t in tables]


class DiffSessions(object):
    """The two sessions of a diff, each in its REPEATABLE READ READ ONLY snapshot with row_security off (for
    pg_row_restore too: `DiffSessions(params, log).open()`, then `.source`, `.target`, `.close()`)."""

    def __init__(self, params, log, target=None):
        self.params = params
        self.log = log
        self.source = None
        self.target = target
        self.own_target = target is None
        self.snapshots = {}

    def open(self):
        from ansible_collections.procgenie.dbops.plugins.module_utils._connection import open_session
        if self.target is None:
            self.target = open_session(self.params, log=self.log)
        self.source = source.open_source(self.params, log=self.log)
        self.snapshots['source'] = compare.begin_snapshot(self.source)
        self.snapshots['target'] = compare.begin_snapshot(self.target)
        return self

    def close(self):
        for name in ('source', 'target'):
            session = getattr(self, name)
            if session is None:
                continue
            compare.end_snapshot(session)
            if name == 'source' or self.own_target:
                session.close()
                setattr(self, name, None)


class TableDiff(SessionOperation):
    """Reads both servers in one snapshot each and compares the tables; never changes anything."""

    def __init__(self, params, ctx):
        super(TableDiff, self).__init__(params, ctx)
        self.sessions = None

    def plan(self):
        specs = table_specs(self.params)
        where = source.describe(self.params)
        self.sessions = DiffSessions(self.params, self.log)
        sessions = self.sessions

        def work():
            sessions.open()
            return compare.compare_tables(sessions.source, sessions.target, specs, self.params['limit'],
                                          self.params['parallel_workers'])
        # every query in a worker: a cancel (SIGTERM) cancels them even while one waits for a lock
        tables = compare.in_worker(work, lambda: (sessions.source, sessions.target))
        differ = [t['table'] for t in tables
                  if t['only_in_source']['count'] or t['only_in_target']['count'] or t['changed']['count']]
        return dict(changed=False, tables=tables, differences=bool(differ), differing_tables=differ,
                    source=where, duration_s=self.elapsed())

    def apply(self, plan):
        return plan

    def close(self):
        if self.sessions is not None:
            self.sessions.close()
            self.sessions = None
        super(TableDiff, self).close()
