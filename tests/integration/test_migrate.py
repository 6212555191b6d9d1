"""pg_migrate against the lab's real primary, run through ansible-playbook: status, up, down, check mode, two runs
at once, a lock held on the table, CREATE INDEX CONCURRENTLY killed half-way, drift, lint, dbmate's table."""

from __future__ import annotations

import os
import shutil
import threading
import time

import psycopg2
import pytest

from tests.conftest import node_params

MANIFEST = '.manifest.json'

ADD_TABLE = """-- migrate:up
CREATE TABLE requisitions (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text);
INSERT INTO requisitions (title) SELECT 'r' || g FROM generate_series(1, 2000) g;
CREATE TABLE applied_log (version text);
INSERT INTO applied_log VALUES ('1');

-- migrate:down
DROP TABLE applied_log;
DROP TABLE requisitions;
"""
ADD_COLUMN = """-- migrate:up
ALTER TABLE requisitions ADD COLUMN IF NOT EXISTS priority text DEFAULT 'standard';
INSERT INTO applied_log VALUES ('2');

-- migrate:down
ALTER TABLE requisitions DROP COLUMN IF EXISTS priority;
DELETE FROM applied_log WHERE version = '2';
"""
ADD_INDEX = """-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_requisitions_priority ON requisitions (priority)
  WHERE priority IS NOT NULL;

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS idx_requisitions_priority;
"""


@pytest.fixture
def db(lab):
    name = 'mig_%d' % (int(time.time() * 1000) % 10 ** 9)
    lab.psql('primary', 'CREATE DATABASE %s' % name)
    yield name
    lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)


def folder(tmp_path, **files):
    path = tmp_path / 'migrations'
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / (name + '.sql')).write_text(text)
    return str(path)


def migrate(play, lab, db, path, check=False, name='migrate', **args):
    args = dict(node_params(lab, db=db), **args)
    if path is not None:
        args['path'] = path
    args.setdefault('lint', 'off')
    run = play([dict(name=name, ignore_errors=True, **{'procgenie.dbops.pg_migrate': args})], check=check)
    return run.result(name)


def sql(lab, db, query):
    return lab.psql('primary', query, db=db).strip()


def connect(lab, db):
    n = lab.state['nodes']['primary']
    conn = psycopg2.connect(host=n['host'], port=n['port'], user=lab.state['superuser'],
                            password=lab.state['password'], dbname=db, application_name='test-blocker')
    conn.autocommit = True
    return conn


def test_status_check_up_again_down(lab, play, db, tmp_path):
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE, '2_add_priority': ADD_COLUMN, '3_add_index': ADD_INDEX})
    status = migrate(play, lab, db, path)
    assert not status.get('failed') and not status['changed'], status
    assert [e['version'] for e in status['status']['pending']] == ['1', '2', '3']

    planned = migrate(play, lab, db, path, check=True, mode='up')
    assert planned['changed'] and not planned.get('failed'), planned
    assert [(p['version'], p['transactional']) for p in planned['plan']] == [('1', True), ('2', True), ('3', False)]
    assert planned['plan'][2]['statements'][0]['sql'].startswith('CREATE INDEX CONCURRENTLY')
    assert sql(lab, db, "SELECT to_regclass('requisitions') IS NULL AND "
                        "to_regclass('dbops_schema_history') IS NULL") == 't'

    up = migrate(play, lab, db, path, mode='up')
    assert up['changed'] and not up.get('failed'), up
    assert [a['version'] for a in up['applied']] == ['1', '2', '3']
    assert sql(lab, db, "SELECT string_agg(version || ':' || transactional || ':' || (finished_at IS NOT NULL) "
                        "|| ':' || length(up_sha256), ',' ORDER BY version) FROM dbops_schema_history") == \
        '1:true:true:64,2:true:true:64,3:false:true:64'
    assert sql(lab, db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_requisitions_priority'::regclass") \
        == 't'

    again = migrate(play, lab, db, path, mode='up')
    assert not again['changed'] and again['applied'] == [] and not again.get('failed'), again

    down = migrate(play, lab, db, path, mode='down', steps=2)
    assert down['changed'] and [r['version'] for r in down['reverted']] == ['3', '2'], down
    assert sql(lab, db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'priority'") == '0'
    assert sql(lab, db, 'SELECT string_agg(version, \',\') FROM dbops_schema_history') == '1'


def test_bad_input_runs_nothing(lab, play, db, tmp_path):
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE,
                               '2_bad': '-- migrate:up\nSELECT 1;\n'
                                        'CREATE INDEX CONCURRENTLY i ON requisitions (id);\n'})
    bad = migrate(play, lab, db, path, mode='up')
    assert bad.get('failed') and bad['msg'].startswith('2_bad.sql line 3: CREATE INDEX CONCURRENTLY cannot run'), bad
    assert sql(lab, db, "SELECT to_regclass('requisitions') IS NULL") == 't'
    missing = migrate(play, lab, db, str(tmp_path / 'nope'), mode='up')
    assert missing.get('failed') and 'does not exist' in missing['msg'] and 'Traceback' not in str(missing)
    os.remove(os.path.join(path, '2_bad.sql'))
    unknown = migrate(play, lab, db, path, mode='up', target='7')
    assert unknown.get('failed') and 'target 7 is not the version' in unknown['msg'], unknown
    nothing = migrate(play, lab, db, path, mode='down')
    assert nothing.get('failed') and 'no migration is applied' in nothing['msg'], nothing
    negative = migrate(play, lab, db, path, mode='up', lock_retries=-1)
    assert negative.get('failed') and 'lock_retries must not be negative' in negative['msg'], negative


def test_two_runs_at_once_apply_each_migration_once(lab, play, db, tmp_path):
    slow = '-- migrate:up\nSELECT pg_sleep(3);\nINSERT INTO applied_log VALUES (\'9\');\n'
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE, '2_add_priority': ADD_COLUMN, '9_slow': slow})
    results = {}

    def run(key):
        results[key] = migrate(play, lab, db, path, mode='up', name='run %s' % key)
    threads = [threading.Thread(target=run, args=(k,)) for k in ('a', 'b')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not any(r.get('failed') for r in results.values()), results
    applied = sorted(len(r['applied']) for r in results.values())
    assert applied == [0, 3], results
    assert sql(lab, db, 'SELECT string_agg(version, \',\' ORDER BY version) FROM applied_log') == '1,2,9'
    assert sql(lab, db, 'SELECT count(*) FROM dbops_schema_history') == '3'


def test_lock_held_on_the_table_retries_then_fails_or_succeeds(lab, play, db, tmp_path):
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE})
    assert not migrate(play, lab, db, path, mode='up').get('failed')
    path = folder(tmp_path, **{'2_add_priority': ADD_COLUMN})
    blocker = connect(lab, db)
    try:
        cur = blocker.cursor()
        cur.execute('BEGIN')
        cur.execute('LOCK TABLE requisitions IN ACCESS SHARE MODE')
        failed = migrate(play, lab, db, path, mode='up', lock_timeout='200ms', lock_retries=2, lock_retry_delay=0.2)
        assert failed.get('failed'), failed
        assert 'lock_timeout (200ms) reached 3 time(s)' in failed['msg'], failed
        assert failed['blocking_pids'] == [blocker.get_backend_pid()], failed
        assert str(blocker.get_backend_pid()) in failed['msg']
        assert sql(lab, db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'priority'") == '0'
        watcher = connect(lab, db)

        def release():  # once the ALTER has waited (and hit lock_timeout at least once), let it through
            deadline = time.time() + 60
            with watcher.cursor() as wcur:
                while time.time() < deadline:
                    wcur.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE requisitions%%' "
                                 "AND wait_event_type = 'Lock'")
                    if wcur.fetchone()[0]:
                        break
                    time.sleep(0.05)
            time.sleep(0.8)
            cur.execute('COMMIT')
        thread = threading.Thread(target=release)
        thread.start()
        done = migrate(play, lab, db, path, mode='up', lock_timeout='300ms', lock_retries=6, lock_retry_delay=0.3)
        thread.join()
        watcher.close()
        assert not done.get('failed') and done['applied'][0]['lock_retries'] >= 1, done
        assert sql(lab, db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'priority'") == '1'
    finally:
        blocker.close()


def test_concurrent_index_killed_half_way_is_rebuilt(lab, play, db, tmp_path):
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE, '2_add_priority': ADD_COLUMN})
    assert not migrate(play, lab, db, path, mode='up').get('failed')
    path = folder(tmp_path, **{'3_add_index': ADD_INDEX})
    writer = connect(lab, db)
    watcher = connect(lab, db)
    killed = []
    try:
        wcur = writer.cursor()
        wcur.execute('BEGIN')
        wcur.execute("UPDATE requisitions SET title = title WHERE id = 1")  # CIC waits for this writer

        def kill():
            deadline = time.time() + 60
            with watcher.cursor() as cur:
                while time.time() < deadline and not killed:
                    cur.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%%' "
                                "AND wait_event_type = 'Lock' AND datname = current_database()")
                    row = cur.fetchone()
                    if row:
                        cur.execute('SELECT pg_terminate_backend(%s)', (row[0],))
                        killed.append(row[0])
                    time.sleep(0.2)
        thread = threading.Thread(target=kill)
        thread.start()
        first = migrate(play, lab, db, path, mode='up', lock_timeout='60s')
        thread.join()
        assert killed and first.get('failed'), first
        wcur.execute('COMMIT')
        assert sql(lab, db, "SELECT indisvalid FROM pg_index "
                            "WHERE indexrelid = 'idx_requisitions_priority'::regclass") == 'f'
        status = migrate(play, lab, db, path)
        assert [e['version'] for e in status['status']['interrupted']] == ['3'], status
        second = migrate(play, lab, db, path, mode='up')
        assert not second.get('failed'), second
        assert second['invalid_indexes'] == ['public.idx_requisitions_priority']
        assert [a['version'] for a in second['applied']] == ['3']
        assert sql(lab, db, "SELECT indisvalid FROM pg_index "
                            "WHERE indexrelid = 'idx_requisitions_priority'::regclass") == 't'
        assert sql(lab, db, "SELECT finished_at IS NOT NULL FROM dbops_schema_history WHERE version = '3'") == 't'
    finally:
        writer.close()
        watcher.close()


def test_drift_is_refused_unless_allowed(lab, play, db, tmp_path):
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE})
    assert not migrate(play, lab, db, path, mode='up').get('failed')
    folder(tmp_path, **{'1_add_table': ADD_TABLE.replace('2000', '2001'), '2_add_priority': ADD_COLUMN})
    drift = migrate(play, lab, db, path, mode='up')
    assert drift.get('failed') and '1_add_table.sql (up section)' in drift['msg'], drift
    assert sql(lab, db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'priority'") == '0'
    status = migrate(play, lab, db, path)
    assert [d['version'] for d in status['status']['drifted']] == ['1'], status
    allowed = migrate(play, lab, db, path, mode='up', allow_drift=True)
    assert not allowed.get('failed') and [a['version'] for a in allowed['applied']] == ['2'], allowed


def test_lint_refusal_leaves_the_schema_untouched(lab, play, db, tmp_path):
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE})
    assert not migrate(play, lab, db, path, mode='up').get('failed')
    blocking = ("-- migrate:up\nSET lock_timeout = '1s';\nSET statement_timeout = '5s';\n"
                "CREATE INDEX IF NOT EXISTS idx_title ON requisitions (title);\n")
    folder(tmp_path, **{'2_index': blocking})
    refused = migrate(play, lab, db, path, mode='up', lint='fail')
    assert refused.get('failed'), refused
    assert '2_index.sql line 4: require-concurrent-index-creation' in refused['msg'], refused
    assert [f['rule'] for f in refused['lint']] == ['require-concurrent-index-creation']
    assert sql(lab, db, "SELECT to_regclass('idx_title') IS NULL") == 't'
    assert sql(lab, db, 'SELECT count(*) FROM dbops_schema_history') == '1'
    folder(tmp_path, **{'2_index': blocking.replace('CREATE INDEX',
                                                    '-- squawk-ignore require-concurrent-index-creation\n'
                                                    'CREATE INDEX')})
    ignored = migrate(play, lab, db, path, mode='up', lint='fail')
    assert not ignored.get('failed') and ignored['lint'] == [], ignored
    assert sql(lab, db, "SELECT to_regclass('idx_title') IS NOT NULL") == 't'


def test_dbmate_applied_versions_are_honoured(lab, play, db, tmp_path):
    lab.psql('primary', 'CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY); '
                        "INSERT INTO schema_migrations VALUES ('1'); "
                        'CREATE TABLE requisitions (id bigint PRIMARY KEY, title text); '
                        'CREATE TABLE applied_log (version text)', db=db)
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE, '2_add_priority': ADD_COLUMN})
    status = migrate(play, lab, db, path)
    assert [e['version'] for e in status['status']['applied']] == ['1'], status
    assert status['status']['applied'][0]['applied_by'] == 'dbmate'
    up = migrate(play, lab, db, path, mode='up')
    assert not up.get('failed') and [a['version'] for a in up['applied']] == ['2'], up
    assert sql(lab, db, "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations") == '1,2'


def test_rehearse_finds_a_down_that_does_not_restore_the_schema(lab, play, db, tmp_path):
    lossy = ("-- migrate:up\nCREATE TABLE tags (id bigint PRIMARY KEY, label text);\n"
             "CREATE INDEX tags_label ON tags (label);\n\n-- migrate:down\nDROP INDEX tags_label;\n")
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE, '2_add_priority': ADD_COLUMN, '3_tags': lossy})
    planned = migrate(play, lab, db, path, check=True, mode='rehearse')
    assert not planned.get('failed') and not planned['changed'] and planned['rehearsal'] == [], planned
    good = migrate(play, lab, db, folder(tmp_path / 'good', **{'1_add_table': ADD_TABLE, '2_add_priority': ADD_COLUMN,
                                                               '3_add_index': ADD_INDEX}), mode='rehearse')
    assert not good.get('failed') and not good['changed'], good
    assert [(e['version'], e['down_restores_schema'], e['reapplied']) for e in good['rehearsal']] == [
        ('1', True, True), ('2', True, True), ('3', True, True)], good
    result = migrate(play, lab, db, path, mode='rehearse')
    assert result.get('failed') and 'the down section of 3_tags.sql does not restore the schema' in result['msg'], \
        result
    by_version = dict((e['version'], e) for e in result['rehearsal'])
    assert by_version['1']['down_restores_schema'] and by_version['2']['down_restores_schema'], result
    assert by_version['3']['down_restores_schema'] is False and not by_version['3']['reapplied'], result
    assert 'already exists' in by_version['3']['error']
    assert any('CREATE TABLE public.tags' in line for line in by_version['3']['schema_diff']), result
    assert sql(lab, db, "SELECT to_regclass('requisitions') IS NULL AND "
                        "to_regclass('dbops_schema_history') IS NULL") == 't'
    assert sql(lab, db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_rehearse%'") == '0'


def test_playbook_status_check_up_and_summaries(lab, play, db, tmp_path):
    from tests.conftest import REPO
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE, '2_add_priority': ADD_COLUMN, '3_add_index': ADD_INDEX})
    book = os.path.join(REPO, 'playbooks', 'migrate.yml')
    base = dict(target='localhost', dbops_connection=node_params(lab, db=db), migrations_path=path,
                migrations_lint='off')

    def summary(run):
        assert run.rc == 0, run
        assert run.results[-1]['task'] == 'procgenie.dbops.migrations : Summary'
        return run.results[-1]['result']['msg']

    assert summary(play(playbook=book, extravars=base)) == \
        'localhost (%s): 0 applied, 3 pending, 0 drifted, 0 missing, 0 interrupted' % db
    assert summary(play(playbook=book, check=True, extravars=dict(base, migrations_mode='up'))) == \
        'localhost (%s): would apply 3 migration(s): 1, 2, 3' % db
    assert sql(lab, db, "SELECT to_regclass('requisitions') IS NULL") == 't'
    assert summary(play(playbook=book, extravars=dict(base, migrations_mode='up', migrations_target='2'))) == \
        'localhost (%s): applied 2 migration(s): 1, 2' % db
    assert summary(play(playbook=book, extravars=dict(base, migrations_mode='rehearse'))) == \
        'localhost (%s): rehearsed 1 pending migration(s) on a scratch copy: 3; every down restores the schema' % db
    assert summary(play(playbook=book, check=True, extravars=dict(base, migrations_mode='down'))) == \
        'localhost (%s): would revert 1 migration(s): 2' % db


def test_cancel_ends_the_migration_session_within_2_s(lab, play, db, tmp_path):
    from tests.integration.test_cancel import Monitor, cancel, in_thread, module_process, wait_until
    slow = "-- migrate:up transaction:false\nSELECT pg_sleep(60);\n"
    path = folder(tmp_path, **{'1_slow': slow})
    monitor = Monitor(lab)
    try:
        thread, outcome = in_thread(play, [dict(name='migrate', **{'procgenie.dbops.pg_migrate': dict(
            node_params(lab, db=db), path=path, mode='up', lint='off')})])
        module = module_process('pg_migrate')
        wait_until(lambda: monitor.rows("SELECT pid FROM pg_stat_activity WHERE state = 'active' "
                                        "AND query LIKE 'SELECT pg_sleep(60)%%'"), 60, 'the migration running')
        assert cancel(module, monitor, 'SELECT pg_sleep(60)%', tree=[]) < 2.0
        thread.join(60)
        assert outcome['run'].rc != 0
        assert sql(lab, db, "SELECT finished_at IS NULL FROM dbops_schema_history WHERE version = '1'") == 't'
    finally:
        monitor.close()


FAKE_APP = '''#!%s
"""A stand-in for the application's `typeorm migration:run`: connects with the PG* environment pg_migrate gives it,
records the lock_timeout it got, and inserts the migrations not yet in the table."""
import sys
import psycopg2
conn = psycopg2.connect('')
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT current_setting('lock_timeout')")
with open(sys.argv[1], 'w') as handle:
    handle.write(cur.fetchone()[0])
for name in sys.argv[2:]:
    cur.execute("INSERT INTO migrations (timestamp, name) SELECT %%s, %%s WHERE NOT EXISTS "
                "(SELECT 1 FROM migrations WHERE name = %%s)", (int(name[-13:]), name, name))
'''


FAKE_REVERT = '''#!%s
"""A stand-in for `typeorm migration:revert`: removes the newest row of the table (by id)."""
import psycopg2
conn = psycopg2.connect('')
conn.autocommit = True
conn.cursor().execute("DELETE FROM migrations WHERE id = (SELECT max(id) FROM migrations)")
'''


def test_typeorm_table_read_compared_and_the_application_command_run(lab, play, db, tmp_path):
    import sys
    lab.psql('primary', 'CREATE TABLE migrations (id SERIAL PRIMARY KEY, "timestamp" bigint NOT NULL, '
                        'name character varying NOT NULL); '
                        "INSERT INTO migrations (timestamp, name) VALUES (1700000000000, 'Init1700000000000'), "
                        "(1600000000000, 'Hotfix1600000000000')", db=db)
    app = tmp_path / 'fake-typeorm'
    app.write_text(FAKE_APP % sys.executable)
    app.chmod(0o755)
    expected = ['Init1700000000000', 'AddPriority1710000000000']
    base = dict(source='typeorm', expected=expected)
    status = migrate(play, lab, db, None, **base)
    assert not status.get('failed') and not status['changed'], status
    assert status['typeorm']['pending'] == ['AddPriority1710000000000']
    assert status['typeorm']['unexpected'] == ['Hotfix1600000000000']
    assert [m['timestamp'] for m in status['typeorm']['migrations']] == ['1700000000000', '1600000000000']
    command = [str(app), str(tmp_path / 'lock_timeout.txt'), 'AddPriority1710000000000']
    check = migrate(play, lab, db, None, check=True, mode='up', command=command, **base)
    assert check['changed'] and check['typeorm']['command'] == command and check['commands'] == [], check
    assert sql(lab, db, 'SELECT count(*) FROM migrations') == '2'
    up = migrate(play, lab, db, None, mode='up', command=command, lock_timeout='3s', **base)
    assert not up.get('failed') and up['changed'] and up['typeorm']['ran'] == ['AddPriority1710000000000'], up
    assert up['typeorm']['pending'] == [] and (tmp_path / 'lock_timeout.txt').read_text() == '3s'
    again = migrate(play, lab, db, None, mode='up', command=command, **base)
    assert not again.get('failed') and not again['changed'] and again['commands'] == [], again
    refused = migrate(play, lab, db, None, mode='rehearse', source='typeorm')
    assert refused.get('failed') and 'supports mode status, up and down' in refused['msg'], refused
    no_command = migrate(play, lab, db, None, mode='down', source='typeorm')
    assert no_command.get('failed') and 'migration:revert' in no_command['msg'], no_command
    revert = tmp_path / 'fake-revert'
    revert.write_text(FAKE_REVERT % sys.executable)
    revert.chmod(0o755)
    planned = migrate(play, lab, db, None, check=True, mode='down', command=[str(revert)], **base)
    assert planned['changed'] and sql(lab, db, 'SELECT count(*) FROM migrations') == '3', planned
    reverted = migrate(play, lab, db, None, mode='down', command=[str(revert)], **base)
    assert not reverted.get('failed') and reverted['typeorm']['removed'] == ['AddPriority1710000000000'], reverted
    assert [r['name'] for r in reverted['reverted']] == ['AddPriority1710000000000']
    assert reverted['typeorm']['pending'] == ['AddPriority1710000000000']
    noop = migrate(play, lab, db, None, mode='down', command=['/bin/true'], **base)
    assert noop.get('failed') and 'no migration left' in noop['msg'], noop
    assert migrate(play, lab, db, None, mode='up', command=command, **base)['typeorm']['ran'] == [
        'AddPriority1710000000000']
    other = 'mig_other_%d' % (int(time.time() * 1000) % 10 ** 9)
    lab.psql('primary', 'CREATE DATABASE %s' % other)
    try:
        lab.psql('primary', 'CREATE TABLE migrations (id SERIAL PRIMARY KEY, "timestamp" bigint NOT NULL, '
                            "name character varying NOT NULL); INSERT INTO migrations (timestamp, name) VALUES "
                            "(1700000000000, 'Init1700000000000'), (1730000000000, 'Later1730000000000')", db=other)
        peer = node_params(lab, db=other)
        compared = migrate(play, lab, db, None, source='typeorm', compare_with=dict(
            login_host=peer['login_host'], login_port=peer['login_port'], login_password=peer['login_password'],
            login_db=other))
        assert not compared.get('failed'), compared
        assert compared['typeorm']['pending'] == ['Later1730000000000'], compared
        assert compared['typeorm']['unexpected'] == ['Hotfix1600000000000', 'AddPriority1710000000000']
        assert compared['typeorm']['compared_with']['server'].endswith('/%s' % other)
        assert lab.state['password'] not in str(compared)
    finally:
        lab.psql('primary', 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % other)
    from tests.conftest import REPO
    run = play(playbook=os.path.join(REPO, 'playbooks', 'migrate.yml'), check=True, extravars=dict(
        target='localhost', dbops_connection=node_params(lab, db=db), migrations_source='typeorm',
        migrations_mode='up', migrations_expected=expected + ['Next1720000000000'], migrations_command=command))
    assert run.rc == 0, run
    assert run.results[-1]['result']['msg'] == (
        "localhost (%s): TypeORM table migrations: 3 applied, 1 expected not applied, 1 not expected; would run the "
        "application's command" % db)
    run = play(playbook=os.path.join(REPO, 'playbooks', 'migrate.yml'), extravars=dict(
        target='localhost', dbops_connection=node_params(lab, db=db), migrations_mode='up'))
    assert run.rc != 0 and 'migrations_path' in run.text


def test_runner_lock_held_elsewhere_fails_naming_the_holder(lab, play, db, tmp_path):
    from ansible_collections.procgenie.dbops.plugins.module_utils.migrate.tracking import LOCK_KEY
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE})
    holder = connect(lab, db)
    try:
        holder.cursor().execute('SELECT pg_advisory_lock(%s)', (LOCK_KEY,))
        started = time.monotonic()
        failed = migrate(play, lab, db, path, mode='up', runner_lock_timeout=1)
        assert failed.get('failed') and 'holds the migration lock of this database (pid %d)' % (
            holder.get_backend_pid()) in failed['msg'], failed
        assert time.monotonic() - started < 30
        assert sql(lab, db, "SELECT to_regclass('requisitions') IS NULL") == 't'
        planned = migrate(play, lab, db, path, check=True, mode='up')  # check mode takes no lock
        assert not planned.get('failed') and planned['changed'], planned
    finally:
        holder.close()


TWO_STEPS = """-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_log_version ON applied_log (version);
ALTER TABLE requisitions ADD COLUMN IF NOT EXISTS note text;

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS idx_log_version;
ALTER TABLE requisitions DROP COLUMN IF EXISTS note;
"""


def test_non_transactional_down_stopped_half_way_is_reported_then_finished(lab, play, db, tmp_path):
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE, '2_two_steps': TWO_STEPS})
    assert not migrate(play, lab, db, path, mode='up').get('failed')
    blocker = connect(lab, db)
    try:
        cur = blocker.cursor()
        cur.execute('BEGIN')
        cur.execute('LOCK TABLE requisitions IN ACCESS SHARE MODE')  # the down's ALTER waits, then times out
        stopped = migrate(play, lab, db, path, mode='down', lock_timeout='1s', lock_retries=0)
        assert stopped.get('failed') and '2_two_steps.sql line 7' in stopped['msg'], stopped
        cur.execute('ROLLBACK')
    finally:
        blocker.close()
    assert sql(lab, db, "SELECT to_regclass('idx_log_version') IS NULL") == 't'  # the first statement ran
    status = migrate(play, lab, db, path)
    assert [(e['version'], e['direction']) for e in status['status']['interrupted']] == [('2', 'down')], status
    assert 'down' in status['status']['interrupted'][0]['advice']
    assert [e['version'] for e in status['status']['applied']] == ['1'], status
    finished = migrate(play, lab, db, path, mode='down')
    assert not finished.get('failed') and [r['version'] for r in finished['reverted']] == ['2'], finished
    assert sql(lab, db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'") == '0'
    after = migrate(play, lab, db, path)
    assert [e['version'] for e in after['status']['pending']] == ['2'] and not after['status']['interrupted'], after


def test_lint_knows_the_timeouts_the_module_sets(lab, play, db, tmp_path):
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE})
    assert not migrate(play, lab, db, path, mode='up').get('failed')
    folder(tmp_path, **{'2_note': '-- migrate:up\nALTER TABLE requisitions ADD COLUMN note text;\n'})
    covered = migrate(play, lab, db, path, check=True, mode='up', lint='fail', statement_timeout='1min')
    assert not covered.get('failed') and covered['lint'] == [], covered
    unset = migrate(play, lab, db, path, check=True, mode='up', lint='warn', lock_timeout='0')
    assert sorted(f['rule'] for f in unset['lint']) == ['require-lock-timeout', 'require-statement-timeout'], unset


def test_rehearse_from_a_backup_while_sessions_are_connected(lab, play, db, tmp_path):
    """Production is never quiet: the TEMPLATE copy is refused there, a restore of a pg_backup artifact is not.
    The backup is older than migration 2, so the copy is brought up to it before 3 is rehearsed."""
    path = folder(tmp_path, **{'1_add_table': ADD_TABLE})
    assert not migrate(play, lab, db, path, mode='up').get('failed')
    dest = str(tmp_path / 'backups')
    made = play([dict(name='backup', **{'procgenie.dbops.pg_backup': dict(
        node_params(lab, db=db), dest=dest, kind='full', format='custom')})]).result('backup')
    schema = play([dict(name='schema', **{'procgenie.dbops.pg_backup': dict(
        node_params(lab, db=db), dest=dest, kind='schema_only', format='custom')})]).result('schema')
    folder(tmp_path, **{'2_add_priority': ADD_COLUMN})
    assert not migrate(play, lab, db, path, mode='up').get('failed')
    lossy = ("-- migrate:up\nCREATE TABLE tags (id bigint PRIMARY KEY, label text);\n"
             "CREATE INDEX tags_label ON tags (label);\n\n-- migrate:down\nDROP INDEX tags_label;\n")
    folder(tmp_path, **{'3_tags': lossy})
    client = connect(lab, db)  # an application session
    try:
        refused = migrate(play, lab, db, path, mode='rehearse')
        assert refused.get('failed') and 'rehearse_from' in refused['msg'], refused
        broken = str(tmp_path / 'copy.dump')  # a damaged copy of the artifact, with the artifact's manifest
        with open(made['path'], 'rb') as src, open(broken, 'wb') as out:
            out.write(src.read()[:-10])
        shutil.copy(made['path'] + MANIFEST, broken + MANIFEST)
        bad = migrate(play, lab, db, path, mode='rehearse', rehearse_from=broken)
        assert bad.get('failed') and 'does not match its manifest' in bad['msg'], bad
        no_rows = migrate(play, lab, db, path, mode='rehearse', rehearse_from=schema['path'])
        assert no_rows.get('failed') and 'needs a full backup' in no_rows['msg'], no_rows
        result = migrate(play, lab, db, path, mode='rehearse', rehearse_from=made['path'])
        assert result.get('failed') and 'the down section of 3_tags.sql does not restore the schema' in result['msg']
        assert result['rehearse_from'] == made['path'] and result['caught_up'] == ['2'], result
        assert [(e['version'], e['down_restores_schema']) for e in result['rehearsal']] == [('3', False)], result
    finally:
        client.close()
    assert sql(lab, db, "SELECT to_regclass('tags') IS NULL") == 't'
    assert sql(lab, db, "SELECT string_agg(version, ',' ORDER BY version) FROM dbops_schema_history") == '1,2'
    assert sql(lab, db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops_rehearse%'") == '0'
