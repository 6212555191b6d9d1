# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to run, given the migration files and the tracking rows (pure: no server)."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils.migrate.source import MigrationError, sha256_of

INTERRUPTED_ADVICE = ('it ran outside a transaction and did not finish: the next "up" drops the INVALID indexes '
                      'it left and runs it again (its statements should be idempotent: IF NOT EXISTS / IF EXISTS)')
DOWN_INTERRUPTED_ADVICE = ('its down section ran outside a transaction and did not finish: part of it may have run. '
                           'Run "down" again to finish reverting it, or "up" to apply it again (its statements '
                           'should be idempotent: IF EXISTS / IF NOT EXISTS)')


def _number(version):
    return int(version)


def state(migrations, history, dbmate_versions=()):
    """The state of every migration. `history`: {version: row of the history table (name, up_sha256,
    down_sha256, finished_at, transactional)}; `dbmate_versions`: versions in dbmate's schema_migrations.
    Returns a dict of lists: applied, pending, drifted, missing, interrupted (dicts with version, name, file)."""
    result = dict(applied=[], pending=[], drifted=[], missing=[], interrupted=[])
    files = dict((m.number, m) for m in migrations)
    dbmate = set(_number(v) for v in dbmate_versions)
    rows = dict((_number(v), row) for v, row in history.items())
    for migration in migrations:
        entry = dict(version=migration.version, name=migration.name, file=migration.file)
        row = rows.get(migration.number)
        if row is not None and row.get('reverting_at'):
            entry['advice'] = DOWN_INTERRUPTED_ADVICE
            entry['direction'] = 'down'
            result['interrupted'].append(entry)
        elif row is not None and row.get('finished_at') is None and not row.get('transactional', True):
            entry['advice'] = INTERRUPTED_ADVICE
            entry['direction'] = 'up'
            result['interrupted'].append(entry)
        elif row is not None:
            entry['applied_at'] = row.get('applied_at')
            result['applied'].append(entry)
            changed = [d for d, key in (('up', 'up_sha256'), ('down', 'down_sha256'))
                       if row.get(key) and row.get(key) != sha256_of(migration.section(d))]
            if changed:
                result['drifted'].append(dict(entry, sections=changed))
        elif migration.number in dbmate:
            entry['applied_by'] = 'dbmate'
            result['applied'].append(entry)
        else:
            result['pending'].append(entry)
    for number in sorted(set(rows) | dbmate):
        if number not in files:
            row = rows.get(number) or {}
            result['missing'].append(dict(version=str(row.get('version') or number), name=row.get('name')))
    return result


def _target_number(migrations, target, known_versions=()):
    if target is None:
        return None
    if not str(target).isdigit():
        raise MigrationError('target %r is not a migration version (digits)' % target)
    number = int(target)
    if number not in set(m.number for m in migrations) | set(_number(v) for v in known_versions):
        raise MigrationError('target %s is not the version of any migration file or applied migration' % target)
    return number


def select_up(migrations, status, target=None):
    """The migrations `up` runs, in order: pending and interrupted ones up to `target` (included)."""
    number = _target_number(migrations, target)
    todo = set(e['version'] for e in status['pending'] + status['interrupted'])
    return [m for m in migrations if m.version in todo and (number is None or m.number <= number)]


def select_down(migrations, status, target=None, steps=1):
    """The migrations `down` reverts, newest first: `steps` of them, or all applied above `target`. A migration
    to revert must have its file (and a down section)."""
    applied = sorted(status['applied'] + status['interrupted'], key=lambda e: _number(e['version']), reverse=True)
    applied_versions = [e['version'] for e in applied] + [e['version'] for e in status['missing']]
    if not applied and not status['missing']:
        raise MigrationError('down: no migration is applied')
    number = _target_number(migrations, target, applied_versions)
    missing = sorted(status['missing'], key=lambda e: _number(e['version']), reverse=True)
    newest = sorted(applied + missing, key=lambda e: _number(e['version']), reverse=True)
    if number is not None:
        chosen = [e for e in newest if _number(e['version']) > number]
    else:
        chosen = newest[:steps]
    files = dict((m.version, m) for m in migrations)
    result = []
    for entry in chosen:
        migration = files.get(entry['version'])
        if migration is None:
            raise MigrationError('down: applied migration %s has no file in the folder' % entry['version'])
        if migration.down is None:
            raise MigrationError('down: %s has no -- migrate:down section' % migration.file)
        result.append(migration)
    return result


def steps_of(migration, direction):
    """The plan of one migration in one direction: what check mode shows."""
    section = migration.section(direction)
    return dict(version=migration.version, name=migration.name, file=migration.file, direction=direction,
                transactional=section.transactional, statements=[s.as_dict() for s in section.statements])
