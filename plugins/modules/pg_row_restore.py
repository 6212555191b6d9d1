#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_row_restore
short_description: Restore selected rows from a restored copy into the live database (a pg_table_diff result applied)
version_added: 0.1.0
description:
  - The runbook's "selectively restore affected rows" (section 7, Data Corruption Recovery). Applies a
    M(procgenie.dbops.pg_table_diff) result to the target (the module's connection options) with the rows of the
    O(source) - the server holding the good rows, for example the cluster M(procgenie.dbops.pg_restore_pitr)
    restored to before the corruption (a NEW server), whose tables have the target's columns with the same types -
    rows missing in the target are inserted, changed rows are updated back to the source's content, and rows only
    in the target are deleted only with O(delete_extra=true).
  - Optimistic guards. Every row the restore changes must still be as the diff saw it (C(md5(ROW(...)::text)), the
    diff's C(target_hash)), and every row it inserts still absent. A row changed after the diff stops the restore
    before any change, with the row in RV(conflicts). A row already as the source has it (restored by an earlier
    run) is left alone, so a second run reports C(changed=false).
  - One transaction with C(lock_timeout) (O(lock_timeout)); the rows to change are locked (C(SELECT ... FOR
    UPDATE)) and checked again before anything is written. Inserts and updates run referenced tables first,
    deletes referencing tables first (foreign keys); C(SET CONSTRAINTS ALL DEFERRED) covers deferrable cycles.
    Every row count is checked, and the rows written are compared with the source's afterwards; any difference rolls
    everything back.
  - Before the change, an undo script is written into O(undo_dir) (file mode 0600, the folder made 0700) - a plain
    SQL file with a pre-change copy of every row the restore touches, as quoted literals (no psql meta-command, no
    value in a comment). C(psql -v ON_ERROR_STOP=1 -f <file>) puts the rows back as they were, in one transaction;
    it updates and deletes only rows still as the restore wrote them, and stops with nothing undone when one changed
    since. It is removed again when the restore fails.
  - Sequences of serial and identity columns of the restored tables are moved past the largest value now in the
    table (C(setval), never backwards), so that the application's next insert does not collide with a restored id.
  - Both sessions run with C(row_security=off), so row-level security makes the restore fail instead of silently
    acting on a subset (connect as the table owner, a C(BYPASSRLS) role or a superuser), and with the same output
    settings (C(DateStyle=ISO), C(TimeZone=UTC)), so that a row's text, and its hash, is the same on both servers.
  - Its session sets C(default_transaction_read_only=off) for itself, so it writes while the database is in the
    runbook's emergency read-only mode (M(procgenie.dbops.pg_read_only), the first step of the recovery), which keeps
    the application from writing meanwhile.
  - Identifiers are quoted by psycopg2.sql; keys and rows are parameters, converted by the table's own row type, so
    no value becomes SQL text.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  tables:
    # Its type and suboptions: the doc fragment procgenie.dbops.table_selection (not required: O(diff) or O(tables)).
    description:
      - Instead of O(diff) - the tables to compare now (M(procgenie.dbops.pg_table_diff)'s comparison, same
        options), then restore.
  limit:
    description:
      - With O(tables) - keys listed per table and kind of difference; a table with more differences is refused (every
        row to restore must be listed).
    type: int
    default: 10000
  diff:
    description:
      - The registered result of M(procgenie.dbops.pg_table_diff) (or a dict with its C(tables)); or give O(tables).
        Per table -
        C(table), C(key), C(only_in_source.keys) (rows to insert), C(changed.rows) and C(only_in_target.rows)
        (C(key) and C(target_hash) each).
      - A diff whose table is C(truncated) (more differences than its limit) is refused - every row to restore must
        be listed.
      - Scope it with pg_table_diff's C(where) (for example C(created_at < <the restore point>)), so that rows
        written legitimately after the point in time are not deleted or overwritten.
    type: dict
  delete_extra:
    description:
      - Delete the rows only in the target (C(only_in_target)). Default - keep them (reported as C(extra_kept)).
      - Refused for a table that foreign keys reference with C(ON DELETE CASCADE), C(SET NULL) or C(SET DEFAULT) -
        the delete would change rows the diff does not list.
    type: bool
    default: false
  undo_dir:
    description:
      - Folder of the undo script (made 0700 when missing; refused when others can read or enter it).
    type: path
    required: true
  lock_timeout:
    description:
      - C(lock_timeout) of the restore's transaction (a PostgreSQL setting value, checked by the server before
        anything changes). Waiting longer for a row lock fails the restore, which changed nothing.
    type: str
    default: 5s
  triggers:
    description:
      - C(fire) (default) - the table's triggers fire on the restored rows, as on any write. Audit triggers record the
        repair (the audit trail shows it), foreign keys are enforced, and no superuser is needed (Azure). If a C(BEFORE)
        trigger changes a restored row (an C(updated_at) stamp), the restore stops and rolls back, since the row would
        not be the source's; the module warns about such triggers in the plan.
      - C(replica) - C(SET LOCAL session_replication_role = replica) for the transaction - ordinary triggers do not
        fire, and neither do the foreign-key checks (the rows are a consistent copy of the source's). Only a superuser
        may set it (refused otherwise).
    type: str
    choices: [fire, replica]
    default: fire
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.source
  - procgenie.dbops.table_selection
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Returns the plan - the rows per table and action, the statements (with their parameters as C(%s)), the
        sequences that would move, the undo script's path. Nothing is written or locked.
  diff_mode:
    support: none
notes:
  - Take the diff right before the restore, and stop writes to the affected tables first (M(procgenie.dbops.pg_read_only)
    or a lock) - rows changed between the two are never overwritten, but they stop the restore.
seealso:
  - module: procgenie.dbops.pg_table_diff
  - module: procgenie.dbops.pg_restore_pitr
'''

EXAMPLES = r'''
- name: Compare the live table with the copy restored to before the bad deploy, scoped to rows older than it
  procgenie.dbops.pg_table_diff:
    login_db: procgenie_prod
    source: {login_host: restored.internal, login_port: 5499, login_db: procgenie_prod}
    tables:
      - name: public.requisitions
        where: "created_at < '2026-11-30 09:00:00+00'"
  register: diff

- name: Restore the affected rows (an undo script first)
  procgenie.dbops.pg_row_restore:
    login_db: procgenie_prod
    source: {login_host: restored.internal, login_port: 5499, login_db: procgenie_prod}
    diff: "{{ diff }}"
    undo_dir: /var/backups/procgenie/undo
  register: restored

- name: If it must be undone
  ansible.builtin.command:
    argv: [psql, -v, ON_ERROR_STOP=1, -d, procgenie_prod, -f, "{{ restored.undo_script }}"]
'''

RETURN = r'''
tables:
  description:
    - Per table of the diff - C(table), C(key), C(where), C(insert), C(update), C(delete) (each C(count) and
      C(keys) of the rows changed, or to change in check mode), C(already_restored) (rows already as the source has
      them), C(extra_kept) (rows only in the target, kept without O(delete_extra)), C(triggers) (the table's own
      triggers - C(name), C(enabled), C(before), C(for_each_row)) and C(sequences) (C(sequence), C(column),
      C(last_value), C(to)).
  returned: always
  type: list
  elements: dict
order:
  description: The tables in the order of inserts and updates (C(insert)) and of deletes (C(delete)).
  returned: always
  type: dict
statements:
  description: The statements of the change in order - C(table), C(action), C(rows), C(sql) (parameters as C(%s)).
  returned: always
  type: list
  elements: dict
undo_script:
  description: Path of the undo script (written before the change; in check mode, where it would be). Null when
    nothing changes.
  returned: always
  type: str
sequences_moved:
  description: Sequences moved forward (C(sequence), C(to)).
  returned: always
  type: list
  elements: dict
conflicts:
  description:
    - On failure, the rows that stopped the restore - C(table), C(action), C(key), C(reason), C(expected) (the
      diff's C(target_hash)), C(found) (md5 of the row now, null when absent).
  returned: always
  type: list
  elements: dict
triggers:
  description: O(triggers).
  returned: always
  type: str
delete_extra:
  description: O(delete_extra).
  returned: always
  type: bool
diff:
  description: With O(tables), the comparison made (the C(tables) of M(procgenie.dbops.pg_table_diff)); null with O(diff).
  returned: always
  type: list
  elements: dict
duration_s:
  description: Seconds the module took.
  returned: always
  type: float
queries:
  description: The SQL the module ran (rows shown as a count, keys as JSON).
  returned: always
  type: list
  elements: str
commands:
  description: Client programs run (none).
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule, ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.row_restore import operation


def main():
    module = postgres_spec().merge(operation.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    ensure_psycopg2(module)
    run_operation(module, operation.RowRestore, operation.ERRORS, 'The row restore')


if __name__ == '__main__':
    main()
