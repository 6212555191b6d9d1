# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeout options of every module (lock_timeout, statement_timeout): one notation, PostgreSQL's own, as the
runbook writes it (``SET lock_timeout = '10s'``). PRIVATE to the collection.

A value is a number with a unit (``us``, ``ms``, ``s``, ``min``, ``h``, ``d``: ``'10s'``, ``'500ms'``, ``'1min'``), or
``'0'`` for no timeout. A bare number is refused: PostgreSQL reads ``10`` as 10 milliseconds, which someone who meant
seconds would learn only when every statement times out (or, worse, waits for ever behind a lock). The value is then
set on the session by the server (``set_config``), which has the last word on what it accepts."""

from __future__ import annotations

import re

UNITS = dict(us=1e-6, ms=1e-3, s=1.0, min=60.0, h=3600.0, d=86400.0)
VALUE = re.compile(r'^\s*([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|min|h|d)?\s*$')
EXAMPLES = "for example '10s', '500ms' or '1min'; '0' for no timeout"


def timeout_option(default=None):
    """The argument spec entry of a timeout option."""
    return dict(type='str', default=default)


def problem(name, value, positive=False):
    """Why `value` is not a timeout in PostgreSQL's notation (None when it is). positive: '0' refused too."""
    if value is None:
        return None
    match = VALUE.match(str(value))
    if match is None or (match.group(2) is None and float(match.group(1)) != 0):
        return ('%s: invalid value %r, give a unit (%s); PostgreSQL reads a bare number as milliseconds'
                % (name, value, EXAMPLES))
    if positive and float(match.group(1)) == 0:
        return '%s must be more than 0 (%s)' % (name, EXAMPLES)
    return None


def seconds(value):
    """A valid timeout (see `problem`) in seconds; None stays None, '0' is 0."""
    if value is None:
        return None
    match = VALUE.match(str(value))
    return float(match.group(1)) * UNITS[match.group(2) or 's']


def milliseconds_setting(value):
    """A valid timeout as the '<n>ms' text set_config takes (at least 1 ms unless 0)."""
    secs = seconds(value) or 0
    return '0' if secs == 0 else '%dms' % max(int(round(secs * 1000)), 1)
