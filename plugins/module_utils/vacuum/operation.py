# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_vacuum: its options (`argument_spec`) and the operation `Vacuum`.

plan() reads and refuses everything before anything changes: the options (VACUUM FULL outside a maintenance window,
nonsense numbers), the tables (named, or over the thresholds, the oldest relfrozenxid first), and with
``method: repack`` pg_repack's preflight for every table (extension and client of one version, a usable key, free
disk, no transaction that would hold it) and the leftovers of interrupted runs. apply() drops those leftovers, then
works one table at a time while the time budget lasts, each bounded by statement_timeout (VACUUM) or the same bound
on the pg_repack process, and reads size and dead tuples after each.
"""

from __future__ import annotations

import time

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, qualified, resolve_tables
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import (
    ClientError, forget, install_sigterm_handler, on_cancel)
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    database_error_message, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils._timeouts import (
    problem as timeout_problem, seconds as timeout_seconds, timeout_option)
from ansible_collections.procgenie.dbops.plugins.module_utils._thresholds import check_thresholds, thresholds_spec
from ansible_collections.procgenie.dbops.plugins.module_utils.vacuum import repack, selection
from ansible_collections.procgenie.dbops.plugins.module_utils.vacuum.repack import RepackError


class VacuumError(Exception):
    """A refusal (options, tables, pg_repack's preflight) or tables that failed; `result` is merged into the failed
    result."""

    def __init__(self, msg, result=None):
        super(VacuumError, self).__init__(msg)
        self.result = result


ERRORS = (VacuumError, RepackError)
MESSAGES_KEPT = 40  # lines of VACUUM VERBOSE / pg_repack output kept per table

FULL_REFUSED = ('VACUUM FULL rewrites each table under an ACCESS EXCLUSIVE lock held for the whole rewrite (no reads, '
                'no writes of the table until it ends); it runs only with maintenance_window: true. Outside a '
                'maintenance window use method: repack (pg_repack, online).')


def argument_spec():
    spec = ArgumentSpec(dict(
        tables=dict(type='list', elements='str'),
        method=dict(type='str', default='vacuum', choices=['vacuum', 'repack']),
        analyze=dict(type='bool', default=True),
        freeze=dict(type='bool', default=False),
        verbose=dict(type='bool', default=False),
        full=dict(type='bool', default=False),
        maintenance_window=dict(type='bool', default=False),
        time_budget=dict(type='float'),
        statement_timeout=timeout_option(),
        lock_timeout=timeout_option('5s'),
        wait_timeout=dict(type='int', default=60),
        no_kill_backend=dict(type='bool', default=True),
        jobs=dict(type='int', default=1),
        disk_check=dict(type='str', default='required', choices=['required', 'best_effort']),
    ))
    return spec.merge(thresholds_spec())


def check_params(params):
    """Pure: the problems of the options (an empty list: none)."""
    problems = []
    if params.get('time_budget') is not None and params['time_budget'] <= 0:
        problems.append('time_budget must be more than 0 seconds (leave it out for no limit); got %s'
                        % params['time_budget'])
    for name, positive in (('statement_timeout', True), ('lock_timeout', False)):
        trouble = timeout_problem(name, params.get(name), positive=positive)
        if trouble:
            problems.append(trouble)
    if params.get('wait_timeout') is not None and params['wait_timeout'] < 1:
        problems.append('wait_timeout must be at least 1 second; got %s' % params['wait_timeout'])
    if params.get('jobs') is not None and params['jobs'] < 1:
        problems.append('jobs must be at least 1; got %s' % params['jobs'])
    if params.get('full'):
        if params.get('method') == 'repack':
            problems.append('full and method: repack exclude each other (pg_repack is the online VACUUM FULL)')
        elif not params.get('maintenance_window'):
            problems.append(FULL_REFUSED)
        elif not timeout_problem('lock_timeout', params.get('lock_timeout')) \
                and not timeout_seconds(params.get('lock_timeout')):
            problems.append('VACUUM FULL needs a lock_timeout above 0: waiting for its ACCESS EXCLUSIVE lock, it '
                            'would queue every reader and writer of the table behind it')
    if (params.get('full') or params.get('method') == 'repack') and not params.get('tables'):
        problems.append('%s rewrites tables: name them in tables (pg_perf_info\'s bloat list names the bloated ones)'
                        % ('VACUUM FULL' if params.get('full') else 'pg_repack'))
    return problems


def action_of(params):
    """Pure: what runs on each table, as the result shows it."""
    if params.get('method') == 'repack':
        return 'pg_repack'
    options = selection.vacuum_options(params)
    return 'VACUUM (%s)' % ', '.join(options) if options else 'VACUUM'


def _ms(seconds):
    return '%dms' % max(int(round(seconds * 1000)), 1)


class Vacuum(SessionOperation):
    """VACUUM or pg_repack of the chosen tables (see the module docstring)."""

    programs = True

    def __init__(self, params, ctx):
        super(Vacuum, self).__init__(params, ctx)
        self.client = None
        self.superuser = True
        self.database = None
        self.filenodes = {}
        self.cancel_token = None

    # ------------------------------------------------------------ plan
    def plan(self):
        params = self.params
        problems = check_params(params)
        thresholds, more = check_thresholds(params.get('thresholds'))
        problems += more
        if problems:
            raise VacuumError('; '.join(problems))
        install_sigterm_handler()
        psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)  # a cancel (SIGTERM) interrupts a VACUUM
        session = self.open()
        self.cancel_token = on_cancel(session.conn.cancel)
        facts = session.row(selection.SETTINGS_SQL)
        settings = selection.settings_of(facts)
        self.superuser = bool(facts['superuser'])
        self.database = facts['database']
        named = None
        if params.get('tables'):
            try:
                resolved = resolve_tables(session, params['tables'], partitions=True)
            except CatalogError as exc:
                raise VacuumError(str(exc))
            named = set(r['oid'] for r in resolved if r['relkind'] == 'r')
        rows = session.rows(selection.TABLES_SQL.format(maintain=selection.maintain_condition(
            session.server_version_num)), dict(oids=sorted(named or []), all=named is None,
                                               skip=list(selection.SKIP_SCHEMAS)))
        chosen, skipped = selection.choose(rows, thresholds, settings, named)
        leftovers = []
        if params['method'] == 'repack':
            chosen, refused, leftovers = self._preflight(session, chosen)
            skipped += refused
        else:
            leftovers = repack.find_leftovers(session)
        for group in leftovers:
            group['status'] = 'running' if group['running'] else 'planned'
        action = action_of(params)
        tables = [dict(table=r['qname'], oid=r['oid'], schema=r['schema'], name=r['name'], action=action,
                       status='planned', reason=r['reason'], duration_s=None, bytes_before=r['bytes'],
                       bytes_after=None, dead_before=r['n_dead_tup'], dead_after=None, xid_age=r['xid_age'],
                       mxid_age=r['mxid_age']) for r in chosen]
        self.filenodes = dict((r['oid'], r['relfilenode']) for r in chosen)
        for item in skipped:
            self.warn('pg_vacuum skips %s: %s' % (item['table'], item['reason']))
        return dict(changed=bool(tables) or any(g['status'] == 'planned' for g in leftovers), database=self.database,
                    method=params['method'], tables=tables, skipped_tables=skipped, leftovers=leftovers,
                    settings=settings, thresholds=thresholds, time_budget=params.get('time_budget'))

    def _preflight(self, session, chosen):
        """pg_repack's preflight of every chosen table: (usable tables, skipped, leftovers). Missing extension or
        client, or versions that differ, fail the module (RepackError)."""
        params = self.params
        ext = repack.extension(session)
        path, version = repack.find_client(params.get('pg_bindir'), ext['version'])
        self.client = path
        self.runner.versions['pg_repack'] = version
        leftovers = repack.find_leftovers(session)
        running = set(g['target'] for g in leftovers if g['running'])
        key_info = repack.keys(session, [r['oid'] for r in chosen])
        holding = repack.holders(session, params['wait_timeout'])
        data_dir, unchecked = repack.local_data_directory(session)
        usable, skipped = [], []
        for row in chosen:
            reasons = []
            if row['oid'] in running:
                reasons.append('a pg_repack is running on it now')
            if not (key_info.get(row['oid']) or {}).get('has_key'):
                reasons.append('it has no primary key nor a valid unique index on NOT NULL columns (pg_repack needs '
                               'one to replay the changes made while it copies)')
            invalid = (key_info.get(row['oid']) or {}).get('invalid_indexes') or []
            if invalid:
                reasons.append('INVALID index(es) %s: pg_repack does not rebuild them (it warns "skipping invalid '
                               'index" and leaves them as they are); drop or rebuild them first (pg_index state: '
                               'absent or rebuilt)' % ', '.join(invalid))
            location = (key_info.get(row['oid']) or {}).get('location') or data_dir
            needed = repack.DISK_FACTOR * int(row['bytes'] or 0)
            if data_dir is not None and location:
                verdict = repack.disk_verdict(needed, repack.free_bytes(location), location)
                if verdict:
                    reasons.append(verdict)
            elif params['disk_check'] == 'required':
                reasons.append('free disk could not be checked (%s); pg_repack needs about %d bytes free '
                               '(disk_check: best_effort goes on without the check)' % (unchecked, needed))
            else:
                self.warn('free disk for pg_repack of %s not checked: %s' % (row['qname'], unchecked))
            if holding:
                first = holding[0]
                reasons.append('%d transaction(s) of this database open for more than wait_timeout (%ss) would hold '
                               'pg_repack (it waits for every older transaction before copying): the oldest %s, '
                               '%s, open %.0f s' % (len(holding), params['wait_timeout'],
                                                    'pid %s' % first['pid'] if first['pid'] else 'a prepared one',
                                                    first['state'], first['transaction_s'] or 0))
            if reasons:
                skipped.append(dict(table=row['qname'], reason='; '.join(reasons)))
            else:
                usable.append(row)
        return usable, skipped, leftovers

    def close(self):
        if self.cancel_token is not None:
            forget(self.cancel_token)
            self.cancel_token = None
        super(Vacuum, self).close()

    # ------------------------------------------------------------ apply
    def apply(self, plan):
        params = self.params
        session = self.session
        budget = selection.Budget(params.get('time_budget'))
        lock_ms = int(round((timeout_seconds(params.get('lock_timeout')) or 0) * 1000))
        changed = False
        for group in plan['leftovers']:
            if group['status'] == 'planned':
                group['status'] = repack.clean_leftovers(session, group, lock_ms or 5000)
                changed = changed or group['status'] == 'cleaned'
        blocked = set(g['target'] for g in plan['leftovers'] if g['status'] != 'cleaned')
        done, failed = [], []
        for entry in plan['tables']:
            if budget.spent():
                reason = 'the time budget of %ss was spent before it' % params['time_budget']
                plan['skipped_tables'].append(dict(table=entry['table'], reason=reason))
                continue
            if params['method'] == 'repack' and entry['oid'] in blocked:
                reason = ('leftovers of an interrupted pg_repack on it could not be dropped (a pg_repack runs on it, '
                          'or lock_timeout)')
                plan['skipped_tables'].append(dict(table=entry['table'], reason=reason))
                continue
            started = time.monotonic()
            if params['method'] == 'repack':
                self._repack(entry, budget)
            else:
                self._vacuum(entry, budget, lock_ms)
            entry['duration_s'] = round(time.monotonic() - started, 3)
            after = session.row(selection.STATS_SQL, [entry['oid']]) or {}
            entry['bytes_after'] = after.get('bytes')
            entry['dead_after'] = after.get('n_dead_tup')
            if params['method'] == 'repack' and entry['status'] == 'done' \
                    and after.get('relfilenode') == self.filenodes.get(entry['oid']):
                entry['status'] = 'failed'
                entry['error'] = 'pg_repack exited 0 but did not rewrite the table: %s' % (
                    ' '.join(entry.get('messages') or []) or 'no output')
            changed = changed or entry['status'] in ('done', 'timed_out')
            done.append(entry)
            if entry['status'] == 'failed':
                failed.append(entry)
            elif entry['status'] != 'done':
                self.warn('%s of %s: %s' % (entry['action'], entry['table'], entry.get('error') or entry['status']))
        plan['tables'] = done
        plan['changed'] = changed
        if failed:
            raise VacuumError('%s failed on %s' % (params['method'], '; '.join(
                '%s: %s' % (e['table'], e.get('error')) for e in failed)), result=plan)
        return plan

    def _vacuum(self, entry, budget, lock_ms):
        session = self.session
        params = self.params
        options = selection.vacuum_options(params)
        target = qualified(entry['schema'], entry['name'])
        if options:
            statement = sql.SQL('VACUUM ({}) {}').format(sql.SQL(', ').join(sql.SQL(o) for o in options), target)
        else:
            statement = sql.SQL('VACUUM {}').format(target)
        timeout, by_budget = budget.timeout(timeout_seconds(params.get('statement_timeout')))
        session.execute("SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false)",
                        [_ms(timeout) if timeout else '0', '%dms' % lock_ms])
        notices = session.conn.notices
        del notices[:]
        try:
            session.execute(statement)
            entry['status'] = 'done'
        except psycopg2.Error as exc:
            code = getattr(exc, 'pgcode', None)
            if code == '57014':  # query_canceled: statement_timeout
                entry['status'] = 'timed_out'
                entry['error'] = 'stopped after %.1f s by %s' % (
                    timeout, 'the time budget' if by_budget else 'statement_timeout')
            elif code == '55P03':
                entry['status'] = 'lock_timeout'
                entry['error'] = 'lock not granted within lock_timeout (%s): %s' % (
                    params['lock_timeout'], database_error_message(exc))
            else:
                entry['status'] = 'failed'
                entry['error'] = database_error_message(exc)
        finally:
            session.execute("SELECT set_config('statement_timeout', '0', false), set_config('lock_timeout', '0', "
                            "false)")
        if params.get('verbose'):
            entry['messages'] = [n.strip() for n in notices][-MESSAGES_KEPT:]

    def _repack(self, entry, budget):
        params = self.params
        timeout, by_budget = budget.timeout(timeout_seconds(params.get('statement_timeout')))
        command = repack.argv(self.client, self.database, entry['table'], params['wait_timeout'],
                              params['no_kill_backend'], params['jobs'], self.superuser)
        try:
            rc, out, err = self.runner.run(command, database=self.database, timeout=timeout)
            entry['status'] = 'done' if rc == 0 else 'failed'
            entry['messages'] = [line for line in (err + out).splitlines() if line.strip()][-MESSAGES_KEPT:]
        except ClientError as exc:
            timed_out = 'did not finish within' in str(exc)
            entry['status'] = 'timed_out' if timed_out else 'failed'
            entry['error'] = ('stopped after %.1f s by %s' % (timeout, 'the time budget' if by_budget
                                                              else 'statement_timeout')) if timed_out else str(exc)
            # pg_repack ends without cleaning up when killed (and sometimes when it fails): drop what it left now
            lock_ms = int(round((timeout_seconds(params.get('lock_timeout')) or 5) * 1000))
            for group in repack.find_leftovers(self.session):
                if group['target'] == entry['oid']:
                    entry['leftovers'] = repack.clean_leftovers(self.session, group, lock_ms)
