#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_health_report
short_description: A self-contained HTML health report from a pg_perf_info result, to attach to a ticket
version_added: 0.1.0
description:
  - Writes one HTML file from the result of M(procgenie.dbops.pg_perf_info) (runbook section 6) - the findings with
    their level and the SQL to fix each; the top statements by total time, mean time and calls with a chart; the
    duplicate, redundant, unused and invalid indexes with their C(DROP INDEX CONCURRENTLY) / C(REINDEX) statements,
    missing-index candidates and tenant tables without an index on the tenant column; transaction-ID and multixact
    age per database and oldest tables against C(autovacuum_freeze_max_age) and the failsafe ages; dead tuples; bloat;
    sequences near their maximum; table and database sizes.
  - The file needs no network - CSS and SVG charts are inline, it has no script, and its Content-Security-Policy
    forbids loading anything. Every value of the facts (table names, query text) is escaped, so it shows as text.
  - The page holds no clock of its own (the time it shows is when the facts were read, their C(server.now)) - the
    same facts give the same file, and a second run reports C(changed=false). The file is written under a temporary
    name in the same folder and renamed, so a reader never sees half a report.
  - Connects to no server. It takes the connection options so that C(module_defaults) of the action group apply to
    it as to the other modules, and ignores them.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  facts:
    description:
      - The registered result of M(procgenie.dbops.pg_perf_info) (its C(server), C(statements), C(indexes),
        C(bloat), C(vacuum), C(sequences), C(sizes), C(findings); any other key is ignored, a missing part shows as
        empty).
      - A part of another shape (a list where a dict belongs) is refused before anything is written.
    type: dict
    required: true
  dest:
    description:
      - The report file. Missing folders above it are created with mode C(0700).
      - An existing folder, link or device at O(dest) is refused.
    type: path
    required: true
  mode:
    description:
      - Permissions of the report, as an octal string (V('0600'), V('0640')). Query text can hold data, so modes
        that give other users (not the owner's group) any right are refused.
    type: raw
    default: '0600'
  title:
    description: The page's title and heading.
    type: str
    default: PostgreSQL health report
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Writes nothing; reports whether the file would change.
  diff_mode:
    support: full
    details:
      - The SHA-256 and mode of the file before and after.
notes:
  - The page is plain HTML and SVG; open it in any browser or attach it to a ticket. It prints one section a page.
seealso:
  - module: procgenie.dbops.pg_perf_info
'''

EXAMPLES = r'''
- name: Read the performance and index health
  procgenie.dbops.pg_perf_info:
    login_db: procgenie
  register: perf

- name: Write the weekly health report
  procgenie.dbops.pg_health_report:
    facts: "{{ perf }}"
    dest: /var/lib/dbops/reports/health-{{ inventory_hostname }}.html
    title: "Health of {{ inventory_hostname }}"
'''

RETURN = r'''
dest:
  description: The absolute path of the report.
  returned: always
  type: str
  sample: /var/lib/dbops/reports/health-db1.html
mode:
  description: The mode of the report, in octal.
  returned: always
  type: str
  sample: '0600'
size_bytes:
  description: The size of the report.
  returned: always
  type: int
sha256:
  description: The SHA-256 of the report's content.
  returned: always
  type: str
findings:
  description: How many findings of each level the report shows.
  returned: always
  type: dict
  sample: {critical: 1, warn: 4, ok: 0}
created_folders:
  description: Folders created (check mode - that would be created) above the report, outermost first.
  returned: always
  type: list
  elements: str
queries:
  description: SQL run (none - the report reads its facts only).
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
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation
from ansible_collections.procgenie.dbops.plugins.module_utils.perf import report


def main():
    module = postgres_spec().merge(report.argument_spec()).create_module(PostgresModule, supports_check_mode=True)
    run_operation(module, report.HealthReport, report.ERRORS, 'Writing the health report')


if __name__ == '__main__':
    main()
