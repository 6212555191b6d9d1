# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The tables of the modules that compare rows between two servers (pg_table_diff, pg_row_restore): each by name
    # with an optional scope and key (the argument spec: table_diff/operation.py tables_spec). Whether the option is
    # required, and its description, are each module's own: a module's `tables` entry (description, required) is
    # merged over this one.
    DOCUMENTATION = r'''
options:
  tables:
    description: The tables to compare, each by name with an optional scope and key.
    type: list
    elements: dict
    suboptions:
      name:
        description: Table name in SQL syntax (C(orders), C(public.orders), C("Odd Name")).
        type: str
        required: true
      where:
        description:
          - A boolean SQL expression over the table's columns that scopes the comparison on both sides, for
            example C(created_at < '2026-08-01 03:00+00') - rows written after the point in time of a restore are
            legitimately missing from it. One expression; C(;) outside strings and unbalanced parentheses are
            refused. It runs in read-only transactions.
        type: str
      key:
        description:
          - Columns identifying a row, for a table without primary key (a unique key). Default - the primary key,
            which must be the same on both sides.
        type: list
        elements: str
'''
