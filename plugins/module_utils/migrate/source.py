# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A folder of migrations in dbmate's format, read and checked without a server (pure).

One file per migration, ``<version>_<name>.sql`` (version: digits, ordered numerically), with a ``-- migrate:up``
section and an optional ``-- migrate:down`` section; ``transaction:false`` on a section marker runs that section
outside a transaction. Statements are split and classified with PostgreSQL's own parser (pglast, libpg_query),
never by splitting on ``;``.
"""

from __future__ import annotations

import hashlib
import os
import re

try:
    import pglast
    from pglast.parser import ParseError
    PGLAST_IMPORT_ERROR = None
except ImportError as _exc:  # reported by the module with missing_requirement_message
    pglast = None
    ParseError = Exception
    PGLAST_IMPORT_ERROR = _exc

FILE_NAME = re.compile(r'^(\d+)_(.+)\.sql$')
FILE_LIKE = re.compile(r'^(\d+)_?.*\.sql$')
MARKER = re.compile(r'^--\s*migrate:(up|down)\b(.*)$')
OPTION = re.compile(r'^(\w+):(\S+)$')


class MigrationError(Exception):
    """A migration folder or file that cannot be used; the message names the file and line."""


class Statement(object):
    """One statement of a section: its text, its line in the file, its kind (the parser's node name) and, for a
    statement that cannot run in a transaction block, why."""

    def __init__(self, text, line, kind, non_transactional=None, relations=(), index=None):
        self.text = text
        self.line = line
        self.kind = kind
        self.non_transactional = non_transactional
        self.relations = tuple(relations)
        self.index = index  # (schema or None, name) of an index built CONCURRENTLY

    def as_dict(self):
        return dict(sql=self.text, line=self.line, kind=self.kind)


class Section(object):
    """The up or the down section of a migration."""

    def __init__(self, direction, text, line, transactional=True, statements=()):
        self.direction = direction
        self.text = text
        self.line = line
        self.transactional = transactional
        self.statements = list(statements)

    @property
    def sha256(self):
        return hashlib.sha256(self.text.encode('utf-8')).hexdigest()


class Migration(object):
    """One migration file."""

    def __init__(self, version, name, path, up, down=None):
        self.version = version
        self.name = name
        self.path = path
        self.up = up
        self.down = down

    @property
    def number(self):
        return int(self.version)

    @property
    def file(self):
        return os.path.basename(self.path)

    def section(self, direction):
        return self.up if direction == 'up' else self.down


def sha256_of(section):
    return section.sha256 if section is not None else hashlib.sha256(b'').hexdigest()


# Statements that PostgreSQL refuses in a transaction block ---------------------------------------------------------
def _has_concurrently(params):
    return any(getattr(p, 'defname', None) == 'concurrently' for p in (params or ()))


def non_transactional_reason(node):
    """Why a parsed statement cannot run inside a transaction block (None when it can)."""
    kind = type(node).__name__
    if kind == 'IndexStmt' and getattr(node, 'concurrent', False):
        return 'CREATE INDEX CONCURRENTLY'
    if kind == 'DropStmt' and getattr(node, 'concurrent', False):
        return 'DROP INDEX CONCURRENTLY'
    if kind == 'ReindexStmt' and _has_concurrently(getattr(node, 'params', None)):
        return 'REINDEX CONCURRENTLY'
    if kind == 'VacuumStmt':
        return 'VACUUM' if getattr(node, 'is_vacuumcmd', True) else None
    if kind == 'AlterSystemStmt':
        return 'ALTER SYSTEM'
    if kind == 'CreatedbStmt':
        return 'CREATE DATABASE'
    if kind == 'DropdbStmt':
        return 'DROP DATABASE'
    return None


def _relations(node):
    """The relation names a statement names (schema.name), for reporting who blocks it."""
    found = []

    def visit(value):
        if value is None or isinstance(value, (str, bytes, int, float, bool)):
            return
        if isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
            return
        if type(value).__name__ == 'RangeVar':
            name = value.relname if not value.schemaname else '%s.%s' % (value.schemaname, value.relname)
            if name not in found:
                found.append(name)
            return
        for attr in getattr(value, '__slots__', ()):
            visit(getattr(value, attr, None))

    visit(node)
    return found


def _concurrent_index(node):
    """(schema or None, name) of the index a CREATE INDEX CONCURRENTLY builds (None for other statements or an
    unnamed index)."""
    if type(node).__name__ != 'IndexStmt' or not getattr(node, 'concurrent', False) or not node.idxname:
        return None
    return (node.relation.schemaname or None, node.idxname)


def _line_at(text, offset):
    return text.count('\n', 0, offset) + 1


def _skip_leading(text, offset):
    """The offset of the statement's first token (after whitespace and -- comments)."""
    while offset < len(text):
        if text[offset].isspace():
            offset += 1
        elif text.startswith('--', offset):
            end = text.find('\n', offset)
            offset = len(text) if end < 0 else end + 1
        else:
            break
    return offset


def split_statements(sql, file_name='<sql>', first_line=1):
    """The statements of a section, parsed by PostgreSQL's parser. `first_line`: the file line of the section's
    first line. Raises MigrationError with the file and line of a syntax error."""
    if pglast is None:
        raise MigrationError('pglast is needed to parse migrations: %s' % PGLAST_IMPORT_ERROR)
    try:
        parsed = pglast.parse_sql(sql)
    except ParseError as exc:
        message = exc.args[0] if exc.args else str(exc)
        position = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        raise MigrationError('%s line %d: SQL does not parse: %s' % (
            file_name, first_line - 1 + _line_at(sql, min(max(position, 0), len(sql))), message))
    statements = []
    for raw in parsed or ():
        start = raw.stmt_location or 0
        length = raw.stmt_len or (len(sql) - start)
        text = sql[start:start + length].strip()
        first = _skip_leading(sql, start)
        statements.append(Statement(text, first_line - 1 + _line_at(sql, first), type(raw.stmt).__name__,
                                    non_transactional_reason(raw.stmt), _relations(raw.stmt),
                                    _concurrent_index(raw.stmt)))
    return statements


def parse_file(path, text=None):
    """One migration file. Raises MigrationError naming the file and line."""
    base = os.path.basename(path)
    match = FILE_NAME.match(base)
    if not match:
        raise MigrationError('%s: a migration file is named <version>_<name>.sql (version: digits)' % base)
    if text is None:
        try:
            with open(path, 'rb') as handle:
                text = handle.read().decode('utf-8')
        except UnicodeDecodeError as exc:
            raise MigrationError('%s: not UTF-8 text (%s)' % (base, exc))
    lines = text.split('\n')
    markers = []
    for number, line in enumerate(lines, 1):
        found = MARKER.match(line.strip())
        if not found:
            continue
        options = {}
        for word in found.group(2).split():
            option = OPTION.match(word)
            if not option or option.group(1) != 'transaction' or option.group(2) not in ('true', 'false'):
                raise MigrationError('%s line %d: unknown option %r on the migrate:%s marker (dbmate knows '
                                     'transaction:false)' % (base, number, word, found.group(1)))
            options[option.group(1)] = option.group(2)
        markers.append((found.group(1), number, options.get('transaction', 'true') == 'true'))
    seen = {}
    for direction, number, _options in markers:
        if direction in seen:
            raise MigrationError('%s line %d: a second -- migrate:%s section (the first is on line %d)' % (
                base, number, direction, seen[direction]))
        seen[direction] = number
    if 'up' not in seen:
        raise MigrationError('%s line 1: no -- migrate:up section' % base)
    if markers[0][1] > 1 and any(_code(line) for line in lines[:markers[0][1] - 1]):
        raise MigrationError('%s line %d: SQL before the first -- migrate: marker' % (
            base, next(i for i, line in enumerate(lines, 1) if _code(line))))
    sections = {}
    for index, (direction, number, transactional) in enumerate(markers):
        end = markers[index + 1][1] - 1 if index + 1 < len(markers) else len(lines)
        body = '\n'.join(lines[number:end])
        statements = split_statements(body, base, number + 1)
        if transactional:
            for statement in statements:
                if statement.non_transactional:
                    raise MigrationError(
                        '%s line %d: %s cannot run inside a transaction; put it in a section marked '
                        '"-- migrate:%s transaction:false" (alone, or with statements that may each commit on '
                        'their own)' % (base, statement.line, statement.non_transactional, direction))
        sections[direction] = Section(direction, body, number, transactional, statements)
    if not sections['up'].statements:
        raise MigrationError('%s line %d: the -- migrate:up section has no statement' % (base, seen['up']))
    down = sections.get('down')
    if down is not None and not down.statements:
        down = None
    return Migration(match.group(1), match.group(2), path, sections['up'], down)


def _code(line):
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith('--')


def read_folder(path):
    """Every migration of a folder, in version order. Raises MigrationError for a missing folder, a file that
    looks like a migration but is not one, duplicate versions, or any file that does not parse."""
    if not path or not os.path.isdir(path):
        raise MigrationError('The migrations folder %s does not exist (or is not a folder)' % path)
    migrations = []
    by_number = {}
    for base in sorted(os.listdir(path)):
        full = os.path.join(path, base)
        if not base.endswith('.sql') or not os.path.isfile(full):
            continue
        if not FILE_NAME.match(base):
            raise MigrationError('%s: a migration file is named <version>_<name>.sql (version: digits)' % base)
        migration = parse_file(full)
        if migration.number in by_number:
            raise MigrationError('Duplicate migration version %s: %s and %s' % (
                migration.version, by_number[migration.number].file, migration.file))
        by_number[migration.number] = migration
        migrations.append(migration)
    migrations.sort(key=lambda m: m.number)
    return migrations
