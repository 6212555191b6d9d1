# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lint of the up sections about to run, with squawk (PyPI squawk-cli) and its JSON reporter.

Each up section is written to a scratch file of the same name in which every other line is blank (so squawk's
line numbers are the file's) except squawk's own ``-- squawk-ignore`` comments, which are kept wherever they are.
Transactional sections are linted with ``--assume-in-transaction`` (pg_migrate runs them in one). squawk's
``require-lock-timeout`` and ``require-statement-timeout`` rules are excluded when the migration session has that
timeout set (pg_migrate sets ``lock_timeout``, 10 s by default, and ``statement_timeout`` when given, before every
migration): the finding would be false there, and true only for a file run by hand (`covered_rules`)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile


class LintError(Exception):
    """squawk missing or not working."""


def find_squawk():
    """squawk beside the module's Python (a virtualenv's bin) or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), 'squawk')
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which('squawk')


def masked_text(migration):
    """The file's text with every line outside the up section blank, squawk-ignore comments kept."""
    with open(migration.path, 'rb') as handle:
        lines = handle.read().decode('utf-8').split('\n')
    up = migration.up
    first = up.line + 1
    last = first + up.text.count('\n')
    kept = []
    for number, line in enumerate(lines, 1):
        if first <= number <= last or 'squawk-ignore' in line:
            kept.append(line)
        else:
            kept.append('')
    return '\n'.join(kept)


def findings_of(output, files):
    """squawk's JSON findings as dicts (rule, file, line, level, message, help); `files`: {scratch path: name}."""
    try:
        violations = json.loads(output or '[]')
    except ValueError as exc:
        raise LintError('squawk did not return JSON: %s' % exc)
    found = []
    for v in violations:
        path = v.get('file')
        found.append(dict(rule=v.get('rule_name'), file=files.get(path, os.path.basename(path or '')),
                          line=int(v.get('line') or 0) + 1, level=v.get('level'), message=v.get('message'),
                          help=v.get('help')))
    return sorted(found, key=lambda f: (f['file'], f['line'], f['rule']))


TIMEOUT_RULES = (('lock_timeout', 'require-lock-timeout'), ('statement_timeout', 'require-statement-timeout'))


def covered_rules(settings):
    """The squawk rules the session's own settings satisfy: {setting: value as SHOW gives it} -> rule names."""
    return [rule for name, rule in TIMEOUT_RULES if (settings.get(name) or '0') not in ('0', '0ms', '0s')]


def lint(runner, squawk, migrations, pg_version, exclude=()):
    """The findings of the up sections of `migrations` (a list of dicts, sorted by file and line); `exclude`: rules
    not to check."""
    if not migrations:
        return []
    scratch = tempfile.mkdtemp(prefix='dbops-squawk-')
    try:
        findings = []
        for transactional in (True, False):
            group = [m for m in migrations if m.up.transactional == transactional]
            if not group:
                continue
            folder = os.path.join(scratch, 'tx' if transactional else 'notx')
            os.mkdir(folder, 0o700)
            files = {}
            for migration in group:
                path = os.path.join(folder, migration.file)
                with open(path, 'w') as handle:
                    handle.write(masked_text(migration))
                files[path] = migration.file
            argv = [squawk, '--reporter', 'json', '--pg-version', pg_version]
            if transactional:
                argv.append('--assume-in-transaction')
            if exclude:
                argv.append('--exclude=%s' % ','.join(exclude))
            rc, out, err = runner.run(argv + sorted(files), check=False)
            if rc not in (0, 1):
                raise LintError('squawk failed (rc %s): %s' % (rc, (err or out or '').strip()[-2000:]))
            findings.extend(findings_of(out, files))
        return sorted(findings, key=lambda f: (f['file'], f['line'], f['rule']))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def describe(findings):
    return '; '.join('%s line %d: %s (%s)' % (f['file'], f['line'], f['rule'], f['message']) for f in findings)
