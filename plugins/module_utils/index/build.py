# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Building, dropping and rebuilding an index with the guards of a production change.

Every statement runs on an autocommit session (CREATE/DROP INDEX CONCURRENTLY and REINDEX CONCURRENTLY cannot run
in a transaction block) with the session's ``lock_timeout``; a lock timeout is retried with backoff
(`_lock_retry.with_lock_retries`). A concurrent build that fails after its catalog entry was made (a lock timeout
while it waits for older transactions, a duplicate key of a unique index, a cancel) leaves an INVALID index: before
each attempt an INVALID index of the name is dropped concurrently (and recorded in ``dropped_invalid``); after the
build ``indisvalid`` is checked, and a build that failed or left an invalid index fails the module with
PostgreSQL's reason, the invalid index dropped unless ``keep_invalid``."""

from __future__ import annotations

import re

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import database_error_message, psycopg2, sql
from ansible_collections.procgenie.dbops.plugins.module_utils._lock_retry import (
    LockRetriesExhausted, lock_holders, with_lock_retries)
from ansible_collections.procgenie.dbops.plugins.module_utils.index import definition
from ansible_collections.procgenie.dbops.plugins.module_utils.index.definition import IndexFailure


class Builder(object):
    """Runs the index statements of one operation on `session`; records what it did in `self.record`
    (dropped_invalid, lock_retries, statements)."""

    def __init__(self, session, params, record):
        self.session = session
        self.params = params
        self.record = record

    # ------------------------------------------------------------------------------------------ helpers
    def qualified(self, schema, name):
        return '%s.%s' % (schema, name)

    def retried(self, action, what, table_oid):
        try:
            result, retries = with_lock_retries(action, self.params['lock_retries'], self.params['lock_retry_delay'])
        except LockRetriesExhausted as exc:
            holders = lock_holders(self.session, [table_oid])
            self.record['blocking_pids'] = holders
            raise IndexFailure('%s: lock_timeout (%s) reached %d time(s) (lock_retries %d); sessions holding a lock '
                               'on the table: %s' % (what, self.params['lock_timeout'], exc.attempts,
                                                     self.params['lock_retries'],
                                                     ', '.join(str(p) for p in holders) or 'none any more'),
                               self.record)
        self.record['lock_retries'] = self.record.get('lock_retries', 0) + retries
        return result

    def run(self, statement):
        self.session.execute(statement)
        self.record.setdefault('statements', []).append(statement.as_string(self.session.conn)
                                                        if hasattr(statement, 'as_string') else statement)

    def drop_if_invalid(self, schema, name, concurrently=True):
        """Drop the index `schema.name` if it is INVALID (a failed concurrent build's leftover); True if dropped."""
        found = definition.relation(self.session, schema, name)
        if found is None or found['relkind'] not in ('i', 'I') or found['valid']:
            return False
        self.run(sql.SQL('DROP INDEX {}{}').format(
            sql.SQL('CONCURRENTLY ') if concurrently else sql.SQL(''), sql.Identifier(schema, name)))
        self.record.setdefault('dropped_invalid', []).append(self.qualified(schema, name))
        return True

    # ------------------------------------------------------------------------------------------ operations
    def create(self, wanted, table_oid, concurrently, name=None):
        """CREATE INDEX [CONCURRENTLY] `wanted` (under `name` if given), retried on lock timeouts; an INVALID
        leftover of the name dropped before each attempt; validity checked after."""
        name = name or wanted.name
        statement = wanted.statement(concurrently=concurrently, name=name)

        def attempt():
            self.drop_if_invalid(wanted.schema, name, concurrently)
            self.run(statement)

        try:
            self.retried(attempt, 'CREATE INDEX %s' % self.qualified(wanted.schema, name), table_oid)
        except IndexFailure:
            self.fail_invalid(wanted.schema, name, concurrently, None)
            raise
        except psycopg2.Error as exc:
            self.fail_invalid(wanted.schema, name, concurrently, exc)
            raise IndexFailure('CREATE INDEX %s failed: %s' % (self.qualified(wanted.schema, name),
                                                               database_error_message(exc)), self.record)
        self.check_valid(wanted.schema, name, concurrently, 'CREATE INDEX')

    def fail_invalid(self, schema, name, concurrently, exc):
        """After a failed build: an INVALID index it left is dropped (unless keep_invalid) and recorded."""
        try:
            found = definition.relation(self.session, schema, name)
        except psycopg2.Error:
            return
        if found is None or found['relkind'] not in ('i', 'I') or found['valid']:
            return
        self.record['invalid_index'] = self.qualified(schema, name)
        if self.params['keep_invalid']:
            self.record['invalid_kept'] = True
            return
        try:
            self.retried(lambda: self.drop_if_invalid(schema, name, concurrently),
                         'DROP INDEX of the invalid %s' % self.qualified(schema, name), found['indrelid'])
        except (IndexFailure, psycopg2.Error) as drop_exc:
            self.record['invalid_drop_error'] = str(drop_exc)

    def check_valid(self, schema, name, concurrently, what):
        found = definition.relation(self.session, schema, name)
        if found is not None and found['valid']:
            return found
        self.record['invalid_index'] = self.qualified(schema, name)
        if found is not None and not self.params['keep_invalid']:
            self.drop_if_invalid(schema, name, concurrently)
        raise IndexFailure('%s %s finished but the index is %s%s' % (
            what, self.qualified(schema, name), 'missing' if found is None else 'INVALID',
            '' if found is None or self.params['keep_invalid'] else ' (dropped)'), self.record)

    def drop(self, schema, name, table_oid, concurrently):
        statement = sql.SQL('DROP INDEX {}IF EXISTS {}').format(
            sql.SQL('CONCURRENTLY ') if concurrently else sql.SQL(''), sql.Identifier(schema, name))
        try:
            self.retried(lambda: self.run(statement), 'DROP INDEX %s' % self.qualified(schema, name), table_oid)
        except psycopg2.Error as exc:
            raise IndexFailure('DROP INDEX %s failed: %s' % (self.qualified(schema, name),
                                                             database_error_message(exc)), self.record)

    def rename(self, schema, name, new_name, table_oid):
        statement = sql.SQL('ALTER INDEX {} RENAME TO {}').format(sql.Identifier(schema, name),
                                                                  sql.Identifier(new_name))
        try:
            self.retried(lambda: self.run(statement), 'ALTER INDEX %s RENAME' % self.qualified(schema, name),
                         table_oid)
        except psycopg2.Error as exc:
            raise IndexFailure('ALTER INDEX %s RENAME TO %s failed: %s' % (
                self.qualified(schema, name), new_name, database_error_message(exc)), self.record)

    def replace(self, wanted, existing, table_oid, concurrently):
        """The index rebuilt to another definition. Concurrently: the new one is built beside the old under a
        temporary name, then the old is dropped and the new renamed (the table keeps an index all along); else in
        one transaction (DROP, CREATE)."""
        if not concurrently:
            def swap():
                self.session.execute('BEGIN')
                try:
                    self.run(sql.SQL('DROP INDEX {}').format(sql.Identifier(existing['schema'], existing['name'])))
                    self.run(wanted.statement(concurrently=False))
                    self.session.execute('COMMIT')
                except Exception:
                    self.session.execute('ROLLBACK')
                    raise
            try:
                self.retried(swap, 'replacing %s' % self.qualified(wanted.schema, wanted.name), table_oid)
            except psycopg2.Error as exc:
                raise IndexFailure('replacing %s failed (nothing changed): %s' % (
                    self.qualified(wanted.schema, wanted.name), database_error_message(exc)), self.record)
            return
        temporary = definition.temporary_name(wanted.name)
        self.create(wanted, table_oid, True, name=temporary)
        self.drop(existing['schema'], existing['name'], existing['indrelid'], True)
        self.rename(wanted.schema, temporary, wanted.name, table_oid)

    def reindex(self, schema, name, table_oid, concurrently):
        """REINDEX INDEX [CONCURRENTLY]; the `<name>_ccnew` leftovers of an earlier failed concurrent rebuild are
        dropped first; the index is checked valid after."""
        if concurrently:
            self.drop_ccnew(name, table_oid)
        statement = sql.SQL('REINDEX INDEX {}{}').format(sql.SQL('CONCURRENTLY ') if concurrently else sql.SQL(''),
                                                         sql.Identifier(schema, name))
        try:
            self.retried(lambda: self.run(statement), 'REINDEX INDEX %s' % self.qualified(schema, name), table_oid)
        except psycopg2.Error as exc:
            if concurrently and not self.params['keep_invalid']:
                self.drop_ccnew(name, table_oid)
            raise IndexFailure('REINDEX INDEX %s failed: %s' % (self.qualified(schema, name),
                                                                database_error_message(exc)), self.record)
        self.check_valid(schema, name, concurrently, 'REINDEX INDEX')

    def drop_ccnew(self, name, table_oid):
        """Drop the INVALID `<name>_ccnew` (and `_ccold`) indexes an interrupted REINDEX CONCURRENTLY left on the
        table."""
        prefix = name.encode('utf-8')[:definition.NAMEDATALEN - len('_ccnew') - 3].decode('utf-8', 'ignore')
        for row in self.session.rows(
                'SELECT n.nspname AS schema, c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid '
                'JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indrelid = %s AND NOT i.indisvalid',
                (table_oid,)):
            rest = row['name'][len(prefix):]
            if row['name'].startswith(prefix) and re.match(r'^.*_cc(new|old)[0-9]*$', rest):
                self.retried(lambda r=row: self.drop_if_invalid(r['schema'], r['name']),
                             'DROP INDEX of the invalid %s' % self.qualified(row['schema'], row['name']), table_oid)
