# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one shape of every operation: plan, then apply. PRIVATE to the collection (as every `_` module).

An operation is a subclass of `Operation`, built with one signature, ``OperationClass(params, ctx)``:

* ``params``: the module's parameters, as AnsibleModule checked them against the argument spec;
* ``ctx``: a `Context`: ``log`` (the `_connection.QueryLog` behind ``queries``), ``runner`` (the
  `_clients.ClientRunner` behind ``commands``), ``warn`` (``module.warn``), ``check_mode``, ``diff`` (diff mode:
  whether the module returns ``diff``), and ``partial`` (a dict of results already true, merged into a failed
  result: a backup taken before the failure, ...).

It has two steps, and a module's ``main()`` runs them through `run_operation`:

1. ``plan()`` reads the current state and validates EVERYTHING the change needs before anything changes: client
   programs found (with their versions), manifests and artifacts read, validated and checksummed, every parameter
   checked (by the server where only the server can tell), the target checked (name, existence, sessions, rights).
   Every refusal belongs here. It changes nothing (no writing SQL, no file, no program that changes state) and
   returns the plan: a dict that is exactly what check mode returns, ``changed`` included (what apply would
   change). Facts the apply step needs and the user does not (open sessions, parsed manifests, program paths) stay
   on the operation (``self``).
2. ``apply(plan)`` executes the plan that ``plan()`` returned, and only that: it refuses nothing new (a failure
   here is the change itself failing) and returns the module's result, usually the plan updated with what happened.

``close()`` releases what the steps opened (sessions); `run_operation` calls it after apply, after check mode and
after a failure. Pure decisions (what to do given what was read) are plain functions beside the operation, unit-tested
without a server; ``plan()`` calls them.

Modelled on community.crypto's module backends (read the existing state, decide, act) and on this collection's
point-in-time restore (everything checked before the first file is written).
"""

from __future__ import annotations

import time

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientRunner
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import QueryLog, open_session
from ansible_collections.procgenie.dbops.plugins.module_utils._failures import clean_failures


class Context(object):
    """What an operation works with, besides its parameters: where its SQL and programs are recorded, how it warns,
    whether it only plans."""

    def __init__(self, log=None, runner=None, warn=None, check_mode=False, partial=None, diff=False):
        self.log = log if log is not None else QueryLog()
        self.runner = runner
        self.warn = warn or (lambda msg: None)
        self.check_mode = bool(check_mode)
        self.diff = bool(diff)
        self.partial = partial if partial is not None else {}

    @property
    def commands(self):
        return self.runner.commands if self.runner is not None else []


class Operation(object):
    """Base of every operation: ``plan()`` (read and validate everything, change nothing, return what check mode
    reports), ``apply(plan)`` (execute it), ``close()``. See the module docstring."""

    def __init__(self, params, ctx):
        self.params = params
        self.ctx = ctx
        self.started = time.monotonic()

    @classmethod
    def make_runner(cls, params):
        """The client runner of the operation (programs run with the module's connection options). An operation
        whose programs need other options (a local server, no connection at all) overrides this."""
        return ClientRunner(params)

    @property
    def log(self):
        return self.ctx.log

    @property
    def runner(self):
        return self.ctx.runner

    def warn(self, msg):
        self.ctx.warn(msg)

    def elapsed(self):
        """Seconds since the operation was built (``duration_s``)."""
        return round(time.monotonic() - self.started, 3)

    def plan(self):
        raise NotImplementedError

    def apply(self, plan):
        raise NotImplementedError

    def close(self):
        """Release what plan() or apply() opened; safe to call more than once."""

    def run(self):
        """plan(), then apply() unless in check mode; close() whatever happens. Returns the result."""
        try:
            plan = self.plan()
            return plan if self.ctx.check_mode else self.apply(plan)
        finally:
            self.close()


class SessionOperation(Operation):
    """An operation that works on one database session: `open()` (in plan()) connects with the module's connection
    options; `close()` rolls back what was not committed (check mode, a failure before the commit: nothing half-done
    stays) and closes it. It runs no client program (`commands` stays empty) unless `programs` is set."""

    programs = False

    @classmethod
    def make_runner(cls, params):
        return ClientRunner(params) if cls.programs else None

    def __init__(self, params, ctx):
        super(SessionOperation, self).__init__(params, ctx)
        self.session = None

    def open(self, database=None, autocommit=True):
        self.session = open_session(self.params, database=database, autocommit=autocommit, log=self.log)
        return self.session

    def close(self):
        if self.session is not None:
            try:
                self.session.rollback()
            except Exception:  # pylint: disable=broad-except  # a broken connection has nothing to roll back
                pass
            self.session.close()
            self.session = None


def run_operation(module, operation_class, errors, what):
    """The body of a module's main() once the module is built: the operation planned, returned as planned in check
    mode, else applied; ends in exit_json with `queries` and `commands`, or in fail_json through clean_failures
    (`errors`: the operation's own exception classes; `what`: "The restore", for database and OS errors)."""
    log = QueryLog()
    commands = []
    partial = {}
    with clean_failures(module, log, commands, what, errors, partial=partial):
        runner = operation_class.make_runner(module.params)
        if runner is not None:
            runner.commands = commands
        ctx = Context(log=log, runner=runner, warn=module.warn, check_mode=module.check_mode, partial=partial,
                      diff=getattr(module, '_diff', False))
        result = operation_class(module.params, ctx).run()
    module.exit_json(queries=log.queries, commands=commands, **result)
