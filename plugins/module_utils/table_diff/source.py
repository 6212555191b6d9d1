# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `source` option: a second server (a point-in-time restore, a standby, a verified backup restored elsewhere)
with its own connection settings, and its session. Shared by pg_table_diff and pg_row_restore: `source_spec()` is
the ONE definition of the option (merge it), `source_params()` turns it into connection parameters that
`_connection.open_session` takes, `open_source()` connects."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    SECRET_CONNECT_PARAMS, SSL_MODES, ConnectionFailure, open_session)

# the source's options; unset ones come from the module's own login options (INHERITED)
SOURCE_OPTIONS = dict(
    login_host=dict(type='str', aliases=['host']),
    login_port=dict(type='int', aliases=['port']),
    login_user=dict(type='str', aliases=['login']),
    login_password=dict(type='str', no_log=True),
    login_db=dict(type='str', aliases=['db']),
    login_unix_socket=dict(type='path'),
    ssl_mode=dict(type='str', choices=SSL_MODES),
    ca_cert=dict(type='path', aliases=['ssl_rootcert']),
    ssl_cert=dict(type='path'),
    ssl_key=dict(type='path', no_log=False),
    connect_params=dict(type='dict'),
)
# taken from the module's login options when the source does not set them: a restored copy has the same roles and
# the same database name; where the server is (host, port, socket) and connect_params are never inherited
INHERITED = ('login_user', 'login_password', 'login_db', 'ssl_mode', 'ca_cert', 'ssl_cert', 'ssl_key')
PLACE = ('login_host', 'login_port', 'login_unix_socket')


class SourceError(Exception):
    """The source option cannot be used (a secret in connect_params, no place given)."""


def source_spec(required=True):
    """The `source` option (a dict of connection settings, password no_log) as an ArgumentSpec to merge."""
    return ArgumentSpec(dict(source=dict(type='dict', required=required, options=dict(SOURCE_OPTIONS))))


def source_params(params):
    """Pure: connection parameters of the source (the keys of the module's login options), from params['source']
    with the INHERITED ones taken from the module's own options when unset. Raises SourceError."""
    source = params.get('source') or {}
    if not any(source.get(k) for k in PLACE) and not (source.get('connect_params') or {}).get('service'):
        raise SourceError('source must say where the other server is: login_host and/or login_port, '
                          'login_unix_socket, or connect_params.service')
    extra = dict(source.get('connect_params') or {})
    secret = sorted(k for k in extra if str(k).strip().lower() in SECRET_CONNECT_PARAMS)
    if secret:
        raise SourceError('source.connect_params must not hold %s: give the password as source.login_password '
                          '(never logged)' % ' or '.join(secret))
    result = dict((k, source.get(k)) for k in SOURCE_OPTIONS)
    for key in INHERITED:
        if result.get(key) in (None, ''):
            result[key] = params.get(key)
    if result.get('login_port') is None:
        result['login_port'] = 5432
    result['connect_params'] = extra
    return result


def describe(params):
    """Where the source is, for messages and results (no secret)."""
    src = source_params(params)
    return dict(host=src.get('login_unix_socket') or src.get('login_host'), port=src.get('login_port'),
                database=src.get('login_db') or 'postgres', user=src.get('login_user'))


def open_source(params, log=None, autocommit=True):
    """A Session on the source (raises ConnectionFailure naming the source, SourceError)."""
    src = source_params(params)
    try:
        return open_session(src, autocommit=autocommit, log=log)
    except ConnectionFailure as exc:
        raise ConnectionFailure('source: %s' % exc)
