# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A table's `where` option: SQL the user writes on purpose (a boolean expression over the table's columns), checked
here before it reaches a statement. Pure.

It is placed in parentheses inside the diff's own SELECTs, which run in READ ONLY transactions. What could still
escape those parentheses is refused: a `;` (a second statement: psycopg2 sends one simple-protocol query, which may
hold several, and `; COMMIT; ...` would leave the read-only transaction), unbalanced parentheses, an unterminated
string, quoted identifier, dollar quote or comment. Strings (standard, E'' escapes, dollar-quoted), quoted
identifiers and comments (`--`, nested `/* */`) are skipped as PostgreSQL's lexer skips them."""

from __future__ import annotations

import re

DOLLAR_TAG = re.compile(r'\$([A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$')


class WhereError(ValueError):
    """A `where` that is not one expression."""


def check_where(text):
    """Pure: the where text stripped, or None when empty; raises WhereError when it could be more than one boolean
    expression inside parentheses."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    if '\x00' in text:
        raise WhereError('a where clause cannot hold a NUL character')
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            escapes = i > 0 and text[i - 1] in 'eE' and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == '_'))
            i = _skip_string(text, i + 1, escapes)
            continue
        if ch == '"':
            end = text.find('"', i + 1)
            while end != -1 and end + 1 < n and text[end + 1] == '"':
                end = text.find('"', end + 2)
            if end == -1:
                raise WhereError('unterminated quoted identifier')
            i = end + 1
            continue
        if ch == '-' and text.startswith('--', i):
            end = text.find('\n', i)
            i = n if end == -1 else end + 1
            continue
        if ch == '/' and text.startswith('/*', i):
            i = _skip_comment(text, i)
            continue
        if ch == '$' and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in '_$')):
            match = DOLLAR_TAG.match(text, i)
            if match:
                end = text.find(match.group(0), match.end())
                if end == -1:
                    raise WhereError('unterminated dollar-quoted string')
                i = end + len(match.group(0))
                continue
        if ch == ';':
            raise WhereError('a where clause is one expression: ";" is not allowed outside strings')
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
            if depth < 0:
                raise WhereError('unbalanced parentheses ("(" missing)')
        i += 1
    if depth:
        raise WhereError('unbalanced parentheses (")" missing)')
    return text


def _skip_string(text, i, escapes):
    n = len(text)
    while i < n:
        ch = text[i]
        if escapes and ch == '\\':
            i += 2
            continue
        if ch == "'":
            if i + 1 < n and text[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    raise WhereError('unterminated string literal')


def _skip_comment(text, i):
    depth, n = 0, len(text)
    while i < n:
        if text.startswith('/*', i):
            depth += 1
            i += 2
        elif text.startswith('*/', i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise WhereError('unterminated /* comment')
