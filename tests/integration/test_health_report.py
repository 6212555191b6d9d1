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


BAD_INPUT = [
    (dict(facts={'rows': 3}), ['not a result of procgenie.dbops.pg_perf_info']),
    (dict(facts={'findings': 'none'}), ['facts.findings must be a list of dicts']),
    (dict(facts={'indexes': {'duplicate': {'a': 1}}}), ['facts.indexes.duplicate must be a list of dicts']),
    (dict(facts={'findings': []}, mode='0644'), ['mode 0644', 'every user']),
    (dict(facts={'findings': []}, mode='rw-'), ['octal file mode']),
]


def test_bad_input_fails_clearly_and_writes_nothing(play, where):
    dest = os.path.join(where, 'new', 'health.html')
    run = play([report_task('bad %d' % i, dest=dest, **args) for i, (args, _words) in enumerate(BAD_INPUT)])
    for i, (_args, words) in enumerate(BAD_INPUT):
        res = run.result('bad %d' % i)
        assert res.get('failed') and all(w in res['msg'] for w in words), res
        assert 'Traceback' not in res['msg']
    assert not os.path.exists(os.path.join(where, 'new'))


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


# ---------------------------------------------------------------------------------------------- the role, for real
DB = 'health_rep'
SETUP = [
    'CREATE EXTENSION IF NOT EXISTS pg_stat_statements',
    'CREATE TABLE orders (id bigint PRIMARY KEY, code text NOT NULL, a int NOT NULL)',
    "INSERT INTO orders SELECT g, 'c' || g, g % 50 FROM generate_series(1, 2000) g",
    'CREATE UNIQUE INDEX orders_a_code_key ON orders (a, code)',
    'CREATE INDEX orders_a_code_idx ON orders (a, code)',  # a duplicate of the unique one: this one goes
    'CREATE TABLE "<script>alert(1)</script>" (id int PRIMARY KEY, x int)',
    'INSERT INTO "<script>alert(1)</script>" SELECT g, g FROM generate_series(1, 100) g',
    'CREATE INDEX "<b>evil_idx</b>" ON "<script>alert(1)</script>" (x)',
    'CREATE TABLE notes (id int PRIMARY KEY, tenant_id uuid, body text)',  # tenant table, no tenant index
    'CREATE SEQUENCE almost_full MAXVALUE 100',
    "SELECT setval('almost_full', 95)",  # 95 % of its range: critical
    'ANALYZE',
]


@pytest.fixture(scope='module')
def perfdb(lab):
    import psycopg2
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)
    lab.psql('primary', 'CREATE DATABASE %s' % DB)
    params = node_params(lab, db=DB)
    conn = psycopg2.connect(host=params['login_host'], port=params['login_port'], user=params['login_user'],
                            password=params['login_password'], dbname=DB)
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in SETUP:
            cur.execute(statement)
        with pytest.raises(psycopg2.Error):  # leaves an INVALID index behind
            cur.execute('CREATE UNIQUE INDEX CONCURRENTLY orders_a_key ON orders (a)')
        for i in range(5):  # a workload whose statement text holds markup (identifiers are kept as written)
            cur.execute('SELECT count(*) FROM "<script>alert(1)</script>" WHERE x > %s', (i,))
            cur.execute('SELECT code FROM orders WHERE a = %s ORDER BY code LIMIT 1', (i,))
    conn.close()
    yield params
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % DB)


def health_job(play, conn, check=False, **extravars):
    return play(playbook=os.path.join(REPO, 'playbooks', 'health_report.yml'), check=check,
                extravars=dict(target='localhost', dbops_connection=conn, **extravars))


def failures(run):
    return [(r['task'], r['result'].get('msg')) for r in run.results if r['status'] == 'failed']


def test_health_report_job_prints_findings_and_writes_a_page_chromium_shows(play, perfdb, where):
    dest = os.path.join(where, 'weekly', 'health.html')
    # check mode: the findings, nothing written
    run = health_job(play, perfdb, check=True, performance_report_path=dest)
    assert run.rc == 0, failures(run)
    summary = run.results[-1]
    assert summary['task'] == 'procgenie.dbops.performance : Summary', summary
    assert 'would be written' in summary['result']['msg'] and not os.path.exists(os.path.dirname(dest))
    # the job
    run = health_job(play, perfdb, performance_report_path=dest, performance_statements_scope='database')
    assert run.rc == 0, failures(run)
    facts = run.result('Read the performance and index health')
    findings = facts['findings']
    lines = run.result('Show the findings')['msg']
    assert len(lines) == len(findings) and all('\n' not in line for line in lines), lines
    objects = [f['object'] for f in findings if f['level'] != 'ok']
    duplicate = [f for f in findings if f['object'].endswith('orders_a_code_idx')]
    assert duplicate and 'DROP INDEX' in duplicate[0]['fix_sql'], findings
    assert any('orders_a_key' in o for o in objects) and any('almost_full' in o for o in objects), objects
    assert lines[0].startswith('CRITICAL sequences') and 'almost_full' in lines[0], lines
    msg = run.results[-1]['result']['msg']
    assert msg.startswith('localhost (development): 1 critical and ') and 'written' in msg and 'would' not in msg, msg
    assert 'pg_stat_statements read' in msg, msg
    assert mode_of(dest) == 0o600 and mode_of(os.path.dirname(dest)) == 0o700
    # the page: loads without console errors, shows the findings of the database, markup as text
    dom, console = chromium.render(dest)
    assert console == [], console
    page = Page(dom)
    assert 'script' not in [t for t, _a in page.tags]
    for finding in findings:
        assert finding['message'] in page.text, finding
        if finding['fix_sql']:
            assert ' '.join(finding['fix_sql'].split()) in page.text, finding
    assert 'SELECT count(*) FROM "<script>alert(1)</script>" WHERE x > $1' in page.text
    assert 'public.<script>alert(1)</script>' in page.text and 'public.<b>evil_idx</b>' in page.text  # sizes, bloat
    statements = sum((facts['statements'][k] for k in ('top_total_time', 'top_mean_time', 'top_calls')), [])
    assert any('<script>' in s['query'] for s in statements), statements


def test_production_fails_on_critical_findings_after_writing_the_report(play, perfdb, where):
    dest = os.path.join(where, 'prod.html')
    run = health_job(play, perfdb, dbops_environment='production', performance_report_path=dest)
    assert run.rc != 0
    failed = failures(run)
    assert failed[0][0] == 'procgenie.dbops.performance : Fail on the findings', failed
    assert 'almost_full' in failed[0][1] and 'critical' in failed[0][1], failed
    assert os.path.isfile(dest)
    # told to report only: the job passes; without a path: no file, said so
    run = health_job(play, perfdb, dbops_environment='production', performance_fail_on='never',
                     performance_findings_limit=1)
    assert run.rc == 0, failures(run)
    assert 'no report file (performance_report_path is empty)' in run.results[-1]['result']['msg']
    # the role's findings_limit reaches the module: at most one finding listed a kind, plus the count of the rest
    facts = run.result('Read the performance and index health')
    assert facts['invocation']['module_args']['findings_limit'] == 1
    counted = [f for f in facts['findings'] if '(findings_limit 1 keeps the worst)' in f['message']]
    assert len(counted) == len(facts['findings_omitted']), (counted, facts['findings_omitted'])
