# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection. Plain SQL scripts that psql runs: writing names into them safely, and scanning them.

A plain SQL script is run by psql, which executes meta-commands (``\\! shell``, ``\\o |program``, ``\\copy ...
program``, ``\\i file``) wherever an unquoted backslash appears outside COPY data. So a script this collection
writes or restores must hold no meta-command at all, and no value may leave its literal:

* `ident()` and `literal()` render a name so that it never spans lines: printable text in ordinary double or single
  quotes, anything with a control character as a U&"..." / U&'...' escape (needs standard_conforming_strings=on,
  which every script sets first).
* `scan_script()` reads a script the way psql does (quotes, dollar quotes, nested comments, parentheses,
  BEGIN ... END bodies, COPY ... FROM stdin blocks) and lists every place that is not plain SQL or COPY data:
  a backslash outside quotes and COPY data (the ``\\.`` ending a COPY block is the only one allowed, besides the
  ``\\restrict``/``\\unrestrict`` pair pg_dump writes to make psql refuse meta-commands), a line starting with a
  backslash anywhere outside COPY data, COPY data holding an escape COPY never writes, a COPY FROM stdin statement
  that is not of pg_dump's plain shape, a script ending inside a quote or a COPY block.
"""

from __future__ import annotations

import re

MAX_PROBLEMS = 20

# COPY's text format escapes (what COPY TO writes): \\ \b \f \n \r \t \v and \N for NULL
COPY_ESCAPES = frozenset('\\bfnrtvN')
# pg_dump (13.22, 14.19, 15.14, 16.10, 17.6 and later) opens and closes plain dumps with these two meta-commands; the
# first makes psql refuse every other meta-command until the second, with the same random key
RESTRICT_RE = re.compile(r'^\\(restrict|unrestrict) ([A-Za-z0-9]+)[ \t]*\r?\n?$')
_IDENT = r'(?:[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*|(?:[Uu]&)?"(?:[^"]|"")*")'
_QNAME = r'%s(?:\s*\.\s*%s)?' % (_IDENT, _IDENT)
COPY_FROM_STDIN_RE = re.compile(r'^\s*COPY\s+%s\s*(?:\(\s*%s(?:\s*,\s*%s)*\s*\))?\s+FROM\s+stdin\s*;\Z'
                                % (_QNAME, _IDENT, _IDENT), re.I | re.S)
LOOKS_LIKE_COPY_IN_RE = re.compile(r'^\s*COPY\b.*\bSTDIN\b', re.I | re.S)
IDENT_START = re.compile(r'[A-Za-z_\x80-\xff]')
IDENT_RE = re.compile(r'[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*')
DOLLAR_RE = re.compile(r'\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$')
PARAM_RE = re.compile(r'\$[0-9]+')


def _unsafe(text):
    return any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f for ch in text)


def _u_escape(text, quote):
    out = []
    for ch in text:
        if ch == '\\':
            out.append('\\\\')
        elif ch == quote:
            out.append(quote * 2)
        elif ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f:
            out.append('\\%04X' % ord(ch))
        else:
            out.append(ch)
    return ''.join(out)


def ident(name):
    """An SQL identifier for a script: "name" (quotes doubled), or U&"..." when it holds a control character."""
    return _quoted(name, '"', 'an identifier')


def qualified(schema, name):
    return '%s.%s' % (ident(schema), ident(name))


def literal(value):
    """An SQL string literal for a script with standard_conforming_strings=on: 'text' (quotes doubled), or
    U&'...' when it holds a control character, so that it never spans lines."""
    return _quoted(value, "'", 'a string literal')


def _quoted(value, quote, what):
    """value between quotes (a quote in it doubled), with U& escapes when it holds a control character."""
    text = str(value)
    if '\x00' in text:
        raise ValueError('%s cannot hold a NUL character' % what)
    if _unsafe(text):
        return 'U&%s%s%s' % (quote, _u_escape(text, quote), quote)
    return '%s%s%s' % (quote, text.replace(quote, quote * 2), quote)


class _Scanner(object):
    """psql's lexer reduced to what decides whether text is SQL, quoted text, a comment, a meta-command or COPY
    data (psqlscan.l: xq/xe/xd/xdolq/xc states, paren_depth, begin_depth, identifier heuristic)."""

    def __init__(self, name):
        self.name = name
        self.problems = []
        self.state = None          # None (SQL), "'", 'E', '"', '$', '*' (block comment)
        self.tag = None            # dollar-quote tag
        self.depth = 0             # block comment nesting
        self.copy = False          # inside COPY ... FROM stdin data
        self.copy_line = 0
        self.restricted = None     # key of pg_dump's \restrict
        self.reset()

    def reset(self):
        self.statement = []
        self.parens = 0
        self.begins = 0
        self.idents = []
        self.ident_count = 0

    def problem(self, lineno, text):
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append('%s line %d: %s' % (self.name, lineno, text))

    def identifier(self, word):
        # psql: CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ... END keeps its semicolons in one statement
        lower = word.lower()
        if self.ident_count < 4:
            self.idents.append(lower[0] if lower in ('create', 'function', 'procedure', 'or', 'replace') else '')
        self.ident_count += 1
        ids = self.idents + [''] * 4
        if ids[0] == 'c' and (ids[1] in ('f', 'p') or (ids[1] == 'o' and ids[2] == 'r' and ids[3] in ('f', 'p'))) \
                and self.parens == 0:
            if lower == 'begin':
                self.begins += 1
            elif lower == 'case' and self.begins >= 1:
                self.begins += 1
            elif lower == 'end' and self.begins > 0:
                self.begins -= 1

    def line(self, lineno, text):
        if self.copy:
            body = text.rstrip('\n')
            if body in ('\\.', '\\.\r'):
                self.copy = False
                return
            index = body.find('\\')
            while index >= 0:
                following = body[index + 1:index + 2]
                if following not in COPY_ESCAPES or following == '':
                    self.problem(lineno, 'COPY data holds %r, an escape COPY never writes' % body[index:index + 2])
                    break
                index = body.find('\\', index + 2)
            return
        if text.startswith('\\') and self.state is not None:
            self.problem(lineno, 'a line starts with a backslash (inside quoted text or a comment)')
        i, n = 0, len(text)
        enter_copy = False
        while i < n:
            ch = text[i]
            state = self.state
            if state in ("'", '"'):  # a string or a quoted identifier: a doubled quote is one, the next one ends it
                end = text.find(state, i)
                if end < 0:
                    self.statement.append(text[i:])
                    return self._after(lineno, enter_copy)
                if text[end + 1:end + 2] == state:
                    self.statement.append(text[i:end + 2])
                    i = end + 2
                    continue
                self.statement.append(text[i:end + 1])
                self.state = None
                i = end + 1
            elif state == 'E':
                if ch == '\\':
                    self.statement.append(text[i:i + 2])
                    i += 2
                elif ch == "'" and text[i + 1:i + 2] == "'":
                    self.statement.append("''")
                    i += 2
                elif ch == "'":
                    self.statement.append(ch)
                    self.state = None
                    i += 1
                else:
                    self.statement.append(ch)
                    i += 1
            elif state == '$':
                end = text.find(self.tag, i)
                if end < 0:
                    self.statement.append(text[i:])
                    return self._after(lineno, enter_copy)
                self.statement.append(text[i:end + len(self.tag)])
                self.state = None
                i = end + len(self.tag)
            elif state == '*':
                if text.startswith('/*', i):
                    self.depth += 1
                    i += 2
                elif text.startswith('*/', i):
                    self.depth -= 1
                    i += 2
                    if self.depth == 0:
                        self.state = None
                        self.statement.append(' ')
                else:
                    i += 1
            elif enter_copy and not ch.isspace():
                self.problem(lineno, 'text after a COPY ... FROM stdin statement on its line')
                enter_copy = False
                i += 1
            elif text.startswith('--', i):
                # a comment ends at a newline or a carriage return: what follows a CR is SQL again
                ends = [p for p in (text.find('\n', i), text.find('\r', i)) if p >= 0]
                i = min(ends) if ends else n
                if i < n and text[i] == '\r':
                    i += 1
            elif text.startswith('/*', i):
                self.state, self.depth = '*', 1
                i += 2
            elif ch == "'":
                self.state = "'"
                self.statement.append(ch)
                i += 1
            elif ch == '"':
                self.state = '"'
                self.statement.append(ch)
                i += 1
            elif ch == '$':
                match = DOLLAR_RE.match(text, i)
                param = PARAM_RE.match(text, i)
                if match:
                    self.state, self.tag = '$', match.group(0)
                    self.statement.append(match.group(0))
                    i = match.end()
                else:
                    end = param.end() if param else i + 1
                    self.statement.append(text[i:end])
                    i = end
            elif IDENT_START.match(ch):
                word = IDENT_RE.match(text, i).group(0)
                after = text[i + len(word):i + len(word) + 2]
                if word in ('E', 'e') and after[:1] == "'":
                    self.state = 'E'
                    self.statement.append(text[i:i + 2])
                    i += 2
                    continue
                if word in ('U', 'u') and after in ('&\'', '&"'):
                    self.state = after[1]
                    self.statement.append(text[i:i + 3])
                    i += 3
                    continue
                if word.lower() in ('b', 'x', 'n') and after[:1] == "'":
                    self.state = "'"
                    self.statement.append(text[i:i + 2])
                    i += 2
                    continue
                self.identifier(word)
                self.statement.append(word)
                i += len(word)
            elif ch == '\\':
                match = RESTRICT_RE.match(text) if i == 0 and not ''.join(self.statement).strip() else None
                if match and match.group(1) == 'restrict' and self.restricted is None:
                    self.restricted = match.group(2)
                elif match and match.group(1) == 'unrestrict' and self.restricted == match.group(2):
                    self.restricted = ''
                else:
                    self.problem(lineno, 'a psql meta-command (%s)' % text[i:i + 12].rstrip('\r\n'))
                return self._after(lineno, enter_copy)
            elif ch == '(':
                self.parens += 1
                self.statement.append(ch)
                i += 1
            elif ch == ')':
                self.parens = max(0, self.parens - 1)
                self.statement.append(ch)
                i += 1
            elif ch == ';' and self.parens == 0 and self.begins == 0:
                self.statement.append(ch)
                statement = ''.join(self.statement)
                if COPY_FROM_STDIN_RE.match(statement):
                    enter_copy = True
                elif LOOKS_LIKE_COPY_IN_RE.match(statement):
                    self.problem(lineno, 'a COPY ... FROM stdin statement of an unknown shape')
                self.reset()
                i += 1
            else:
                self.statement.append(ch)
                i += 1
        return self._after(lineno, enter_copy)

    def _after(self, lineno, enter_copy):
        if enter_copy:
            self.copy, self.copy_line = True, lineno

    def finish(self, lineno):
        if self.copy:
            self.problem(self.copy_line, 'the COPY block starting here never ends with \\.')
        elif self.state is not None:
            self.problem(lineno, 'the script ends inside a quoted text or a comment')
        if self.restricted:
            self.problem(lineno, 'the script has \\restrict without its \\unrestrict')
        return self.problems


def scan_lines(lines, name='script'):
    """Problems of a script given as an iterable of lines (str, ending in newline as read from a file)."""
    scanner = _Scanner(name)
    lineno = 0
    for lineno, text in enumerate(lines, 1):
        scanner.line(lineno, text)
    return scanner.finish(lineno)


def scan_script(path):
    """Problems of a plain SQL script file (empty when it holds only SQL and COPY data). Raises OSError.

    Bytes are read as Latin-1, so that every byte is looked at as itself (every PostgreSQL server encoding is
    ASCII-safe: a backslash byte is a backslash)."""
    with open(path, 'rb') as handle:
        return scan_lines((raw.decode('latin-1') for raw in handle), path)
