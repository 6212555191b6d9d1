# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The index wanted and the index there: the CREATE INDEX statement composed without pasting unchecked text, the
definition PostgreSQL derives from it, and the comparison of the two.

* Identifiers (index, schema, table, method, INCLUDE columns, key columns that are plain column names) are
  `psycopg2.sql.Identifier`s. A key element that is not a column name (an expression, ``email DESC``,
  ``lower(email) text_pattern_ops``) and the WHERE predicate are SQL the user writes: each is parsed alone by
  PostgreSQL's parser (pglast) inside a template statement, the template must come back unchanged around exactly
  one element (or one predicate) - anything else (a second statement, a second element, an extra clause) is refused
  - and what is executed is pglast's deparse of that element, never the text given.
* `server_signature` lets the server check and normalize the wanted index: in a transaction that is rolled back,
  the index is created on an empty temporary copy of the table's columns (``LIKE``, so no data is read and only
  ACCESS SHARE is taken on the table), and its definition is read back as PostgreSQL stores it. `signature` reads
  the same fields of an existing index; equal signatures mean the same index.
"""

from __future__ import annotations

try:
    import pglast
    from pglast.parser import ParseError
    from pglast.stream import RawStream
except ImportError:  # reported by the module (missing_requirement_message)
    pglast = None
    ParseError = Exception
    RawStream = None

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import database_error_message, psycopg2, sql

NAMEDATALEN = 63
TEMPLATE_TABLE = 'dbops_index_t'


class IndexFailure(Exception):
    """The index operation is refused or failed; `result` carries what was done before."""

    def __init__(self, msg, result=None):
        super(IndexFailure, self).__init__(msg)
        self.result = result or {}


def _deparse(node):
    return RawStream()(node)


def _parse_one_index(text, what):
    try:
        stmts = pglast.parse_sql(text)
    except ParseError as exc:
        raise IndexFailure('%s is not valid SQL: %s' % (what, exc))
    if len(stmts) != 1 or type(stmts[0].stmt).__name__ != 'IndexStmt':
        raise IndexFailure('%s must be one index element or expression, not several statements' % what)
    return stmts[0].stmt


def parse_element(text, position):
    """One key element given as SQL (an expression, a column with ordering, operator class or collation): returns
    pglast's deparse of it. Raises IndexFailure when the text is not exactly one index element."""
    what = 'columns[%d] (%s)' % (position, text)
    if not str(text).strip():
        raise IndexFailure('columns[%d] is empty' % position)
    try:
        stmt = _parse_one_index('CREATE INDEX ON %s (%s)' % (TEMPLATE_TABLE, text), what)
    except IndexFailure:  # an expression written without its parentheses (a + b)?
        try:
            stmt = _parse_one_index('CREATE INDEX ON %s ((%s))' % (TEMPLATE_TABLE, text), what)
        except IndexFailure:
            stmt = None
        if stmt is None:
            raise
    if len(stmt.indexParams or ()) != 1:
        raise IndexFailure('%s must be one index element or expression (give several as several list items)' % what)
    element = _deparse(stmt.indexParams[0])
    if _deparse(stmt) != 'CREATE INDEX ON %s (%s)' % (TEMPLATE_TABLE, element):
        raise IndexFailure('%s must be one index element or expression, without other clauses' % what)
    return element


def parse_predicate(text):
    """The WHERE predicate of a partial index: pglast's deparse of it (IndexFailure unless exactly one expression)."""
    what = 'where (%s)' % text
    if not str(text).strip():
        raise IndexFailure('where is empty')
    stmt = _parse_one_index('CREATE INDEX ON %s (x) WHERE %s' % (TEMPLATE_TABLE, text), what)
    if stmt.whereClause is None:
        raise IndexFailure('%s is not a predicate' % what)
    predicate = _deparse(stmt.whereClause)
    if _deparse(stmt) != 'CREATE INDEX ON %s (x) WHERE %s' % (TEMPLATE_TABLE, predicate):
        raise IndexFailure('%s must be one boolean expression, without other clauses' % what)
    return predicate


class Wanted(object):
    """The index asked for: name, schema, table, key elements (('column', name) or ('sql', deparsed text)),
    method, unique, include (column names), predicate (deparsed text or None)."""

    def __init__(self, name, schema, table, elements, method='btree', unique=False, include=None, predicate=None):
        self.name = name
        self.schema = schema
        self.table = table
        self.elements = list(elements)
        self.method = method
        self.unique = bool(unique)
        self.include = list(include or [])
        self.predicate = predicate

    def statement(self, concurrently=True, name=None, schema=None, table=None):
        """The composed CREATE INDEX (on another table when schema/table are given: the temporary copy; under
        another name when name is given)."""
        parts = [sql.SQL('CREATE '), sql.SQL('UNIQUE ') if self.unique else sql.SQL(''), sql.SQL('INDEX '),
                 sql.SQL('CONCURRENTLY ') if concurrently else sql.SQL(''),
                 sql.Identifier(name or self.name), sql.SQL(' ON '),
                 sql.Identifier(table) if schema is None and table is not None else
                 sql.Identifier(schema or self.schema, table or self.table),
                 sql.SQL(' USING '), sql.Identifier(self.method), sql.SQL(' ('),
                 sql.SQL(', ').join(sql.Identifier(v) if kind == 'column' else sql.SQL(v) for kind, v in self.elements),
                 sql.SQL(')')]
        if self.include:
            parts += [sql.SQL(' INCLUDE ('), sql.SQL(', ').join(sql.Identifier(c) for c in self.include), sql.SQL(')')]
        if self.predicate is not None:
            parts += [sql.SQL(' WHERE '), sql.SQL(self.predicate)]
        return sql.Composed(parts)


def build_elements(columns, table_columns):
    """Key elements of the `columns` option: an item that is exactly a column of the table is that column (an
    identifier); anything else is SQL checked by parse_element."""
    if not columns:
        raise IndexFailure('columns must name at least one column or expression')
    elements = []
    for position, item in enumerate(columns):
        if item in table_columns:
            elements.append(('column', item))
        else:
            elements.append(('sql', parse_element(item, position)))
    return elements


SIGNATURE_SQL = '''
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind, i.indrelid,
       t.relname AS table_name, tn.nspname AS table_schema, am.amname AS method, i.indisunique AS unique,
       i.indisvalid AS valid, i.indisready AS ready, i.indisprimary AS primary,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k)
         AS keys,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(i.indnkeyatts + 1, i.indnatts) k
             ORDER BY k) AS include,
       i.indclass::oid[]::text AS opclasses, i.indoption::int2[]::text AS options,
       i.indcollation::oid[]::text AS collations,
       coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false) AS nulls_not_distinct,
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
       pg_get_indexdef(i.indexrelid) AS definition,
       (SELECT string_agg(format('%%s (%%s)', con.conname, con.contype), ', ') FROM pg_constraint con
         WHERE con.conindid = i.indexrelid) AS constraints
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_index i ON i.indexrelid = c.oid
  LEFT JOIN pg_class t ON t.oid = i.indrelid LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
  LEFT JOIN pg_am am ON am.oid = c.relam
'''

COMPARED = ('method', 'unique', 'keys', 'include', 'opclasses', 'options', 'collations', 'nulls_not_distinct',
            'predicate')


def relation(session, schema, name):
    """The relation `name` in `schema` (an index with its signature, or another relation with relkind only)."""
    return session.row(SIGNATURE_SQL + ' WHERE n.nspname = %s AND c.relname = %s', (schema, name))


def relation_by_oid(session, oid):
    return session.row(SIGNATURE_SQL + ' WHERE c.oid = %s', (oid,))


def index_in_search_path(session, name):
    """The oid of the index `name` found on the search_path (None when there is none)."""
    return session.scalar("SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass(quote_ident(%s)) "
                          "AND c.relkind IN ('i', 'I')", (name,))


def differences(existing, wanted):
    """The compared fields where an existing index differs from the wanted signature: [field]."""
    return [f for f in COMPARED if existing.get(f) != wanted.get(f)]


def server_signature(session, wanted, table_oid):
    """The signature of `wanted` as PostgreSQL derives it: the index is created on an empty temporary copy of the
    table's columns in a transaction rolled back at once. Every error of the definition (an unknown column,
    function or operator class, a method without unique support, a mutable function) is the server's, raised as
    IndexFailure. Returns the signature dict (its `definition` names the temporary copy)."""
    tmp_index = 'dbops_index_check'
    try:
        session.execute('BEGIN')
        try:
            session.execute(sql.SQL('CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP').format(
                sql.Identifier(TEMPLATE_TABLE), sql.Identifier(wanted.schema, wanted.table)))
            session.execute(wanted.statement(concurrently=False, name=tmp_index, table=TEMPLATE_TABLE))
            oid = session.scalar("SELECT c.oid FROM pg_class c WHERE c.relname = %s "
                                 "AND c.relnamespace = pg_my_temp_schema()", (tmp_index,))
            return relation_by_oid(session, oid)
        finally:
            session.execute('ROLLBACK')
    except psycopg2.Error as exc:
        try:
            session.rollback()
        except psycopg2.Error:
            pass
        raise IndexFailure('PostgreSQL refuses the index definition %s on %s.%s: %s' % (
            wanted.statement(concurrently=False).as_string(session.conn), wanted.schema, wanted.table,
            database_error_message(exc)))


def generated_name(table, columns, suffix='idx'):
    """PostgreSQL's style of index name (table_col1_col2_idx) cut to 63 bytes."""
    base = '_'.join([table] + list(columns)) + '_' + suffix
    data = base.encode('utf-8')
    if len(data) <= NAMEDATALEN:
        return base
    keep = NAMEDATALEN - len(suffix) - 1
    head = ('_'.join([table] + list(columns))).encode('utf-8')[:keep].decode('utf-8', 'ignore')
    return head + '_' + suffix


def temporary_name(name, suffix='dbops_new'):
    """The name of a replacement built beside an index before the swap."""
    keep = NAMEDATALEN - len(suffix) - 1
    return name.encode('utf-8')[:keep].decode('utf-8', 'ignore') + '_' + suffix
