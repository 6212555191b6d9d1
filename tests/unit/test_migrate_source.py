"""migrate.source and migrate.planning: dbmate-format files read and checked, and what up/down run (no server)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils.migrate import planning, source
from ansible_collections.procgenie.dbops.plugins.module_utils.migrate.source import MigrationError

ADD = ("-- migrate:up\nSET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN p text;\n\n"
       "-- migrate:down\nALTER TABLE t DROP COLUMN p;\n")


def write(folder, name, text):
    with open(os.path.join(str(folder), name), 'w') as handle:
        handle.write(text)


def test_sections_statements_and_lines():
    text = ("-- migrate:up\nSET lock_timeout = '1s';\n-- a comment; with a semicolon\nALTER TABLE t\n  ADD COLUMN "
            "note text DEFAULT 'a;b';\n\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY IF EXISTS i;\n")
    m = source.parse_file('/x/20240101120000_add_note.sql', text)
    assert (m.version, m.name, m.number) == ('20240101120000', 'add_note', 20240101120000)
    assert [(s.line, s.kind) for s in m.up.statements] == [(2, 'VariableSetStmt'), (4, 'AlterTableStmt')]
    assert "'a;b'" in m.up.statements[1].text
    assert m.up.statements[1].relations == ('t',)
    assert m.up.transactional and not m.down.transactional
    assert m.down.statements[0].line == 8 and m.down.statements[0].non_transactional == 'DROP INDEX CONCURRENTLY'
    assert len(m.up.sha256) == 64 and m.up.sha256 != m.down.sha256


@pytest.mark.parametrize('sql, what', [
    ('CREATE INDEX CONCURRENTLY i ON t (a);', 'CREATE INDEX CONCURRENTLY'),
    ('DROP INDEX CONCURRENTLY i;', 'DROP INDEX CONCURRENTLY'),
    ('REINDEX TABLE CONCURRENTLY t;', 'REINDEX CONCURRENTLY'),
    ('VACUUM t;', 'VACUUM'),
    ("ALTER SYSTEM SET work_mem = '8MB';", 'ALTER SYSTEM'),
    ('CREATE DATABASE x;', 'CREATE DATABASE'),
])
def test_non_transactional_statement_refused_in_a_transactional_section(sql, what):
    with pytest.raises(MigrationError) as err:
        source.parse_file('/x/7_x.sql', '-- migrate:up\nSELECT 1;\n%s\n' % sql)
    assert str(err.value).startswith('7_x.sql line 3: %s cannot run inside a transaction' % what)
    m = source.parse_file('/x/7_x.sql', '-- migrate:up transaction:false\nSELECT 1;\n%s\n' % sql)
    assert not m.up.transactional and m.up.statements[1].non_transactional == what


def test_bad_files():
    with pytest.raises(MigrationError, match=r'^1_a.sql line 1: no -- migrate:up section'):
        source.parse_file('/x/1_a.sql', '-- migrate:down\nSELECT 1;\n')
    with pytest.raises(MigrationError, match=r'^1_a.sql line 3: SQL does not parse: syntax error at or near "selec"'):
        source.parse_file('/x/1_a.sql', '-- migrate:up\nSELECT 1;\nselec 2;\n')
    with pytest.raises(MigrationError, match=r'^1_a.sql line 1: unknown option'):
        source.parse_file('/x/1_a.sql', '-- migrate:up transaction:maybe\nSELECT 1;\n')
    with pytest.raises(MigrationError, match=r'^1_a.sql line 3: a second -- migrate:up'):
        source.parse_file('/x/1_a.sql', '-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n')
    with pytest.raises(MigrationError, match=r'^1_a.sql line 1: SQL before the first'):
        source.parse_file('/x/1_a.sql', 'SELECT 0;\n-- migrate:up\nSELECT 1;\n')
    with pytest.raises(MigrationError, match=r'^x.sql: a migration file is named'):
        source.parse_file('/x/x.sql', '-- migrate:up\nSELECT 1;\n')


def test_folder(tmp_path):
    with pytest.raises(MigrationError, match='does not exist'):
        source.read_folder(str(tmp_path / 'nope'))
    write(tmp_path, '10_b.sql', ADD)
    write(tmp_path, '9_a.sql', ADD)
    write(tmp_path, 'README.md', 'not a migration')
    assert [m.version for m in source.read_folder(str(tmp_path))] == ['9', '10']
    write(tmp_path, '0010_c.sql', ADD)
    with pytest.raises(MigrationError, match=r'Duplicate migration version 10: 0010_c.sql and 10_b.sql'):
        source.read_folder(str(tmp_path))


def migrations(*versions):
    return [source.parse_file('/x/%s_m%s.sql' % (v, v), ADD) for v in versions]


def row(m, **extra):
    base = dict(version=m.version, name=m.name, up_sha256=m.up.sha256, down_sha256=m.down.sha256,
                finished_at='t', transactional=True)
    base.update(extra)
    return base


def test_state_applied_pending_drifted_missing_interrupted_dbmate():
    ms = migrations('1', '2', '3', '4', '5')
    history = {'1': row(ms[0]), '2': row(ms[1], up_sha256='0' * 64),
               '3': row(ms[2], transactional=False, finished_at=None),
               '99': dict(version='99', name='gone')}
    st = planning.state(ms, history, dbmate_versions=['4', '98'])
    assert [e['version'] for e in st['applied']] == ['1', '2', '4']
    assert st['applied'][2]['applied_by'] == 'dbmate'
    assert [(e['version'], e['sections']) for e in st['drifted']] == [('2', ['up'])]
    assert [e['version'] for e in st['interrupted']] == ['3'] and 'INVALID' in st['interrupted'][0]['advice']
    assert [e['version'] for e in st['pending']] == ['5']
    assert [(e['version'], e['name']) for e in st['missing']] == [('98', None), ('99', 'gone')]
    assert [m.version for m in planning.select_up(ms, st)] == ['3', '5']
    assert [m.version for m in planning.select_up(ms, st, target='4')] == ['3']


def test_a_down_stopped_half_way_is_interrupted_and_both_directions_take_it():
    ms = migrations('1', '2')
    history = {'1': row(ms[0]), '2': row(ms[1], transactional=False, reverting_at='2026-11-30 10:00:00+00')}
    st = planning.state(ms, history)
    assert [(e['version'], e['direction']) for e in st['interrupted']] == [('2', 'down')]
    assert 'down section' in st['interrupted'][0]['advice'] and [e['version'] for e in st['applied']] == ['1']
    assert [m.version for m in planning.select_down(ms, st)] == ['2']
    assert [m.version for m in planning.select_up(ms, st)] == ['2']


def test_squawk_timeout_rules_are_left_out_only_when_the_session_sets_the_timeout():
    from ansible_collections.procgenie.dbops.plugins.module_utils.migrate import lint
    assert lint.covered_rules(dict(lock_timeout='10s', statement_timeout='0')) == ['require-lock-timeout']
    assert lint.covered_rules(dict(lock_timeout='0', statement_timeout='5min')) == ['require-statement-timeout']
    assert lint.covered_rules({}) == []


def test_select_up_and_down():
    ms = migrations('1', '2', '3')
    st = planning.state(ms, {'1': row(ms[0]), '2': row(ms[1])})
    assert [m.version for m in planning.select_up(ms, st)] == ['3']
    assert [m.version for m in planning.select_down(ms, st)] == ['2']
    assert [m.version for m in planning.select_down(ms, st, steps=5)] == ['2', '1']
    assert [m.version for m in planning.select_down(ms, st, target='1')] == ['2']
    with pytest.raises(MigrationError, match='target 7 is not the version'):
        planning.select_up(ms, st, target='7')
    with pytest.raises(MigrationError, match='no migration is applied'):
        planning.select_down(ms, planning.state(ms, {}))
    nodown = [source.parse_file('/x/1_a.sql', '-- migrate:up\nSELECT 1;\n')]
    with pytest.raises(MigrationError, match='1_a.sql has no -- migrate:down section'):
        planning.select_down(nodown, planning.state(nodown, {'1': dict(version='1', finished_at='t')}))
    plan = planning.steps_of(ms[2], 'up')
    assert plan['transactional'] and [s['line'] for s in plan['statements']] == [2, 3]


def test_lint_masks_everything_but_the_up_section_and_reads_squawk_json(tmp_path):
    from ansible_collections.procgenie.dbops.plugins.module_utils.migrate import lint
    text = ("-- squawk-ignore-file prefer-robust-stmts\n-- migrate:up\n-- squawk-ignore ban-drop-column\n"
            "ALTER TABLE t DROP COLUMN a;\n-- migrate:down\nALTER TABLE t ADD COLUMN a int;\n")
    write(tmp_path, '5_x.sql', text)
    m = source.read_folder(str(tmp_path))[0]
    assert lint.masked_text(m).split('\n') == [
        '-- squawk-ignore-file prefer-robust-stmts', '', '-- squawk-ignore ban-drop-column',
        'ALTER TABLE t DROP COLUMN a;', '', '', '']
    out = ('[{"file":"/s/tx/5_x.sql","line":3,"column":0,"level":"Warning","message":"m","help":null,'
           '"rule_name":"ban-drop-column","column_end":1,"line_end":3}]')
    assert lint.findings_of(out, {'/s/tx/5_x.sql': '5_x.sql'}) == [dict(
        rule='ban-drop-column', file='5_x.sql', line=4, level='Warning', message='m', help=None)]
    assert lint.describe(lint.findings_of(out, {})) == '5_x.sql line 4: ban-drop-column (m)'
    with pytest.raises(lint.LintError):
        lint.findings_of('not json', {})


def test_rehearse_normalize_and_diff():
    from ansible_collections.procgenie.dbops.plugins.module_utils.migrate import rehearse
    dump = ("--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET statement_timeout = 0;\n"
            "SELECT pg_catalog.set_config('search_path', '', false);\n\nCREATE TABLE public.t (\n    id bigint\n);\n"
            "\\unrestrict abc\n")
    assert rehearse.normalize(dump) == ['CREATE TABLE public.t (', '    id bigint', ');']
    same = rehearse.normalize(dump.replace('abc', 'xyz'))
    assert rehearse.schema_diff(rehearse.normalize(dump), same) == []
    diff = rehearse.schema_diff(same, [])
    assert diff[:2] == ['--- before up', '+++ after down'] and '-CREATE TABLE public.t (' in diff
    assert len(rehearse.schema_diff(['a%d' % i for i in range(100)], [])) == rehearse.DIFF_LINES + 1
    assert len(rehearse.scratch_name('x' * 100)) == 63


def test_typeorm_compares_by_name_never_by_timestamp():
    from ansible_collections.procgenie.dbops.plugins.module_utils.migrate import typeorm
    rows = [dict(id=1, timestamp='1700000000000', name='Init1700000000000'),
            dict(id=2, timestamp='1600000000000', name='Old1600000000000')]
    assert typeorm.compare(rows, None) == (None, None)
    assert typeorm.compare(rows, ['Init1700000000000', 'Priority1710000000000']) == (
        ['Priority1710000000000'], ['Old1600000000000'])
    after = rows[:1] + [dict(id=3, timestamp='1710000000000', name='Priority1710000000000')]
    assert typeorm.ran(rows, after) == ([after[1]], ['Old1600000000000'])
