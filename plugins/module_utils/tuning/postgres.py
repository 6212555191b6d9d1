# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_tune_params, provider postgres: ALTER SYSTEM + pg_reload_conf(), per role/database settings, restarts.

`Tune` is an `_operation.Operation`. Its plan() reads and validates everything before the first change: the
options the argument spec cannot bound (recommend.check_options), every wanted value all together (the pg_settings
check of recommend.normalize, the refusal of control characters, the server's own parser through set_config() in a
transaction that is rolled back, for parameters a session may set, and the ALTER SYSTEM privilege), the role
settings' roles and databases, the pool, and the restart's program, data directory and os_user when a restart is
allowed and needed. It returns what check mode reports. apply() only executes that plan: ALTER SYSTEM cannot run in a
transaction, so the parameters are written one by one; when one still fails, those written before it are set back
to what postgresql.auto.conf held (pg_file_settings read during planning); then the session settings go in one
transaction, the configuration is reloaded, and the server restarted when allowed and needed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec, client_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._capacity import pool_check
from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, QueryLog, database_error_message, psycopg2, sql)
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning import recommend as tuning
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning.options import changes_diff, label, public
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning.recommend import TuningError

SETTINGS_COLUMNS = sql.SQL(
    'SELECT lower(name) AS name, setting, unit, vartype, context, source, min_val, max_val, enumvals, boot_val, '
    'reset_val, pending_restart FROM pg_settings WHERE lower(name) = ANY(%s)') if sql is not None else None
AUTO_CONF = 'postgresql.auto.conf'
ROLE_CONTEXTS = ('user', 'superuser')
# Parameters a hot standby needs at least as high as its primary's (or replay stops or pauses).
STANDBY_MINIMUMS = ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions',
                    'max_locks_per_transaction')


def argument_spec():
    """The options of provider postgres: the connection and client options, and how to restart the server."""
    return postgres_spec().merge(client_spec(), ArgumentSpec(dict(
        restart_command=dict(type='list', elements='str'),
        pg_ctl=dict(type='path'),
        data_directory=dict(type='path'),
        os_user=dict(type='str'),
        restart_mode=dict(type='str', default='fast', choices=['smart', 'fast', 'immediate']),
        restart_log=dict(type='path'),
        restart_timeout=dict(type='int', default=120),
    )))


# ---------------------------------------------------------------------------------------------- pure plan steps
def parameter_item(name, setting, entries, wanted=None, wanted_normal=None, file_settings_readable=True):
    """The plan of one parameter: `setting` its pg_settings row, `entries` its [(sourcefile, value)] of
    pg_file_settings in reading order, `wanted` its dict(value, reason) (None: reset it) normalized as
    `wanted_normal`. Returns (item, warning or None); restart_required is left to the caller."""
    running = tuning.normalize(setting['setting'], setting)
    auto = [v for f, v in entries if os.path.basename(f) == AUTO_CONF]
    others = [v for f, v in entries if os.path.basename(f) != AUTO_CONF]
    configured = tuning.normalize(entries[-1][1], setting) if entries else running
    item = dict(name=name, context=setting['context'], unit=setting['unit'], vartype=setting['vartype'],
                source=setting['source'], before=tuning.display(configured, setting),
                running=tuning.display(running, setting))
    warning = None
    if wanted is not None:
        after = wanted_normal
        item.update(value=tuning.value_text(wanted['value']), reason=wanted['reason'],
                    action='set', changed=not tuning.same(configured, after))
        # a list parameter is written element by element, however it was given
        item['_write'] = list(after) if isinstance(after, tuple) else item['value']
    elif not file_settings_readable:
        warning = '%s: cannot tell whether postgresql.auto.conf sets it; not reset' % name
        after = configured
        item.update(action='reset', changed=False)
    else:
        after = tuning.normalize(others[-1], setting) if others else tuning.normalize(setting['boot_val'], setting)
        item.update(action='reset', changed=bool(auto), reason='parameters option: null (reset)')
    item['after'] = tuning.display(after, setting)
    item['_after'] = after
    item['_running'] = running
    return item, warning


def takes_effect(name, running, wanted, shared_buffers_pages):
    """Is the running value the wanted one? wal_buffers = -1 means shared_buffers / 32 between 8 pages (64kB) and
    2048 pages (16MB), which the server resolves at start and reports as such."""
    if name == 'wal_buffers' and wanted == -1 and shared_buffers_pages:
        return running == max(8, min(2048, shared_buffers_pages // 32))
    return tuning.same(running, wanted)


def restart_argv(params, pg_ctl=None, data_directory=None):
    """(argv, cwd) of the restart: restart_command as given, else pg_ctl restart of the data directory."""
    if params['restart_command']:
        return [str(a) for a in params['restart_command']], '/'
    argv = [pg_ctl, 'restart', '-D', data_directory, '-m', params['restart_mode'], '-w', '-t',
            str(params['restart_timeout'])]
    if params['restart_log']:
        argv += ['-l', params['restart_log']]
    return argv, data_directory


def os_user_ids(os_user):
    """subprocess arguments to run a program as os_user (None: as the module's user). Raises TuningError when the
    user does not exist or switching to it needs root."""
    if not os_user:
        return {}
    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        raise TuningError('os_user %s does not exist on this host' % os_user)
    if entry.pw_uid == os.geteuid():
        return {}
    if os.geteuid() != 0:
        raise TuningError('Running the restart as os_user %s needs root; the module runs as %s'
                          % (os_user, pwd.getpwuid(os.geteuid()).pw_name))
    return dict(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])


def _literal(value):
    """The value of ALTER SYSTEM/ALTER ROLE SET: a quoted literal, or a comma-separated list of them."""
    if isinstance(value, (list, tuple)):
        return sql.SQL(', ').join(sql.Literal(str(v)) for v in value)
    return sql.Literal(str(value))


def role_setting_items(role, database, known, values, current):
    """The plan of the session settings of one role_settings entry: `known` the pg_settings rows of the names,
    `values` {name: (value, normalized) or None (reset)}, `current` {name: text} of pg_db_role_setting."""
    items = []
    for name in sorted(values):
        setting = known[name]
        before_raw = current.get(name)
        before = tuning.normalize(before_raw, setting) if before_raw is not None else None
        if values[name] is None:
            after, changed, action, value = None, before_raw is not None, 'reset', None
        else:
            value, after = values[name]
            changed, action = before is None or not tuning.same(before, after), 'set'
        items.append(dict(role=role, database=database, name=name, action=action, _context=setting['context'],
                          _write=(list(after) if isinstance(after, tuple) else tuning.value_text(value))
                          if value is not None else None,
                          value=tuning.value_text(value) if value is not None else None,
                          before=tuning.display(before, setting) if before is not None else None,
                          after=tuning.display(after, setting) if after is not None else None,
                          changed=changed))
    return items


# ---------------------------------------------------------------------------------------------- the operation
class Tune(SessionOperation):
    """pg_tune_params against one PostgreSQL server (see the module docstring)."""

    programs = True  # pg_ctl for an opt-in restart

    def __init__(self, params, ctx):
        super(Tune, self).__init__(params, ctx)
        self.warnings = []
        self.file_settings_readable = True
        self.auto_before = {}
        self.items = []
        self.role_items = []
        self.restart = None  # (argv, cwd, subprocess user arguments) when plan() found that a restart may follow

    # ------------------------------------------------------------------------------------------ plan
    def plan(self):
        p = self.params
        tuning.check_options(p)
        self.open()
        major = server_major(self.session.server_version_num)
        inputs = self.inputs()
        current = self.settings(['max_connections'])
        current_max = int(current['max_connections']['setting']) if current else None
        wanted, resets = tuning.wanted_parameters(inputs, p['parameters'], major, current_max)
        recommendation = dict((k, dict(value=tuning.value_text(v['value']), reason=v['reason']))
                              for k, v in wanted.items())
        self.items = self.plan_parameters(wanted, resets)
        self.role_items = self.plan_role_settings()
        pool = self.pool(self.items)
        tuning.check_pool_fits(pool)
        self.memory_warning(inputs['memory_bytes'])
        self.standby_warning()
        self.server_checks()
        recommend_only = p['mode'] == 'recommend'
        param_changes = [i for i in self.items if i['changed']]
        role_changes = [i for i in self.role_items if i['changed']]
        pending = [i['name'] for i in self.items if i['restart_required']]
        if pending and p['allow_restart'] and not recommend_only:
            try:
                self.restart = self.plan_restart()
            except TuningError as exc:
                raise TuningError('%s; nothing was changed (the restart is checked before the first ALTER SYSTEM)'
                                  % exc)
        would_restart = bool(not recommend_only and pending and p['allow_restart'])
        for item in self.items:
            item['pending_restart'] = item['name'] in pending
        for warning in self.warnings:
            self.warn(warning)
        return dict(
            changed=not recommend_only and bool(param_changes or role_changes or would_restart),
            provider='postgres',
            inputs=inputs,
            recommendation=recommendation,
            parameters=dict((i['name'], public(i)) for i in self.items),
            changed_parameters=[i['name'] for i in param_changes],
            pending_restart=pending,
            restarted=False,
            would_restart=would_restart,
            role_settings=[public(i) for i in self.role_items],
            pool=pool,
            diff=changes_diff(param_changes, role_changes, recommend_only),
        )

    # ------------------------------------------------------------------------------------------ reading
    def settings(self, names):
        rows = self.session.rows(SETTINGS_COLUMNS, ([n.lower() for n in names],))
        return dict((r['name'], r) for r in rows)

    def file_settings(self, names):
        """{name: [(sourcefile, value)]} of the configuration files, in the order the server reads them."""
        try:
            rows = self.session.rows(sql.SQL(
                'SELECT lower(name) AS name, setting, sourcefile, seqno, error FROM pg_file_settings '
                'WHERE lower(name) = ANY(%s) '
                'ORDER BY seqno'), (list(names),))
        except psycopg2.Error as exc:
            self.file_settings_readable = False
            self.warnings.append('Cannot read pg_file_settings (%s): values already written by ALTER SYSTEM but '
                                 'waiting for a restart look like changes' % str(exc).strip().splitlines()[0])
            return {}
        out = {}
        for row in rows:
            # 'setting could not be applied' marks a value that waits for a restart; other errors are invalid lines
            if row['error'] and row['error'] != 'setting could not be applied':
                continue
            out.setdefault(row['name'], []).append((row['sourcefile'] or '', row['setting']))
        return out

    def shared_buffers_pages(self, rows):
        """The running shared_buffers (8kB pages), which wal_buffers = -1 is derived from."""
        row = rows.get('shared_buffers') or self.settings(['shared_buffers']).get('shared_buffers')
        return int(row['setting']) if row else None

    def inputs(self):
        p = self.params
        memory = tuning.parse_size(p['memory']) if p['memory'] else None
        memory_source = 'memory option' if memory else None
        if memory is None and p['profile'] in ('recommended', 'production'):
            try:
                memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
                memory_source = 'total memory of the host that runs the module'
            except (ValueError, OSError, AttributeError):
                raise TuningError('Cannot read the memory of this host; give the memory option')
        cpus = p['cpus'] or (os.cpu_count() if p['profile'] == 'recommended' else None)
        size = tuning.parse_size(p['database_size']) if p['database_size'] else None
        size_source = tuning.SIZE_OPTION if size else None
        if size is None and p['profile'] == 'recommended':
            # reported only: today's size never caps shared_buffers (a new server would get a tiny value)
            size = self.session.scalar(sql.SQL(
                "SELECT sum(pg_database_size(oid))::bigint FROM pg_database "
                "WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')"))
            size_source = 'sum of the databases on the server (reported only: caps nothing)'
        return dict(memory_bytes=memory, memory_source=memory_source, cpus=cpus, storage=p['storage'],
                    workload=p['workload'], max_connections=p['max_connections'], database_size_bytes=size,
                    database_size_source=size_source, profile=p['profile'])

    # ------------------------------------------------------------------------------------------ planning
    def plan_parameters(self, wanted, resets):
        names = sorted(set(wanted) | set(resets))
        settings = self.settings(names) if names else {}
        errors = []
        for name in names:
            if name not in settings:
                errors.append('%s: unknown parameter' % name)
            elif settings[name]['context'] == 'internal':
                errors.append('%s: cannot be changed (a read-only, compiled-in or initdb-time parameter)' % name)
        wanted_norm = {}
        for name in sorted(wanted):
            if name in settings and settings[name]['context'] != 'internal':
                try:
                    tuning.refuse_control_characters(name, wanted[name]['value'])
                    wanted_norm[name] = tuning.normalize(wanted[name]['value'], settings[name])
                except TuningError as exc:
                    errors.append(str(exc))
        if errors:
            raise TuningError('Invalid parameters, nothing was changed: %s' % '; '.join(errors))
        files = self.file_settings(names) if names else {}
        for name in names:
            autos = [v for f, v in files.get(name, []) if os.path.basename(f) == AUTO_CONF]
            self.auto_before[name] = autos[-1] if autos else None
        plan = []
        for name in names:
            setting = settings[name]
            item, warning = parameter_item(name, setting, files.get(name, []), wanted.get(name), wanted_norm.get(name),
                                           self.file_settings_readable)
            if warning:
                self.warnings.append(warning)
            item['restart_required'] = setting['context'] == 'postmaster' and not takes_effect(
                name, item['_running'], item['_after'],
                self.shared_buffers_pages(settings) if name == 'wal_buffers' else None)
            plan.append(item)
        return plan

    def plan_role_settings(self):
        entries = self.params['role_settings'] or []
        profile = self.params['profile']
        plan, errors = [], []
        for entry in entries:
            role, database = entry.get('role'), entry.get('database')
            if not role and not database:
                errors.append('role_settings: each entry needs a role, a database or both')
                continue
            settings = entry.get('settings')
            from_profile = False
            if settings is None:
                if profile not in ('development', 'production'):
                    errors.append('role_settings for %s: give settings (only the development and production profiles '
                                  'have defaults)' % label(role, database))
                    continue
                settings = dict((k, v['value']) for k, v in tuning.session_settings(profile).items())
                from_profile = True
            role_oid = db_oid = 0
            if role:
                role_oid = self.session.scalar(sql.SQL('SELECT oid FROM pg_roles WHERE rolname = %s'), (role,))
                if role_oid is None:
                    errors.append('role_settings: role %s does not exist' % role)
            if database:
                db_oid = self.session.scalar(sql.SQL('SELECT oid FROM pg_database WHERE datname = %s'), (database,))
                if db_oid is None:
                    errors.append('role_settings: database %s does not exist' % database)
            names = [n.lower() for n in settings]
            known = self.settings(names) if names else {}
            values = {}
            for name, value in settings.items():
                name = name.lower()
                if name not in known:
                    if from_profile:
                        self.warnings.append('%s is not known to this server (older PostgreSQL); left out for %s'
                                             % (name, label(role, database)))
                        continue
                    errors.append('%s: unknown parameter' % name)
                    continue
                if known[name]['context'] not in ROLE_CONTEXTS:
                    errors.append('%s: cannot be set per role or database (context %s)' % (name, known[name]['context']))
                    continue
                if value is None:
                    values[name] = None
                    continue
                try:
                    tuning.refuse_control_characters(name, value)
                    values[name] = (value, tuning.normalize(value, known[name]))
                except TuningError as exc:
                    errors.append(str(exc))
            if errors or role_oid is None or db_oid is None:
                continue
            config = self.session.scalar(sql.SQL(
                'SELECT setconfig FROM pg_db_role_setting WHERE setrole = %s AND setdatabase = %s'),
                (role_oid, db_oid)) or []
            current = dict(item.split('=', 1) for item in config if '=' in item)
            plan.extend(role_setting_items(role, database, known, values, current))
        if errors:
            raise TuningError('Invalid role_settings, nothing was changed: %s' % '; '.join(errors))
        return plan

    def pool(self, plan):
        spec = tuning.pool_spec(self.params['pool'], self.params['profile'])
        if spec is None:
            return None
        after = dict((i['name'], i['_after']) for i in plan)
        extra = self.settings(['max_connections', 'superuser_reserved_connections', 'reserved_connections'])

        def value(name):
            if name in after:
                return after[name]
            return int(extra[name]['setting']) if name in extra else 0
        return pool_check(spec['db_max_connections'], spec.get('replicas') or 1, spec.get('reserved') or 0,
                          value('max_connections'), value('superuser_reserved_connections'),
                          value('reserved_connections'))

    def memory_warning(self, memory):
        after = dict((i['name'], i) for i in self.items)
        if 'work_mem' not in after or not memory:
            return
        rows = self.settings(['max_connections', 'shared_buffers', 'work_mem'])
        work_kb = after['work_mem']['_after'] * tuning.SETTING_UNITS[rows['work_mem']['unit']][1] // tuning.KB
        conns = after['max_connections']['_after'] if 'max_connections' in after else int(
            rows['max_connections']['setting'])
        shared = after['shared_buffers']['_after'] if 'shared_buffers' in after else int(
            rows['shared_buffers']['setting'])
        shared_kb = shared * tuning.SETTING_UNITS[rows['shared_buffers']['unit']][1] // tuning.KB
        warning = tuning.memory_warning(conns, work_kb, shared_kb, memory)
        if warning:
            self.warnings.append(warning)

    def standby_warning(self):
        raised = [i['name'] for i in self.items if i['name'] in STANDBY_MINIMUMS and i['changed'] and isinstance(
            i['_after'], int) and i['_after'] > i['_running']]
        if not raised:
            return
        standbys = self.session.scalar(sql.SQL('SELECT count(*) FROM pg_stat_replication'))
        if standbys:
            self.warnings.append(
                'This server has %d standby(s): raise %s on the standbys first (and restart them) before the primary '
                'restarts with the higher values, or their replay stops' % (standbys, ', '.join(raised)))

    def plan_restart(self):
        """(argv, cwd, user ids) of the restart, with the program found, the data directory read and os_user checked."""
        p = self.params
        if p['restart_command']:
            argv, cwd = restart_argv(p)
        else:
            datadir = p['data_directory'] or self.session.scalar(sql.SQL('SHOW data_directory'))
            pg_ctl = p['pg_ctl']
            if not pg_ctl:
                try:
                    pg_ctl = self.runner.find('pg_ctl', min_major=server_major(self.session.server_version_num))
                except ClientError as exc:
                    raise TuningError(str(exc))
            argv, cwd = restart_argv(p, pg_ctl, datadir)
        if not shutil.which(argv[0]):
            raise TuningError('Cannot run %s: not found or not executable' % argv[0])
        return argv, cwd, os_user_ids(p['os_user'])

    # ------------------------------------------------------------------------------- checks by the server
    def server_checks(self):
        """Raise TuningError (nothing changed) unless the server parses every value a session may set and the
        user may ALTER SYSTEM every parameter to write. Nothing here changes anything."""
        plan, role_plan = self.items, self.role_items
        errors = self.privilege_errors([i['name'] for i in plan if i['changed']])
        checks = [(i['name'], i['name'], i['_write']) for i in plan
                  if i['changed'] and i['action'] == 'set' and i['context'] in ROLE_CONTEXTS]
        checks += [('%s: %s' % (label(i['role'], i['database']), i['name']), i['name'], i['_write'])
                   for i in role_plan if i['changed'] and i['action'] == 'set']
        errors += self.parse_errors(checks)
        if errors:
            raise TuningError('Invalid parameters, nothing was changed: %s' % '; '.join(errors))

    def privilege_errors(self, names):
        if not names:
            return []
        if self.session.server_version_num >= 150000:
            refused = self.session.scalar(sql.SQL(
                "SELECT array_agg(n ORDER BY n) FROM unnest(%s::text[]) AS n "
                "WHERE NOT has_parameter_privilege(n, 'ALTER SYSTEM')"), (sorted(names),)) or []
        else:
            superuser = self.session.scalar(sql.SQL('SELECT rolsuper FROM pg_roles WHERE rolname = current_user'))
            refused = [] if superuser else sorted(names)
        return ['%s: the connected role may not change it with ALTER SYSTEM (needs a superuser, or from '
                'PostgreSQL 15 GRANT ALTER SYSTEM ON PARAMETER)' % n for n in refused]

    def parse_errors(self, checks):
        """set_config(name, value, true) for each (label, name, value) in one transaction that is rolled back, each
        in its own savepoint, so every refusal is reported. A value the role may not SET (but may ALTER SYSTEM) is
        left to the pg_settings check."""
        if not checks:
            return []
        errors = []
        self.session.execute(sql.SQL('BEGIN'))
        try:
            for what, name, value in checks:
                self.session.execute(sql.SQL('SAVEPOINT pg_tune_params_check'))
                try:
                    self.session.scalar(sql.SQL('SELECT set_config(%s, %s, true)'),
                                        (name, tuning.server_text(value)))
                except psycopg2.Error as exc:
                    self.session.execute(sql.SQL('ROLLBACK TO SAVEPOINT pg_tune_params_check'))
                    if getattr(exc, 'pgcode', None) != '42501':
                        errors.append('%s: the server refuses %r: %s' % (
                            what, tuning.value_text(value), database_error_message(exc)))
        finally:
            self.session.execute(sql.SQL('ROLLBACK'))
        return errors

    # ------------------------------------------------------------------------------------------ apply
    def apply(self, plan):
        p = self.params
        if p['mode'] == 'recommend':
            return plan
        items = self.items
        after = dict((i['name'], i) for i in items)
        done = self.apply_parameters(items)
        self.apply_role_settings(self.role_items, done)
        self.reload(done)
        rows = self.settings([i['name'] for i in items]) if items else {}
        pending = sorted(n for n, r in rows.items() if r['pending_restart'] or (
            r['context'] == 'postmaster' and not takes_effect(
                n, tuning.normalize(r['setting'], r), after[n]['_after'],
                self.shared_buffers_pages(rows) if n == 'wal_buffers' else None)))
        restarted = False
        if pending and p['allow_restart']:
            self.restart_server()
            restarted = True
            self.reconnect()
            rows = self.settings([i['name'] for i in items])
            pages = self.shared_buffers_pages(rows)
            wrong = ['%s is %s, expected %s' % (n, tuning.display(tuning.normalize(rows[n]['setting'], rows[n]),
                                                                  rows[n]), after[n]['after'])
                     for n in pending if not takes_effect(n, tuning.normalize(rows[n]['setting'], rows[n]),
                                                          after[n]['_after'], pages)]
            if wrong:
                raise TuningError('The server restarted but the new values did not take effect: %s'
                                  % '; '.join(wrong))
            pending = sorted(n for n, r in rows.items() if r['pending_restart'])
        for item in items:
            row = rows.get(item['name'])
            if row:
                item['running'] = tuning.display(tuning.normalize(row['setting'], row), row)
            item['pending_restart'] = item['name'] in pending
        return dict(plan, changed=bool(plan['changed_parameters'] or any(i['changed'] for i in self.role_items)
                                       or restarted),
                    parameters=dict((i['name'], public(i)) for i in items), pending_restart=pending,
                    restarted=restarted, would_restart=False)

    def apply_parameters(self, plan):
        """ALTER SYSTEM for every changed parameter; on a failure set back those written before it and raise."""
        changed = [i for i in plan if i['changed']]
        done = []
        for item in changed:
            try:
                if item['action'] == 'reset':
                    self.session.execute(sql.SQL('ALTER SYSTEM RESET {}').format(sql.Identifier(item['name'])))
                else:
                    self.session.execute(sql.SQL('ALTER SYSTEM SET {} = {}').format(
                        sql.Identifier(item['name']), _literal(item['_write'])))
            except psycopg2.Error as exc:
                raise TuningError('ALTER SYSTEM for %s failed: %s; %s' % (
                    item['name'], database_error_message(exc), self.undo(done)))
            done.append(item)
        return done

    def reload(self, changed):
        if changed:
            self.session.scalar(sql.SQL('SELECT pg_reload_conf()'))
            self.wait_reload(changed)

    def undo(self, done):
        """Set the parameters in `done` back to what postgresql.auto.conf held before (or remove them from it);
        returns the sentence that says what happened, for the failure message."""
        if not done:
            return 'nothing was written before it, so nothing was changed (the configuration was not reloaded)'
        names = ', '.join(i['name'] for i in done)
        if not self.file_settings_readable:
            return ('already written before it: %s (pg_file_settings cannot be read, so their earlier values are '
                    'unknown and were not restored; the configuration was not reloaded)' % names)
        failed = []
        for item in reversed(done):
            name = item['name']
            previous = self.auto_before.get(name)
            try:
                if previous is None:
                    self.session.execute(sql.SQL('ALTER SYSTEM RESET {}').format(sql.Identifier(name)))
                else:
                    value = list(tuning.split_list(previous)) if name in tuning.LIST_PARAMETERS else previous
                    self.session.execute(sql.SQL('ALTER SYSTEM SET {} = {}').format(
                        sql.Identifier(name), _literal(value)))
            except psycopg2.Error as exc:
                failed.append('%s (%s)' % (name, database_error_message(exc)))
        if failed:
            return ('written before it: %s; setting them back failed for %s: check postgresql.auto.conf before the '
                    'next reload (the configuration was not reloaded)' % (names, ', '.join(failed)))
        return ('the parameters written before it (%s) were set back to their earlier values in '
                'postgresql.auto.conf, so nothing was changed (the configuration was not reloaded)' % names)

    def wait_reload(self, changed, timeout=10.0):
        """pg_reload_conf() only signals: wait until the reloadable values show up (or restart is pending)."""
        names = [i['name'] for i in changed]
        deadline = time.time() + timeout
        quiet = QuietLog(self.session)
        rows = {}
        while True:
            with quiet:
                rows = self.settings(names)
            done = all(
                tuning.same(tuning.normalize(rows[i['name']]['setting'], rows[i['name']]), i['_after'])
                or (i['context'] == 'postmaster') for i in changed if i['name'] in rows)
            if done or time.time() > deadline:
                break
            time.sleep(0.2)
        self.log.add(quiet.last or '')
        return rows

    def apply_role_settings(self, plan, done):
        """The session settings in one transaction; when it fails, the parameters in `done` are set back too."""
        changed = [i for i in plan if i['changed']]
        if not changed:
            return
        try:
            self.session.execute(sql.SQL('BEGIN'))
            self.write_role_settings(changed)
            self.session.execute(sql.SQL('COMMIT'))
        except psycopg2.Error as exc:
            try:
                self.session.execute(sql.SQL('ROLLBACK'))
            except psycopg2.Error:
                pass
            raise TuningError('Session settings failed and none was written: %s; %s' % (
                database_error_message(exc), self.undo(done).replace(' before it', ' before them')))

    def write_role_settings(self, changed):
        for item in changed:
            role, database, name = item['role'], item['database'], sql.Identifier(item['name'])
            if role and database:
                target = sql.SQL('ALTER ROLE {} IN DATABASE {}').format(sql.Identifier(role), sql.Identifier(database))
            elif role:
                target = sql.SQL('ALTER ROLE {}').format(sql.Identifier(role))
            else:
                target = sql.SQL('ALTER DATABASE {}').format(sql.Identifier(database))
            if item['action'] == 'reset':
                self.session.execute(sql.SQL('{} RESET {}').format(target, name))
            else:
                self.session.execute(sql.SQL('{} SET {} = {}').format(target, name, _literal(item['_write'])))

    def reconnect(self):
        deadline = time.time() + self.params['restart_timeout']
        while True:
            try:
                return self.open()
            except ConnectionFailure as exc:
                if time.time() > deadline:
                    raise TuningError('The server did not accept connections after the restart: %s' % exc)
                time.sleep(0.5)

    def restart_server(self):
        """Restart the server with restart_command or pg_ctl (as os_user when running as root)."""
        if self.restart is None:  # a value already waiting for a restart that plan() did not foresee
            self.restart = self.plan_restart()
        argv, cwd, ids = self.restart
        self.session.close()
        run_as(argv, ids, cwd, self.params['restart_timeout'] + 30, self.runner.commands)


class QuietLog(object):
    """Polling queries go to a scratch log; only the last one is recorded in `queries`."""

    def __init__(self, session):
        self.session = session
        self.saved = None
        self.last = None

    def __enter__(self):
        self.saved = self.session.log
        self.session.log = QueryLog()
        return self

    def __exit__(self, *exc):
        self.last = self.session.log.queries[-1] if self.session.log.queries else self.last
        self.session.log = self.saved
        return False


def run_as(argv, ids, cwd, timeout, commands):
    """Run argv (never a shell) with the user `ids` of os_user_ids(); output to a file, not a pipe, because a
    started postmaster inherits it and would keep a pipe open."""
    commands.append(list(argv))
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  cwd=cwd if cwd and os.path.isdir(cwd) else '/', timeout=timeout, check=False,
                                  start_new_session=True, **ids)
        except subprocess.TimeoutExpired:
            raise TuningError('%s did not finish within %s seconds' % (os.path.basename(argv[0]), timeout))
        except OSError as exc:
            raise TuningError('Cannot run %s: %s' % (argv[0], exc))
        out.seek(0)
        text = out.read().decode('utf-8', 'replace').strip()
    if proc.returncode != 0:
        raise TuningError('Restart with %s failed (exit code %s): %s' % (
            os.path.basename(argv[0]), proc.returncode, text[-2000:] or '(no output)'))
    return text
