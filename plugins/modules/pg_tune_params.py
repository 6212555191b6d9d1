#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: pg_tune_params
short_description: Recommend and apply PostgreSQL server parameters and per role or database session settings
version_added: 0.1.0
description:
  - Computes server parameters from the machine (O(memory), O(cpus), O(storage)), the O(workload), O(max_connections)
    and the database size, or takes the runbook's Development or Production table (O(profile)); O(parameters)
    override anything. Every value comes with the reason for it (RV(recommendation)).
  - The formulas are the public pgtune formulas (U(https://pgtune.leopard.in.ua)) with three differences, stated in
    the reasons. C(maintenance_work_mem) is capped at 2GB (pgtune 8GB plus C(autovacuum_work_mem)) so that
    autovacuum workers, which use it too, stay bounded. C(shared_buffers) is capped at twice O(database_size)
    when the user gives it and the whole database fits (never at the size the databases have today, which would
    give a new server a tiny value that grows with the data). pgtune's C(wal_level=minimal) for desktops, C(jit), C(wal_compression),
    C(huge_pages) and autovacuum settings are not recommended (outside the runbook; C(wal_level=minimal) breaks
    standbys and WAL archiving).
  - With O(mode=apply), writes the values that differ with C(ALTER SYSTEM) and reloads the configuration
    (C(pg_reload_conf())). Values are compared normalized by unit (V(128MB) = V(131072kB) = V(16384) pages of 8kB,
    V(30s) = V(30000ms), V(on) = V(true) = V(1), lists element by element) against the value the configuration files
    give, so a value already written but waiting for a restart is not written again.
  - Every name and value is checked before anything changes, all of them together, against C(pg_settings)
    (unknown parameter, not a number, below the minimum, above the maximum, not one of the allowed values), for
    newlines and other control characters (refused), by the server itself for parameters a session may set
    (C(set_config()) in a transaction that is rolled back), and for the privilege to change them (superuser, or from
    PostgreSQL 15 the C(ALTER SYSTEM) privilege on the parameter). Session settings (O(role_settings)) likewise.
  - All or nothing. When an C(ALTER SYSTEM) still fails (a value only the configuration-file check refuses, such
    as an unknown C(log_destination)), the parameters already written are set back to their earlier values in
    C(postgresql.auto.conf) (or removed from it) before the module fails, and the message says so; session settings
    are written in one transaction after the parameters, and their failure sets the parameters back too.
  - Parameters whose new value only takes effect at a restart (context C(postmaster)) are listed in
    RV(pending_restart). With O(allow_restart=true) the module restarts the server (O(restart_command), or
    C(pg_ctl restart) as O(os_user)), reconnects and verifies that the new values took effect.
  - Sets session settings such as C(statement_timeout), C(idle_session_timeout) and
    C(idle_in_transaction_session_timeout) per role, per database or per role in a database (O(role_settings)), and
    checks that the application's connection pool fits under C(max_connections) (O(pool)).
author:
  - ProcGenie Platform Engineering (@procgenie)
options:
  provider:
    description:
      - Where the server runs. V(postgres) changes the configuration over a normal connection with C(ALTER SYSTEM),
        which needs a superuser or, from PostgreSQL 15, the C(ALTER SYSTEM) privilege on the parameters.
      - V(azure) changes the server parameters of an Azure Database for PostgreSQL flexible server through Azure
        Resource Manager (the configurations API), with the Azure options; O(resource_group) and O(server_name) name
        the server. The connection options, O(role_settings), O(restart_command), O(pg_ctl), O(data_directory),
        O(os_user), O(restart_mode), O(restart_log) and O(restart_timeout) are not used; O(timeout) is.
    type: str
    default: postgres
    choices: [postgres, azure]
  mode:
    description:
      - V(apply) changes the server. V(recommend) only computes and compares, and never changes anything
        (C(changed) is always false).
    type: str
    default: apply
    choices: [apply, recommend]
  profile:
    description:
      - Where the values come from before O(parameters) override them.
      - V(recommended) computes them with the formulas from O(memory), O(cpus), O(storage), O(workload),
        O(max_connections) and O(database_size).
      - V(development) and V(production) are the runbook's tuning tables (section 6). Production ranges such as
        "512 MB -- 2 GB" scale with O(memory) inside the range (25% of memory for C(shared_buffers), 75% for
        C(effective_cache_size), 1/16 for C(maintenance_work_mem), pgtune's C(work_mem) formula for 800
        connections); C(max_connections) is 800 from the pool table. They also give O(role_settings) entries without
        C(settings) the pool table's session settings, and O(pool) its C(DB_MAX_CONNECTIONS).
      - The development profile writes C(checkpoint_completion_target=0.9) where the runbook says 0.5 (the default
        before PostgreSQL 14, worse than today's default).
      - V(none) manages only O(parameters).
    type: str
    default: recommended
    choices: [recommended, development, production, none]
  memory:
    description:
      - Memory of the database server, such as V(16GB) or V(512MB) (a bare number is megabytes).
      - Defaults to the total memory of the host the module runs on, which is right when it runs on the database
        server. Give it when the module runs elsewhere.
      - With O(provider=azure), defaults to the memory of the server's SKU (Burstable sizes from Azure's table,
        C(Standard_D{n}ds_v4/v5) n vCores x 4 GiB, C(Standard_E{n}ds_v4/v5) n x 8 GiB); an unknown SKU needs it.
    type: str
  cpus:
    description:
      - CPUs (vCores) of the database server, at least 1; the parallel-worker settings are recommended from 4 CPUs
        on.
      - Defaults to the CPUs of the host the module runs on; with O(provider=azure) to the vCores of the SKU.
    type: int
  storage:
    description: The kind of storage of the data directory; sets C(random_page_cost) and C(effective_io_concurrency).
    type: str
    default: ssd
    choices: [hdd, ssd, san, nvme]
  workload:
    description:
      - V(web) (many short queries), V(oltp), V(dw) (data warehouse), V(mixed) or V(desktop).
    type: str
    default: mixed
    choices: [web, oltp, dw, mixed, desktop]
  max_connections:
    description:
      - C(max_connections) to recommend and use in the C(work_mem) formula; at least 1.
      - Without it the recommendation leaves C(max_connections) alone and uses the server's current value.
    type: int
  database_size:
    description:
      - Size of the data the server will hold, such as V(40GB).
      - Only used by O(profile=recommended), to cap C(shared_buffers) at twice the data size. Without it there is
        no cap (pgtune's formula); RV(inputs) still reports the current size of the databases (O(provider=postgres)),
        which never caps anything.
    type: str
  parameters:
    description:
      - Server parameters to set, by name, overriding the profile. Values as PostgreSQL takes them (V(256MB),
        V(30s), V(on), V(1.1)); list parameters such as C(shared_preload_libraries) may be YAML lists.
      - V(null) leaves the parameter out of the profile and removes it from C(postgresql.auto.conf)
        (C(ALTER SYSTEM RESET)) when a previous run wrote it, so the value of C(postgresql.conf) applies again.
      - With O(provider=azure) values are checked against the configuration's C(allowedValues) and written in its
        own unit (V(128MB) is written as V(16384) for a parameter in 8KB pages). V(null) sets the parameter back to
        Azure's C(defaultValue) with C(source=system-default), as the portal's "Reset to default" and
        C(az postgres flexible-server parameter set) without C(--value) do.
    type: dict
    default: {}
  role_settings:
    description:
      - Session settings per role, per database, or per role in one database (C(ALTER ROLE ... SET),
        C(ALTER DATABASE ... SET), C(ALTER ROLE ... IN DATABASE ... SET)). They apply to new sessions.
      - Only parameters of context C(user) or C(superuser) can be set this way.
      - Needs SQL, so O(provider=azure) refuses it before any change; set them in a separate task with
        O(provider=postgres) and the login options pointing at the Azure server's host name.
    type: list
    elements: dict
    suboptions:
      role:
        description: The role; with O(role_settings[].database) only in that database.
        type: str
      database:
        description: The database; without O(role_settings[].role) for every role in it.
        type: str
      settings:
        description:
          - Parameter names and values; V(null) removes the setting.
          - Defaults to the pool table's session settings of O(profile) (C(statement_timeout),
            C(idle_session_timeout), C(idle_in_transaction_session_timeout)).
        type: dict
  pool:
    description:
      - The application's connection pool. The module fails before changing anything when
        O(pool.db_max_connections) x O(pool.replicas) + O(pool.reserved) does not fit in C(max_connections) (the new
        value when it is managed) minus C(superuser_reserved_connections) and C(reserved_connections).
    type: dict
    suboptions:
      db_max_connections:
        description:
          - C(DB_MAX_CONNECTIONS) of one application instance, at least 1. Defaults to the pool table of O(profile).
        type: int
      replicas:
        description: Application instances, at least 1.
        type: int
        default: 1
      reserved:
        description: Connections kept for other clients (migrations, monitoring, administrators); 0 or more.
        type: int
        default: 0
  allow_restart:
    description:
      - Restart the server when a changed parameter only takes effect at a restart, then verify the new values.
      - Without it such parameters are written and listed in RV(pending_restart).
      - With O(provider=azure), restarts the flexible server (Servers_Restart without failover) when a parameter
        reports C(isConfigPendingRestart), waits up to O(timeout) and checks that no parameter waits any more.
    type: bool
    default: false
  restart_command:
    description:
      - The command (argument list, never a shell) that restarts the server, for example
        V([systemctl, restart, postgresql@16-main]). Run as O(os_user) when given.
      - Without it the module runs C(pg_ctl restart -D <data_directory> -m <restart_mode> -w).
    type: list
    elements: str
  pg_ctl:
    description: Path of C(pg_ctl). Defaults to the one found in O(pg_bindir), E(PATH) or Debian's directories.
    type: path
  data_directory:
    description: The data directory for C(pg_ctl). Defaults to the server's C(data_directory) setting.
    type: path
  os_user:
    description:
      - OS user that owns the data directory; the restart runs as this user (the server refuses to run as root).
      - Switching to it requires the module to run as root (for example C(become=true)); when the module already
        runs as that user, nothing is switched.
    type: str
  restart_mode:
    description: Shutdown mode of C(pg_ctl restart).
    type: str
    default: fast
    choices: [smart, fast, immediate]
  restart_log:
    description:
      - File for the server's output after C(pg_ctl restart) (C(pg_ctl -l)); without it the output is discarded,
        which is fine with C(logging_collector=on).
    type: path
  restart_timeout:
    description: Seconds to wait for the restart and for the server to accept connections again; at least 1.
    type: int
    default: 120
  azure_profile:
    description:
      - With O(provider=azure), the profile (section) of C(~/.azure/credentials) to use; the Azure modules' C(profile)
        option, renamed here because O(profile) is the tuning profile. Falls back to E(AZURE_PROFILE), then
        V(default).
    type: str
extends_documentation_fragment:
  - procgenie.dbops.postgres
  - procgenie.dbops.postgres.CLIENTS
  - procgenie.dbops.azure
  - procgenie.dbops.azure.WAIT
  - procgenie.dbops.attributes
  - procgenie.dbops.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Reports what would change and whether a restart would happen; changes nothing (with O(provider=azure) it
        only reads the server and its configurations, and sends no PATCH, PUT or POST).
  diff_mode:
    support: full
    details:
      - Before and after values of every parameter and session setting that changes.
notes:
  - Values in RV(parameters) and in the diff are shown in the largest exact unit (V(128MB), V(30s)), whatever unit
    they were given in.
  - Reading C(pg_file_settings) needs a superuser; without it values waiting for a restart are written again.
  - With O(provider=azure) C(shared_buffers) must lie between 10% and 75% of the server's memory, a rule Azure
    states only in the parameter's description (its C(allowedValues) is a fixed range); the module derives these
    bounds from the SKU's memory (O(memory) for an unknown SKU), raises or lowers a computed value into them and
    refuses a given value outside them before any change.
  - With O(provider=azure) the value Azure reports is the configured one, so a value written but waiting for a
    restart is not written again; C(running) in RV(parameters) is that configured value too. Static parameters
    (C(isDynamicConfig=false)) whose value changes have C(restart_required), and those Azure reports with
    C(isConfigPendingRestart) are in RV(pending_restart). Parameters are updated one after the other, each
    long-running operation awaited; on a failure the message names those already changed.
seealso:
  - name: ALTER SYSTEM
    description: How ALTER SYSTEM writes postgresql.auto.conf.
    link: https://www.postgresql.org/docs/current/sql-altersystem.html
  - name: pgtune
    description: The public formulas the recommendation follows.
    link: https://pgtune.leopard.in.ua
  - module: procgenie.dbops.pg_server_info
'''

EXAMPLES = r'''
- name: Recommend values for a 16 GB, 4 vCore server on SSD (changes nothing)
  procgenie.dbops.pg_tune_params:
    login_host: db1.internal
    login_password: "{{ vault_pg_password }}"
    mode: recommend
    memory: 16GB
    cpus: 4
    workload: oltp
  register: advice

- name: Apply the runbook's production table, restart in the maintenance window
  procgenie.dbops.pg_tune_params:
    login_unix_socket: /var/run/postgresql
    profile: production
    memory: 8GB
    parameters:
      shared_preload_libraries: [pg_stat_statements]
    allow_restart: "{{ in_maintenance_window | bool }}"
    os_user: postgres
  become: true

- name: Apply the production table to an Azure flexible server; restart only in the maintenance window
  procgenie.dbops.pg_tune_params:
    provider: azure
    resource_group: rg-procgenie-prod
    server_name: psql-procgenie-prod
    profile: production
    parameters:
      shared_preload_libraries: [pg_cron, pg_stat_statements]
      statement_timeout: 15s
    pool:
      replicas: 4
      reserved: 20
    allow_restart: "{{ in_maintenance_window | bool }}"
  register: azure_tuning

- name: Timeouts of the application role and the pool check
  procgenie.dbops.pg_tune_params:
    login_host: db1.internal
    profile: none
    role_settings:
      - role: procgenie_app
        database: procgenie
        settings:
          statement_timeout: 15s
          idle_session_timeout: 60min
          idle_in_transaction_session_timeout: 30s
    pool:
      db_max_connections: 100
      replicas: 4
      reserved: 20
'''

RETURN = r'''
provider:
  description: The provider that did the work.
  returned: always
  type: str
  sample: postgres
inputs:
  description: The inputs of the formulas and where they came from (memory and database size in bytes).
  returned: always
  type: dict
  sample: {memory_bytes: 17179869184, memory_source: memory option, cpus: 4, storage: ssd, workload: oltp,
           max_connections: null, database_size_bytes: 9142831, profile: recommended}
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
  description: The Azure server's state when the module read it.
  returned: when O(provider=azure)
  type: str
  sample: Ready
sku:
  description: The Azure server's SKU, which O(memory) and O(cpus) default to.
  returned: when O(provider=azure)
  type: str
  sample: Standard_D4ds_v5
recommendation:
  description: The wanted value of each parameter with the reason for it (formula, runbook table or option).
  returned: always
  type: dict
  sample: {shared_buffers: {value: 4GB, reason: "25% of memory (16GB); needs a restart"}}
parameters:
  description:
    - Per managed parameter, the value the configuration files give now (C(before)), the wanted value (C(after)),
      the running value (C(running)), whether it C(changed), its C(context), the C(action) (set or reset),
      C(restart_required) and C(pending_restart).
  returned: always
  type: dict
  sample: {shared_buffers: {before: 128MB, after: 256MB, running: 128MB, changed: true, context: postmaster,
                            action: set, value: 256MB, restart_required: true, pending_restart: true}}
changed_parameters:
  description: Names of the parameters written (or that would be in check mode).
  returned: always
  type: list
  elements: str
pending_restart:
  description: Managed parameters whose configured value waits for a restart of the server.
  returned: always
  type: list
  elements: str
  sample: [shared_buffers, max_worker_processes]
restarted:
  description: Whether the module restarted the server.
  returned: always
  type: bool
would_restart:
  description: In check mode, whether the module would restart the server.
  returned: always
  type: bool
role_settings:
  description: The session settings per role and database, each with C(before), C(after), C(action) and C(changed).
  returned: always
  type: list
  elements: dict
  sample: [{role: procgenie_app, database: null, name: statement_timeout, before: null, after: 15s, changed: true}]
pool:
  description:
    - The pool check (V(null) without O(pool)) with the connections C(needed), C(available) and whether it C(fits).
    - C(available) is C(max_connections) minus C(superuser_reserved_connections), C(reserved_connections) and
      C(platform_reserved_connections) (with O(provider=azure) the 15 connections Azure keeps for replication and
      monitoring, else 0).
  returned: always
  type: dict
  sample: {db_max_connections: 100, replicas: 4, reserved: 20, needed: 420, max_connections: 800,
           superuser_reserved_connections: 3, reserved_connections: 0, platform_reserved_connections: 0,
           available: 797, fits: true}
queries:
  description: The SQL the module ran, parameters filled in (none with O(provider=azure)).
  returned: always
  type: list
  elements: str
  sample: ["ALTER SYSTEM SET \"shared_buffers\" = '256MB'", "SELECT pg_reload_conf()"]
commands:
  description: The restart command run (argument list), if any (none with O(provider=azure)).
  returned: always
  type: list
  elements: list
  sample: [[/usr/lib/postgresql/16/bin/pg_ctl, restart, -D, /var/lib/postgresql/16/main, -m, fast, -w, -t, "120"]]
'''

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import PostgresModule
from ansible_collections.procgenie.dbops.plugins.module_utils._provider import Provider, provider_spec, run_provider
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning import azure as azure_backend
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning import options
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning import postgres as backend
from ansible_collections.procgenie.dbops.plugins.module_utils.tuning.recommend import TuningError, check_options

PROVIDERS = dict(
    postgres=Provider(backend.Tune, 'Tuning', TuningError, spec=backend.argument_spec(), validate=check_options),
    azure=Provider(azure_backend.Tune, 'Reading or changing the Azure server parameters failed', TuningError,
                   spec=azure_backend.argument_spec(), azure_params=azure_backend.azure_params,
                   validate=check_options),
)


def main():
    module = provider_spec(PROVIDERS).merge(options.argument_spec()).create_module(
        PostgresModule, supports_check_mode=True)
    run_provider(module, PROVIDERS)


if __name__ == '__main__':
    main()
