# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_health_report: one self-contained HTML file from a pg_perf_info result.

`render(facts, title)` is pure (unit-tested): inline CSS, inline SVG charts, no script, no link to anything outside
the file (a Content-Security-Policy that allows nothing else says so to the browser), every value of the facts
escaped, and nothing that changes between two runs on the same facts (no clock of its own: the time shown is
the facts' `server.now`, when they were read), so a second run on the same facts reports `changed: false`.
`HealthReport` is the operation: plan() checks the facts, the mode and the destination and renders the page;
apply() writes it under a temporary name in the same folder and renames it over `dest` (folders it creates are
0700, the file `mode`, 0600 by default: query text can hold data).
"""

from __future__ import annotations

import hashlib
import html
import os
import stat

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._artifacts import fsync_path, remove_path, temp_path
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Operation

FOLDER_MODE = 0o700
DEFAULT_MODE = 0o600
LEVELS = ('critical', 'warn', 'ok')
CHART_ROWS = 20

# The parts of a pg_perf_info result the report reads: a dict (its keys' shapes) or a list of dicts ([dict]).
SHAPE = {
    'server': dict,
    'statements': {'top_total_time': [dict], 'top_mean_time': [dict], 'top_calls': [dict]},
    'indexes': {'duplicate': [dict], 'redundant': [dict], 'unused': [dict], 'invalid': [dict], 'missing': [dict],
                'tenant_unindexed': [dict]},
    'bloat': {'tables': [dict], 'indexes': [dict]},
    'vacuum': {'settings': dict, 'tables': [dict], 'databases': [dict]},
    'sequences': [dict],
    'sizes': {'tables': [dict], 'databases': [dict]},
    'findings': [dict],
}


class ReportError(Exception):
    """A report that cannot be written: facts of another shape, a bad mode, a destination that is not a file."""


ERRORS = (ReportError,)


def argument_spec():
    return ArgumentSpec(dict(
        facts=dict(type='dict', required=True),
        dest=dict(type='path', required=True),
        mode=dict(type='raw', default='0600'),
        title=dict(type='str', default='PostgreSQL health report'),
    ))


# ---------------------------------------------------------------------------------------------- checks (pure)
def _kind(value):
    return type(value).__name__


def check_facts(facts):
    """The parts of `facts` the report reads, checked against SHAPE (missing parts are empty). Raises ReportError
    naming the first part of another shape, or when facts hold none of them."""
    if not isinstance(facts, dict):
        raise ReportError('facts must be the result of procgenie.dbops.pg_perf_info (a dict), got %s' % _kind(facts))
    if not set(SHAPE) & set(facts):
        raise ReportError('facts is not a result of procgenie.dbops.pg_perf_info: it has none of %s (keys: %s)' % (
            ', '.join(sorted(SHAPE)), ', '.join(sorted(str(k) for k in facts)[:10]) or 'none'))
    checked = {}
    for name, shape in SHAPE.items():
        checked[name] = _check(facts.get(name), shape, 'facts.' + name)
    return checked


def _check(value, shape, where):
    if shape is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ReportError('%s must be a dict, got %s' % (where, _kind(value)))
        return value
    if isinstance(shape, list):
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ReportError('%s must be a list of dicts, got %s' % (where, _kind(value)))
        return value
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ReportError('%s must be a dict, got %s' % (where, _kind(value)))
    checked = dict(value)
    for key, sub in shape.items():
        checked[key] = _check(value.get(key), sub, '%s.%s' % (where, key))
    return checked


def parse_mode(value):
    """The file mode as an int: an octal string ('0600', '600', '0o640') or an int (YAML's unquoted 0600).
    Raises ReportError for anything else, and for a mode that lets others (not owner, not group) in."""
    if isinstance(value, bool):
        raise ReportError('mode must be an octal file mode such as 0600, got %r' % value)
    if isinstance(value, int):
        mode = value
    else:
        text = str(value).strip().lower()
        text = text[2:] if text.startswith('0o') else text
        if not text or not all(c in '01234567' for c in text):
            raise ReportError('mode must be an octal file mode such as 0600, got %r' % value)
        mode = int(text, 8)
    if mode < 0 or mode > 0o777:
        raise ReportError('mode must be a permission mode between 0000 and 0777, got %s' % value)
    if mode & 0o007:
        raise ReportError('mode %04o lets every user of the host read or write the report, which holds query text '
                          'and object names; give owner and group rights only (0600 or 0640)' % mode)
    return mode


# ---------------------------------------------------------------------------------------------- formatting (pure)
def esc(value):
    """Any value as HTML text (None as a dash)."""
    if value is None:
        return '&#8211;'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return html.escape(str(value), quote=True)


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt_bytes(value):
    number = _number(value)
    if number is None:
        return esc(value)
    for unit in ('B', 'kB', 'MB', 'GB', 'TB'):
        if abs(number) < 1024 or unit == 'TB':
            return '%d B' % number if unit == 'B' else '%.1f %s' % (number, unit)
        number /= 1024.0
    return esc(value)  # pragma: no cover


def fmt_int(value):
    number = _number(value)
    return esc(value) if number is None else '{:,}'.format(int(round(number)))


def fmt_ms(value):
    number = _number(value)
    if number is None:
        return esc(value)
    if abs(number) >= 10000:
        return '{:,.1f} s'.format(number / 1000.0)
    return '{:,.2f} ms'.format(number)


def fmt_ratio(value):
    number = _number(value)
    return esc(value) if number is None else '%.1f%%' % (number * 100)


def fmt_count(value):
    """Large counts (transaction ages) as 1.2 M / 350 k."""
    number = _number(value)
    if number is None:
        return esc(value)
    if abs(number) >= 1e9:
        return '%.2f G' % (number / 1e9)
    if abs(number) >= 1e6:
        return '%.1f M' % (number / 1e6)
    if abs(number) >= 1e4:
        return '%.0f k' % (number / 1e3)
    return fmt_int(number)


def _short(text, length=48):
    text = '' if text is None else ' '.join(str(text).split())
    return text if len(text) <= length else text[:length - 1] + '\u2026'


def level_of(item):
    level = item.get('level')
    return level if level in LEVELS else 'ok'


def count_levels(findings):
    counts = dict((level, 0) for level in LEVELS)
    for item in findings:
        counts[level_of(item)] += 1
    return counts


def sorted_findings(findings):
    """Findings, critical first, then warn, then ok; the facts' order within a level."""
    return sorted(findings, key=lambda item: LEVELS.index(level_of(item)))


# ---------------------------------------------------------------------------------------------- charts (pure)
def svg_open(label, width, height):
    return ('<svg class="chart" role="img" width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg">'
            '<title>%s</title>' % (width, height, width, height, esc(label)))


def bar_chart(label, rows, unit=None, markers=None):
    """A horizontal bar chart as inline SVG. rows: (name, value, shown, level); markers: (value, name) drawn as
    vertical lines (a threshold). Names are escaped, long ones shortened (the full name in the bar's tooltip)."""
    rows = [r for r in rows if _number(r[1]) is not None][:CHART_ROWS]
    if not rows:
        return '<p class="none">Nothing to chart.</p>'
    markers = [m for m in (markers or []) if _number(m[0])]
    top = max([_number(r[1]) for r in rows] + [_number(m[0]) for m in markers] + [1.0])
    left, width, bar_h, gap, head = 300, 360, 16, 6, 18 if markers else 4
    height = head + len(rows) * (bar_h + gap) + 4
    parts = [svg_open(label, left + width + 120, height)]
    for index, (name, value, shown, level) in enumerate(rows):
        y = head + index * (bar_h + gap)
        w = max(1, int(round(width * max(_number(value), 0) / top)))
        parts.append('<g><title>%s: %s</title><text x="%d" y="%d" class="lbl">%s</text>'
                     '<rect x="%d" y="%d" width="%d" height="%d" class="bar %s"/>'
                     '<text x="%d" y="%d" class="val">%s</text></g>' % (
                         esc(name), shown, left - 8, y + bar_h - 4, esc(_short(name)), left, y, w, bar_h,
                         level if level in LEVELS else 'ok', left + w + 6, y + bar_h - 4, shown))
    for value, name in markers:
        x = left + int(round(width * _number(value) / top))
        parts.append('<g><title>%s</title><line x1="%d" y1="12" x2="%d" y2="%d" class="mark"/>'
                     '<text x="%d" y="10" class="mlbl">%s</text></g>' % (esc(name), x, x, height, x, esc(_short(name, 30))))
    parts.append('</svg>')
    return ''.join(parts)


def stacked_chart(label, rows, series):
    """Horizontal stacked bars as inline SVG. rows: (name, {part: value}); series: [(part, css class, label)]."""
    rows = rows[:CHART_ROWS]
    if not rows:
        return '<p class="none">Nothing to chart.</p>'
    totals = [sum(_number(parts.get(key)) or 0 for key, _cls, _lbl in series) for _name, parts in rows]
    top = max(totals + [1.0])
    left, width, bar_h, gap, head = 300, 360, 16, 6, 22
    height = head + len(rows) * (bar_h + gap) + 4
    svg = [svg_open(label, left + width + 120, height)]
    x = left
    for key, cls, lbl in series:
        svg.append('<rect x="%d" y="2" width="10" height="10" class="%s"/><text x="%d" y="11" class="mlbl">%s</text>'
                   % (x, cls, x + 14, esc(lbl)))
        x += 20 + 7 * len(lbl)
    for index, ((name, parts), total) in enumerate(zip(rows, totals)):
        y = head + index * (bar_h + gap)
        svg.append('<g><title>%s: %s</title><text x="%d" y="%d" class="lbl">%s</text>' % (
            esc(name), ', '.join('%s %s' % (esc(lbl), fmt_bytes(parts.get(key))) for key, _cls, lbl in series),
            left - 8, y + bar_h - 4, esc(_short(name))))
        x = left
        for key, cls, _lbl in series:
            w = int(round(width * max(_number(parts.get(key)) or 0, 0) / top))
            if w:
                svg.append('<rect x="%d" y="%d" width="%d" height="%d" class="%s"/>' % (x, y, w, bar_h, cls))
            x += w
        svg.append('<text x="%d" y="%d" class="val">%s</text></g>' % (x + 6, y + bar_h - 4, fmt_bytes(total)))
    svg.append('</svg>')
    return ''.join(svg)


# ---------------------------------------------------------------------------------------------- page parts (pure)
def table(columns, rows, empty='None found.'):
    """An HTML table. columns: (heading, function of a row returning HTML (already escaped), css class)."""
    if not rows:
        return '<p class="none">%s</p>' % esc(empty)
    out = ['<table><thead><tr>']
    out += ['<th>%s</th>' % esc(heading) for heading, _fn, _cls in columns]
    out.append('</tr></thead><tbody>')
    for row in rows:
        out.append('<tr>')
        out += ['<td%s>%s</td>' % (' class="%s"' % cls if cls else '', fn(row)) for _heading, fn, cls in columns]
        out.append('</tr>')
    out.append('</tbody></table>')
    return ''.join(out)


def col(heading, key, fmt=esc, cls=''):
    return (heading, lambda row: fmt(row.get(key)), cls)


def sql(value):
    if value is None or value == '':
        return '&#8211;'
    return '<pre class="sql">%s</pre>' % esc(value)


def badge(level):
    level = level if level in LEVELS else 'ok'
    return '<span class="badge %s">%s</span>' % (level, level)


def hit_ratio(row):
    hit, read = _number(row.get('shared_blks_hit')), _number(row.get('shared_blks_read'))
    if hit is None or read is None or hit + read == 0:
        return '&#8211;'
    return fmt_ratio(hit / (hit + read))


def section(anchor, heading, body):
    return '<section id="%s"><h2>%s</h2>%s</section>' % (anchor, esc(heading), body)


def findings_part(findings):
    columns = [('Level', lambda r: badge(level_of(r)), ''), col('Area', 'area'), col('Object', 'object', cls='obj'),
               col('Finding', 'message'), col('Fix', 'fix_sql', sql)]
    return table(columns, sorted_findings(findings), 'No findings.')


STATEMENT_COLUMNS = [col('Query', 'query', sql, 'q'), col('Database', 'database'), col('User', 'user'),
                     col('Calls', 'calls', fmt_int, 'n'), col('Total', 'total_ms', fmt_ms, 'n'),
                     col('Mean', 'mean_ms', fmt_ms, 'n'), col('Max', 'max_ms', fmt_ms, 'n'),
                     col('Rows', 'rows', fmt_int, 'n'), ('Cache hits', hit_ratio, 'n')]


def statements_part(statements):
    if statements.get('available') is False:
        return '<p class="notice">pg_stat_statements is not available: %s</p>' % esc(statements.get('message'))
    body = []
    if statements.get('since'):
        body.append('<p class="meta">Figures are the changes since the earlier result given as <code>since</code>.'
                    '</p>')
    top_total = statements['top_total_time']
    body.append(bar_chart('Top statements by total time', [
        (_short(r.get('query'), 60), r.get('total_ms'), fmt_ms(r.get('total_ms')), 'ok') for r in top_total]))
    for heading, key in (('By total time', 'top_total_time'), ('By mean time', 'top_mean_time'),
                         ('By calls', 'top_calls')):
        body.append('<h3>%s</h3>%s' % (heading, table(STATEMENT_COLUMNS, statements[key], 'No statements.')))
    return ''.join(body)


def indexes_part(indexes):
    size = ('Size', lambda r: fmt_bytes(r.get('bytes')), 'n')
    fix = col('Fix', 'fix_sql', sql)
    droppable = [(r.get('index'), r.get('bytes'), fmt_bytes(r.get('bytes')), level)
                 for key, level in (('invalid', 'critical'), ('duplicate', 'warn'), ('redundant', 'warn'),
                                    ('unused', 'warn')) for r in indexes[key]]
    since = indexes.get('unused_since')
    parts = [
        '<h3>Space held by indexes to drop or rebuild</h3>',
        bar_chart('Index findings by size', sorted(droppable, key=lambda r: -(_number(r[1]) or 0))),
        '<h3>Duplicate indexes</h3>',
        table([col('Table', 'table'), col('Index', 'index'), col('Keep', 'keep'), col('Definition', 'definition', sql),
               col('Kept definition', 'keep_definition', sql), size, fix], indexes['duplicate']),
        '<h3>Redundant indexes</h3>',
        table([col('Table', 'table'), col('Index', 'index'), col('Covered by', 'covered_by'),
               col('Definition', 'definition', sql), col('Covering definition', 'covered_by_definition', sql), size,
               fix], indexes['redundant']),
        '<h3>Unused indexes</h3>',
        '<p class="meta">Not scanned since the statistics were reset (%s).</p>' % esc(since) if since else
        '<p class="meta">Not scanned since the statistics began (never reset).</p>',
        table([col('Table', 'table'), col('Index', 'index'), col('Scans', 'idx_scan', fmt_int, 'n'),
               col('Definition', 'definition', sql), size, fix], indexes['unused']),
        '<h3>Invalid indexes</h3>',
        table([col('Table', 'table'), col('Index', 'index'), col('Definition', 'definition', sql), size, fix],
              indexes['invalid']),
        '<h3>Missing-index candidates</h3>',
        table([col('Table', 'table'), col('Sequential scans', 'seq_scan', fmt_int, 'n'),
               col('Rows read by them', 'seq_tup_read', fmt_int, 'n'), col('Index scans', 'idx_scan', fmt_int, 'n'),
               col('Live rows', 'n_live_tup', fmt_int, 'n'), col('Why', 'reason')], indexes['missing']),
        '<h3>Tenant tables without an index leading with the tenant column</h3>',
        table([col('Table', 'table'), col('Column', 'column'), fix], indexes['tenant_unindexed']),
    ]
    return ''.join(parts)


def wraparound_part(vacuum):
    settings = vacuum['settings']
    body = []
    for what, key, freeze, failsafe in (
            ('Transaction ID age', 'xid_age', 'autovacuum_freeze_max_age', 'vacuum_failsafe_age'),
            ('Multixact age', 'mxid_age', 'autovacuum_multixact_freeze_max_age', 'vacuum_multixact_failsafe_age')):
        markers = [(settings.get(freeze), freeze), (settings.get(failsafe), failsafe)]
        rows = [(r.get('database'), r.get(key), fmt_count(r.get(key)), level_of(r)) for r in vacuum['databases']]
        tables = sorted([r for r in vacuum['tables'] if _number(r.get(key)) is not None],
                        key=lambda r: -_number(r.get(key)))
        rows += [(r.get('table'), r.get(key), fmt_count(r.get(key)), level_of(r)) for r in tables[:10]]
        chart = bar_chart(what, rows, markers=markers)
        body.append('<h3>%s (databases, then the oldest tables)</h3>%s' % (what, chart))
    body.append(table([col('Setting', 'name'), col('Value', 'value', fmt_int, 'n')],
                      [dict(name=k, value=v) for k, v in sorted(settings.items())], 'No settings in the facts.'))
    return ''.join(body)


def vacuum_part(vacuum):
    rows = [r for r in vacuum['tables'] if r.get('needs_vacuum') or level_of(r) != 'ok'] or vacuum['tables']
    rows = sorted(rows, key=lambda r: -(_number(r.get('n_dead_tup')) or 0))
    chart = bar_chart('Dead tuples', [(r.get('table'), r.get('n_dead_tup'), fmt_int(r.get('n_dead_tup')),
                                       'warn' if r.get('needs_vacuum') else level_of(r)) for r in rows])
    return chart + table([
        col('Table', 'table'), col('Live rows', 'n_live_tup', fmt_int, 'n'), col('Dead rows', 'n_dead_tup', fmt_int, 'n'),
        col('Dead share', 'dead_ratio', fmt_ratio, 'n'), col('Needs vacuum', 'needs_vacuum'),
        col('Last vacuum', 'last_vacuum'), col('Last autovacuum', 'last_autovacuum'), col('Last analyze', 'last_analyze'),
        col('Last autoanalyze', 'last_autoanalyze'), ('Level', lambda r: badge(level_of(r)), '')], rows)


def bloat_part(bloat):
    method = bloat.get('method')
    note = '<p class="meta">Measured with %s.</p>' % ('pgstattuple' if method == 'pgstattuple' else
                                                      'the catalog estimate (pgstattuple is not installed)'
                                                      if method == 'estimate' else esc(method))
    common = [col('Size', 'bytes', fmt_bytes, 'n'), col('Wasted', 'wasted_bytes', fmt_bytes, 'n'),
              col('Wasted share', 'ratio', fmt_ratio, 'n'), ('Level', lambda r: badge(level_of(r)), '')]
    return (note + '<h3>Tables</h3>' + table([col('Table', 'table')] + common, bloat['tables']) +
            '<h3>Btree indexes</h3>' + table([col('Table', 'table'), col('Index', 'index')] + common, bloat['indexes']))


def sequences_part(sequences):
    return table([col('Sequence', 'sequence'), col('Last value', 'last_value', fmt_int, 'n'),
                  col('Maximum', 'max_value', fmt_int, 'n'), col('Used', 'used', fmt_ratio, 'n'),
                  ('Level', lambda r: badge(level_of(r)), '')], sequences)


def sizes_part(sizes):
    tables = sizes['tables']
    bars = [(r.get('table'), dict(table=r.get('table_bytes'), index=r.get('index_bytes'), toast=r.get('toast_bytes')))
            for r in tables]
    chart = stacked_chart('Table sizes', bars,
                          [('table', 'seg-table', 'table'), ('index', 'seg-index', 'indexes'),
                           ('toast', 'seg-toast', 'TOAST')])
    return (chart + table([col('Table', 'table'), col('Total', 'total_bytes', fmt_bytes, 'n'),
                           col('Table', 'table_bytes', fmt_bytes, 'n'), col('Indexes', 'index_bytes', fmt_bytes, 'n'),
                           col('TOAST', 'toast_bytes', fmt_bytes, 'n'), col('Live rows', 'live_rows', fmt_int, 'n')],
                          tables) +
            '<h3>Databases</h3>' + table([col('Database', 'database'), col('Size', 'bytes', fmt_bytes, 'n')],
                                         sizes['databases']))


CSS = """
:root{--crit:#b3261e;--warn:#a15c00;--ok:#2e7d32;--ink:#1d2228;--mute:#5f6b76;--line:#d9dee3;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);margin:0;
background:#fff}
header{background:var(--bg);border-bottom:1px solid var(--line);padding:18px 28px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 8px}
main{padding:0 28px 40px;max-width:1400px}
nav a{margin-right:14px;color:#0b57d0;text-decoration:none}
.meta{color:var(--mute);margin:4px 0}
.cards{display:flex;gap:12px;margin:14px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 16px;min-width:120px;background:#fff}
.card b{display:block;font-size:24px}
.card.critical b{color:var(--crit)}.card.warn b{color:var(--warn)}.card.ok b{color:var(--ok)}
table{border-collapse:collapse;width:100%;margin:6px 0 14px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.q{max-width:560px}
td.obj{word-break:break-all}
pre.sql{margin:0;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;
background:var(--bg);padding:4px 6px;border-radius:4px}
.badge{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px;font-weight:600}
.badge.critical{background:var(--crit)}.badge.warn{background:var(--warn)}.badge.ok{background:var(--ok)}
.none{color:var(--mute);font-style:italic}
.notice{border-left:4px solid var(--warn);background:#fff8e1;padding:8px 12px}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0 12px}
svg .lbl{font:12px sans-serif;text-anchor:end;fill:var(--ink)}
svg .val{font:12px sans-serif;fill:var(--mute)}
svg .mlbl{font:11px sans-serif;fill:var(--mute)}
svg .bar.ok{fill:#4f7fbf}svg .bar.warn{fill:#e0a030}svg .bar.critical{fill:#c9473f}
svg .mark{stroke:#c9473f;stroke-dasharray:4 3}
svg .seg-table{fill:#4f7fbf}svg .seg-index{fill:#8fb3e0}svg .seg-toast{fill:#c2c9d1}
@media print{nav{display:none}section{break-inside:avoid-page}}
"""

# No script, no fetch: everything the page shows is in the file.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

SECTIONS = (('findings', 'Findings'), ('statements', 'Top statements'), ('indexes', 'Indexes'),
            ('wraparound', 'Wraparound'), ('vacuum', 'Vacuum'), ('bloat', 'Bloat'), ('sequences', 'Sequences'),
            ('sizes', 'Sizes'))


def render(facts, title='PostgreSQL health report'):
    """The page (a str) for checked facts (check_facts). Pure and deterministic."""
    server = facts['server']
    counts = count_levels(facts['findings'])
    about = ['PostgreSQL %s' % esc(server.get('version')) if server.get('version') is not None else '',
             'database %s' % esc(server.get('database')) if server.get('database') is not None else '',
             'read at %s' % esc(server.get('now')) if server.get('now') else '',
             'statistics since %s' % esc(server.get('stats_reset')) if server.get('stats_reset') else
             'statistics never reset']
    head = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="%s">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,"><title>%s</title><style>%s</style></head>' % (esc(CSP), esc(title), CSS))
    cards = ''.join('<div class="card %s"><b>%d</b>%s</div>' % (level, counts[level], level) for level in LEVELS)
    nav = ''.join('<a href="#%s">%s</a>' % (anchor, esc(name)) for anchor, name in SECTIONS)
    parts = [
        head, '<body><header><h1>%s</h1>' % esc(title),
        '<p class="meta">%s</p>' % esc(' \u00b7 ').join(a for a in about if a),
        '<div class="cards">%s</div><nav>%s</nav></header><main>' % (cards, nav),
        section('findings', 'Findings', findings_part(facts['findings'])),
        section('statements', 'Top statements', statements_part(facts['statements'])),
        section('indexes', 'Indexes', indexes_part(facts['indexes'])),
        section('wraparound', 'Wraparound', wraparound_part(facts['vacuum'])),
        section('vacuum', 'Vacuum', vacuum_part(facts['vacuum'])),
        section('bloat', 'Bloat', bloat_part(facts['bloat'])),
        section('sequences', 'Sequences near their maximum', sequences_part(facts['sequences'])),
        section('sizes', 'Table sizes', sizes_part(facts['sizes'])),
        '</main></body></html>\n',
    ]
    return ''.join(parts)


# ---------------------------------------------------------------------------------------------- the operation
def _existing(path):
    """(bytes, mode) of the file at path, or (None, None) when there is none. Raises ReportError when path is
    something else than a regular file (a folder, a symbolic link, a device)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if not stat.S_ISREG(st.st_mode):
        raise ReportError('dest %s exists and is not a regular file (a folder, a link or a device): give the path of '
                          'the report file' % path)
    with open(path, 'rb') as handle:
        return handle.read(), stat.S_IMODE(st.st_mode)


def _missing_folders(folder):
    """The folders to create for folder (outermost first); raises ReportError when the nearest existing one is not
    a folder or cannot be written."""
    missing = []
    path = folder
    while not os.path.lexists(path):
        missing.insert(0, path)
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ReportError('Cannot write the report under %s: %s is not a folder' % (folder, path))
    if not os.access(path, os.W_OK | os.X_OK):
        raise ReportError('Cannot write the report in %s: the folder is not writable by this user' % path)
    return missing


class HealthReport(Operation):
    """plan(): facts and mode checked, the page rendered, compared with the file at dest; apply(): written."""

    def __init__(self, params, ctx):
        super(HealthReport, self).__init__(params, ctx)
        self.folders = []
        self.content = b''
        self.write = self.set_mode = False
        self.mode = DEFAULT_MODE

    @classmethod
    def make_runner(cls, params):
        return None

    def plan(self):
        facts = check_facts(self.params['facts'])
        mode = parse_mode(self.params['mode'])
        dest = self.params['dest']
        if not dest or not str(dest).strip() or str(dest).endswith(os.sep):
            raise ReportError('dest must name the report file (for example /var/lib/dbops/reports/health.html)')
        dest = os.path.abspath(dest)
        self.folders = _missing_folders(os.path.dirname(dest))
        self.content = render(facts, self.params['title']).encode('utf-8')
        before, before_mode = _existing(dest)
        self.write = before != self.content
        self.set_mode = not self.write and before_mode != mode
        self.mode = mode
        counts = count_levels(facts['findings'])
        digest = hashlib.sha256(self.content).hexdigest()
        result = dict(changed=self.write or self.set_mode, dest=dest, mode='%04o' % mode,
                      size_bytes=len(self.content), sha256=digest, findings=counts,
                      created_folders=self.folders)
        if self.ctx.diff:
            tracker = DifferenceTracker()
            tracker.add('sha256', before=hashlib.sha256(before).hexdigest() if before is not None else None,
                        after=digest)
            tracker.add('mode', before='%04o' % before_mode if before_mode is not None else None, after='%04o' % mode)
            result['diff'] = tracker.diff()
        return result

    def apply(self, plan):
        if not plan['changed']:
            return plan
        for folder in self.folders:
            os.mkdir(folder, FOLDER_MODE)
            os.chmod(folder, FOLDER_MODE)
        dest = plan['dest']
        if self.set_mode:
            os.chmod(dest, self.mode)
            return plan
        tmp = temp_path(dest)
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode), 'wb') as handle:
                os.fchmod(handle.fileno(), self.mode)
                handle.write(self.content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, dest)
        except BaseException:
            remove_path(tmp)
            raise
        fsync_path(dest)
        return plan
