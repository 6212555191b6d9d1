# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_tune_params, provider azure: server parameters of an Azure Database for PostgreSQL flexible server through
the configurations API (Configurations_ListByServer, Configurations_Update), restarts through Servers_Restart.

`Tune` is an `_azure.AzureOperation`: plan() reads the server and its configurations and validates every wanted value
together (and that the server is Ready when something is to change) before the first update; apply() only sends
the planned updates and the opt-in restart.

Each Azure configuration becomes a pg_settings-like row (vartype, unit, min/max, enumvals) so that tuning.recommend's
normalize/display/same validate and compare values exactly as the postgres provider does (128MB = 16384 pages of
8KB). Values are written in the configuration's own unit, as plain numbers for integers, the way Azure expects.

allowedValues comes in the shapes of Microsoft's ConfigurationsListByServer list (api-version 2025-08-01): ranges
with negative ends and exponents ("-1-2147483647", "-2147483648-2147483647", "0-1.79769e+308", "0.0-1.0"),
choices with an empty first choice (",login_hook" for a Set, ",TLSv1.2,TLSv1.3" for an Enumeration) and regular
expressions for Strings ("[A-Za-z0-9.\"$,_ -]+"). Rules Azure states only in a description are derived here:
shared_buffers lies between 10% and 75% of the server's memory (its allowedValues is "16-1073741823").
"""

from __future__ import annotations

import re

from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import azure_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._capacity import AZURE_RESERVED_CONNECTIONS, pool_check
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning import recommend as tuning
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning.options import changes_diff, public
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning.recommend import GB, TuningError
from ansible_collections.procgenie.dbops.plugins.module_utils._azure import text

# Azure's unit names -> PostgreSQL's (pg_settings.unit)
UNITS = {'8kb': '8kB', 'kb': 'kB', 'b': 'B', 'bytes': 'B', 'byte': 'B', 'mb': 'MB', '16mb': '16MB',
         'kilobytes': 'kB', 'kilobyte': 'kB', 'megabytes': 'MB', 'megabyte': 'MB',
         'milliseconds': 'ms', 'millisecond': 'ms', 'ms': 'ms', 'seconds': 's', 'second': 's', 's': 's',
         'minutes': 'min', 'minute': 'min', 'min': 'min', 'microseconds': 'us', 'microsecond': 'us', 'us': 'us'}
VARTYPES = {'boolean': 'bool', 'integer': 'integer', 'numeric': 'real', 'enumeration': 'enum', 'string': 'string',
            'set': 'set'}
NUMBER = r'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?'
RANGE_RE = re.compile(r'^\s*(%s)\s*-\s*(%s)\s*$' % (NUMBER, NUMBER))
# Azure's rule for shared_buffers, stated only in its description: 10% - 75% of the server's memory
SHARED_BUFFERS_SHARE = (10, 75)

# Burstable SKUs: (vCores, GiB). General purpose D and memory optimized E sizes follow n vCores x 4 / x 8 GiB,
# with the exceptions below (Azure VM sizes).
BURSTABLE = {'B1ms': (1, 2), 'B2s': (2, 4), 'B2ms': (2, 8), 'B4ms': (4, 16), 'B8ms': (8, 32), 'B12ms': (12, 48),
             'B16ms': (16, 64), 'B20ms': (20, 80)}
SKU_EXCEPTIONS = {'E64s_v3': (64, 432), 'E64ds_v4': (64, 504), 'E64ds_v5': (64, 512), 'E96ds_v5': (96, 672),
                  'E64ads_v5': (64, 512), 'E96ads_v5': (96, 672)}
SKU_RE = re.compile(r'^(?:Standard_)?([DE])(\d+)(a?d?s)_v([345])$', re.I)
RESET_SOURCE = 'system-default'
# Connections Azure keeps for physical replication and monitoring ("maximum user connections" = max_connections - 15
# in Azure's limits table)
SET_SOURCE = 'user-override'


def argument_spec():
    """The options of provider azure: the Azure options and timeout. profile is the tuning profile in this module,
    so Azure's credential profile is azure_profile (see azure_params)."""
    return azure_spec(wait=True).remove('profile').add(azure_profile=dict(type='str')).constrain(
        required_if=[('provider', 'azure', ('resource_group', 'server_name'))])


def azure_params(params):
    """The options to connect to Azure with: azure_profile is Azure's profile option."""
    return dict(params, profile=params['azure_profile'])


# ---------------------------------------------------------------- pure helpers

def sku_resources(name):
    """(vCores, memory in bytes) of a flexible server SKU name, or None when unknown."""
    if not name:
        return None
    short = name[len('Standard_'):] if name.lower().startswith('standard_') else name
    for table in (BURSTABLE, SKU_EXCEPTIONS):
        for key, (cores, gib) in table.items():
            if key.lower() == short.lower():
                return cores, gib * GB
    match = SKU_RE.match(name)
    if not match:
        return None
    cores = int(match.group(2))
    return cores, cores * (4 if match.group(1).upper() == 'D' else 8) * GB


def pg_unit(unit):
    """PostgreSQL's unit for Azure's (8KB -> 8kB, milliseconds -> ms); None when there is none or it is unknown."""
    if not unit:
        return None
    return UNITS.get(str(unit).strip().lower())


def allowed_range(allowed):
    """(min, max) strings of an 'a-b' allowedValues, or (None, None)."""
    match = RANGE_RE.match(allowed or '')
    return (match.group(1), match.group(2)) if match else (None, None)


def allowed_list(allowed):
    """The choices of a Boolean, Enumeration or Set allowedValues; an empty choice (",login_hook") is kept as ''
    (first), so that an Enumeration may be set to the empty value."""
    items = [v.strip() for v in (allowed or '').split(',')]
    choices = [v for v in items if v]
    return ([''] if choices and '' in items else []) + choices


def setting_row(name, props):
    """A pg_settings-like row for an Azure configuration's properties (a dict with Azure's camelCase keys)."""
    kind = VARTYPES.get(str(props.get('dataType') or 'String').lower(), 'string')
    allowed = props.get('allowedValues') or ''
    row = dict(name=name, vartype=kind, unit=None, min_val=None, max_val=None, enumvals=None, allowed=allowed,
               azure_unit=props.get('unit'), default=props.get('defaultValue'),
               dynamic=props.get('isDynamicConfig') is not False, read_only=bool(props.get('isReadOnly')),
               pending_restart=bool(props.get('isConfigPendingRestart')), source=props.get('source'),
               setting=props.get('value'))
    if kind in ('integer', 'real'):
        row['unit'] = pg_unit(props.get('unit'))
        row['min_val'], row['max_val'] = allowed_range(allowed)
    elif kind in ('enum', 'bool', 'set'):
        row['enumvals'] = allowed_list(allowed) or None
    return row


def memory_bounds(rows, memory):
    """Tighten shared_buffers' row to Azure's 10%-75% of `memory` (bytes; the SKU's): min rounded up, max down, in
    the row's own unit. Rows without shared_buffers or without a memory size stay as they are."""
    row = rows.get('shared_buffers')
    if row is None or not memory or row['vartype'] != 'integer' or row['unit'] not in tuning.SETTING_UNITS:
        return rows
    unit_bytes = tuning.SETTING_UNITS[row['unit']][1]
    low_share, high_share = SHARED_BUFFERS_SHARE
    units = int(memory) // int(unit_bytes)
    low, high = -(-units * low_share // 100), units * high_share // 100
    if row['min_val'] is None or float(row['min_val']) < low:
        row['min_val'] = str(low)
    if row['max_val'] is None or float(row['max_val']) > high:
        row['max_val'] = str(high)
    row['rule'] = '%d%%-%d%% of the server\'s %s' % (low_share, high_share, tuning.human(int(memory)))
    return rows


def normalize(value, row):
    """tuning.normalize for an Azure row: Sets are tuples checked against allowedValues, booleans against theirs,
    Strings against the allowedValues pattern, and with Azure's own bounds named in the message."""
    tuning.refuse_control_characters(row['name'], value)
    try:
        return _normalize(value, row)
    except TuningError as exc:
        if row.get('rule'):
            raise TuningError('%s (Azure allows %s)' % (exc, row['rule']))
        raise


def configured(value, row):
    """A value Azure reports (the configured value, the default) in comparable form: Azure's bounds and the
    derived memory rule are for new values only (a value set under another SKU may lie outside them now)."""
    return _normalize(value, dict(row, min_val=None, max_val=None))


def _normalize(value, row):
    if row['vartype'] == 'string' and value is not None:
        text = tuning.server_text(value)
        try:
            pattern = re.compile(row['allowed']) if row['allowed'] else None
        except re.error:
            pattern = None
        if pattern is not None and not pattern.fullmatch(text):
            raise TuningError('%s: %r does not match the allowed values %s' % (row['name'], text, row['allowed']))
        return tuning.normalize(value, row)
    if row['vartype'] == 'set':
        if value is None:
            raise TuningError('%s: no value given' % row['name'])
        items = tuning.split_list(value)
        wrong = [i for i in items if row['enumvals'] and i not in row['enumvals']]
        if wrong:
            raise TuningError('%s: %s not among the allowed values %s' % (row['name'], ', '.join(wrong),
                                                                          row['allowed']))
        return items
    if row['vartype'] == 'bool':
        normal = tuning.normalize(value, dict(row, enumvals=None))
        choices = [tuning.normalize(c, dict(row, enumvals=None)) for c in row['enumvals'] or ()
                   if c.lower() in tuning.BOOL_TRUE + tuning.BOOL_FALSE]
        if choices and normal not in choices:
            raise TuningError('%s: %r is not one of the allowed values %s' % (row['name'], value, row['allowed']))
        return normal
    return tuning.normalize(value, row)


def display(normal, row):
    if row['vartype'] == 'set':
        return ','.join(normal)
    return tuning.display(normal, row)


def azure_value(normal, row):
    """The value to write, as Azure takes it: plain numbers in the configuration's unit, the allowed value's own
    spelling for enumerations, comma-separated Sets."""
    kind = row['vartype']
    if kind == 'set':
        return ','.join(normal)
    if kind == 'integer':
        return str(int(normal))
    if kind == 'real':
        return ('%.9f' % normal).rstrip('0').rstrip('.') if normal != int(normal) else str(int(normal))
    if kind in ('enum', 'bool'):
        for choice in row['enumvals'] or ():
            if choice.lower() == normal:
                return choice
        return normal
    if isinstance(normal, tuple):  # a list parameter held in a String (search_path)
        return tuning.server_text(list(normal))
    return str(normal)


def clamp(entry, row):
    """A computed (profile or formula) value inside Azure's allowed range: entry itself, or a new entry at the
    bound with the reason saying so. Values from the parameters option are never clamped (they are validated)."""
    if row is None or row['vartype'] not in ('integer', 'real'):
        return entry
    try:
        value = tuning.normalize(entry['value'], dict(row, min_val=None, max_val=None))
    except TuningError:
        return entry
    for bound, word, outside in ((row['min_val'], 'minimum', lambda v, b: v < b),
                                 (row['max_val'], 'maximum', lambda v, b: v > b)):
        if bound is not None and outside(value, float(bound)):
            limit = int(float(bound)) if row['vartype'] == 'integer' else float(bound)
            return dict(value=tuning.display(limit, row), reason='%s; at Azure\'s %s for this server (%s%s)' % (
                entry['reason'], word, tuning.display(limit, row), ': %s' % row['rule'] if row.get('rule') else ''))
    return entry


def restart_body():
    return {'restartWithFailover': False}


def memory_warning(plan, rows, memory):
    """tuning.memory_warning with the wanted (else configured) max_connections, work_mem and shared_buffers."""
    after = dict((i['name'], i['_after']) for i in plan)
    values = {}
    for name in ('max_connections', 'work_mem', 'shared_buffers'):
        row = rows.get(name)
        if row is None or not memory:
            return None
        value = after[name] if name in after else configured(row['setting'], row)
        factor = tuning.SETTING_UNITS[row['unit']][1] // tuning.KB if row['unit'] in tuning.SETTING_UNITS else 1
        values[name] = int(value) * factor if name != 'max_connections' else int(value)
    return tuning.memory_warning(values['max_connections'], values['work_mem'], values['shared_buffers'], memory)


def version_major(version):
    """The major version of Azure's version text ('16', '17.2'), or None."""
    match = re.match(r'\d+', version or '')
    return int(match.group(0)) if match else None


def parameter_items(rows, wanted, resets):
    """The plan of the parameters (pure): every wanted value validated against its row together (TuningError
    naming every refusal, nothing changed), then one item per parameter with before/after and what to write."""
    names = sorted(set(wanted) | set(resets))
    errors, normal = [], {}
    for name in names:
        row = rows.get(name)
        if row is None:
            errors.append('%s: unknown parameter (not a server parameter of Azure Database for PostgreSQL '
                          'flexible server)' % name)
        elif row['read_only']:
            errors.append('%s: read-only on Azure' % name)
        elif name in wanted:
            try:
                normal[name] = normalize(wanted[name]['value'], row)
            except TuningError as exc:
                errors.append(str(exc))
    if errors:
        raise TuningError('Invalid parameters, nothing was changed: %s' % '; '.join(errors))
    plan = []
    for name in names:
        row = rows[name]
        current = configured(row['setting'], row) if row['setting'] not in (None, '') or \
            row['vartype'] in ('set', 'string') else None
        item = dict(name=name, _api_name=row['name'], context='dynamic' if row['dynamic'] else 'static',
                    unit=row['azure_unit'],
                    vartype=row['vartype'], source=row['source'],
                    before=display(current, row) if current is not None else None)
        item['running'] = item['before']
        if name in wanted:
            after = normal[name]
            item.update(value=tuning.value_text(wanted[name]['value']), reason=wanted[name]['reason'],
                        action='set', changed=current is None or not tuning.same(current, after))
            item['_write'] = (azure_value(after, row), SET_SOURCE)
        else:
            after = configured(row['default'], row) if row['default'] not in (None, '') or \
                row['vartype'] in ('set', 'string') else current
            item.update(action='reset', reason='parameters option: null (back to Azure\'s default)',
                        changed=(current is None or not tuning.same(current, after)) or (
                            row['source'] not in (None, RESET_SOURCE)))
            item['_write'] = (row['default'] or '', RESET_SOURCE)
        item['after'] = display(after, row) if after is not None else None
        item['_after'] = after
        item['restart_required'] = not row['dynamic'] and item['changed']
        plan.append(item)
    return plan


# ---------------------------------------------------------------- the operation

class Tune(_azure.AzureOperation):
    """pg_tune_params against one Azure flexible server: plan() reads and validates, apply() updates."""

    def __init__(self, params, ctx):
        super(Tune, self).__init__(params, ctx)
        self.warnings = []
        self.items = []

    # ------------------------------------------------------------------------------------------ reading
    def read_server(self):
        server = self.azure.client.servers.get(self.azure.resource_group, self.azure.server_name)
        sku = server.sku
        return dict(state=text(server.state), sku=sku.name if sku is not None else None,
                    tier=text(sku.tier) if sku is not None else None, version=text(server.version))

    def read_configurations(self):
        rows = {}
        listing = self.azure.client.configurations.list_by_server(self.azure.resource_group, self.azure.server_name)
        for item in listing:
            props = item.properties
            rows[item.name.lower()] = setting_row(item.name, dict(
                dataType=text(props.data_type), allowedValues=props.allowed_values, unit=props.unit,
                defaultValue=props.default_value, isDynamicConfig=props.is_dynamic_config,
                isReadOnly=props.is_read_only, isConfigPendingRestart=props.is_config_pending_restart,
                source=props.source, value=props.value))
        return rows

    def inputs(self, server):
        p = self.params
        resources = sku_resources(server['sku'])
        memory = tuning.parse_size(p['memory']) if p['memory'] else None
        cpus = p['cpus']
        needs_memory = p['profile'] in ('recommended', 'production')
        if resources is None and ((memory is None and needs_memory) or (cpus is None and p['profile'] == 'recommended')):
            raise TuningError('Unknown SKU %s of server %s: give the memory and cpus options' % (
                server['sku'], self.azure.server_name))
        memory_source = 'memory option' if memory else None
        if resources is not None:
            label = 'SKU %s (%d vCores, %dGB)' % (server['sku'], resources[0], resources[1] // GB)
            if memory is None:
                memory, memory_source = resources[1], label
            if cpus is None:
                cpus = resources[0]
        size = tuning.parse_size(p['database_size']) if p['database_size'] else None
        return dict(memory_bytes=memory, memory_source=memory_source, cpus=cpus, storage=p['storage'],
                    workload=p['workload'], max_connections=p['max_connections'], database_size_bytes=size,
                    database_size_source=tuning.SIZE_OPTION if size else None, profile=p['profile'],
                    sku=server['sku'])

    def pool(self, plan, rows):
        spec = tuning.pool_spec(self.params['pool'], self.params['profile'])
        if spec is None:
            return None
        after = dict((i['name'], i['_after']) for i in plan)

        def value(name):
            if name in after:
                return after[name]
            row = rows.get(name)
            return int(configured(row['setting'], row)) if row and row['setting'] not in (None, '') else 0
        return pool_check(spec['db_max_connections'], spec.get('replicas') or 1, spec.get('reserved') or 0,
                          value('max_connections'), value('superuser_reserved_connections'),
                          value('reserved_connections'), platform_reserved=AZURE_RESERVED_CONNECTIONS)

    # ------------------------------------------------------------------------------------------ plan
    def plan(self):
        p = self.params
        azure = self.azure
        tuning.check_options(p)
        if p['role_settings']:
            raise TuningError('role_settings with provider azure need SQL (ALTER ROLE ... SET), which the Azure '
                              'configurations API cannot do: run pg_tune_params with provider postgres and the '
                              'login_* options against the server\'s host name for them; nothing was changed')
        server = self.read_server()
        rows = self.read_configurations()
        inputs = self.inputs(server)
        resources = sku_resources(server['sku'])
        memory_bounds(rows, resources[1] if resources else inputs['memory_bytes'])
        current_max = rows.get('max_connections')
        current_max = int(configured(current_max['setting'], current_max)) if current_max else None
        wanted, resets = tuning.wanted_parameters(inputs, p['parameters'], version_major(server['version']),
                                                  current_max)
        for name in list(wanted):
            if wanted[name]['reason'] != 'parameters option':
                wanted[name] = clamp(wanted[name], rows.get(name))
        recommendation = dict((k, dict(value=tuning.value_text(v['value']), reason=v['reason']))
                              for k, v in wanted.items())
        self.items = plan = parameter_items(rows, wanted, resets)
        pool = self.pool(plan, rows)
        tuning.check_pool_fits(pool)
        warning = memory_warning(plan, rows, inputs['memory_bytes'])
        if warning:
            self.warnings.append(warning)
        recommend_only = p['mode'] == 'recommend'
        changes = [i for i in plan if i['changed']]
        if not recommend_only and changes and server['state'] not in (None, 'Ready'):
            raise TuningError('Server %s is %s, not Ready: Azure changes server parameters only of a Ready server; '
                              'nothing was changed' % (azure.server_name, server['state']))
        pending = sorted(i['name'] for i in plan if i['restart_required'] or rows[i['name']]['pending_restart'])
        would_restart = bool(not recommend_only and pending and p['allow_restart'])
        for item in plan:
            item['pending_restart'] = item['name'] in pending
        for warning in self.warnings:
            self.warn(warning)
        return dict(
            changed=not recommend_only and bool(changes or would_restart), provider='azure',
            server_name=azure.server_name, resource_group=azure.resource_group,
            subscription_id=azure.subscription_id, server_state=server['state'], sku=server['sku'],
            inputs=inputs, recommendation=recommendation,
            parameters=dict((i['name'], public(i)) for i in plan),
            changed_parameters=[i['name'] for i in changes], pending_restart=pending, restarted=False,
            would_restart=would_restart, role_settings=[], pool=pool,
            diff=changes_diff(changes, [], recommend_only))

    # ------------------------------------------------------------------------------------------ apply
    def apply(self, plan):
        p = self.params
        if p['mode'] == 'recommend':
            return plan
        changes = [i for i in self.items if i['changed']]
        self.update(changes, p['timeout'])
        rows = self.read_configurations() if changes else None
        pending = sorted(i['name'] for i in self.items if rows[i['name']]['pending_restart']) if changes else \
            plan['pending_restart']
        restarted = False
        if pending and p['allow_restart']:
            self.restart(p['timeout'])
            restarted = True
            rows = self.read_configurations()
            still = sorted(i['name'] for i in self.items if rows[i['name']]['pending_restart'])
            if still:
                raise TuningError('Server %s restarted but these parameters still wait for a restart: %s'
                                  % (self.azure.server_name, ', '.join(still)))
            pending = still
        for item in self.items:
            item['pending_restart'] = item['name'] in pending
        return dict(plan, changed=bool(changes or restarted), pending_restart=pending, restarted=restarted,
                    would_restart=False, parameters=dict((i['name'], public(i)) for i in self.items))

    def update(self, changes, deadline_s):
        client, group, name = self.azure.client, self.azure.resource_group, self.azure.server_name
        done = []
        for item in changes:
            value, source = item['_write']
            what = 'Updating server parameter %s of server %s' % (item['name'], name)
            try:
                poller = client.configurations.begin_update(
                    group, name, item['_api_name'], {'properties': {'value': value, 'source': source}})
                _azure.wait(poller, deadline_s, what)
            except (_azure.AzureModuleError, _azure.AzureError) as exc:
                message = _azure.error_message(exc, self.azure.secrets)
                if not isinstance(exc, _azure.AzureModuleError):
                    message = '%s failed: %s' % (what, message)
                raise TuningError('%s (already changed before it: %s)' % (message, ', '.join(done) or 'nothing'))
            done.append(item['name'])
        return done

    def restart(self, timeout):
        what = 'Restart of server %s' % self.azure.server_name
        poller = self.azure.client.servers.begin_restart(self.azure.resource_group, self.azure.server_name,
                                                         parameters=restart_body())
        _azure.wait(poller, timeout, what)
