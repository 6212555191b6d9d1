# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The second server of the modules that compare or copy rows between two servers (pg_table_diff,
    # pg_row_restore): its connection settings, defaulting to the module's own login options.
    DOCUMENTATION = r'''
options:
  source:
    description:
      - The other server's connection settings. O(source.login_user), O(source.login_password),
        O(source.login_db) and the SSL settings default to the module's own login options (a restored copy has
        the same roles and database); where the server is (host, port or socket) must be given.
    type: dict
    required: true
    suboptions:
      login_host:
        description: Host name or IP address of the source server.
        type: str
        aliases: [host]
      login_port:
        description: TCP port of the source server (V(5432) when not set).
        type: int
        aliases: [port]
      login_user:
        description: Role on the source (default - the module's O(login_user)).
        type: str
        aliases: [login]
      login_password:
        description: Password of the source's role (default - the module's O(login_password)). Never logged.
        type: str
      login_db:
        description: Database on the source (default - the module's O(login_db)).
        type: str
        aliases: [db]
      login_unix_socket:
        description: Directory of the source server's Unix-domain socket.
        type: path
      ssl_mode:
        description: libpq C(sslmode) for the source (default - the module's O(ssl_mode)).
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: Certificate authorities file for the source (libpq C(sslrootcert)).
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate file for the source.
        type: path
      ssl_key:
        description: Client key file for the source.
        type: path
      connect_params:
        description: Further libpq keywords for the source (no password; use O(source.login_password)).
        type: dict
'''
