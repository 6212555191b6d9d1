# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: writes every task result as JSON lines to $DBOPS_RESULTS_FILE, so tests assert on data."""

from __future__ import annotations

DOCUMENTATION = r'''
name: dbops_results
type: aggregate
short_description: Writes task results as JSON lines for procgenie.dbops tests
description:
  - Appends one JSON object a task result (host, task name, action, status, result) to the file named by
    E(DBOPS_RESULTS_FILE). Used by the collection's test harness only.
requirements:
  - E(DBOPS_RESULTS_FILE) set
'''

import json
import os

from ansible.parsing.ajson import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'dbops_results'
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, status, result):
        path = os.environ.get('DBOPS_RESULTS_FILE')
        if not path:
            return
        data = dict(result._result)
        if status in ('failed', 'ignored'):
            data.setdefault('failed', True)  # ansible-core 2.19 keeps the flag outside _result
        record = dict(host=result._host.get_name(), task=result._task.get_name(),
                      action=result._task.action, status=status, result=data)
        with open(path, 'a') as handle:
            handle.write(json.dumps(record, cls=AnsibleJSONEncoder, sort_keys=True) + '\n')

    def v2_runner_on_ok(self, result):
        self._write('changed' if result._result.get('changed') else 'ok', result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write('ignored' if ignore_errors else 'failed', result)

    def v2_runner_on_skipped(self, result):
        self._write('skipped', result)

    def v2_runner_on_unreachable(self, result):
        self._write('unreachable', result)
