"""The health report's pure parts: facts checked, mode parsed, values escaped, the page deterministic."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.perf import report
from tests.harness.perf_facts import EVIL_TABLE, sample


def test_check_facts_fills_missing_parts_and_refuses_other_shapes():
    checked = report.check_facts({'findings': []})
    assert checked['indexes']['duplicate'] == [] and checked['vacuum']['settings'] == {}
    assert checked['statements']['top_calls'] == [] and checked['sequences'] == []
    for facts, words in [
            ([], 'a dict'), ({'x': 1}, 'none of'), ({'server': []}, 'facts.server must be a dict'),
            ({'sizes': {'tables': [1]}}, 'facts.sizes.tables must be a list of dicts'),
            ({'vacuum': {'settings': 'x'}}, 'facts.vacuum.settings must be a dict')]:
        with pytest.raises(report.ReportError, match=words):
            report.check_facts(facts)


@pytest.mark.parametrize('value, mode', [('0600', 0o600), ('600', 0o600), ('0o640', 0o640), (384, 0o600),
                                         ('0400', 0o400)])
def test_parse_mode(value, mode):
    assert report.parse_mode(value) == mode


@pytest.mark.parametrize('value, words', [('0644', 'every user'), (0o606, 'every user'), ('0888', 'octal'),
                                          ('', 'octal'), (True, 'octal'), ('01777', 'between'), (-1, 'between')])
def test_parse_mode_refuses(value, words):
    with pytest.raises(report.ReportError, match=words):
        report.parse_mode(value)


def test_formats():
    assert report.fmt_bytes(1536) == '1.5 kB' and report.fmt_bytes(100) == '100 B'
    assert report.fmt_bytes(None) == '&#8211;' and report.fmt_bytes('<b>') == '&lt;b&gt;'
    assert report.fmt_ms(12.345) == '12.35 ms' and report.fmt_ms(98765.4) == '98.8 s'
    assert report.fmt_count(320000000) == '320.0 M' and report.fmt_count(12) == '12'
    assert report.fmt_ratio(0.935) == '93.5%'
    assert report.esc('"<x>&') == '&quot;&lt;x&gt;&amp;'


def test_render_is_deterministic_escaped_and_orders_findings():
    facts = report.check_facts(sample())
    page = report.render(facts, title='<t>')
    assert page == report.render(report.check_facts(sample()), title='<t>')
    assert '<script' not in page.lower() and '&lt;t&gt;' in page
    assert report.html.escape(EVIL_TABLE) in page
    assert page.index('93% of the range used') < page.index('never scanned')
    assert report.count_levels(facts['findings']) == {'critical': 2, 'warn': 1, 'ok': 0}


def test_the_time_shown_is_the_facts_own():
    facts = sample()
    page = report.render(report.check_facts(facts))
    assert 'read at' not in page
    facts['server']['now'] = '2026-11-30T17:01:34+00:00'
    assert 'read at 2026-11-30T17:01:34+00:00' in report.render(report.check_facts(facts))


def test_render_without_statements_says_how_to_enable():
    facts = sample()
    facts['statements'] = {'available': False, 'message': 'CREATE EXTENSION pg_stat_statements <after preload>'}
    page = report.render(report.check_facts(facts))
    assert 'pg_stat_statements is not available: CREATE EXTENSION pg_stat_statements &lt;after preload&gt;' in page


def test_charts_escape_and_limit_rows():
    rows = [('<r%d>' % i, i + 1, str(i + 1), 'ok') for i in range(40)]
    svg = report.bar_chart('<c>', rows, markers=[(10, '<m>')])
    assert svg.count('<rect') == report.CHART_ROWS and '&lt;r0&gt;' in svg and '&lt;m&gt;' in svg
    assert '<r0>' not in svg and '<c>' not in svg
    assert report.bar_chart('x', []) == '<p class="none">Nothing to chart.</p>'
