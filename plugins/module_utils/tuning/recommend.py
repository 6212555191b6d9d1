# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure tuning logic for pg_tune_params (both providers): the formulas, the runbook's profiles, unit normalization
and the checks of the options the argument spec cannot express.

Nothing here talks to a server, so all of it is unit-tested without one.

Formulas
  The public pgtune formulas (https://pgtune.leopard.in.ua, the reference most users know) are followed, with
  these differences, each stated in the `reason` of the value it affects:
  - maintenance_work_mem is capped at 2 GB (pgtune: 8 GB plus autovacuum_work_mem = 2 GB). Without a separate
    autovacuum_work_mem every autovacuum worker may use maintenance_work_mem, so the cap keeps
    autovacuum_max_workers x maintenance_work_mem bounded with one parameter less to manage; before
    PostgreSQL 17 VACUUM could not use more than 1 GB of it for dead tuples anyway.
  - When the user gives the database size (the database_size option), shared_buffers is capped at twice that size
    (at least 128 MB): caching more than the whole database with room to grow only takes memory from work_mem and
    the OS. The size the databases have today is never used for it: a new server with little data would get a
    tiny shared_buffers that grows, each time asking for a restart, as the data arrives.
  - pgtune's wal_level = minimal for desktop, jit, wal_compression, huge_pages and the autovacuum settings are not
    recommended: they are outside the runbook's tables, and wal_level = minimal would break standbys and WAL
    archiving.
"""

from __future__ import annotations

import math
import re

KB = 1024
MB = 1024 * KB
GB = 1024 * MB
TB = 1024 * GB

STORAGE = ['hdd', 'ssd', 'san', 'nvme']
WORKLOADS = ['web', 'oltp', 'dw', 'mixed', 'desktop']
PROFILES = ['recommended', 'development', 'production', 'none']

# PostgreSQL's own unit names (case-sensitive, as the server parses them) and their size in bytes / milliseconds.
MEMORY_UNITS = {'B': 1, 'kB': KB, 'MB': MB, 'GB': GB, 'TB': TB}
TIME_UNITS = {'us': 0.001, 'ms': 1, 's': 1000, 'min': 60000, 'h': 3600000, 'd': 86400000}
# pg_settings.unit values of integer/real parameters, as (kind, factor).
SETTING_UNITS = {'B': ('memory', 1), 'kB': ('memory', KB), '8kB': ('memory', 8 * KB), 'MB': ('memory', MB),
                 '16MB': ('memory', 16 * MB), 'us': ('time', 0.001), 'ms': ('time', 1), 's': ('time', 1000),
                 'min': ('time', 60000)}
BOOL_TRUE = ('on', 'true', 'yes', '1')
BOOL_FALSE = ('off', 'false', 'no', '0')
# String parameters that hold comma-separated lists (compared element by element).
LIST_PARAMETERS = frozenset([
    'shared_preload_libraries', 'local_preload_libraries', 'session_preload_libraries', 'search_path',
    'temp_tablespaces', 'log_destination', 'synchronous_standby_names', 'debug_io_direct', 'unix_socket_directories',
    'listen_addresses', 'default_text_search_config_list'])

# Characters no value may hold: postgresql.auto.conf is line based (ALTER SYSTEM refuses a newline, and only after
# the parameters before it were written), and a control character in a setting is a mistake or an attack.
CONTROL_RE = re.compile(r'[\x00-\x1f\x7f]')
# Where the database size came from when it may cap shared_buffers (only the user's own figure).
SIZE_OPTION = 'database_size option'
NUMBER_RE = re.compile(r'^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$')
# Loose form accepted for the module's own size inputs (memory, database_size): 16GB, 16 GiB, 16g, 512 (MB).
LOOSE_SIZE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$')


class TuningError(ValueError):
    """A value or input that cannot be used; the message says which and why."""


# ----------------------------------------------------------------------------------------------- units and values

def parse_size(text, default_unit='MB'):
    """Bytes of a size given loosely (16GB, 16 GiB, 16g, 16384MB; a bare number is `default_unit`)."""
    if isinstance(text, bool):
        raise TuningError('%r is not a size' % (text,))
    if isinstance(text, (int, float)):
        return int(text * MEMORY_UNITS[default_unit])
    match = LOOSE_SIZE_RE.match(str(text))
    if not match:
        raise TuningError('%r is not a size such as 16GB or 512MB' % (text,))
    number, unit = float(match.group(1)), match.group(2).upper()
    factor = {'': MEMORY_UNITS[default_unit], 'K': KB, 'M': MB, 'G': GB, 'T': TB}[unit]
    return int(number * factor)


def format_kb(kb):
    """A memory amount in kB as PostgreSQL prints it: the largest unit that divides it exactly."""
    kb = int(kb)
    for unit, size in (('TB', TB // KB), ('GB', GB // KB), ('MB', MB // KB)):
        if kb and kb % size == 0:
            return '%d%s' % (kb // size, unit)
    return '%dkB' % kb


def format_bytes(size):
    return format_kb(int(size) // KB) if size % KB == 0 else '%dB' % size


def human(size):
    """A rough readable size for reasons (24386769 -> 23MB)."""
    for unit, factor in (('TB', TB), ('GB', GB), ('MB', MB), ('kB', KB)):
        if size >= factor:
            return '%.0f%s' % (float(size) / factor, unit) if size % factor else '%d%s' % (size // factor, unit)
    return '%dB' % size


def round_kb(kb):
    """Sizes of 1GB and more are rounded down to whole MB: the same as pgtune's kB for round memory sizes, and
    readable (18078MB rather than 18513069kB) when the memory is read from the host."""
    return kb - kb % 1024 if kb >= 1024 * 1024 else kb


def _parse_number_with_unit(value, unit):
    """Number of pg_settings `unit`s in value ('128MB', '16384', 131072, '30s'), as PostgreSQL parses it."""
    if isinstance(value, bool):
        raise TuningError('expects a number, got %r' % (value,))
    if isinstance(value, (int, float)):
        return float(value)
    match = NUMBER_RE.match(str(value))
    if not match:
        raise TuningError('%r is not a number%s' % (value, ' with a unit' if unit else ''))
    number, given = float(match.group(1)), match.group(2)
    if not given:
        return number
    if not unit:
        raise TuningError('%r has a unit but this parameter takes none' % (value,))
    kind, factor = SETTING_UNITS.get(unit, (None, None))
    if kind == 'memory':
        if given not in MEMORY_UNITS:
            raise TuningError('%r: valid memory units are B, kB, MB, GB and TB (case matters)' % (value,))
        return number * MEMORY_UNITS[given] / factor
    if kind == 'time':
        if given not in TIME_UNITS:
            raise TuningError('%r: valid time units are us, ms, s, min, h and d' % (value,))
        return number * TIME_UNITS[given] / factor
    raise TuningError('%r: the unit of this parameter is %s' % (value, unit))


def refuse_control_characters(name, value):
    """Raise TuningError when the value (or an element of a list value) holds a newline or another control
    character, which postgresql.auto.conf (one line per parameter) cannot hold."""
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, str) and CONTROL_RE.search(item):
            raise TuningError('%s: %r holds a newline or another control character, which no parameter value may '
                              'hold (postgresql.auto.conf has one line per parameter)' % (name, item))


def server_text(value):
    """The value as one string for set_config(): list elements joined with ', ', each double-quoted unless it is
    a plain lower-case identifier (the server splits and unquotes lists the way it reads them from a file)."""
    if isinstance(value, (list, tuple)):
        return ', '.join(v if re.match(r'^[a-z_][a-z0-9_]*$', v) else '"%s"' % v.replace('"', '""')
                         for v in (str(i) for i in value))
    return value_text(value)


def split_list(value):
    """Elements of a list parameter: a YAML list, or a comma-separated string with optional double quotes."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items, current, quoted = [], '', False
        for char in str(value):
            if char == '"':
                quoted = not quoted
            elif char == ',' and not quoted:
                items.append(current)
                current = ''
            else:
                current += char
        items.append(current)
    return tuple(i.strip().strip('"') for i in items if i.strip().strip('"'))


def normalize(value, setting):
    """Comparable form of `value` for a pg_settings row (dict with vartype, unit, enumvals, min_val, max_val).

    Integers become a count of the setting's unit (128MB = 131072kB = 16384 for 8kB pages), times likewise,
    booleans 'on'/'off', enums lower case, lists a tuple. Raises TuningError when the value is invalid for the
    parameter (not a number, below min, above max, not in the enum)."""
    vartype = setting.get('vartype')
    name = setting.get('name', 'parameter')
    if value is None:
        raise TuningError('%s: no value given' % name)
    if vartype == 'bool':
        text = str(value).strip().lower() if not isinstance(value, bool) else ('on' if value else 'off')
        # PostgreSQL accepts any unambiguous prefix of on/off/true/false/yes/no
        if text in BOOL_TRUE or (len(text) >= 1 and any(w.startswith(text) for w in ('true', 'yes'))):
            return 'on'
        if text in BOOL_FALSE or (len(text) >= 2 and text.startswith('of')) or \
                (len(text) >= 1 and any(w.startswith(text) for w in ('false', 'no'))):
            return 'off'
        raise TuningError('%s: %r is not a boolean (on/off, true/false, yes/no, 1/0)' % (name, value))
    if vartype in ('integer', 'real'):
        try:
            number = _parse_number_with_unit(value, setting.get('unit'))
        except TuningError as exc:
            raise TuningError('%s: %s' % (name, exc))
        if vartype == 'integer':
            number = int(math.floor(number + 0.5)) if number >= 0 else -int(math.floor(-number + 0.5))
        low, high = setting.get('min_val'), setting.get('max_val')
        if low not in (None, '') and number < float(low):
            raise TuningError('%s: %r is below the minimum %s%s' % (name, value, low, _unit_suffix(setting)))
        if high not in (None, '') and number > float(high):
            raise TuningError('%s: %r is above the maximum %s%s' % (name, value, high, _unit_suffix(setting)))
        return number if vartype == 'integer' else round(float(number), 9)
    if vartype == 'enum':
        text = ('on' if value else 'off') if isinstance(value, bool) else str(value).strip().lower()
        choices = [c.lower() for c in (setting.get('enumvals') or [])]
        if choices and text not in choices:
            raise TuningError('%s: %r is not one of %s' % (name, value, ', '.join(setting.get('enumvals'))))
        return text
    # string
    if isinstance(value, (list, tuple)) or name in LIST_PARAMETERS:
        return split_list(value)
    return str(value)


def _unit_suffix(setting):
    unit = setting.get('unit')
    return ' (x %s)' % unit if unit else ''


def value_text(value):
    """The value as ALTER SYSTEM / ALTER ROLE SET take it (lists stay lists, booleans on/off)."""
    if isinstance(value, bool):
        return 'on' if value else 'off'
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, float) and value == int(value):
        return str(value)
    return str(value)


def display(normalized, setting):
    """A readable form of a normalized value, for `diff` and the results (sizes in the largest exact unit)."""
    if isinstance(normalized, tuple):
        return ', '.join(normalized)
    unit = setting.get('unit')
    if setting.get('vartype') == 'integer' and unit in SETTING_UNITS and normalized not in (-1, 0):
        kind, factor = SETTING_UNITS[unit]
        if kind == 'memory' and (normalized * factor) % KB == 0:
            return format_kb(normalized * factor // KB)
        if kind == 'time':
            ms = normalized * factor
            for name, size in (('d', 86400000), ('h', 3600000), ('min', 60000), ('s', 1000), ('ms', 1)):
                if ms >= size and ms % size == 0:
                    return '%d%s' % (ms // size, name)
    if isinstance(normalized, float):
        return ('%.6f' % normalized).rstrip('0').rstrip('.')
    if unit and setting.get('vartype') in ('integer', 'real'):
        return '%s%s' % (normalized, '' if unit.startswith('8') or unit.startswith('16') else unit)
    return str(normalized)


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


# ------------------------------------------------------------------------------------------------------ formulas

def _entry(value, reason):
    return dict(value=value, reason=reason)


def parallel_settings(cpus, workload, major=None):
    """pgtune's parallel-worker settings: only from 4 CPUs on (below that PostgreSQL's defaults are kept)."""
    if not cpus or cpus < 4:
        return {}
    per_gather = int(math.ceil(cpus / 2.0))
    capped = workload != 'dw' and per_gather > 4
    per_gather = min(per_gather, 4) if workload != 'dw' else per_gather
    out = dict(
        max_worker_processes=_entry(str(cpus), 'one background worker per CPU (%d CPUs); needs a restart' % cpus),
        max_parallel_workers_per_gather=_entry(str(per_gather), 'half the CPUs rounded up%s' % (
            ', at most 4 outside data warehouses (more workers per query rarely pay off)' if capped else '')),
    )
    if major is None or major >= 10:
        out['max_parallel_workers'] = _entry(str(cpus), 'all %d CPUs may run parallel workers' % cpus)
    if major is None or major >= 11:
        maint = min(int(math.ceil(cpus / 2.0)), 4)
        out['max_parallel_maintenance_workers'] = _entry(str(maint), 'half the CPUs rounded up, at most 4')
    return out


def recommend(memory, cpus=None, storage='ssd', workload='mixed', max_connections=None, database_size=None,
              major=None, current_max_connections=None):
    """The recommended parameters for a server, each with the reason, as {name: {value, reason}}.

    memory and database_size in bytes. max_connections, when given, is part of the recommendation;
    otherwise current_max_connections (the server's) or pgtune's default for the workload feeds work_mem."""
    if storage not in STORAGE:
        raise TuningError('storage must be one of %s, not %r' % (', '.join(STORAGE), storage))
    if workload not in WORKLOADS:
        raise TuningError('workload must be one of %s, not %r' % (', '.join(WORKLOADS), workload))
    if not memory or memory < 256 * MB:
        raise TuningError('memory must be at least 256MB (got %s)' % (format_bytes(memory) if memory else memory))
    mem_kb = memory // KB
    desktop = workload == 'desktop'
    out = {}

    connections = max_connections or current_max_connections or \
        {'web': 200, 'oltp': 300, 'dw': 40, 'desktop': 20, 'mixed': 100}[workload]
    if max_connections:
        out['max_connections'] = _entry(str(max_connections), 'as requested')

    shared_kb = mem_kb // 16 if desktop else mem_kb // 4
    reason = '%s of memory (%s)' % ('1/16' if desktop else '25%', human(memory))
    if database_size:
        cap_kb = max(128 * 1024, 2 * int(database_size) // KB)
        if cap_kb < shared_kb:
            shared_kb = cap_kb
            reason += ', capped at twice the database size (%s) since the whole database fits' % human(
                int(database_size))
    shared_kb = round_kb(shared_kb)
    out['shared_buffers'] = _entry(format_kb(shared_kb), reason + '; needs a restart')

    out['effective_cache_size'] = _entry(
        format_kb(round_kb(mem_kb // 4 if desktop else mem_kb * 3 // 4)),
        '%s of memory: what shared_buffers and the OS page cache together can hold' % ('1/4' if desktop else '75%'))

    maint_kb = mem_kb // 8 if workload == 'dw' else mem_kb // 16
    reason = 'memory / %d' % (8 if workload == 'dw' else 16)
    if maint_kb > 2 * 1024 * 1024:
        maint_kb = 2 * 1024 * 1024
        reason += ', capped at 2GB (pgtune: 8GB) so that autovacuum workers, which use it too, stay bounded'
    out['maintenance_work_mem'] = _entry(format_kb(round_kb(maint_kb)), reason)

    parallel = parallel_settings(cpus, workload, major)
    workers = int(parallel['max_worker_processes']['value']) if parallel else 8
    divisor = {'web': 1, 'oltp': 1, 'dw': 2, 'mixed': 2, 'desktop': 6}[workload]
    work_kb = int(math.floor((mem_kb - shared_kb) / float((connections + workers) * 3) / divisor))
    reason = ('(memory - shared_buffers) / ((max_connections %d + max_worker_processes %d) x 3)%s: every '
              'connection may run a few sorts or hashes at once' % (
                  connections, workers, ' / %d for %s' % (divisor, workload) if divisor > 1 else ''))
    if work_kb < 4 * 1024:
        work_kb = 4 * 1024
        reason += '; raised to the 4MB floor (PostgreSQL\'s default)'
    out['work_mem'] = _entry(format_kb(work_kb), reason)

    wal_kb = 3 * shared_kb // 100
    reason = '3% of shared_buffers'
    if wal_kb > 14 * 1024:
        wal_kb = 16 * 1024
        reason += ', at most 16MB (one WAL segment)'
    wal_kb = max(wal_kb, 32)
    out['wal_buffers'] = _entry(format_kb(wal_kb), reason + '; needs a restart')

    out['random_page_cost'] = _entry('4' if storage == 'hdd' else '1.1', (
        'spinning disks: random reads cost about 4 sequential ones' if storage == 'hdd'
        else '%s: random reads cost about as much as sequential ones' % storage))
    out['effective_io_concurrency'] = _entry(
        str({'hdd': 2, 'ssd': 200, 'san': 300, 'nvme': 1000}[storage]),
        'concurrent prefetch requests %s storage serves well' % storage)
    out['checkpoint_completion_target'] = _entry('0.9', 'spread checkpoint writes over 90% of the interval '
                                                        '(PostgreSQL 14+ default)')
    min_wal, max_wal = {'web': ('1GB', '4GB'), 'oltp': ('2GB', '8GB'), 'dw': ('4GB', '16GB'),
                        'desktop': ('100MB', '2GB'), 'mixed': ('1GB', '4GB')}[workload]
    out['min_wal_size'] = _entry(min_wal, 'WAL kept for reuse for a %s workload' % workload)
    out['max_wal_size'] = _entry(max_wal, 'WAL between checkpoints for a %s workload: fewer forced checkpoints'
                                 % workload)
    out['default_statistics_target'] = _entry('500' if workload == 'dw' else '100', (
        'finer statistics for the complex queries of a data warehouse' if workload == 'dw'
        else 'PostgreSQL\'s default suits short queries'))
    out.update(parallel)
    return out


def _clamp_kb(kb, low_kb, high_kb):
    return max(low_kb, min(high_kb, kb))


# The runbook's connection pool table (section 4): the application's pool and the server-side session settings.
POOL = {
    'development': dict(db_max_connections=20, max_connections=200, idle_timeout='10min', lifetime='30min',
                        statement_timeout='30s'),
    'production': dict(db_max_connections=100, max_connections=800, idle_timeout='5min', lifetime='60min',
                       statement_timeout='15s'),
}


def session_settings(profile):
    """The server-side session settings of the runbook's pool table for an application role, with reasons."""
    pool = POOL[profile]
    idle_in_tx = {'development': '60s', 'production': '30s'}[profile]
    return {
        'statement_timeout': _entry(pool['statement_timeout'], 'runbook pool table: statement timeout'),
        'idle_session_timeout': _entry(pool['lifetime'], (
            'the pool\'s connection lifetime (%s): longer than its idle timeout (%s), so the server never closes '
            'a connection the pool still holds, but still ends sessions leaked outside the pool'
            % (pool['lifetime'], pool['idle_timeout']))),
        'idle_in_transaction_session_timeout': _entry(idle_in_tx, (
            'not in the runbook; twice the statement timeout, so a forgotten open transaction does not hold '
            'locks and old snapshots')),
    }


def profile_parameters(profile, memory=None, cpus=None):
    """The runbook's Development or Production table (section 6) as {name: {value, reason}}.

    Production ranges scale with memory inside the range (memory in bytes; without it the low end)."""
    if profile == 'development':
        return {
            'shared_buffers': _entry('128MB', 'runbook development table'),
            'effective_cache_size': _entry('512MB', 'runbook development table'),
            'work_mem': _entry('4MB', 'runbook development table'),
            'maintenance_work_mem': _entry('64MB', 'runbook development table'),
            'max_connections': _entry('200', 'runbook development table and pool table'),
            'random_page_cost': _entry('4.0', 'runbook development table'),
            'effective_io_concurrency': _entry('1', 'runbook development table'),
            'wal_buffers': _entry('-1', 'runbook development table: automatic (3% of shared_buffers)'),
            'checkpoint_completion_target': _entry('0.9', (
                'the runbook\'s development table says 0.5, the default before PostgreSQL 14; 0.9 is the default '
                'since and only spreads checkpoint I/O better, so 0.5 would be a regression')),
        }
    if profile != 'production':
        raise TuningError('unknown profile %r' % (profile,))
    mem_kb = (memory or 0) // KB
    src = ('memory %s' % human(memory)) if memory else 'memory unknown: low end'
    shared = _clamp_kb(mem_kb // 4, 512 * 1024, 2 * 1024 * 1024)
    cache = _clamp_kb(mem_kb * 3 // 4, 4 * 1024 * 1024, 8 * 1024 * 1024)
    maint = _clamp_kb(mem_kb // 16, 256 * 1024, 512 * 1024)
    connections = 800
    work = _clamp_kb(int((mem_kb - shared) / ((connections + 8) * 3.0)) if memory else 0, 8 * 1024, 16 * 1024)
    return {
        'shared_buffers': _entry(format_kb(shared), 'runbook production range 512MB-2GB: 25%% of %s' % src),
        'effective_cache_size': _entry(format_kb(cache), 'runbook production range 4GB-8GB: 75%% of %s' % src),
        'work_mem': _entry(format_kb(work), 'runbook production range 8MB-16MB: (memory - shared_buffers) / '
                                            '((800 + 8) x 3) of %s' % src),
        'maintenance_work_mem': _entry(format_kb(maint), 'runbook production range 256MB-512MB: memory / 16 of %s'
                                       % src),
        'max_connections': _entry('800', 'runbook pool table (the tuning table allows 400-800; the pool table '
                                         'needs 800)'),
        'random_page_cost': _entry('1.1', 'runbook production table (SSD)'),
        'effective_io_concurrency': _entry('200', 'runbook production table (SSD)'),
        'wal_buffers': _entry('16MB', 'runbook production table'),
        'checkpoint_completion_target': _entry('0.9', 'runbook production table'),
    }


def memory_warning(max_connections, work_mem_kb, shared_kb, memory):
    """A warning when max_connections x work_mem alone can exceed the memory left beside shared_buffers."""
    if not memory:
        return None
    budget = memory // KB - shared_kb
    worst = int(max_connections) * int(work_mem_kb)
    if worst > budget:
        return ('max_connections %s x work_mem %s = %s exceeds the %s of memory left beside shared_buffers; '
                'a burst of concurrent sorts can exhaust memory' % (
                    max_connections, format_kb(work_mem_kb), format_kb(worst), format_kb(max(budget, 0))))
    return None


# ------------------------------------------------------------------------------------ planning (both providers)

def wanted_parameters(inputs, parameters, major=None, current_max_connections=None):
    """The wanted parameters ({name: {value, reason}}) and the names to reset, from the profile of `inputs` (see
    the providers' inputs()) overridden by the parameters option (a null value resets the parameter)."""
    profile = inputs['profile']
    if profile == 'recommended':
        # only the user's own figure caps shared_buffers, never the size the databases have today
        size = inputs['database_size_bytes'] if inputs.get('database_size_source') == SIZE_OPTION else None
        wanted = recommend(inputs['memory_bytes'], inputs['cpus'], inputs['storage'], inputs['workload'],
                           inputs['max_connections'], size, major, current_max_connections)
    elif profile in ('development', 'production'):
        wanted = profile_parameters(profile, inputs['memory_bytes'], inputs['cpus'])
        if inputs['max_connections']:
            wanted['max_connections'] = dict(value=str(inputs['max_connections']), reason='as requested')
    else:
        wanted = {}
    resets = []
    for name, value in (parameters or {}).items():
        name = str(name).lower()
        if value is None:
            wanted.pop(name, None)
            resets.append(name)
        else:
            wanted[name] = dict(value=value, reason='parameters option')
    return wanted, resets


def pool_spec(pool, profile):
    """The pool option with db_max_connections from the profile's pool table when not given; None without pool."""
    spec = dict(pool or {})
    if not spec:
        return None
    if spec.get('db_max_connections') is None:
        if profile not in ('development', 'production'):
            raise TuningError('pool: give db_max_connections (the application\'s DB_MAX_CONNECTIONS)')
        spec['db_max_connections'] = POOL[profile]['db_max_connections']
    return spec


def check_pool_fits(pool):
    """Raise TuningError (nothing changed yet) when the pool check says the pool does not fit."""
    if pool is not None and not pool['fits']:
        raise TuningError(
            'The application pool does not fit, nothing was changed: DB_MAX_CONNECTIONS %(db_max_connections)s x '
            '%(replicas)s replicas + %(reserved)s reserved = %(needed)s connections, but max_connections '
            '%(max_connections)s leaves %(available)s (superuser_reserved_connections '
            '%(superuser_reserved_connections)s, reserved_connections %(reserved_connections)s, reserved by the '
            'platform %(platform_reserved_connections)s)' % pool)


# ------------------------------------------------------------------------------------------- the module's inputs

# Option: lowest value that makes sense (the argument spec types them as int; these bounds complete it).
MINIMUMS = (('cpus', 1), ('max_connections', 1), ('restart_timeout', 1), ('timeout', 1))
POOL_MINIMUMS = (('db_max_connections', 1), ('replicas', 1), ('reserved', 0))


def input_errors(params):
    """What is wrong with the module's options before anything is read or changed (negative counts and timeouts,
    a pool of no replicas, parameter names that are not names), as a list of messages; empty when all is well."""
    errors = []
    for name, low in MINIMUMS:
        value = params.get(name)
        if value is not None and value < low:
            errors.append('%s must be at least %d, got %s' % (name, low, value))
    for name, low in POOL_MINIMUMS:
        value = (params.get('pool') or {}).get(name)
        if value is not None and value < low:
            errors.append('pool.%s must be at least %d, got %s' % (name, low, value))
    for what, settings in [('parameters', params.get('parameters') or {})] + [
            ('role_settings[%d].settings' % i, (entry or {}).get('settings') or {})
            for i, entry in enumerate(params.get('role_settings') or [])]:
        for name, value in settings.items():
            if not isinstance(name, str) or not name.strip() or CONTROL_RE.search(name):
                errors.append('%s: %r is not a parameter name' % (what, name))
            elif isinstance(value, dict):
                errors.append('%s: %s takes a value (a string, a number, a boolean or a list), not a mapping'
                              % (what, name))
    for name in ('memory', 'database_size'):
        if params.get(name) not in (None, ''):
            try:
                if parse_size(params[name]) <= 0:
                    errors.append('%s must be more than 0, got %r' % (name, params[name]))
            except TuningError as exc:
                errors.append('%s: %s' % (name, exc))
    return errors


def check_options(params):
    """input_errors() as a refusal: raises TuningError naming every wrong option, before anything is read."""
    errors = input_errors(params)
    if errors:
        raise TuningError('Invalid options, nothing was read or changed: %s' % '; '.join(errors))
