# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way in to PostgreSQL for every module: argument spec, connection, composed SQL, `queries`."""

from __future__ import annotations

import platform
import sys
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible.module_utils.common.validation import check_type_dict

try:
    import psycopg2
    import psycopg2.extras
    from psycopg2 import sql  # noqa: F401 pylint: disable=unused-import
except ImportError:
    psycopg2 = None
    sql = None
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()
else:
    PSYCOPG2_IMPORT_ERROR = None

APPLICATION_NAME = 'procgenie.dbops'
# libpq keywords whose value is a secret: refused in connect_params (see PostgresModule)
SECRET_CONNECT_PARAMS = dict(
    password='give the password as login_password (never logged; or the PGPASSWORD environment variable), or '
             'name a password file with connect_params: {passfile: /path/to/0600/file}',
    sslpassword='give the key unencrypted in a file only its owner can read (ssl_key), or load it from a vault',
)
SSL_MODES = ['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']


def postgres_argument_spec():
    """The shared connection options (documented by the procgenie.dbops.postgres doc fragment)."""
    return dict(
        login_host=dict(type='str', aliases=['host'], fallback=(env_fallback, ['PGHOST'])),
        login_port=dict(type='int', default=5432, aliases=['port'], fallback=(env_fallback, ['PGPORT'])),
        login_user=dict(type='str', default='postgres', aliases=['login'], fallback=(env_fallback, ['PGUSER'])),
        login_password=dict(type='str', no_log=True, fallback=(env_fallback, ['PGPASSWORD'])),
        login_db=dict(type='str', aliases=['db'], fallback=(env_fallback, ['PGDATABASE'])),
        login_unix_socket=dict(type='path'),
        ssl_mode=dict(type='str', default='prefer', choices=SSL_MODES, fallback=(env_fallback, ['PGSSLMODE'])),
        ca_cert=dict(type='path', aliases=['ssl_rootcert'], fallback=(env_fallback, ['PGSSLROOTCERT'])),
        ssl_cert=dict(type='path', fallback=(env_fallback, ['PGSSLCERT'])),
        ssl_key=dict(type='path', no_log=False, fallback=(env_fallback, ['PGSSLKEY'])),
        connect_params=dict(type='dict', default={}),
    )


class PostgresModule(AnsibleModule):
    """AnsibleModule for every module with the shared connection options.

    connect_params is a free dict, so Ansible cannot mark one of its keys no_log: a password given there would be
    printed in invocation.module_args (-vvv) and written to the system journal. A secret key (SECRET_CONNECT_PARAMS)
    is refused with a pointer to the option meant for it, and its value is made a no_log value before Ansible
    validates, logs or returns anything, so neither the refusal nor any other failure shows it."""

    def _load_params(self):
        super(PostgresModule, self)._load_params()
        self._refused_connect_params = []
        extra = self.params.get('connect_params')
        if isinstance(extra, str):
            try:
                extra = check_type_dict(extra)
            except (TypeError, ValueError):
                extra = None
        if not isinstance(extra, dict):
            return
        for key, value in extra.items():
            if str(key).strip().lower() in SECRET_CONNECT_PARAMS:
                self._refused_connect_params.append(str(key).strip().lower())
                if value not in (None, ''):
                    self.no_log_values.add(str(value))

    def __init__(self, *args, **kwargs):
        super(PostgresModule, self).__init__(*args, **kwargs)
        refused = sorted(set(self._refused_connect_params))
        if refused:
            self.fail_json(msg='connect_params must not hold %s: a secret there would be shown in the task\'s '
                               'invocation and logs. %s.' % (
                                   ' or '.join(refused), '; '.join('%s: %s' % (k, SECRET_CONNECT_PARAMS[k])
                                                                   for k in refused)), queries=[], commands=[])


def libpq_params(params, database=None):
    """libpq keywords for the module's connection options; None values left out. Holds the password."""
    kw = dict(
        host=params.get('login_unix_socket') or params.get('login_host'),
        port=params.get('login_port'),
        user=params.get('login_user'),
        password=params.get('login_password'),
        dbname=database or params.get('login_db') or 'postgres',
        sslmode=params.get('ssl_mode'),
        sslrootcert=params.get('ca_cert'),
        sslcert=params.get('ssl_cert'),
        sslkey=params.get('ssl_key'),
        application_name=APPLICATION_NAME,
    )
    kw.update(params.get('connect_params') or {})
    return dict((k, v) for k, v in kw.items() if v is not None and v != '')


def conninfo_quote(value):
    """One value of a libpq connection string: single-quoted, backslash and single quote escaped with a backslash,
    so that any text (spaces, '=', quotes, backslashes, newlines) reads back as itself through PQconninfoParse.
    libpq strings end at a NUL byte: a value holding one is refused (ValueError)."""
    text = str(value)
    if '\0' in text:
        raise ValueError('a libpq connection value cannot hold a NUL character')
    return "'%s'" % text.replace('\\', '\\\\').replace("'", "\\'")


def conninfo(**keywords):
    """A libpq connection string of the keywords that are set (None and '' left out), every value quoted."""
    return ' '.join('%s=%s' % (k, conninfo_quote(v)) for k, v in keywords.items() if v not in (None, ''))


def missing_requirement_message(library, pip_spec, import_error=None):
    """Which Python lacks what, and the two ways out: install it for that interpreter, or run the modules under a
    Python that has it (ansible_python_interpreter, a virtualenv, the execution environment)."""
    reason = ''
    if import_error:
        lines = [line for line in str(import_error).strip().splitlines() if line.strip()]
        reason = ' (%s)' % lines[-1].strip() if lines else ''
    # the opening is Ansible's usual one (missing_required_lib), which users and tools search for
    return ('Failed to import the required Python library (%s) on %s\'s Python %s (Python %s)%s. Either install the '
            'collection\'s Python requirements for that interpreter (%s -m pip install %s, or its requirements.txt), '
            'or run the modules under a Python that has them: set ansible_python_interpreter for the host, for '
            'example to "{{ ansible_playbook_python }}" (the Python that runs ansible-playbook) with '
            'ansible_connection: local, or to a virtualenv\'s bin/python; or run the playbook in the collection\'s '
            'execution environment (meta/execution-environment.yml).' % (
                library, platform.node(), sys.executable, platform.python_version(), reason, sys.executable,
                pip_spec))


def ensure_psycopg2(module):
    """Fail with a message that names the interpreter without psycopg2 and how to fix it."""
    if psycopg2 is None:
        module.fail_json(msg=missing_requirement_message('psycopg2', 'psycopg2-binary', PSYCOPG2_IMPORT_ERROR),
                         queries=[], commands=[])


def _scrub(text, secret):
    text = str(text).strip()
    if secret and len(secret) >= 4:  # a shorter one would garble ordinary words
        text = text.replace(secret, '********')
    return text


class QueryLog(object):
    """The SQL a module ran, as text with parameters filled in: the `queries` return value."""

    def __init__(self):
        self.queries = []

    def add(self, text):
        self.queries.append(text)


class Session(object):
    """A psycopg2 connection that runs composed SQL and records every statement in a QueryLog."""

    def __init__(self, conn, log=None):
        self.conn = conn
        self.log = log if log is not None else QueryLog()

    @property
    def queries(self):
        return self.log.queries

    @property
    def server_version_num(self):
        return self.conn.server_version

    def _run(self, cursor, query, params):
        text = cursor.mogrify(query, params)
        self.log.add(text.decode('utf-8', 'replace') if isinstance(text, bytes) else text)
        cursor.execute(query, params)

    def execute(self, query, params=None):
        """Run a statement that returns no rows; returns the row count."""
        with self.conn.cursor() as cur:
            self._run(cur, query, params)
            return cur.rowcount

    def rows(self, query, params=None):
        """Run a query; return its rows as a list of dicts."""
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            self._run(cur, query, params)
            return [dict(r) for r in cur.fetchall()]

    def row(self, query, params=None):
        """Run a query; return its first row as a dict, or None."""
        result = self.rows(query, params)
        return result[0] if result else None

    def scalar(self, query, params=None):
        """Run a query; return the first column of its first row, or None."""
        with self.conn.cursor() as cur:
            self._run(cur, query, params)
            row = cur.fetchone()
            return row[0] if row else None

    def commit(self):
        self.conn.commit()

    def rollback(self):
        self.conn.rollback()

    def close(self):
        try:
            self.conn.close()
        except Exception:  # pylint: disable=broad-except
            pass


class ConnectionFailure(Exception):
    """libpq refused the connection; the message is libpq's reason without secrets."""


def open_session(params, database=None, autocommit=True, log=None):
    """Connect with the module's options. Raises ConnectionFailure with libpq's reason (no password in it)."""
    kw = libpq_params(params, database)
    try:
        conn = psycopg2.connect(**kw)
    except psycopg2.Error as exc:
        raise ConnectionFailure('Unable to connect to database %s on %s: %s' % (
            kw.get('dbname'), kw.get('host', 'the default socket'), _scrub(exc, kw.get('password'))))
    conn.autocommit = autocommit
    return Session(conn, log)


def connect(module, database=None, autocommit=True, log=None):
    """open_session() for a module: fails the module cleanly instead of raising."""
    ensure_psycopg2(module)
    try:
        return open_session(module.params, database=database, autocommit=autocommit, log=log)
    except ConnectionFailure as exc:
        module.fail_json(msg=str(exc), queries=log.queries if log else [], commands=[])


def database_error_message(exc, secret=None):
    """A readable message of a psycopg2 error (SQLSTATE, message, detail, hint)."""
    diag = getattr(exc, 'diag', None)
    parts = [_scrub(getattr(exc, 'pgerror', None) or exc, secret)]
    if getattr(exc, 'pgcode', None):
        parts.insert(0, '[%s]' % exc.pgcode)
    if diag is not None and diag.message_hint and diag.message_hint not in parts[-1]:
        parts.append('HINT: %s' % diag.message_hint)
    return ' '.join(p for p in parts if p)
