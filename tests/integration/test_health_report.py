"""pg_health_report, the performance role and playbooks/health_report.yml, through ansible-playbook; the report
rendered in headless chromium (tests/harness/chromium.py: closed network, console captured)."""

from __future__ import annotations

import html.parser
import os
import shutil
import stat

import pytest

from tests.conftest import REPO, node_params
from tests.harness import chromium
from tests.harness.perf_facts import EVIL_QUERY, EVIL_TABLE, sample

pytestmark = pytest.mark.skipif(chromium.chromium() is None, reason='chromium is not installed')


class Page(html.parser.HTMLParser):
    """The tags and the visible text of a DOM (as chromium dumped it)."""

    def __init__(self, dom):
        html.parser.HTMLParser.__init__(self, convert_charrefs=True)
        self.tags = []
        self.chunks = []
        self.skip = 0
        self.feed(dom)
        self.text = ' '.join(' '.join(self.chunks).split())

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == 'style':
            self.skip += 1

    def handle_endtag(self, tag):
        if tag == 'style' and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.chunks.append(data)


def report_task(name='report', **args):
    return dict(name=name, ignore_errors=True, **{'procgenie.dbops.pg_health_report': args})


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def where(workdir):
    path = os.path.join(workdir, 'health-report')
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_chromium_harness_sees_console_errors(where):
    """The check below means something: a page with a console error and a blocked fetch is caught."""
    path = os.path.join(where, 'broken.html')
    with open(path, 'w') as handle:
        handle.write('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src '
                     '\'none\'"></head><body><p>x</p><img src="http://example.invalid/x.png"></body></html>')
    dom, console = chromium.render(path)
    assert '<p>x</p>' in dom
    assert console and 'example.invalid' in ' '.join(console), console


def test_report_is_written_private_idempotent_and_escaped(play, where):
    dest = os.path.join(where, 'reports', 'weekly', 'health.html')
    facts = sample()
    # check mode: nothing written, not even the folders
    run = play([report_task(facts=facts, dest=dest)], check=True)
    res = run.result('report')
    assert res['changed'] is True and not res.get('failed'), res
    assert res['created_folders'] == [os.path.join(where, 'reports'), os.path.join(where, 'reports', 'weekly')]
    assert not os.path.exists(os.path.join(where, 'reports'))
    assert res['queries'] == [] and res['commands'] == []
    assert res['findings'] == {'critical': 2, 'warn': 1, 'ok': 0}
    # written: 0600 in 0700 folders
    run = play([report_task(facts=facts, dest=dest)], diff=True)
    res = run.result('report')
    assert run.rc == 0 and res['changed'] is True, run
    assert mode_of(dest) == 0o600 and res['mode'] == '0600'
    assert mode_of(os.path.dirname(dest)) == 0o700 and mode_of(os.path.join(where, 'reports')) == 0o700
    assert res['diff']['before']['sha256'] is None and res['diff']['after']['sha256'] == res['sha256']
    assert os.listdir(os.path.dirname(dest)) == ['health.html']  # no temporary file left
    with open(dest, encoding='utf-8') as handle:
        page = handle.read()
    assert res['size_bytes'] == len(page.encode('utf-8'))
    # every value escaped: no markup of the facts in the file
    assert '<script' not in page.lower() and '</pre><b>' not in page
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in page
    assert 'http://' not in page.replace('http://www.w3.org/2000/svg', '') and 'https://' not in page
    # the same facts: unchanged, file untouched
    before = os.stat(dest).st_mtime_ns
    run = play([report_task(facts=facts, dest=dest), report_task('again', facts=facts, dest=dest)], check=False)
    assert [run.result(t)['changed'] for t in ('report', 'again')] == [False, False], run
    assert os.stat(dest).st_mtime_ns == before
    # a mode changed by hand is put back; other facts: changed, and check mode leaves the file as it is
    os.chmod(dest, 0o640)
    run = play([report_task(facts=facts, dest=dest)])
    assert run.result('report')['changed'] is True and mode_of(dest) == 0o600
    facts['findings'] = facts['findings'][:1]
    run = play([report_task(facts=facts, dest=dest)], check=True)
    assert run.result('report')['changed'] is True and os.stat(dest).st_mtime_ns == before
    run = play([report_task(facts=facts, dest=dest, mode='0640')])
    res = run.result('report')
    assert res['changed'] is True and res['findings'] == {'critical': 0, 'warn': 1, 'ok': 0}
    assert mode_of(dest) == 0o640


@pytest.mark.parametrize('args, words', [
    (dict(facts={'rows': 3}), ['not a result of procgenie.dbops.pg_perf_info']),
    (dict(facts={'findings': 'none'}), ['facts.findings must be a list of dicts']),
    (dict(facts={'indexes': {'duplicate': {'a': 1}}}), ['facts.indexes.duplicate must be a list of dicts']),
    (dict(facts={'findings': []}, mode='0644'), ['mode 0644', 'every user']),
    (dict(facts={'findings': []}, mode='rw-'), ['octal file mode']),
])
def test_bad_input_fails_clearly_and_writes_nothing(play, where, args, words):
    dest = os.path.join(where, 'new', 'health.html')
    run = play([report_task(dest=dest, **args)])
    res = run.result('report')
    assert res.get('failed') and all(w in res['msg'] for w in words), res
    assert 'Traceback' not in res['msg'] and not os.path.exists(os.path.join(where, 'new'))


def test_a_folder_at_dest_is_refused(play, where):
    run = play([report_task(facts=sample(), dest=where)])
    res = run.result('report')
    assert res.get('failed') and 'not a regular file' in res['msg'], res


def test_report_renders_in_chromium_without_console_errors(play, where):
    dest = os.path.join(where, 'health.html')
    run = play([report_task(facts=sample(), dest=dest, title='Health of <db1>')])
    assert run.rc == 0, run
    dom, console = chromium.render(dest)
    assert console == [], console
    page = Page(dom)
    tags = [t for t, _a in page.tags]
    assert 'script' not in tags and 'img' not in tags and 'iframe' not in tags
    assert tags.count('svg') >= 5  # statements, index sizes, two wraparound charts, dead tuples, sizes
    # the markup of the facts shows as text
    assert EVIL_TABLE in page.text and "SELECT '<script>document.title=\"pwned\"</script>'" in page.text
    assert EVIL_QUERY.split(' FROM ')[0] in page.text
    assert 'Health of <db1>' in page.text
    # the findings, critical first, with their fix
    assert page.text.index('93% of the range used') < page.text.index('index public.evil_idx never scanned')
    assert 'DROP INDEX CONCURRENTLY public.orders_code_key_ccnew;' in page.text
    assert 'CREATE INDEX CONCURRENTLY ON public.notes (tenant_id);' in page.text
