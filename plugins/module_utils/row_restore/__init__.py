# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_row_restore: a pg_table_diff result applied to the target, the runbook's "selectively restore affected rows"
(section 7, Data Corruption Recovery). PRIVATE to the collection.

* `diffs.py` (pure): the diff read and checked (pg_table_diff's result shape), the per-row decisions (apply, already
  done, conflict) from what the target holds, and the foreign-key order of the steps.
* `statements.py`: the composed SQL (identifiers through psycopg2.sql, every value a parameter: keys as JSON read by
  json_populate_record, whole rows as the table's own row type from their text form).
* `undo.py` (pure): the undo script, a plain SQL file of the pre-change rows as quoted literals (`_psql_script`).
* `operation.py`: the `RowRestore` operation (plan reads the source rows and the target's rows and decides; apply
  locks, re-checks, writes the undo script, changes, verifies, moves sequences, commits) and the argument spec.

How a row travels: the source renders it as ``ROW(<the target's columns>)::text`` (DateStyle ISO, TimeZone UTC,
extra_float_digits 3, so the text is exact and unambiguous); the target reads it back as its own row type
(``%s::schema.table``, or ``unnest(%s::schema.table[])`` for many), so every type converts through its own input
function and no value is ever spliced into SQL text.
"""
