# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way for every module to end in a clean failed result, never a traceback."""

from __future__ import annotations

from contextlib import contextmanager

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import (
    ConnectionFailure, database_error_message, psycopg2)


@contextmanager
def clean_failures(module, log, commands, what, errors=(), session=None, partial=None):
    """Run the module's work; turn its own `errors`, database errors, client-program and connection failures and
    OS errors into fail_json with `queries` and `commands` (the lists as they are at the failure). An error that
    carries a `result` dict (partial results) has it merged into the failed result, and so has `partial` (a dict
    the work may fill as it goes). With `session`, its open transaction is rolled back and it is closed first, so
    nothing half-done is committed."""
    database_errors = (psycopg2.Error,) if psycopg2 is not None else ()
    own = (errors,) if isinstance(errors, type) else tuple(errors)
    try:
        yield
    except own + (ClientError, ConnectionFailure) as exc:
        _fail(module, log, commands, str(exc), exc, session, partial)
    except database_errors as exc:  # pylint: disable=catching-non-exception
        secret = (getattr(module, 'params', None) or {}).get('login_password')
        _fail(module, log, commands, '%s failed: %s' % (what, database_error_message(exc, secret)), exc, session,
              partial)
    except OSError as exc:
        _fail(module, log, commands, '%s failed: %s' % (what, exc), exc, session, partial)


def _fail(module, log, commands, msg, exc, session=None, partial=None):
    if session is not None:
        try:
            session.rollback()
        except Exception:  # pylint: disable=broad-except  # a broken connection has nothing to roll back
            pass
        session.close()
    extra = dict(partial or {})
    extra.update(getattr(exc, 'result', None) or {})
    extra.update(queries=list(log.queries) if log is not None else [], commands=list(commands or []))
    module.fail_json(msg=msg, **extra)
