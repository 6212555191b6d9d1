"""Configurations (server parameters) of the Azure double: Configurations_ListByServer, _Get, _Update, _Put.

Each server's configurations are built on first access from the ConfigurationsGet example's shape (ids and names
rewritten) for a realistic subset of what Azure Database for PostgreSQL flexible server exposes, with the data types,
units, allowed values, defaults and dynamic/static kinds Azure documents ("Server parameters" tables on Microsoft
Learn), and allowedValues as Microsoft's ConfigurationsListByServer example (api-version 2025-08-01) gives them:
fixed ranges, also for shared_buffers ("16-1073741823", its 10%-75%-of-memory rule only in the description), negative
ranges ("-1-2147483647"), exponents ("0-1.79769e+308"), Numeric ranges ("0.0-1.0"), Sets and Enumerations with an
empty first choice (",login_hook"), regular expressions for Strings, units such as "megabytes", mixed-case names
(DateStyle). SKU-dependent defaults (shared_buffers, effective_cache_size, max_connections...) follow the SKU's
memory. The double enforces like Azure: an unknown name is 404, a read-only parameter, a value outside allowedValues
(a String not matching its pattern) or a shared_buffers outside 10%-75% of the SKU's memory is 400 with an Azure
error body, and a new value of a static parameter sets isConfigPendingRestart until
Servers_Restart succeeds (wrapped below, the original's behaviour kept).
"""

from __future__ import annotations

import copy
import re

from .server import HANDLERS, Reply, handles
from .state import error_body

GIB = 1024 * 1024 * 1024
# vCores and memory (GiB) of the SKUs the tests use
SKUS = {'Standard_B1ms': (1, 2), 'Standard_B2s': (2, 4), 'Standard_B2ms': (2, 8), 'Standard_D2ds_v5': (2, 8),
        'Standard_D4ds_v5': (4, 16), 'Standard_D8ds_v5': (8, 32), 'Standard_E4ds_v5': (4, 32)}


# azure.extensions' allowedValues in Microsoft's list (with its empty first choice)
AZURE_EXTENSIONS = (
    ',address_standardizer,address_standardizer_data_us,age,amcheck,anon,azure_ai,azure_storage,bloom,btree_gin,'
    'btree_gist,citext,cube,dblink,dict_int,dict_xsyn,earthdistance,fuzzystrmatch,hll,hstore,hypopg,intagg,intarray,'
    'isn,lo,login_hook,ltree,oracle_fdw,orafce,pageinspect,pg_buffercache,pg_cron,pg_freespacemap,pg_hint_plan,'
    'pg_partman,pg_prewarm,pg_repack,pg_squeeze,pg_stat_statements,pg_trgm,pg_visibility,pgaudit,pgcrypto,pglogical,'
    'pgrouting,pgrowlocks,pgstattuple,plpgsql,plv8,postgis,postgis_raster,postgis_sfcgal,postgis_tiger_geocoder,'
    'postgis_topology,postgres_fdw,postgres_protobuf,semver,session_variable,sslinfo,tablefunc,tdigest,tds_fdw,'
    'timescaledb,topn,tsm_system_rows,tsm_system_time,unaccent,uuid-ossp,vector')


def _catalogue(memory_gib, vcores):
    """(name, dataType, unit, allowedValues, defaultValue, isDynamicConfig, isReadOnly, description)."""
    pages = memory_gib * GIB // 8192
    # Azure's limits table: the default max_connections by memory (5000 from 48 GiB on)
    max_conn_default = {2: 50, 4: 429, 8: 859, 16: 1718, 32: 3437}.get(memory_gib, 5000 if memory_gib >= 48 else 859)
    return [
        ('array_nulls', 'Boolean', None, 'on,off', 'on', True, False,
         "Enables input of NULL (case insensitive) to be considered as NULL value rather than the literal String "
         "'NULL'."),
        ('shared_buffers', 'Integer', '8KB', '16-1073741823', str(pages // 4), False, False,
         'Sets the number of shared memory buffers used by the server. Unit is 8kb. Allowed values are inside the '
         'range of 10% - 75% of available memory.'),
        ('effective_cache_size', 'Integer', '8KB', '1-2147483647', str(pages * 3 // 4), True, False,
         "Sets the planner's assumption about the size of the data cache."),
        ('work_mem', 'Integer', 'KB', '4096-2097151', '4096', True, False,
         'Sets the amount of memory to be used by internal sort operations and hash tables before writing to '
         'temporary disk files.'),
        ('maintenance_work_mem', 'Integer', 'KB', '1024-2097151', str(min(2097151, memory_gib * 1024 * 1024 // 16)),
         True, False, 'Sets the maximum memory to be used for maintenance operations.'),
        ('max_connections', 'Integer', None, '25-5000', str(max_conn_default), False, False,
         'Sets the maximum number of concurrent connections to the database server.'),
        ('superuser_reserved_connections', 'Integer', None, '0-262143', '3', False, True,
         'Sets the number of connection slots reserved for superusers.'),
        ('random_page_cost', 'Numeric', None, '0-1.79769e+308', '2', True, False,
         "Sets the planner's estimate of the cost of a nonsequentially fetched disk page."),
        ('effective_io_concurrency', 'Integer', None, '0-1000', '1', True, False,
         'Sets the number of concurrent disk I/O operations that PostgreSQL expects can be executed '
         'simultaneously.'),
        ('checkpoint_completion_target', 'Numeric', None, '0-1', '0.9', True, False,
         'Time spent flushing dirty buffers during checkpoint, as fraction of checkpoint interval.'),
        ('min_wal_size', 'Integer', 'megabytes', '32-2097151', '80', True, False,
         'Sets the minimum size to shrink the WAL to.'),
        ('max_wal_size', 'Integer', 'megabytes', '32-65536', '2048', True, False,
         'Maximum size to let the WAL grow before triggering automatic checkpoint.'),
        ('wal_buffers', 'Integer', '8KB', '-1-262143', '2048', False, False,
         'Sets the number of disk-page buffers in shared memory for WAL. Unit is 8kb.'),
        ('checkpoint_timeout', 'Integer', 'seconds', '30-86400', '600', True, False,
         'Maximum time between automatic WAL checkpoints, in seconds. The valid range is between 30 seconds and one '
         'day.'),
        ('log_min_duration_statement', 'Integer', 'milliseconds', '-1-2147483647', '-1', True, False,
         'Sets the minimum execution time (in milliseconds) above which statements will be logged. -1 disables '
         'logging statement durations.'),
        ('extra_float_digits', 'Integer', None, '-15-3', '1', True, False,
         'Sets the number of digits displayed for floating-point values.'),
        ('max_pred_locks_per_relation', 'Integer', None, '-2147483648-2147483647', '-2', True, False,
         'Sets the maximum number of predicate-locked pages and tuples per relation.'),
        ('auto_explain.sample_rate', 'Numeric', None, '0.0-1.0', '1.0', True, False,
         'Fraction of queries to process.'),
        ('session_preload_libraries', 'Set', None, ',login_hook', '', True, False,
         'Lists shared libraries to preload into each backend.'),
        ('azure.extensions', 'Set', None, AZURE_EXTENSIONS, '', True, False,
         'Specifies which extensions are allowed to be created in the server.'),
        ('ssl_max_protocol_version', 'Enumeration', None, ',TLSv1.2,TLSv1.3', '', True, False,
         'Sets the maximum SSL/TLS protocol version to use.'),
        ('search_path', 'String', None, '[A-Za-z0-9."$,_ -]+', '"$user", public', True, False,
         'Sets the schema search order for names that are not schema-qualified.'),
        ('DateStyle', 'String', None, '(ISO|POSTGRES|SQL|GERMAN)(, (DMY|MDY|YMD))?', 'ISO, MDY', True, False,
         'Sets the display format for date and time values.'),
        ('default_statistics_target', 'Integer', None, '1-10000', '100', True, False,
         'Sets the default statistics target.'),
        ('max_worker_processes', 'Integer', None, '0-262143', '8', False, False,
         'Sets the maximum number of background processes that the system can support.'),
        ('max_parallel_workers', 'Integer', None, '0-1024', '8', True, False,
         'Sets the maximum number of parallel workers that can be active at one time.'),
        ('max_parallel_workers_per_gather', 'Integer', None, '0-1024', '2', True, False,
         'Sets the maximum number of parallel processes per executor node.'),
        ('max_parallel_maintenance_workers', 'Integer', None, '0-64', '2', True, False,
         'Sets the maximum number of parallel processes per maintenance operation.'),
        ('statement_timeout', 'Integer', 'milliseconds', '0-2147483647', '0', True, False,
         'Sets the maximum allowed duration (in milliseconds) of any statement. 0 turns this off.'),
        ('idle_in_transaction_session_timeout', 'Integer', 'milliseconds', '0-2147483647', '0', True, False,
         'Sets the maximum allowed duration of any idling transaction.'),
        ('idle_session_timeout', 'Integer', 'milliseconds', '0-2147483647', '0', True, False,
         'Sets the maximum allowed idle time between queries, when not in a transaction.'),
        ('log_min_messages', 'Enumeration', None,
         'debug5,debug4,debug3,debug2,debug1,info,notice,warning,error,log,fatal,panic', 'warning', True, False,
         'Sets the message levels that are logged.'),
        ('shared_preload_libraries', 'Set', None,
         ',age,anon,auto_explain,azure_storage,pg_cron,pg_failover_slots,pg_hint_plan,pg_partman_bgw,pg_prewarm,'
         'pg_squeeze,pg_stat_statements,pgaudit,pglogical,timescaledb,wal2json',
         'pg_cron,pg_stat_statements', False, False,
         'Sets which shared libraries are preloaded at server start.'),
        ('server_version', 'String', None, '.*', '16.9', False, True, 'Shows the server version.'),
        ('max_locks_per_transaction', 'Integer', None, '10-8388608', '64', False, False,
         'Sets the maximum number of locks per transaction.'),
    ]


def configurations(ctx, server):
    """{name: body} of the server's configurations, built on first access."""
    key = server['id'].lower()
    found = ctx.state.configurations.get(key)
    if found is not None:
        return found
    example = ctx.double.spec.example('ConfigurationsGet')['responses']['200']['body']
    vcores, memory = SKUS.get(server.get('sku', {}).get('name'), (2, 8))
    version = server.get('properties', {}).get('version') or '16'
    found = {}
    for name, kind, unit, allowed, default, dynamic, read_only, description in _catalogue(memory, vcores):
        body = copy.deepcopy(example)
        body['name'] = name
        body['id'] = '%s/configurations/%s' % (server['id'], name)
        props = body['properties']
        props.update(description=description, allowedValues=allowed, dataType=kind, defaultValue=default,
                     documentationLink='https://www.postgresql.org/docs/%s/runtime-config.html' % version,
                     isConfigPendingRestart=False, isDynamicConfig=dynamic, isReadOnly=read_only,
                     source='system-default', value=default)
        if unit:
            props['unit'] = unit
        else:
            props.pop('unit', None)
        found[name] = body
    ctx.state.configurations[key] = found
    return found


def _configuration(ctx):
    server = ctx.server()
    name = ctx.params['configurationName']
    found = configurations(ctx, server).get(name)
    if found is None:
        raise Reply(404, error_body('ResourceNotFound', "The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/%s/"
                                    "configurations/%s' under resource group '%s' was not found."
                                    % (server['name'], name, ctx.params['resourceGroupName'])))
    return server, found


NUMBER = re.compile(r'^-?\d+(\.\d+)?([eE][-+]?\d+)?$')


def invalid(props, value, name=None, memory_gib=None):
    """Azure's check of a new value against dataType and allowedValues (and shared_buffers' 10%-75% of the SKU's
    memory, which Azure states only in the description): None or the message."""
    kind, allowed = props['dataType'], props.get('allowedValues') or ''
    if kind in ('Integer', 'Numeric'):
        if not NUMBER.match(value) or (kind == 'Integer' and not re.match(r'^-?\d+$', value)):
            return 'is not a valid %s' % kind.lower()
        match = re.match(r'^(-?[\d.e+]+)-(-?[\d.e+]+)$', allowed)
        if match and not float(match.group(1)) <= float(value) <= float(match.group(2)):
            return 'is outside the allowed range %s' % allowed
        if name == 'shared_buffers' and memory_gib:
            pages = memory_gib * GIB // 8192
            if not pages * 10 <= int(value) * 100 <= pages * 75:
                return 'is outside the range of 10% - 75% of available memory'
        return None
    if kind == 'String':
        try:
            return None if re.fullmatch(allowed or '.*', value) else 'does not match the allowed values %s' % allowed
        except re.error:
            return None
    choices = [c.strip() for c in allowed.split(',') if c.strip()]
    if kind == 'Enumeration' and '' in [c.strip() for c in allowed.split(',')]:
        choices.append('')  # an empty first choice (",TLSv1.2,TLSv1.3") allows the empty value
    if kind == 'Set':
        wrong = [v for v in value.split(',') if v.strip() and v.strip() not in choices]
        return 'contains values not allowed (%s)' % ','.join(wrong) if wrong else None
    if kind in ('Boolean', 'Enumeration') and value.lower() not in [c.lower() for c in choices]:
        return 'is not one of the allowed values %s' % allowed
    return None


def _change(ctx):
    server, body = _configuration(ctx)
    props = body['properties']
    new = (ctx.body or {}).get('properties') or {}
    value = new.get('value')
    name = body['name']
    if props.get('isReadOnly'):
        raise Reply(400, error_body('ServerParameterReadOnly', "The server parameter '%s' is read-only and cannot "
                                    'be updated.' % name))
    if value is None:
        raise Reply(400, error_body('InvalidParameterValue', "A value is required for server parameter '%s'."
                                    % name))
    reason = invalid(props, str(value), name, SKUS.get(server.get('sku', {}).get('name'), (2, 8))[1])
    if reason:
        raise Reply(400, error_body('InvalidParameterValue', "Invalid value given for parameter '%s'. The value "
                                    "'%s' %s." % (name, value, reason)))
    source = new.get('source') or 'user-override'

    def done():
        if props['value'] != str(value) and not props['isDynamicConfig']:
            props['isConfigPendingRestart'] = True
        props['value'] = str(value)
        props['source'] = 'system-default' if source == 'system-default' else source
        return copy.deepcopy(body)
    return ctx.accepted(server['id'], server['location'], on_success=done, result=copy.deepcopy(body))


@handles('Configurations_ListByServer')
def configurations_list(ctx):
    server = ctx.server()
    items = [copy.deepcopy(b) for _n, b in sorted(configurations(ctx, server).items())]
    return 200, ctx.double.page(ctx, items), {}


@handles('Configurations_Get')
def configurations_get(ctx):
    return 200, copy.deepcopy(_configuration(ctx)[1]), {}


@handles('Configurations_Update')
def configurations_update(ctx):
    return _change(ctx)


@handles('Configurations_Put')
def configurations_put(ctx):
    return _change(ctx)


_RESTART = HANDLERS['Servers_Restart']


@handles('Servers_Restart')
def servers_restart(ctx):
    """The original restart; when it succeeds the server's pending configuration values take effect."""
    status, body, headers = _RESTART(ctx)
    server = ctx.server()
    operation_id = headers.get('Azure-AsyncOperation', '').split('/azureAsyncOperation/')[-1].split('?')[0]
    operation = ctx.state.operations.get(operation_id)
    if operation is not None:
        original = operation.on_success

        def done():
            outcome = original() if original else None
            for item in ctx.state.configurations.get(server['id'].lower(), {}).values():
                item['properties']['isConfigPendingRestart'] = False
            return outcome
        operation.on_success = done
    return status, body, headers
