# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Query text of other sessions as the activity modules return it: secrets masked, then truncated.

pg_stat_activity shows the statement text as the client sent it, so a session running
``ALTER ROLE app PASSWORD 'secret'`` or ``SELECT dblink_connect('host=db password=secret')`` shows the password to
anyone who can read the view, and a module that returns the text would put it in AWX's job output. Masked:

* a string literal after the word PASSWORD (``CREATE/ALTER ROLE/USER ... [ENCRYPTED] PASSWORD '...'``, user mappings'
  ``OPTIONS (password '...')``), in every SQL quoting (``'...'``, ``E'...'``, ``$tag$...$tag$``);
* ``password=`` / ``sslpassword=`` values of connection strings (plain, single-quoted, or quoted inside an SQL
  literal, where their quotes are doubled), and the password of a ``postgresql://user:password@host`` URI.

A literal that does not end (pg_stat_activity cuts the text at ``track_activity_query_size``) is masked to the end.
Pure functions, unit-tested.
"""

from __future__ import annotations

import re

MASK = '********'

CONNINFO_PASSWORD = re.compile(r'\b(?:ssl)?password\s*=\s*', re.I)
URI_PASSWORD = re.compile(r'(\bpostgres(?:ql)?://[^\s:/@\'"]*:)([^\s@\'"]*)(@)', re.I)
DOLLAR_TAG = re.compile(r'\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$')


def _sql_literal_end(text, start):
    """Where the SQL string literal starting at `start` ends (index after it), None when no literal starts there.
    An unterminated literal ends at the end of the text."""
    n = len(text)
    i = start
    escape = False
    if i < n and text[i] in 'eE' and i + 1 < n and text[i + 1] == "'":
        escape = True
        i += 1
    if i < n and text[i] == "'":
        i += 1
        while i < n:
            c = text[i]
            if escape and c == '\\':
                i += 2
                continue
            if c == "'":
                if i + 1 < n and text[i + 1] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return n
    match = DOLLAR_TAG.match(text, start)
    if match:
        tag = match.group(0)
        end = text.find(tag, match.end())
        return n if end < 0 else end + len(tag)
    return None


def _mask_password_literals(text):
    """Mask the string literal that follows the keyword PASSWORD, read the way the server reads SQL: the word
    inside a literal, a quoted identifier or a comment is not the keyword."""
    out = []
    pos = i = 0
    n = len(text)
    after_password = False
    while i < n:
        c = text[i]
        word_before = i > 0 and (text[i - 1].isalnum() or text[i - 1] in '_$')
        literal = c == "'" or (c in 'eE' and text.startswith("'", i + 1) and not word_before) or (
            c == '$' and not word_before and DOLLAR_TAG.match(text, i))
        if literal:
            end = _sql_literal_end(text, i)
            if after_password:
                out.append(text[pos:i])
                out.append("'%s'" % MASK)
                pos = end
            after_password = False
            i = end
        elif c == '"':
            close = text.find('"', i + 1)
            while close >= 0 and text.startswith('"', close + 1):
                close = text.find('"', close + 2)
            i = n if close < 0 else close + 1
            after_password = False
        elif text.startswith('--', i):
            close = text.find('\n', i)
            i = n if close < 0 else close + 1
        elif text.startswith('/*', i):
            close = text.find('*/', i + 2)
            i = n if close < 0 else close + 2
        elif c.isalpha() or c == '_':
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in '_$'):
                j += 1
            after_password = text[i:j].lower() == 'password'
            i = j
        else:
            if not c.isspace():
                after_password = False
            i += 1
    out.append(text[pos:])
    return ''.join(out)


def _conninfo_value_end(text, start):
    """End of a conninfo value at `start`: quoted inside an SQL literal (''...''), quoted ('...', backslash
    escapes), or bare (up to white space, a quote, or what ends a URI parameter or an SQL expression)."""
    n = len(text)
    if text.startswith("''", start):
        i = start + 2
        while i < n:
            if text[i] == '\\':
                i += 2
                continue
            if text.startswith("''", i):
                return i + 2
            i += 1
        return n
    if start < n and text[start] == "'":
        i = start + 1
        while i < n:
            if text[i] == '\\':
                i += 2
                continue
            if text[i] == "'":
                return i + 1
            i += 1
        return n
    i = start
    while i < n and not text[i].isspace() and text[i] not in '\'"&;),':
        i += 1
    return i


def _mask_conninfo(text):
    out = []
    pos = 0
    for match in CONNINFO_PASSWORD.finditer(text):
        if match.start() < pos:
            continue
        start = match.end()
        end = _conninfo_value_end(text, start)
        if end == start:
            continue
        out.append(text[pos:start])
        out.append(MASK)
        pos = end
    out.append(text[pos:])
    return URI_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), ''.join(out))


def mask_secrets(text):
    """The query text with passwords replaced by ********; None stays None."""
    if not text:
        return text
    return _mask_conninfo(_mask_password_literals(text))


def shown_query(text, length, total=None):
    """(query, truncated): the text masked, then cut to `length` characters (0: no text at all). `total`: the length
    of the whole text when `text` is only its beginning (the server cut it already)."""
    if text is None:
        return None, False
    cut = total is not None and total > len(text)
    if length <= 0:
        return '', bool(text) or cut
    masked = mask_secrets(text)
    if len(masked) > length:
        return masked[:length], True
    return masked, cut
