#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_failover
short_description: Report, switch over or fail over a PostgreSQL primary and its standby (self-hosted or Azure)
version_added: 0.1.0
description:
  - The runbook's "Database Failover" for self-hosted PostgreSQL (O(provider=postgres)) with two nodes, the
    O(primary) and the standby to promote, the O(candidate).
  - O(mode=status) only reports which node is the primary, the candidate's replay lag in bytes and seconds, the
    timelines and the standbys streaming from the primary.
  - O(mode=planned) is a switchover without losing any committed transaction. It fences the old primary by
    stopping it cleanly (C(pg_ctl stop -m fast)); a clean shutdown sends the last WAL, the shutdown checkpoint, to
    the streaming standby. The module waits until the candidate has replayed past that checkpoint (read with
    C(pg_controldata)), then promotes it with C(pg_promote) and waits until it commits a write. If the
    candidate does not catch up within O(timeout), the old primary is started again and nothing is promoted.
  - O(mode=forced) is a failover when the primary is gone. It refuses when the candidate's lag exceeds
    O(max_lag_bytes) unless O(force=true), fences the old primary when it still answers (stops it when
    O(primary.data_directory) is given, else makes it read-only server-wide and ends its sessions), resumes a paused
    replay and promotes the candidate.
  - With O(old_primary_action=rejoin) the stopped old primary becomes a standby of the new primary -
    C(standby.signal) and C(primary_conninfo) (with the password) in its C(postgresql.auto.conf), mode 0600, then
    C(pg_ctl start) - and the module waits until it streams. After a forced failover it runs C(pg_rewind) first
    (O(rewind=auto)); a planned switchover needs none, the old primary stopped at a point the candidate replayed.
  - With O(provider=azure) it fails over an Azure Database for PostgreSQL flexible server to its high-availability
    standby, the runbook's C(az postgres flexible-server restart --failover Forced) - a restart with failover
    (C(PlannedFailover) for O(mode=planned), C(ForcedFailover) for O(mode=forced)). It refuses when high
    availability is not enabled, and when the server is not C(Ready) or high availability is not C(Healthy) unless
    O(force=true); then it waits for the operation and until the server is C(Ready) with high availability
    C(Healthy) again, and returns the primary's availability zone before and after. O(resource_group) and
    O(server_name) name the server; O(primary), O(candidate) and the connection options are not used.
  - Idempotent - when the candidate already is the primary and the old primary is a standby or down, nothing is
    done. Check mode runs the safety checks and reports the plan.
  - The data directory must be on the host that runs the module (with C(postgresql.conf) in it, as C(initdb)
    makes it); C(pg_ctl), C(pg_controldata) and C(pg_rewind) run as its owner (O(os_user)) through C(runuser)
    when the module runs as root, because the server refuses to run as root.
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  provider:
    description:
      - Where the servers run. V(postgres) drives self-hosted servers over SQL and with the server programs.
      - V(azure) fails over an Azure Database for PostgreSQL flexible server through Azure Resource Manager, with
        the Azure options.
    type: str
    default: postgres
    choices: [postgres, azure]
  mode:
    description:
      - V(status) reports only; V(planned) switches over without data loss; V(forced) fails over.
    type: str
    default: status
    choices: [status, planned, forced]
  primary:
    description:
      - The current (old) primary. The module's login options (O(login_user), O(login_password), SSL...) apply.
      - Required with O(provider=postgres); not used with O(provider=azure).
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      data_directory:
        description:
          - Its data directory on this host; needed to stop it (O(mode=planned), and O(mode=forced) when it still
            answers) and to rejoin it. Checked against the server's own C(data_directory) setting.
        type: path
  candidate:
    description:
      - The standby to promote. Required unless O(mode=status), with O(provider=postgres).
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      data_directory:
        description: Its data directory (not used by this run; convenient when the same dict serves the way back).
        type: path
  max_lag_bytes:
    description:
      - Largest candidate lag accepted, in bytes of WAL. In O(mode=forced) it is the WAL the candidate has not
        replayed behind the old primary's current position when that still answers, else the WAL it received and
        has not replayed (what the primary wrote and never sent cannot be known). In O(mode=planned) a larger lag
        only means a longer wait with writes stopped, and is refused too.
    type: int
    default: 16777216
  force:
    description:
      - Promote even when the lag exceeds O(max_lag_bytes).
      - With O(provider=azure), fail over even when the server is not C(Ready) or its high availability is not
        C(Healthy) (never when high availability is disabled).
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for each step (stop, catch-up, promotion, the rejoined standby streaming); V(60) when not
        set.
      - With O(provider=azure), seconds to wait for the whole failover (the restart and HA C(Healthy) again);
        V(1800) when not set. When it has not ended by then the module fails, and the operation goes on in Azure.
    type: int
  connect_timeout:
    description: Seconds to wait for a connection to a node (unless O(connect_params) sets C(connect_timeout)).
    type: int
    default: 5
  old_primary_action:
    description:
      - V(fence) leaves the old primary fenced (stopped, or read-only when it could only be fenced over SQL).
      - V(rejoin) makes it a streaming standby of the new primary. Needs O(primary.data_directory).
    type: str
    default: fence
    choices: [fence, rejoin]
  old_primary_slot:
    description:
      - Physical replication slot the rejoined old primary streams through; created on the new primary if missing.
    type: str
  rewind:
    description:
      - Whether to run C(pg_rewind) before rejoining. V(auto) runs it after a forced failover only.
    type: str
    default: auto
    choices: [auto, always, never]
  replication_user:
    description: Role the rejoined standby connects as; defaults to O(login_user).
    type: str
  replication_password:
    description: Its password; defaults to O(login_password). Written only to C(postgresql.auto.conf) (mode 0600).
    type: str
  application_name:
    description: C(application_name) in the rejoined standby's C(primary_conninfo) (default its C(cluster_name)).
    type: str
  os_user:
    description: OS user that owns the old primary's data directory and runs its server; defaults to the owner.
    type: str
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.azure
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Connects to both nodes, runs the safety checks and returns the plan; stops, promotes and writes nothing.
      - With O(provider=azure), reads the server, runs the checks and returns the plan; sends no restart.
  diff_mode:
    support: full
    details:
      - The diff shows which node is the primary before and after (with O(provider=azure), the primary and standby
        availability zones).
notes:
  - The module calls C(pg_promote(wait => false)) and polls C(pg_is_in_recovery()) itself, from every 5 ms up to
    every 100 ms, because C(pg_promote(wait => true)) checks only every 100 ms; then a transaction that takes a
    transaction ID must commit before the new primary counts as writable.
  - O(login_user) needs superuser (or C(pg_promote) execute rights, C(pg_monitor) and, for rejoining, replication
    rights on the new primary).
  - Applications must then reach the new primary - a DNS name, a proxy, or libpq multi-host connection strings with
    C(target_session_attrs=read-write). An Azure flexible server keeps its host name through a failover.
  - With O(provider=azure) every planned or forced run fails over again (as the Azure CLI does); use O(mode=status)
    and RV(primary_zone_before) to decide whether to run it.
seealso:
  - module: procgenie.dbops.pg_server_info
  - module: procgenie.dbops.pg_read_only
  - name: Failover
    description: PostgreSQL documentation on failover and promotion.
    link: https://www.postgresql.org/docs/current/warm-standby-failover.html
'''

EXAMPLES = r'''
- name: Which node is the primary, and how far behind is the standby?
  procgenie.dbops.pg_failover:
    primary: {host: db1.internal, port: 5432}
    candidate: {host: db2.internal, port: 5432}
  register: failover_state

- name: Planned switchover to db2; db1 follows as a standby
  procgenie.dbops.pg_failover:
    mode: planned
    primary: {host: db1.internal, data_directory: /var/lib/postgresql/15/main}
    candidate: {host: db2.internal}
    old_primary_action: rejoin
    old_primary_slot: db1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"

- name: Fail over the Azure production server to its zone-redundant standby (runbook section 7)
  procgenie.dbops.pg_failover:
    provider: azure
    mode: forced
    resource_group: rg-procgenie-prod
    server_name: psql-procgenie-prod
  register: azure_failover

- name: db1 is gone - promote db2 unless it lags more than 1 MiB
  procgenie.dbops.pg_failover:
    mode: forced
    primary: {host: db1.internal}
    candidate: {host: db2.internal}
    max_lag_bytes: 1048576
'''

RETURN = r'''
provider:
  description: The provider.
  returned: always
  type: str
  sample: postgres
server_name:
  description: The Azure flexible server.
  returned: when O(provider=azure)
  type: str
  sample: psql-procgenie-prod
resource_group:
  description: Its resource group.
  returned: when O(provider=azure)
  type: str
subscription_id:
  description: Its subscription.
  returned: when O(provider=azure)
  type: str
server_state:
  description: The Azure server's state (C(Ready) after a failover).
  returned: when O(provider=azure)
  type: str
  sample: Ready
high_availability:
  description: The Azure server's C(mode), C(enabled), C(state) and C(standby_availability_zone) before the run.
  returned: when O(provider=azure)
  type: dict
  sample: {mode: ZoneRedundant, enabled: true, state: Healthy, standby_availability_zone: "2"}
high_availability_after:
  description: The same after the failover.
  returned: when O(provider=azure) and a failover ran
  type: dict
primary_zone_before:
  description: Availability zone of the Azure primary before the run.
  returned: when O(provider=azure)
  type: str
  sample: "1"
primary_zone_after:
  description: Availability zone of the Azure primary after the run (unchanged in status and check mode).
  returned: when O(provider=azure)
  type: str
  sample: "2"
failover_mode:
  description: The Azure failover mode sent, V(PlannedFailover) or V(ForcedFailover).
  returned: when O(provider=azure) and O(mode) is not V(status)
  type: str
mode:
  description: The mode.
  returned: always
  type: str
current_primary:
  description: The node (V(primary) or V(candidate)) that accepts writes after the run; V(null) when none or both.
  returned: when O(provider=postgres)
  type: str
  sample: candidate
nodes:
  description:
    - Status of each node - C(host), C(port), C(reachable), C(in_recovery), C(role), C(timeline),
      C(data_directory), on a primary C(current_lsn) and C(standbys) (with C(lag_bytes), C(lag_seconds)), on a
      standby C(receive_lsn), C(replay_lsn), C(replay_paused), C(lag_seconds), C(wal_receiver) and, for the
      candidate, C(lag_bytes).
  returned: when O(provider=postgres)
  type: dict
checks:
  description: The safety checks, each with C(name), C(ok), C(detail) and C(blocking).
  returned: when O(mode) is not V(status)
  type: list
  elements: dict
plan:
  description: The steps taken, or in check mode the steps that would be taken.
  returned: when O(mode) is not V(status)
  type: list
  elements: str
old_primary:
  description: C(host) and C(port) of the old primary.
  returned: when O(mode) is not V(status) and O(provider=postgres)
  type: dict
new_primary:
  description: C(host) and C(port) of the new primary.
  returned: when O(mode) is not V(status) and O(provider=postgres)
  type: dict
timeline_before:
  description: The timeline before the promotion.
  returned: when O(mode) is not V(status) and O(provider=postgres)
  type: int
new_timeline:
  description: The new primary's timeline.
  returned: when a node was promoted, or was already promoted
  type: int
  sample: 2
old_primary_final_lsn:
  description: The old primary's shutdown checkpoint the candidate replayed before promotion (planned mode).
  returned: when changed in planned mode
  type: str
lag_at_promotion:
  description: C(bytes) and C(seconds) the candidate was behind when promoted, and its C(replay_lsn).
  returned: when changed
  type: dict
duration_s:
  description:
    - Seconds from fencing the old primary to the new primary committing its first write.
    - With O(provider=azure), seconds from the restart request to HA C(Healthy) again.
  returned: when changed
  type: float
fenced:
  description: How the old primary was fenced - V(stopped), V(read-only) or V(null) (unreachable).
  returned: when changed
  type: str
rejoined:
  description: Whether the old primary now streams from the new primary.
  returned: when changed
  type: bool
rewound:
  description: Whether C(pg_rewind) ran on the old primary.
  returned: when rejoined
  type: bool
old_primary_status:
  description: The rejoined old primary's C(in_recovery), C(timeline) and C(wal_receiver).
  returned: when rejoined
  type: dict
diff:
  description: The primary (host:port) before and after; with O(provider=azure) C(primary_zone) and C(standby_zone).
  returned: when changed
  type: dict
queries:
  description: The SQL the module ran (no passwords - primary_conninfo is written to a file, not through SQL).
  returned: always
  type: list
  elements: str
commands:
  description: The server programs run (pg_ctl, pg_controldata, pg_rewind), as argument lists, without secrets.
  returned: always
  type: list
  elements: list
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import azure_spec, client_spec, postgres_spec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule
from ansible_collections.procgenie.dbops.plugins.module_utils._provider import Provider, provider_spec, run_provider
from ansible_collections.procgenie.dbops.plugins.module_utils._server import ServerError
from ansible_collections.procgenie.dbops.plugins.module_utils.failover import azure as azure_backend
from ansible_collections.procgenie.dbops.plugins.module_utils.failover import postgres as backend

PROVIDERS = dict(
    postgres=Provider(backend.Failover, 'The failover', (backend.FailoverError, ServerError),
                      spec=backend.argument_spec(), defaults=dict(timeout=60)),
    azure=Provider(azure_backend.Failover, 'Reading the Azure flexible server failed',
                   azure_backend.AzureFailoverError, spec=azure_backend.argument_spec(), defaults=dict(timeout=1800)),
)


def main():
    module = provider_spec(PROVIDERS).merge(postgres_spec(), client_spec(), azure_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    run_provider(module, PROVIDERS)


if __name__ == '__main__':
    main()
