# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_index: its options (argument_spec) and the operation `Index`.

plan() connects (cancellable: SIGTERM cancels the running statement), checks lock_timeout with the server, and
either
* for one index: resolves the table, composes the wanted CREATE INDEX (definition.py), lets the server check and
  normalize it on an empty temporary copy of the table, reads the index of that name and decides: nothing, create,
  drop an INVALID leftover then create, replace (only with `replace`), drop, or rebuild; or
* advises (advisor.py): statements from pg_stat_statements or `queries`, candidates proven with hypopg in a
  transaction rolled back; with `apply`, each index advised becomes a planned build like the one above.
apply() runs what was planned (build.py: lock_timeout retries with backoff, INVALID leftovers dropped, validity
checked after every build)."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, parse_table_name, resolve_tables
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import forget, install_sigterm_handler, on_cancel
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import database_error_message, psycopg2, sql
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils._timeouts import problem as timeout_problem
from ansible_collections.procgenie.dbops.plugins.module_utils.index import advisor, build, definition
from ansible_collections.procgenie.dbops.plugins.module_utils.index.definition import IndexFailure

ERRORS = (IndexFailure, CatalogError)


def argument_spec():
    return ArgumentSpec(dict(
        name=dict(type='str'),
        table=dict(type='str'),
        columns=dict(type='list', elements='str'),
        method=dict(type='str', default='btree'),
        unique=dict(type='bool', default=False),
        include=dict(type='list', elements='str', default=[]),
        where=dict(type='str'),
        concurrently=dict(type='bool', default=True),
        state=dict(type='str', default='present', choices=['present', 'absent', 'rebuilt']),
        replace=dict(type='bool', default=False),
        keep_invalid=dict(type='bool', default=False),
        lock_timeout=dict(type='str', default='5s'),
        lock_retries=dict(type='int', default=5),
        lock_retry_delay=dict(type='float', default=1.0),
        advise=dict(type='bool', default=False),
        apply=dict(type='bool', default=False),
        queries=dict(type='list', elements='str'),
        statements=dict(type='int', default=20),
        min_cost_savings=dict(type='float', default=50.0),
        create_extension=dict(type='bool', default=False),
    ), required_if=[('advise', False, ['name']), ('apply', True, ['advise'])],
        mutually_exclusive=[('advise', 'columns'), ('advise', 'where'), ('advise', 'include')])


def check_options(params):
    for name in ('lock_retries', 'lock_retry_delay'):
        if params[name] < 0:
            raise IndexFailure('%s must not be negative (got %s)' % (name, params[name]))
    if params['statements'] < 1:
        raise IndexFailure('statements must be at least 1 (got %s)' % params['statements'])
    if not 0 < params['min_cost_savings'] <= 100:
        raise IndexFailure('min_cost_savings is a percentage above 0 and at most 100 (got %s)' %
                           params['min_cost_savings'])
    if params['advise']:
        if params['state'] != 'present':
            raise IndexFailure('advise works with state present (it proposes indexes to create)')
        if params['apply'] is False and params['replace']:
            raise IndexFailure('replace applies to builds: give apply: true with it, or leave it out')
        return
    if params['state'] == 'present' and (not params['table'] or not params['columns']):
        raise IndexFailure('state present needs table and columns (the index to build)')
    if params['state'] != 'present' and (params['columns'] or params['where'] or params['include']
                                         or params['unique']):
        raise IndexFailure('columns, include, where and unique describe an index to build: state %s takes the name '
                           '(and optionally the table) only' % params['state'])
    if params['name'] and '.' in params['name'] and not params['table']:
        raise IndexFailure('name is the index name without schema (the index lives in its table\'s schema); give '
                           'the table to choose the schema')


class Index(SessionOperation):
    """pg_index: plan() reads and decides; apply() builds, drops or rebuilds what was planned."""

    def __init__(self, params, ctx):
        super(Index, self).__init__(params, ctx)
        self.cancel_token = None
        self.actions = []   # [(action, wanted, existing, table_oid)]
        self.create_extension = False

    def run(self):
        result = super(Index, self).run()
        return dict(result, duration_s=self.elapsed())

    # ------------------------------------------------------------------------------------------ plan
    def connect(self):
        trouble = timeout_problem('lock_timeout', self.params['lock_timeout'])
        if trouble:
            raise IndexFailure(trouble)
        install_sigterm_handler()
        if psycopg2 is not None:
            psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)  # a cancel interrupts a statement
        session = self.open()
        self.cancel_token = on_cancel(session.conn.cancel)
        try:
            session.scalar("SELECT set_config('lock_timeout', %s, false)", (self.params['lock_timeout'],))
        except psycopg2.Error as exc:
            raise IndexFailure('lock_timeout %r refused by the server: %s' % (self.params['lock_timeout'],
                                                                              database_error_message(exc)))
        return session

    def plan(self):
        params = self.params
        check_options(params)
        session = self.connect()
        result = dict(changed=False, state=params['state'], concurrently=params['concurrently'],
                      database=session.scalar('SELECT current_database()'), actions=[], dropped_invalid=[],
                      lock_retries=0)
        if params['concurrently'] and params['state'] == 'rebuilt' and session.server_version_num < 120000:
            raise IndexFailure('REINDEX CONCURRENTLY needs PostgreSQL 12 or later: give concurrently: false')
        if params['advise']:
            self.plan_advice(result)
        else:
            self.plan_index(result)
        result['actions'] = [a[4] for a in self.actions]
        result['changed'] = bool(self.actions) or self.create_extension
        return result

    def table(self, name):
        rows = resolve_tables(self.session, [name], partitions=False)
        table = rows[0]
        table['columns'] = self.session.scalar(
            'SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute WHERE attrelid = %s AND attnum > 0 '
            'AND NOT attisdropped', (table['oid'],)) or []
        return table

    def find_existing(self, name, table):
        """The relation named `name` (in the table's schema, or on the search_path without a table)."""
        if table is not None:
            return definition.relation(self.session, table['schema'], name)
        oid = definition.index_in_search_path(self.session, name)
        return definition.relation_by_oid(self.session, oid) if oid is not None else None

    def plan_index(self, result):
        params = self.params
        table = self.table(params['table']) if params['table'] else None
        name = params['name']
        if table is not None and '.' in name:
            schema, bare = parse_table_name(name)
            if schema is not None and schema != table['schema']:
                raise IndexFailure('the index %s must be in its table\'s schema %s' % (name, table['schema']))
            name = bare
        existing = self.find_existing(name, table)
        if existing is not None and existing['relkind'] not in ('i', 'I'):
            raise IndexFailure('%s.%s is not an index (relkind %s): choose another name' % (
                existing['schema'], existing['name'], existing['relkind']))
        if existing is not None and table is not None and existing['indrelid'] != table['oid'] \
                and params['state'] != 'present':
            raise IndexFailure('the index %s.%s is on the table %s.%s, not on %s' % (
                existing['schema'], name, existing['table_schema'], existing['table_name'], table['qname']))
        entry = dict(name=name, schema=(table or existing or {}).get('schema'),
                     table=('%s.%s' % (table['schema'], table['name'])) if table else (
                         '%s.%s' % (existing['table_schema'], existing['table_name']) if existing else None),
                     exists=existing is not None, valid=existing['valid'] if existing else None,
                     definition_before=existing['definition'] if existing else None, action='none', sql=None)
        result['index'] = entry
        state = params['state']
        if state == 'absent':
            if existing is not None:
                self.refuse_constraint(existing, 'drop')
                self.add(entry, 'drop', None, existing, existing['indrelid'], sql.SQL('DROP INDEX {}{}').format(
                    self.concurrently_sql(), sql.Identifier(existing['schema'], existing['name'])))
            return
        if state == 'rebuilt':
            if existing is None:
                raise IndexFailure('there is no index %s to rebuild' % name)
            self.add(entry, 'rebuild', None, existing, existing['indrelid'], sql.SQL('REINDEX INDEX {}{}').format(
                self.concurrently_sql(), sql.Identifier(existing['schema'], existing['name'])))
            return
        if table['relkind'] == 'p' and params['concurrently']:
            raise IndexFailure('%s is a partitioned table: CREATE INDEX CONCURRENTLY cannot build on it - give '
                               'concurrently: false (locks every partition against writes while it builds), or '
                               'build the index on each partition concurrently, then on the parent ONLY and '
                               'ATTACH them' % table['qname'])
        wanted = self.wanted(name, table)
        entry['sql'] = wanted.statement(concurrently=params['concurrently']).as_string(self.session.conn)
        self.plan_present(entry, wanted, existing, table)

    def concurrently_sql(self):
        return sql.SQL('CONCURRENTLY ') if self.params['concurrently'] else sql.SQL('')

    def wanted(self, name, table, columns=None):
        params = self.params
        method = params['method'] if columns is None else 'btree'
        if not self.session.scalar("SELECT true FROM pg_am WHERE amname = %s AND amtype = 'i'", (method,)):
            raise IndexFailure('method %s is not an index access method of this server (%s)' % (
                method, ', '.join(r['amname'] for r in self.session.rows(
                    "SELECT amname FROM pg_am WHERE amtype = 'i' ORDER BY amname"))))
        if columns is not None:
            elements = [('column', c) for c in columns]
            return definition.Wanted(name, table['schema'], table['name'], elements)
        elements = definition.build_elements(params['columns'], table['columns'])
        predicate = definition.parse_predicate(params['where']) if params['where'] is not None else None
        return definition.Wanted(name, table['schema'], table['name'], elements, method=method,
                                 unique=params['unique'], include=params['include'], predicate=predicate)

    def plan_present(self, entry, wanted, existing, table):
        signature = definition.server_signature(self.session, wanted, table['oid'])
        entry['definition'] = existing['definition'] if existing is not None else None
        if existing is None:
            self.add(entry, 'create', wanted, None, table['oid'])
            return
        if not existing['valid']:
            entry['invalid_before'] = True
            self.warn('%s.%s is an INVALID index (left by an earlier failed concurrent build): it is dropped '
                      '%sbefore the build' % (existing['schema'], existing['name'],
                                              'concurrently ' if self.params['concurrently'] else ''))
            self.add(entry, 'create', wanted, existing, table['oid'])
            return
        differ = definition.differences(existing, signature) if existing['indrelid'] == table['oid'] else ['table']
        if not differ:
            return
        entry['differences'] = differ
        if not self.params['replace']:
            raise IndexFailure('an index %s.%s already exists with another definition (%s differ): %s - give '
                               'replace: true to rebuild it as %s, or choose another name' % (
                                   existing['schema'], existing['name'], ', '.join(differ), existing['definition'],
                                   entry['sql']))
        self.refuse_constraint(existing, 'replace')
        if self.params['concurrently']:
            temporary = definition.temporary_name(wanted.name)
            beside = definition.relation(self.session, wanted.schema, temporary)
            if beside is not None and (beside['relkind'] not in ('i', 'I') or beside['valid']):
                raise IndexFailure('%s.%s, the name the replacement is built under before the swap, is taken (an '
                                   'interrupted replacement?): %s - drop or rename it first' % (
                                       wanted.schema, temporary, beside['definition'] or beside['relkind']))
        self.add(entry, 'replace', wanted, existing, table['oid'])

    def refuse_constraint(self, existing, what):
        if existing.get('constraints'):
            raise IndexFailure('%s.%s backs the constraint %s: pg_index does not %s it (ALTER TABLE ... DROP/ADD '
                               'CONSTRAINT does, in a migration)' % (existing['schema'], existing['name'],
                                                                     existing['constraints'], what))

    def add(self, entry, action, wanted, existing, table_oid, statement=None):
        entry['action'] = action
        if statement is not None:
            entry['sql'] = statement.as_string(self.session.conn)
        self.actions.append((action, wanted, existing, table_oid, entry))
        return entry

    def plan_advice(self, result):
        params = self.params
        session = self.session
        state = advisor.hypopg_state(session)
        major = session.server_version_num // 10000
        result['hypopg'] = dict(state, message=None)
        result['advice'] = []
        result['advisor'] = dict(source='queries' if params['queries'] else 'pg_stat_statements', statements=[],
                                 rejected=[], message=None)
        if not state['available'] and not state['installed']:
            message = advisor.HYPOPG_HELP.format(major=major)
            result['hypopg']['message'] = message
            if params['apply']:
                raise IndexFailure('hypopg is not available on the server: %s' % message, result)
            self.warn(message)
            return
        if params['queries']:
            statements = [advisor.Statement(q) for q in params['queries']]
        else:
            rows, why = advisor.stat_statements(session, params['statements'])
            if rows is None:
                result['advisor']['message'] = why
                self.warn(why)
                return
            statements = [advisor.Statement(r['query'], r['calls'], r['total_ms']) for r in rows]
        for statement in statements:
            advisor.parse_statement(statement)
        in_transaction = not state['installed']
        if in_transaction and params['create_extension']:
            self.create_extension = True
            result['hypopg']['created'] = True
        session.execute('BEGIN')
        try:
            advice, rejected, report = advisor.Advisor(session, params, self.warn).run(statements, in_transaction)
        except IndexFailure as exc:
            exc.result = result
            raise
        except psycopg2.Error as exc:
            raise IndexFailure('the advisor failed: %s' % database_error_message(exc), result)
        finally:
            session.execute('ROLLBACK')
        result['advice'] = advice
        result['advisor'].update(statements=report, rejected=rejected)
        if not params['apply']:
            return
        for item in advice:
            table = self.table('%s.%s' % (sql.Identifier(item['schema']).as_string(session.conn),
                                          sql.Identifier(item['table_name']).as_string(session.conn)))
            wanted = self.wanted(item['name'], table, columns=item['columns'])
            existing = definition.relation(session, table['schema'], item['name'])
            if existing is not None and existing['relkind'] not in ('i', 'I'):
                raise IndexFailure('%s.%s (the name of the advised index) is not an index' % (
                    existing['schema'], existing['name']), result)
            entry = dict(name=item['name'], schema=table['schema'], table=item['table'], exists=existing is not None,
                         valid=existing['valid'] if existing else None,
                         definition_before=existing['definition'] if existing else None, action='none',
                         sql=wanted.statement(concurrently=params['concurrently']).as_string(session.conn))
            item['action'] = entry
            self.plan_present(entry, wanted, existing, table)

    # ------------------------------------------------------------------------------------------ apply
    def apply(self, plan):
        result = dict(plan)
        record = dict(dropped_invalid=[], lock_retries=0, statements=[])
        session = self.session
        concurrently = self.params['concurrently']
        if self.create_extension:
            session.execute('CREATE EXTENSION IF NOT EXISTS hypopg')
        builder = build.Builder(session, self.params, record)
        try:
            for action, wanted, existing, table_oid, entry in self.actions:
                if action == 'create':
                    builder.create(wanted, table_oid, concurrently)
                elif action == 'replace':
                    builder.replace(wanted, existing, table_oid, concurrently)
                elif action == 'drop':
                    builder.drop(existing['schema'], existing['name'], table_oid, concurrently)
                elif action == 'rebuild':
                    builder.reindex(existing['schema'], existing['name'], table_oid, concurrently)
                if action in ('create', 'replace', 'rebuild'):
                    after = definition.relation(session, wanted.schema if wanted else existing['schema'],
                                                wanted.name if wanted else existing['name'])
                    entry['definition'] = after['definition'] if after else None
                entry['done'] = True
        except IndexFailure as exc:
            exc.result = dict(result, dropped_invalid=record['dropped_invalid'], lock_retries=record['lock_retries'],
                              executed=record['statements'], **dict((k, v) for k, v in record.items() if k not in (
                                  'dropped_invalid', 'lock_retries', 'statements')))
            raise
        result.update(dropped_invalid=record['dropped_invalid'], lock_retries=record['lock_retries'],
                      executed=record['statements'])
        return result

    def close(self):
        if self.cancel_token is not None:
            forget(self.cancel_token)
            self.cancel_token = None
        super(Index, self).close()
