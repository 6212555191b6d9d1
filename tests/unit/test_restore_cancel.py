"""pg_restore's CREATE DATABASE and a cancel: a SIGTERM arriving while it runs is handled once it has returned, so the
way out knows whether this run made the database (and drops only a database it made)."""

from __future__ import annotations

import signal
import threading

from ansible_collections.procgenie.dbops.plugins.module_utils.backup import restore as rst


def test_sigterm_deferred_holds_a_sigterm_until_the_block_ends():
    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        with rst.sigterm_deferred():
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            for _i in range(1000):  # bytecodes run: a handler that could run would have run here
                pass
            assert seen == []
            done = True
        assert done and seen == [signal.SIGTERM]
        seen[:] = []
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # and the mask is as it was
        for _i in range(1000):
            pass
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_sigterm_deferred_unblocks_when_the_block_fails():
    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        try:
            with rst.sigterm_deferred():
                raise ValueError('the CREATE DATABASE failed')
        except ValueError:
            pass
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.signal(signal.SIGTERM, before)
