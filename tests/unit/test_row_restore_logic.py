"""row_restore's pure parts: the diff read and checked, the decision per row, the step order, the undo script (plain
SQL whatever the values), the sequence move (never backwards). No server."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils._psql_script import scan_lines
from ansible_collections.procgenie.dbops.plugins.module_utils.row_restore import diffs, undo
from ansible_collections.procgenie.dbops.plugins.module_utils.row_restore.diffs import DiffError
from ansible_collections.procgenie.dbops.plugins.module_utils.row_restore.operation import _move_to

H1, H2, H3 = 'a' * 32, 'b' * 32, 'c' * 32


def table(**extra):
    base = dict(table='public.orders', key=['id'], where="created_at < '2026-01-01'",
                only_in_source=dict(count=1, keys=[[3]]),
                only_in_target=dict(count=1, rows=[dict(key=[9], target_hash=H1)]),
                changed=dict(count=1, rows=[dict(key=[4], columns=['amount'], target_hash=H2)]), truncated=False)
    base.update(extra)
    return base


def test_read_diff_items_in_order():
    [entry] = diffs.read_diff(dict(tables=[table()], queries=[]))
    assert entry['table'] == 'public.orders' and entry['key'] == ['id'] and not entry['truncated']
    assert [(i['action'], i['key'], i['target_hash']) for i in entry['items']] == [
        ('insert', [3], None), ('delete', [9], H1), ('update', [4], H2)]
    assert diffs.read_diff([table()])[0]['items'] == entry['items']


@pytest.mark.parametrize('bad, message', [
    ('nope', 'pg_table_diff'),
    (dict(tables=[dict(key=['id'])]), 'no table name'),
    (dict(tables=[table(key=[])]), 'key must list'),
    (dict(tables=[table(key=['id', 'id'])]), 'twice'),
    (dict(tables=[table(only_in_source=dict(keys=[[1, 2]]))]), '1 value'),
    (dict(tables=[table(only_in_source=dict(keys=[[None]]))]), 'never NULL'),
    (dict(tables=[table(changed=dict(rows=[dict(key=[4], target_hash='x')]))]), 'target_hash'),
    (dict(tables=[table(changed=dict(rows=[dict(key=[3], target_hash=H2)]))]), 'listed twice'),
    (dict(tables=[table(), table()]), 'listed twice'),
    (dict(tables=[table(changed=['x'])]), 'must be a dict'),
])
def test_read_diff_refuses(bad, message):
    with pytest.raises(DiffError, match=message):
        diffs.read_diff(bad)


@pytest.mark.parametrize('action, current, source, delete_extra, want', [
    ('insert', None, H3, False, 'apply'),
    ('insert', H3, H3, False, 'done'),
    ('insert', H1, H3, False, 'conflict'),
    ('insert', None, None, False, 'conflict'),
    ('update', H2, H3, False, 'apply'),
    ('update', H3, H3, False, 'done'),
    ('update', H1, H3, False, 'conflict'),
    ('update', None, H3, False, 'conflict'),
    ('delete', H2, None, False, 'kept'),
    ('delete', H2, None, True, 'apply'),
    ('delete', None, None, True, 'done'),
    ('delete', H1, None, True, 'conflict'),
])
def test_decide(action, current, source, delete_extra, want):
    item = dict(action=action, key=[1], target_hash=None if action == 'insert' else H2)
    decision, reason = diffs.decide(item, current, source, delete_extra)
    assert decision == want
    assert (reason is not None) == (want == 'conflict')


def test_step_order_parents_first_children_first():
    # 1 <- 2 <- 3 (3 references 2, 2 references 1)
    inserts, deletes, cyclic = diffs.step_order([3, 1, 2], [(3, 2), (2, 1)])
    assert inserts == [1, 2, 3] and deletes == [3, 2, 1] and cyclic == []


def test_summary_counts():
    items = [dict(action='insert'), dict(action='update'), dict(action='delete'), dict(action='delete')]
    decisions = [(items[0], 'apply', None), (items[1], 'done', None), (items[2], 'kept', None),
                 (items[3], 'conflict', 'x')]
    assert diffs.summary(decisions) == dict(insert=1, update=0, delete=0, done=1, kept=1, conflict=1)


NASTY = ['(1,"two\nlines")', '(2,"\\\\x41 back\\\\slash \' quote")', '(3,"ctl \x01 \x1b[31m")', '(4,"\\\\.\n\\\\! rm")',
         '(5,"ünï")']


def test_undo_script_is_plain_sql_whatever_the_values():
    orders = dict(schema='public', name='Or"ders', columns=['id', 'note', 'total'], writable=['id', 'note'],
                  key=['id'])
    accounts = dict(schema='public', name='accounts', columns=['id', 'note'], writable=['id', 'note'], key=['id'])
    steps = [dict(table=accounts, inserted=NASTY[:1], updated=[], deleted=NASTY[1:2]),
             dict(table=orders, inserted=NASTY[2:3], updated=[(NASTY[3], NASTY[4])], deleted=[])]
    text = undo.undo_script(steps, '2026-11-30T17:00:00Z', "5s'; DROP")
    assert scan_lines(text.splitlines(True)) == []
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith('\\')]
    # every value inside a literal on one line, never in a comment
    assert not [line for line in lines if line.startswith('--') and ('lines' in line or 'rm' in line)]
    assert "SET LOCAL lock_timeout = '5s''; DROP';" in text
    assert '"public"."Or""ders"' in text and "U&'(3,\"ctl \\0001 \\001B[31m\")'" in text
    # order: deleted rows back first (referenced tables first), updates, inserted rows deleted last (children first)
    assert text.index('INSERT INTO "public"."accounts"') < text.index('UPDATE "public"."Or""ders"') < \
        text.index('DELETE FROM "public"."Or""ders"') < text.index('DELETE FROM "public"."accounts"')
    # a generated column is never written (only compared)
    assert '"total" =' not in text and 'u."total"' not in text.rsplit('SET', maxsplit=1)[-1].split('FROM')[0]
    # updates and deletes check that the rows are still the restored ones, and stop otherwise
    assert text.count("ELSE ('undo stopped") == 3
    assert "md5(ROW(t.\"id\", t.\"note\", t.\"total\")::text) = md5(ROW(r.\"id\", r.\"note\", r.\"total\")::text)" in text
    assert text.rstrip().endswith('COMMIT;') and 'BEGIN;' in text


def test_undo_script_chunks_large_tables():
    accounts = dict(schema='public', name='a', columns=['id'], writable=['id'], key=['id'])
    rows = ['(%d)' % n for n in range(undo.CHUNK * 2 + 1)]
    text = undo.undo_script([dict(table=accounts, inserted=rows, updated=[], deleted=[])], 'now', '5s')
    assert text.count('DELETE FROM') == 3


@pytest.mark.parametrize('top, position, want', [
    (None, dict(last_value=5, is_called=True), None),
    (10, dict(last_value=5, is_called=True), 10),
    (5, dict(last_value=5, is_called=True), None),
    (5, dict(last_value=5, is_called=False), 5),
    (4, dict(last_value=5, is_called=False), None),
    (3, dict(last_value=100, is_called=True), None),
    (12, dict(last_value=10, is_called=True, increment=5), None),
    (15, dict(last_value=10, is_called=True, increment=5), 15),
])
def test_sequences_only_move_forward(top, position, want):
    assert _move_to(top, position) == want
