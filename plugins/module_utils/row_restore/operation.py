# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_row_restore: the operation and its argument spec. PRIVATE to the collection.

plan() reads everything and decides, changing nothing: the diff checked (`diffs.read_diff`), the tables resolved on
the target and on the source with the same columns and types, the key a primary key or unique index, the source's
rows of every key to insert or update (one REPEATABLE READ snapshot), the target's rows now, a decision per row
(`diffs.decide`: a row changed since the diff is a conflict and stops everything before any change), the foreign-key
order, the triggers, the sequences to move, the undo script's path. apply() does only that, in one transaction:
lock_timeout set, every row to change locked (FOR UPDATE) and decided again (a row changed between plan and apply
stops it too), the undo script written from the locked rows, inserts (referenced tables first), updates, deletes
(referencing tables first), each row count checked, the written rows compared with the source's (a trigger that
rewrote them stops it), sequences moved forward past the restored ids, commit. Any failure rolls everything back
and removes the undo script of the change that did not happen.
"""

from __future__ import annotations

import datetime
import json
import os
import uuid

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts, _clients
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import (
    CatalogError, foreign_keys, parse_table_name, resolve_tables)
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    database_error_message, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils._psql_script import scan_lines
from ansible_collections.procgenie.dbops.plugins.module_utils._timeouts import problem as timeout_problem
from ansible_collections.procgenie.dbops.plugins.module_utils.read_only import tables as stopped_tables
from ansible_collections.procgenie.dbops.plugins.module_utils.row_restore import diffs, statements, undo
from ansible_collections.procgenie.dbops.plugins.module_utils.row_restore.diffs import DiffError
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff import compare as diff_compare
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff import operation as diff_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.table_diff import source as diff_source

# Output settings of both sessions (pg_table_diff's own): the text of a row is the same on both servers and exact
OUTPUT_SETTINGS = diff_compare.SESSION_SETTINGS
UNDO_PREFIX = 'row_restore_'


class RowRestoreError(Exception):
    """A refusal or a failed restore; `result` (conflicts, ...) is merged into the failed result."""

    def __init__(self, msg, result=None):
        super(RowRestoreError, self).__init__(msg)
        self.result = result or {}


ERRORS = (RowRestoreError, DiffError, CatalogError, _artifacts.ArtifactError, diff_compare.TableDiffError,
          diff_source.SourceError)


def argument_spec():
    """pg_row_restore's options: pg_table_diff's `source` (the one definition), a `diff` or the `tables` (and
    `limit`) to compare now, and the restore's own."""
    tables = diff_operation.tables_spec()
    tables.options['tables'] = dict(tables.options['tables'], required=False)
    return diff_source.source_spec().merge(tables).add(
        diff=dict(type='dict'),
        limit=dict(type='int', default=10000),
        delete_extra=dict(type='bool', default=False),
        undo_dir=dict(type='path', required=True),
        lock_timeout=dict(type='str', default='5s'),
        triggers=dict(type='str', default='fire', choices=['fire', 'replica']),
    ).constrain(mutually_exclusive=[('diff', 'tables')], required_one_of=[('diff', 'tables')])


def check_undo_dir(folder):
    """Refuse an undo folder that cannot be written or that others can read (it will hold rows)."""
    try:
        _artifacts.check_folder_can_be_written(folder)
    except _artifacts.ArtifactError as exc:
        raise RowRestoreError('undo_dir: %s' % str(exc).replace('backup folder', 'undo folder'))
    if os.path.isdir(folder) and os.stat(folder).st_mode & 0o007:
        raise RowRestoreError('undo_dir %s can be read or entered by other users; the undo script holds rows: use a '
                              'folder only its owner (and group) can read (chmod o-rwx)' % folder)


def _table_label(table):
    return table['qname']


class RowRestore(SessionOperation):
    """pg_row_restore: plan() decides every row, apply() changes them in one transaction."""

    def __init__(self, params, ctx):
        super(RowRestore, self).__init__(params, ctx)
        self.source = None
        self.tables = []
        self.computed = None
        self.cancel_tokens = []

    def _cancellable(self, session):
        """An AWX cancel (SIGTERM) cancels the session's running statement (a wait for a row lock included) before
        the module exits, so its server session ends at once: psycopg2 waits in Python (wait_select), where the
        signal handler runs."""
        self.cancel_tokens.append(_clients.on_cancel(session.conn.cancel))
        return session

    # ------------------------------------------------------------ sessions
    def _settings(self, session):
        session.execute(sql.SQL('SELECT {}').format(sql.SQL(', ').join(
            sql.SQL('set_config(%s, %s, false)') for _pair in OUTPUT_SETTINGS)),
            [v for pair in OUTPUT_SETTINGS for v in pair])

    def _open_source(self):
        """The source's session in one REPEATABLE READ READ ONLY snapshot, pg_table_diff's settings."""
        self.source = self._cancellable(diff_source.open_source(self.params, log=self.log))
        diff_compare.begin_snapshot(self.source)

    def _diff(self):
        """The diff given, or the tables compared now (pg_table_diff's comparison, its own two snapshots)."""
        if self.params.get('diff') is not None:
            return diffs.read_diff(self.params['diff'])
        if self.params['limit'] < 1:
            raise RowRestoreError('limit must be 1 or more (keys listed per table and kind)')
        sessions = diff_operation.DiffSessions(self.params, self.log).open()
        try:
            tables = diff_compare.compare_tables(sessions.source, sessions.target,
                                                 diff_operation.table_specs(self.params), self.params['limit'])
        finally:
            sessions.close()
        self.computed = tables
        return diffs.read_diff(tables)

    def close(self):
        for token in self.cancel_tokens:
            _clients.forget(token)
        self.cancel_tokens = []
        if self.source is not None:
            diff_compare.end_snapshot(self.source)
            self.source.close()
            self.source = None
        super(RowRestore, self).close()

    def _run(self, session, query, params, shown=None, fetch=False):
        """Run a statement whose parameters hold rows: `queries` gets it with `shown` in their place."""
        with session.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            text = cur.mogrify(query, shown if shown is not None else params)
            self.log.add(text.decode('utf-8', 'replace') if isinstance(text, bytes) else text)
            cur.execute(query, params)
            return [dict(r) for r in cur.fetchall()] if fetch else cur.rowcount

    # ------------------------------------------------------------ plan
    def plan(self):
        params = self.params
        _clients.exit_on_sigterm()
        psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
        check_undo_dir(params['undo_dir'])
        diff_source.source_params(params)  # refuses a source without a place before connecting anywhere
        entries = self._diff()
        truncated = [e['table'] for e in entries if e['truncated']]
        if truncated:
            raise RowRestoreError('the diff of %s is truncated (more differences than its limit listed): run '
                                  'pg_table_diff again with a larger limit, or a narrower where, so that every row '
                                  'to restore is listed' % ', '.join(truncated))
        trouble = timeout_problem('lock_timeout', params['lock_timeout'])
        if trouble:
            raise RowRestoreError(trouble)
        session = self._cancellable(self.open(autocommit=False))
        self._settings(session)
        # the restore writes while the database is in emergency read-only mode (pg_read_only: the runbook's first step)
        session.execute("SELECT set_config('default_transaction_read_only', 'off', false)")
        session.commit()
        try:
            session.execute('SELECT set_config(%s, %s, true)', ['lock_timeout', params['lock_timeout']])
        except psycopg2.Error as exc:
            raise RowRestoreError('lock_timeout %r is not a valid setting: %s' % (
                params['lock_timeout'], database_error_message(exc)))
        session.rollback()
        self._open_source()
        role = session.row(statements.ROLE_SQL)
        if params['triggers'] == 'replica' and not role['superuser']:
            raise RowRestoreError('triggers=replica sets session_replication_role, which only a superuser may set; '
                                  'connect as one, or keep triggers=fire')
        self.tables = [self._read_table(entry) for entry in entries]
        oids = [t['oid'] for t in self.tables]
        twice = sorted(set(t['qname'] for t in self.tables if oids.count(t['oid']) > 1))
        if twice:
            raise RowRestoreError('the diff lists %s more than once (under different names)' % ', '.join(twice))
        insert_order, delete_order, cyclic = diffs.step_order(oids, foreign_keys(session, oids))
        if cyclic:
            self.warn('foreign keys among %s form a cycle: their rows are written in the diff\'s order, which only '
                      'deferrable constraints (SET CONSTRAINTS ALL DEFERRED) always accept' % ', '.join(
                          t['qname'] for t in self.tables if t['oid'] in cyclic))
        by_oid = dict((t['oid'], t) for t in self.tables)
        self._triggers(session, oids)
        conflicts = []
        for table in self.tables:
            try:
                conflicts.extend(self._decide(table))
            except psycopg2.Error as exc:
                if exc.pgcode == '42501' and 'row-level security' in str(exc):
                    raise RowRestoreError('row-level security would hide rows of %s from %s (row_security is off '
                                          'so that it fails instead of restoring a subset): connect as the table '
                                          'owner without FORCE ROW LEVEL SECURITY, a BYPASSRLS role or a superuser. %s'
                                          % (table['qname'], params.get('login_user'), database_error_message(exc)))
                raise
        if conflicts:
            raise RowRestoreError('%d row(s) changed after the diff was taken (or are gone from the source); nothing '
                                  'was changed. Take the diff again and review it: %s' % (
                                      len(conflicts), _shown(conflicts)), dict(conflicts=conflicts))
        self._refuse_cascades(session)
        for table in self.tables:
            table['sequences'] = self._plan_sequences(session, table)
        session.rollback()
        changed = any(table['apply'][a] for table in self.tables for a in diffs.ACTIONS)
        self.insert_order = [by_oid[o] for o in insert_order]
        self.delete_order = [by_oid[o] for o in delete_order]
        stamp = datetime.datetime.now(datetime.timezone.utc)
        undo_path = os.path.join(params['undo_dir'], '%s%s_%s.sql' % (
            UNDO_PREFIX, stamp.strftime('%Y%m%d_%H%M%S'), uuid.uuid4().hex[:6])) if changed else None
        self.written_at = _artifacts.iso(stamp)
        return dict(
            changed=changed, tables=[self._report(t) for t in self.tables], triggers=params['triggers'],
            delete_extra=params['delete_extra'], undo_script=undo_path, conflicts=[], sequences_moved=[],
            order=dict(insert=[_table_label(t) for t in self.insert_order],
                       delete=[_table_label(t) for t in self.delete_order]),
            statements=self._statements(), diff=self.computed, duration_s=self.elapsed())

    def _read_table(self, entry):
        """The target's table of a diff entry with its columns; the same table on the source, same columns."""
        session = self.session
        try:
            schema, name = parse_table_name(entry['table'])
        except CatalogError as exc:
            raise RowRestoreError('diff table %r: %s' % (entry['table'], exc))
        table = resolve_tables(session, [(schema, name)], partitions=False, details=True)[0]
        columns = session.rows(statements.COLUMNS_SQL, [table['oid']])
        names = [c['name'] for c in columns]
        missing = [k for k in entry['key'] if k not in names]
        if missing:
            raise RowRestoreError('%s has no column %s (the diff\'s key)' % (table['qname'], ', '.join(missing)))
        if sorted(entry['key']) != sorted(table['primary_key'] or []) and not session.scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = %s::oid AND x.indisunique "
                "AND x.indisvalid AND x.indpred IS NULL AND x.indexprs IS NULL AND "
                "(SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a "
                " WHERE a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)) = %s::text[])",
                [table['oid'], sorted(entry['key'])]):
            raise RowRestoreError('the diff\'s key (%s) of %s is neither its primary key nor a unique index: rows '
                                  'could not be told apart' % (', '.join(entry['key']), table['qname']))
        source_table = resolve_tables(self.source, [(table['schema'], table['name'])], partitions=False,
                                      missing_ok=True)
        if not source_table:
            raise RowRestoreError('the source has no table %s' % table['qname'])
        source_rows = self.source.rows(statements.COLUMNS_SQL, [source_table[0]['oid']])
        source_columns = dict((c['name'], c['type']) for c in source_rows)
        differ = ['%s (%s here, %s in the source)' % (c['name'], c['type'], source_columns.get(c['name'], 'absent'))
                  for c in columns if source_columns.get(c['name']) != c['type']]
        if differ:
            raise RowRestoreError('%s differs between the source and the target: %s. Restore rows between copies of '
                                  'one schema only' % (table['qname'], ', '.join(differ)))
        table.update(key=list(entry['key']), columns=names, writable=[c['name'] for c in columns if not c['generated']],
                     items=entry['items'], where=entry['where'], diff_name=entry['table'])
        return table

    @staticmethod
    def _keys_json(table, items):
        return json.dumps([dict(zip(table['key'], item['key'])) for item in items])

    def _decide(self, table):
        """Each item's decision from the target's row now and the source's row; the source's rows kept."""
        items = table['items']
        current = dict((r['ord'], r['hash']) for r in self._run(
            self.session, statements.target_state(table), [self._keys_json(table, items)], _keys_shown(items),
            fetch=True))
        wanted = [(i, item) for i, item in enumerate(items, 1) if item['action'] != 'delete']
        table['source_rows'] = {}
        source_hash = {}
        if wanted:
            rows = self._run(self.source, statements.source_rows(table),
                             [self._keys_json(table, [item for _i, item in wanted])], _keys_shown(wanted),
                             fetch=True)
            texts = dict((wanted[r['ord'] - 1][0], r['row']) for r in rows)
            table['source_rows'] = texts
            if texts:
                ords = sorted(texts)
                source_hash = dict((r['ord'], r['hash']) for r in self._run(
                    self.session, statements.rows_hash(table), [[texts[o] for o in ords], ords],
                    ['<%d rows>' % len(ords), ords], fetch=True))
        decisions, conflicts = [], []
        for ordinal, item in enumerate(items, 1):
            decision, reason = diffs.decide(item, current.get(ordinal), source_hash.get(ordinal),
                                            self.params['delete_extra'])
            decisions.append((item, decision, reason))
            if decision == 'conflict':
                conflicts.append(dict(table=table['qname'], action=item['action'], key=item['key'], reason=reason,
                                      expected=item['target_hash'], found=current.get(ordinal)))
        table['decisions'] = decisions
        table['apply'] = dict((a, [(o, it) for o, (it, d, _r) in enumerate(decisions, 1) if d == 'apply'
                                   and it['action'] == a]) for a in diffs.ACTIONS)
        table['counts'] = diffs.summary(decisions)
        return conflicts

    def _triggers(self, session, oids):
        rows = session.rows(statements.TRIGGERS_SQL, [oids])
        for table in self.tables:
            table['triggers'] = [dict(name=r['name'], enabled=r['enabled'] != 'D', before=r['before'],
                                      for_each_row=r['for_each_row']) for r in rows if r['oid'] == table['oid']]
            rewriting = [t['name'] for t in table['triggers'] if t['enabled'] and t['before'] and t['for_each_row']]
            if rewriting and self.params['triggers'] == 'fire' and (table['items']):
                self.warn('%s has BEFORE row triggers (%s) that fire on the restored rows; if one changes them, the '
                          'restore stops (the rows written are compared with the source\'s); triggers=replica skips '
                          'them' % (table['qname'], ', '.join(rewriting)))

    def _refuse_cascades(self, session):
        deleting = [t for t in self.tables if t['apply']['delete']]
        if not deleting:
            return
        rows = session.rows(statements.CASCADES_SQL, [[t['oid'] for t in deleting]])
        if rows:
            raise RowRestoreError('delete_extra would delete rows of %s, which foreign keys reference with ON DELETE '
                                  '%s (%s): the delete would change rows the diff does not list. Restore those rows '
                                  'without delete_extra, or delete the referencing rows first' % (
                                      ', '.join(sorted(set(t['qname'] for t in deleting if t['oid'] in
                                                           set(r['parent'] for r in rows)))),
                                      rows[0]['action'], ', '.join('%s (%s)' % (r['child'], r['name']) for r in rows)))

    def _plan_sequences(self, session, table):
        """Sequences of the table's columns (serial, identity) that restored rows would leave behind."""
        inserted = [table['source_rows'][o] for o, _it in table['apply']['insert'] + table['apply']['update']]
        if not inserted:
            return []
        planned = []
        for seq in session.rows(statements.SEQUENCES_SQL, [[table['oid']]]):
            if seq['increment'] <= 0:
                continue
            deleted = [it for _o, it in table['apply']['delete']]
            top = self._run(session, statements.column_max(table, seq['column'], with_rows=True),
                            [self._keys_json(table, deleted), inserted],
                            _keys_shown(deleted) + ['<%d rows>' % len(inserted)], fetch=True)[0]['max']
            position = dict(session.row(statements.sequence_position(seq)), increment=seq['increment'])
            move = _move_to(top, position)
            if move is not None:
                planned.append(dict(sequence=seq['sequence'], column=seq['column'], regclass=seq['sequence'],
                                    last_value=int(position['last_value']), is_called=position['is_called'],
                                    to=move, schema=seq['schema'], name=seq['name']))
        return planned

    def _report(self, table):
        def keys(action):
            return [it['key'] for _o, it in table['apply'][action]]
        return dict(table=table['qname'], key=table['key'], where=table['where'],
                    insert=dict(count=len(keys('insert')), keys=keys('insert')),
                    update=dict(count=len(keys('update')), keys=keys('update')),
                    delete=dict(count=len(keys('delete')), keys=keys('delete')),
                    already_restored=table['counts']['done'], extra_kept=table['counts']['kept'],
                    triggers=table['triggers'],
                    sequences=[dict(sequence=s['sequence'], column=s['column'], last_value=s['last_value'], to=s['to'])
                               for s in table['sequences']])

    def _statements(self):
        """The statements apply runs, as text with their parameters as %s (the rows are in the undo script and the
        source; the keys in `tables`)."""
        conn = self.session.conn
        out = []
        for action, order in (('insert', self.insert_order), ('update', self.insert_order),
                              ('delete', self.delete_order)):
            for table in order:
                rows = len(table['apply'][action])
                if not rows:
                    continue
                query = dict(insert=statements.insert_rows, update=statements.update_rows,
                             delete=statements.delete_rows)[action](table)
                if query is not None:
                    out.append(dict(table=table['qname'], action=action, rows=rows, sql=query.as_string(conn)))
        for table in self.insert_order:
            for seq in table['sequences']:
                out.append(dict(table=table['qname'], action='setval', rows=0,
                                sql='SELECT setval(%s::regclass, <max of %s>, true)' % (
                                    json.dumps(seq['sequence']), json.dumps(seq['column']))))
        return out

    # ------------------------------------------------------------ apply
    def apply(self, plan):
        if not plan['changed']:
            return plan
        session = self.session
        params = self.params
        session.rollback()
        session.execute('SELECT set_config(%s, %s, true)', ['lock_timeout', params['lock_timeout']])
        if params['triggers'] == 'replica':
            session.execute("SELECT set_config('session_replication_role', 'replica', true)")
        session.execute('SET CONSTRAINTS ALL DEFERRED')
        # writes stopped per table (pg_read_only scope=tables) are lifted inside this transaction only
        lifted = stopped_tables.lift_for_restore(session, [t['oid'] for t in self.tables])
        steps, conflicts = self._lock_and_recheck()
        if conflicts:
            raise RowRestoreError('%d row(s) changed between the plan and the locks; nothing was changed: %s' % (
                len(conflicts), _shown(conflicts)), dict(conflicts=conflicts))
        path = plan['undo_script']
        self._write_undo(path, steps)
        try:
            self._change(plan)
            stopped_tables.drop_lift(session, lifted)
            session.commit()
        except BaseException:
            try:
                session.rollback()
            finally:
                _artifacts.remove_path(path)
            raise
        plan = dict(plan, duration_s=self.elapsed())
        return plan

    def _lock_and_recheck(self):
        """Every row to change locked and decided again; the undo steps from the locked rows."""
        steps, conflicts = [], []
        for table in self.insert_order:
            applying = [(o, it) for a in diffs.ACTIONS for o, it in table['apply'][a]]
            pre = {}
            if applying:
                rows = self._run(self.session, statements.target_state(table, lock=True, with_rows=True),
                                 [self._keys_json(table, [it for _o, it in applying])], _keys_shown(applying),
                                 fetch=True)
                pre = dict((applying[r['ord'] - 1][0], r) for r in rows)
            for ordinal, item in applying:
                found = pre.get(ordinal)
                current = found['hash'] if found else None
                expected_absent = item['action'] == 'insert'
                if (expected_absent and found is not None) or (not expected_absent and current != item['target_hash']):
                    conflicts.append(dict(table=table['qname'], action=item['action'], key=item['key'],
                                          reason='the target row changed after the plan', expected=item['target_hash'],
                                          found=current))
            steps.append(dict(table=table,
                              inserted=[table['source_rows'][o] for o, _it in table['apply']['insert']],
                              updated=[(pre[o]['row'], table['source_rows'][o]) for o, _it in table['apply']['update']
                                       if o in pre],
                              deleted=[pre[o]['row'] for o, _it in table['apply']['delete'] if o in pre]))
        return steps, conflicts

    def _write_undo(self, path, steps):
        text = undo.undo_script(steps, self.written_at, self.params['lock_timeout'])
        problems = scan_lines(text.splitlines(True), 'undo script')
        if problems:  # a bug, never data: every value is a literal
            raise RowRestoreError('the undo script would not be plain SQL: %s' % '; '.join(problems))
        folder = os.path.dirname(path)
        with _artifacts.private_files():
            _artifacts.check_writable_folder(folder)
            tmp = _artifacts.temp_path(path)
            try:
                with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _artifacts.FILE_MODE), 'w',
                               encoding='utf-8') as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                _artifacts.remove_path(tmp)
                raise
        _artifacts.fsync_path(path)

    def _change(self, plan):
        session = self.session
        for action, order in (('insert', self.insert_order), ('update', self.insert_order),
                              ('delete', self.delete_order)):
            for table in order:
                items = table['apply'][action]
                if not items:
                    continue
                if action == 'delete':
                    done = self._run(session, statements.delete_rows(table),
                                     [self._keys_json(table, [it for _o, it in items])], _keys_shown(items))
                else:
                    query = (statements.insert_rows if action == 'insert' else statements.update_rows)(table)
                    if query is None:
                        continue
                    rows = [table['source_rows'][o] for o, _it in items]
                    done = self._run(session, query, [rows], ['<%d rows of %s>' % (len(rows), table['qname'])])
                if done != len(items):
                    raise RowRestoreError('%s of %d row(s) of %s changed %d; the restore was rolled back' % (
                        action, len(items), table['qname'], done))
        for table in self.insert_order:
            rows = [table['source_rows'][o] for o, _it in table['apply']['insert'] + table['apply']['update']]
            if not rows:
                continue
            bad = self._run(session, statements.mismatches(table), [rows], ['<%d rows>' % len(rows)], fetch=True)
            if bad:
                raise RowRestoreError('after the restore, %d row(s) of %s differ from the source (a trigger or rule '
                                      'changed them: %s); the restore was rolled back. triggers=replica skips '
                                      'triggers' % (len(bad), table['qname'], ', '.join(b['key'] for b in bad[:5])),
                                      dict(changed_by_trigger=[dict(table=table['qname'], key=json.loads(b['key']))
                                                               for b in bad]))
        moved = []
        for table in self.insert_order:
            for seq in session.rows(statements.SEQUENCES_SQL, [[table['oid']]]) if table['sequences'] else []:
                if seq['increment'] <= 0:
                    continue
                top = session.row(statements.column_max(table, seq['column']))['max']
                position = dict(session.row(statements.sequence_position(seq)), increment=seq['increment'])
                move = _move_to(top, position)
                if move is not None:
                    session.scalar(statements.SETVAL_SQL, [seq['sequence'], move])
                    moved.append(dict(sequence=seq['sequence'], to=move))
        plan['sequences_moved'] = moved


def _keys_shown(items):
    """What `queries` shows for a JSON parameter of keys (the keys are in the result's `tables`)."""
    return ['<%d keys>' % len(items)]


def _shown(conflicts):
    """The first conflicts for a message."""
    return '; '.join('%s %s %s: %s' % (c['table'], c['action'], json.dumps(c['key']), c['reason'])
                     for c in conflicts[:5])


def _move_to(top, position):
    """Pure: the value to setval (is_called true) so that the sequence's next value is past `top`, or None when it
    already is (never backwards)."""
    if top is None or position is None:
        return None
    top = int(top)
    last = int(position['last_value'])
    next_value = last + int(position.get('increment') or 1) if position['is_called'] else last
    return top if top >= next_value else None
