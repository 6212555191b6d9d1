# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_vacuum's logic. PRIVATE to the collection.

* `selection`: which tables, in which order (pure: thresholds from `_thresholds`, the oldest relfrozenxid first), the
  catalog read behind it, and the time budget.
* `repack`: pg_repack - the client found by the extension's installed version, the preflight of a table (key, disk,
  transactions that would hold it), the command, and the leftovers of an interrupted run (found and dropped).
* `operation`: the options and the `Vacuum` operation (plan: everything read and refused; apply: one table at a
  time inside the budget).
"""
