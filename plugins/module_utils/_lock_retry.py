# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retrying a statement that hit lock_timeout, with exponential backoff. PRIVATE to the collection (as every `_`
module).

A DDL statement run with a short ``lock_timeout`` fails with SQLSTATE 55P03 instead of queueing behind a long
transaction (and making every later query of the table queue behind it). `with_lock_retries` runs an action, and on
that error waits ``delay * 2**n`` seconds and runs it again, ``retries`` times at most; then raises
`LockRetriesExhausted` with the sessions that held a lock on the relations (`lock_holders`)."""

from __future__ import annotations

import time

LOCK_NOT_AVAILABLE = '55P03'


class LockRetriesExhausted(Exception):
    """lock_timeout was reached on every attempt; `attempts` made, `error` the last psycopg2 error."""

    def __init__(self, attempts, error):
        super(LockRetriesExhausted, self).__init__('lock_timeout reached %d time(s)' % attempts)
        self.attempts = attempts
        self.error = error


def is_lock_timeout(exc):
    """True for the error of a statement that waited lock_timeout for a lock."""
    return getattr(exc, 'pgcode', None) == LOCK_NOT_AVAILABLE


def backoff(delay, attempt):
    """Seconds to wait before retry number `attempt` (0 for the first retry): delay, 2 x delay, 4 x delay ..."""
    return float(delay) * (2 ** attempt)


def with_lock_retries(action, retries, delay, before_retry=None, sleep=time.sleep):
    """Run action(); on a lock timeout (55P03) call before_retry(attempt, error) if given (to drop what the failed
    attempt left, to say so), sleep backoff(delay, attempt) and run it again, `retries` times at most.
    Returns (action's result, retries used). Other errors propagate at once; LockRetriesExhausted after the last."""
    attempt = 0
    while True:
        try:
            return action(), attempt
        except Exception as exc:  # pylint: disable=broad-except  # re-raised unless it is a lock timeout
            if not is_lock_timeout(exc):
                raise
            if attempt >= retries:
                raise LockRetriesExhausted(attempt + 1, exc)
            if before_retry is not None:
                before_retry(attempt, exc)
            sleep(backoff(delay, attempt))
            attempt += 1


def lock_holders(session, relation_oids):
    """Pids of the other sessions holding a granted lock on one of the relations (oids), or running an open
    transaction older than ours that a concurrent index build waits for. Sorted."""
    rows = session.rows(
        'SELECT DISTINCT pid FROM pg_locks WHERE granted AND relation = ANY(%s::oid[]) AND pid <> pg_backend_pid() '
        'ORDER BY pid', (list(relation_oids),))
    return [r['pid'] for r in rows]
