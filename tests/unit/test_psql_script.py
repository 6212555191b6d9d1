"""_psql_script: names rendered so they never leave their literal, and the scanner that finds psql meta-commands."""

from __future__ import annotations

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _psql_script as script

HEADER = "SET standard_conforming_strings = on;\n"


def scan(text):
    return script.scan_lines(text.splitlines(True), 'a.sql')


def test_names_never_span_lines():
    assert script.ident('vendors') == '"vendors"'
    assert script.ident('Odd "Name"') == '"Odd ""Name"""'
    assert script.ident('x\n\\! touch /tmp/p') == 'U&"x\\000A\\\\! touch /tmp/p"'
    assert script.literal("it's") == "'it''s'"
    assert script.literal('a\r\nb\\') == "U&'a\\000D\\000Ab\\\\'"
    assert '\n' not in script.qualified('s\nx', 't\r')
    with pytest.raises(ValueError):
        script.literal('a\x00b')


def test_a_clean_script_passes():
    text = HEADER + (
        "-- a comment with a \\ backslash\nBEGIN;\n"
        'COPY public.vendors (id, "Name", U&"x\\000Ay") FROM stdin;\n'
        "1\tacme\\n\\\\! touch /tmp/p\t\\N\n"
        "\\\\.\tx\t\\t\n"
        "\\.\n"
        "SELECT setval(s.seq, 3) FROM (SELECT 1) s WHERE 'a;b' <> $q$ \\! $q$ AND E'\\'' <> U&'\\000A';\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
        "/* nested /* comment */ \\! still a comment */\nCOMMIT;\n")
    assert scan(text) == []


@pytest.mark.parametrize('text, found', [
    # the attack of issue 11: a value that ends the header comment
    ('-- procgenie.dbops pg_backup: tenant acme\n\\! touch /tmp/PWNED\nDROP TABLE canary;\n--\n', 'meta-command'),
    # a comment also ends at a carriage return
    ('-- tenant acme\r\\! touch /tmp/PWNED\n', 'meta-command'),
    ('SELECT 1; \\! id\n', 'meta-command'),
    ('SELECT 1 \\g |sh\n', 'meta-command'),
    ("SELECT '\n\\! inside a literal';\n", 'starts with a backslash'),
    ('COPY t (a) FROM stdin;\n1\n\\.\n\\o |sh\n', 'meta-command'),
    # a COPY statement psql would not end there (parentheses, BEGIN ... END) does not start COPY data
    ('COPY t (a) FROM stdin (;\n\\! id\n\\.\n', 'meta-command'),
    ('CREATE PROCEDURE p() BEGIN ATOMIC COPY t FROM stdin;\n\\! id\n\\.\nEND;\n', 'meta-command'),
    # a string that only looks closed to a reader without E-string rules
    ("SELECT E'\\';\nCOPY t FROM stdin;\n';\n\\! id\n\\.\n", 'meta-command (\\! id)'),
    ('COPY t (a) FROM stdin;\n\\! id\n\\.\n', 'an escape COPY never writes'),
    ('COPY t (a) FROM stdin;\n1\n', 'never ends'),
    ('COPY t (a) FROM stdin; SELECT 1;\n1\n\\.\n', 'text after a COPY'),
    ('COPY t (a) FROM stdin WITH (FORMAT csv);\n1\n\\.\n', 'unknown shape'),
    ("SELECT 'never closed;\n", 'ends inside'),
])
def test_meta_commands_are_found(text, found):
    problems = scan(HEADER + text)
    assert problems and any(found in p for p in problems), problems


def test_pg_dumps_restrict_pair_is_the_only_other_allowed_meta_command():
    assert scan('\\restrict abc123\nSELECT 1;\n\\unrestrict abc123\n') == []
    assert scan('\\restrict abc123\nSELECT 1;\n\\unrestrict other\n')
    assert scan('\\restrict abc123\n\\restrict abc123\n')
    assert scan('\\unrestrict abc123\n')
    assert scan('\\restrict abc123\nSELECT 1;\n')


def test_scan_script_reads_bytes_as_they_are(tmp_path):
    path = tmp_path / 'a.sql'
    path.write_bytes(HEADER.encode() + "SELECT 'é';\n-- x\r\\! id\n".encode('utf-8'))
    problems = script.scan_script(str(path))
    assert len(problems) == 1 and 'line 3' in problems[0] and str(path) in problems[0]
