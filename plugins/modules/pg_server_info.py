#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_server_info
short_description: Facts about a PostgreSQL server, its replication, WAL archiving and runbook settings
version_added: 0.1.0
description:
  - Reads the state of one PostgreSQL server the way the ProcGenie runbook's checks do, and returns it as data.
  - Version, whether the server is in recovery (a standby), its timeline, WAL archiving status from
    C(pg_stat_archiver), the standbys streaming from it and its replication slots with their lag in bytes,
    databases with their sizes, the extensions installed in O(login_db), and the settings the runbook's tuning
    and connection-pool tables name, with their source and whether they wait for a restart.
  - On a standby it also reports the WAL receiver and how far replay is behind.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  provider:
    description:
      - Where the server runs. V(postgres) reads the server's catalogs over a normal connection.
    type: str
    default: postgres
    choices: [postgres]
  settings:
    description:
      - Names of the server parameters to report in RV(settings).
      - Defaults to the parameters of the runbook's tuning and connection tables plus replication and archiving
        parameters. Names the server does not know are listed in RV(unknown_settings).
    type: list
    elements: str
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.INFO_MODULE
  - procgenie.dbops.attributes.ACTIONGROUP
notes:
  - Standby lag and WAL positions of other sessions need superuser or membership in C(pg_monitor).
seealso:
  - name: The Statistics Collector / Cumulative Statistics System
    description: pg_stat_archiver, pg_stat_replication, pg_stat_wal_receiver.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html
'''

EXAMPLES = r'''
- name: Gather facts of the primary
  procgenie.dbops.pg_server_info:
    login_host: psql-procgenie-prod.postgres.database.azure.com
    login_user: procgenie_admin
    login_password: "{{ vault_pg_password }}"
    ssl_mode: verify-full
    ca_cert: /etc/ssl/certs/ca-certificates.crt
  register: primary

- name: Fail when a standby lags more than 64 MiB
  ansible.builtin.assert:
    that: primary.replication | map(attribute='lag_bytes') | select('gt', 67108864) | list | length == 0

- name: Only the settings the tuning role cares about
  procgenie.dbops.pg_server_info:
    login_unix_socket: /var/run/postgresql
    settings: [shared_buffers, work_mem, max_connections]
  register: info
'''

RETURN = r'''
provider:
  description: The provider that gathered the facts.
  returned: always
  type: str
  sample: postgres
version:
  description: Server version.
  returned: always
  type: dict
  sample: {server_version: "15.18 (Debian 15.18-0+deb12u1)", server_version_num: 150018, major: 15, minor: 18,
           full: "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu ..."}
in_recovery:
  description: Whether the server is in recovery, that is a standby (C(pg_is_in_recovery())).
  returned: always
  type: bool
timeline:
  description: The server's timeline; on a standby the timeline it receives.
  returned: always
  type: int
  sample: 1
current_wal_lsn:
  description: The current WAL write position of a primary; V(null) on a standby.
  returned: always
  type: str
  sample: 0/3000148
wal_receiver:
  description: The standby's WAL receiver (C(pg_stat_wal_receiver)); V(null) on a primary.
  returned: always
  type: dict
  sample: {status: streaming, received_tli: 1, flushed_lsn: 0/3000148, slot_name: standby1,
           sender_host: 127.0.0.1, sender_port: 5432}
replay:
  description:
    - On a standby, received and replayed WAL positions, the bytes received but not replayed yet, the time of the
      last replayed transaction and the replay lag in seconds (0 when everything received is replayed).
    - V(null) on a primary.
  returned: always
  type: dict
archiving:
  description:
    - WAL archiving status from C(pg_stat_archiver) and the C(archive_mode) setting.
    - C(enabled) is true when this server archives WAL (C(archive_mode=on) on a primary, C(always) on any server).
    - C(healthy) is true when archiving is enabled and no archive attempt failed after the last success.
  returned: always
  type: dict
  sample: {archive_mode: "on", enabled: true, healthy: true, archived_count: 12,
           last_archived_wal: "00000001000000000000000B", failed_count: 0}
replication:
  description:
    - The standbys streaming from this server (C(pg_stat_replication)), with C(lag_bytes) (current WAL position
      minus the standby's replay position) and the write, flush and replay lag in seconds.
  returned: always
  type: list
  elements: dict
  sample: [{application_name: standby, state: streaming, sync_state: async, replay_lsn: 0/3000148, lag_bytes: 0}]
replication_slots:
  description: Replication slots with the WAL they retain in bytes.
  returned: always
  type: list
  elements: dict
databases:
  description: Databases (templates left out) with owner, encoding and size in bytes (V(null) without CONNECT).
  returned: always
  type: list
  elements: dict
  sample: [{name: procgenie, owner: postgres, encoding: UTF8, allow_connections: true, size_bytes: 9142831}]
extensions:
  description: Extensions installed in the database the module connected to.
  returned: always
  type: list
  elements: dict
  sample: [{name: pg_stat_statements, version: "1.10", schema: public}]
settings:
  description:
    - The requested parameters by name, each with its raw C(setting), C(unit), the readable C(value), C(source),
      C(context), C(vartype), C(boot_val), C(reset_val) and C(pending_restart).
  returned: always
  type: dict
  sample: {shared_buffers: {setting: "16384", unit: 8kB, value: 128MB, source: configuration file,
           context: postmaster, pending_restart: false}}
unknown_settings:
  description: Requested parameter names the server does not know.
  returned: always
  type: list
  elements: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
commands:
  description: Client programs run; always empty for this module.
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    QueryLog, connect, database_error_message, psycopg2, postgres_argument_spec)
from ansible_collections.procgenie.dbops.plugins.module_utils.server_info import postgres as backend


def main():
    argument_spec = postgres_argument_spec()
    argument_spec.update(
        provider=dict(type='str', default='postgres', choices=['postgres']),
        settings=dict(type='list', elements='str'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    log = QueryLog()
    session = connect(module, log=log)
    try:
        facts = backend.gather(session, module.params['settings'])
    except psycopg2.Error as exc:
        module.fail_json(msg='Reading server facts failed: %s' % database_error_message(exc),
                         queries=log.queries, commands=[])
    finally:
        session.close()
    module.exit_json(changed=False, queries=log.queries, commands=[], **facts)


if __name__ == '__main__':
    main()
