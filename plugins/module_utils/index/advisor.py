# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The index advisor: candidates read from the statements' predicates, proven with hypothetical indexes.

Like Dexter (ankane/dexter): the statements (the top ones of pg_stat_statements by total time, or the ones given)
are parsed with PostgreSQL's parser (pglast); the columns their WHERE and JOIN ... ON conditions compare give
single-column btree candidates, and two-column ones (an equality column first, then another column of the same
table); a candidate an existing valid btree index already leads with is left out. Each candidate is created as a
hypothetical index (the hypopg extension: it lives in the session's memory, the planner sees it, nothing is
written), every statement on its table is planned again, and the candidate is kept only when it lowers the plan's
total cost of some statement by at least ``min_cost_savings`` percent; for each statement the cheapest kept
candidate wins (fewer columns on a tie). Statements with parameters (``$1``, as pg_stat_statements shows them) are
planned with a generic plan: PREPARE, ``plan_cache_mode = force_generic_plan``, EXPLAIN EXECUTE with NULLs.

All of it runs in one transaction that is rolled back, read-only once hypopg is there: when the extension is not
installed in the database it is created inside that transaction (so it does not stay) unless ``create_extension``
asks to keep it. Only statements parsed as exactly one SELECT (without INTO), UPDATE or DELETE are planned, and the
text planned is pglast's deparse of the parsed statement."""

from __future__ import annotations

import json

try:
    import pglast
    from pglast import ast
    from pglast.parser import ParseError
    from pglast.stream import RawStream
except ImportError:  # reported by the module
    pglast = None
    ast = None
    ParseError = Exception
    RawStream = None

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import database_error_message, psycopg2, sql
from ansible_collections.procgenie.dbops.plugins.module_utils.index import definition

EQUALITY = ('=', )
COMPARISON = ('=', '<', '>', '<=', '>=', '~~', '!~~')  # LIKE is ~~ (a btree helps a left-anchored pattern)
PLANNED = ('SelectStmt', 'UpdateStmt', 'DeleteStmt')
STATEMENT_NAME = 'dbops_advise'
TIE = 0.01

HYPOPG_HELP = ('the index advisor needs the hypopg extension (hypothetical indexes): install it on the server - '
               'Debian/Ubuntu: apt-get install postgresql-{major}-hypopg (PGDG packages), RHEL: hypopg_{major} - '
               'or on Azure Database for PostgreSQL flexible server add HYPOPG to the azure.extensions server '
               'parameter (allow-list); then run the advisor again (it creates the extension itself for its own '
               'transaction only, unless create_extension)')


class Statement(object):
    """A statement to advise on: its text, pg_stat_statements figures, and what the parser found."""

    def __init__(self, text, calls=None, total_ms=None):
        self.text = text
        self.calls = calls
        self.total_ms = total_ms
        self.kind = None
        self.planned_text = None
        self.params = 0
        self.relations = []   # [(schema or None, name, alias or None)]
        self.refs = []        # [(qualifier or None, column, equality)]
        self.skipped = None
        self.tables = {}      # table oid -> [(column, equality)] after resolution
        self.cost_before = None
        self.costs = {}       # candidate key -> cost


def _children(node):
    if isinstance(node, (list, tuple)):
        yield from node
    elif isinstance(node, ast.Node):
        for attr in node.__slots__:
            yield getattr(node, attr, None)


def _walk(node):
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Node):
            yield current
        if isinstance(current, (ast.Node, list, tuple)):
            stack.extend(c for c in _children(current) if c is not None)


def _column(node):
    """(qualifier or None, column) of a plain column reference (a or t.a), else None."""
    if not isinstance(node, ast.ColumnRef):
        return None
    names = [f.sval for f in node.fields if isinstance(f, ast.String)]
    if len(names) != len(node.fields) or not 1 <= len(names) <= 2:
        return None
    return (names[0], names[1]) if len(names) == 2 else (None, names[0])


def _conditions(stmt):
    """The condition trees of a statement: WHERE clauses and JOIN ... ON quals, at any depth."""
    for node in _walk(stmt):
        planned = isinstance(node, (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt))
        where = node.whereClause if planned else None
        if where is not None:
            yield where
        if isinstance(node, ast.JoinExpr) and node.quals is not None:
            yield node.quals


def _predicate_refs(condition):
    refs = []
    for node in _walk(condition):
        if isinstance(node, ast.A_Expr):
            op = node.name[-1].sval if node.name else None
            kind = getattr(node.kind, 'name', str(node.kind))
            if kind in ('AEXPR_IN', 'AEXPR_LIKE') or (kind in ('AEXPR_OP', 'AEXPR_OP_ANY') and op in COMPARISON) \
                    or kind.startswith('AEXPR_BETWEEN'):
                equality = kind == 'AEXPR_IN' or (kind in ('AEXPR_OP', 'AEXPR_OP_ANY') and op in EQUALITY)
                for side in (node.lexpr, node.rexpr):
                    column = _column(side)
                    if column is not None:
                        refs.append((column[0], column[1], equality))
        elif isinstance(node, ast.NullTest):
            column = _column(node.arg)
            if column is not None:
                refs.append((column[0], column[1], True))
    return refs


def parse_statement(statement):
    """Fill statement.kind, planned_text, params, relations and refs from its text; sets `skipped` (the reason)
    when it is not one SELECT/UPDATE/DELETE the advisor can plan. Pure (no server)."""
    try:
        parsed = pglast.parse_sql(statement.text)
    except ParseError as exc:
        statement.skipped = 'not parsed: %s' % exc
        return statement
    if len(parsed) != 1:
        statement.skipped = 'not one statement (%d)' % len(parsed)
        return statement
    stmt = parsed[0].stmt
    statement.kind = type(stmt).__name__
    if statement.kind not in PLANNED or (statement.kind == 'SelectStmt' and stmt.intoClause is not None):
        statement.skipped = 'not a SELECT, UPDATE or DELETE'
        return statement
    try:
        statement.planned_text = RawStream()(stmt)
    except Exception as exc:  # pylint: disable=broad-except  # a node pglast cannot print: not advised on
        statement.skipped = 'not printable by pglast: %s' % exc
        return statement
    params = [n.number for n in _walk(stmt) if isinstance(n, ast.ParamRef)]
    statement.params = max(params) if params else 0
    for node in _walk(stmt):
        if isinstance(node, ast.RangeVar):
            alias = node.alias.aliasname if node.alias is not None else None
            statement.relations.append((node.schemaname, node.relname, alias))
    seen = set()
    for condition in _conditions(stmt):
        for ref in _predicate_refs(condition):
            if ref not in seen:
                seen.add(ref)
                statement.refs.append(ref)
    if not statement.relations:
        statement.skipped = 'reads no table'
    elif not statement.refs:
        statement.skipped = 'no column compared in WHERE or JOIN ON'
    return statement


def candidate_columns(columns):
    """Candidates of one table from its referenced [(column, equality)]: every column alone, then every pair
    (an equality column first, another column second). Pure."""
    singles = []
    for column, _equality in columns:
        if (column,) not in singles:
            singles.append((column,))
    pairs = []
    for first, equality in columns:
        if not equality:
            continue
        for second, _eq in columns:
            if second != first and (first, second) not in pairs:
                pairs.append((first, second))
    return singles + pairs


def covered(candidate, existing):
    """True when an existing index's key columns (lists) start with the candidate's columns. Pure."""
    return any(list(keys[:len(candidate)]) == list(candidate) for keys in existing)


def savings(before, after):
    if before is None or after is None or before <= 0:
        return 0.0
    return round(100.0 * (before - after) / before, 1)


def choose(statements, min_savings):
    """For each statement the cheapest candidate saving at least min_savings percent (fewer columns on a tie
    within 1 %): {statement index: candidate key}. Pure."""
    chosen = {}
    for position, statement in enumerate(statements):
        best = None
        for key, cost in statement.costs.items():
            if savings(statement.cost_before, cost) < min_savings:
                continue
            if best is None:
                best = key
                continue
            best_cost = statement.costs[best]
            if cost < best_cost * (1 - TIE) or (cost <= best_cost * (1 + TIE) and len(key[1]) < len(best[1])):
                best = key
        if best is not None:
            chosen[position] = best
    return chosen


# ---------------------------------------------------------------------------------------------- server side
def hypopg_state(session):
    """{installed (in this database), schema, available (on the server), version}."""
    row = session.row(
        "SELECT (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'hypopg') AS schema, (SELECT default_version FROM pg_available_extensions "
        "WHERE name = 'hypopg') AS available_version, (SELECT extversion FROM pg_extension "
        "WHERE extname = 'hypopg') AS installed_version")
    return dict(installed=row['schema'] is not None, schema=row['schema'],
                available=row['available_version'] is not None,
                version=row['installed_version'] or row['available_version'])


def stat_statements(session, limit):
    """The top `limit` statements of this database by total execution time from pg_stat_statements, or (None, why)
    when the view is not there."""
    schema = session.scalar("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                            "WHERE e.extname = 'pg_stat_statements'")
    if schema is None:
        return None, ('pg_stat_statements is not created in this database (CREATE EXTENSION pg_stat_statements; '
                      'it also needs shared_preload_libraries): give the statements as queries instead')
    total = 'total_exec_time' if session.server_version_num >= 130000 else 'total_time'
    try:
        rows = session.rows(sql.SQL(
            'SELECT query, calls, round({total}::numeric, 3)::float AS total_ms FROM {view} '
            'WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) '
            "AND query !~* '^\\s*(EXPLAIN|PREPARE|EXECUTE|DEALLOCATE|SET|SHOW|BEGIN|COMMIT|ROLLBACK)\\M' "
            'ORDER BY {total} DESC LIMIT %s').format(
                total=sql.Identifier(total), view=sql.Identifier(schema, 'pg_stat_statements')), (limit,))
    except psycopg2.Error as exc:
        return None, 'pg_stat_statements could not be read: %s' % database_error_message(exc)
    return rows, None


class Advisor(object):
    """Runs the advisor on `session` (autocommit); see the module docstring. `log` lines go to the result."""

    def __init__(self, session, params, warn):
        self.session = session
        self.params = params
        self.warn = warn
        self.hypopg_schema = None

    def fn(self, name):
        return sql.Identifier(self.hypopg_schema, name)

    def cost(self, statement):
        """The total cost of the statement's plan (generic plan when it has parameters)."""
        self.session.execute('SAVEPOINT dbops_plan')
        try:
            if statement.params:
                self.session.execute(sql.SQL('PREPARE {} AS {}').format(
                    sql.Identifier(STATEMENT_NAME), sql.SQL(statement.planned_text)))
                plan = self.session.scalar(sql.SQL('EXPLAIN (FORMAT JSON) EXECUTE {} ({})').format(
                    sql.Identifier(STATEMENT_NAME), sql.SQL(', ').join([sql.SQL('NULL')] * statement.params)))
                self.session.execute(sql.SQL('DEALLOCATE {}').format(sql.Identifier(STATEMENT_NAME)))
            else:
                plan = self.session.scalar(sql.SQL('EXPLAIN (FORMAT JSON) {}').format(
                    sql.SQL(statement.planned_text)))
        except psycopg2.Error:
            self.session.execute('ROLLBACK TO SAVEPOINT dbops_plan')
            self.session.execute(sql.SQL('DEALLOCATE ALL'))
            raise
        self.session.execute('RELEASE SAVEPOINT dbops_plan')
        if isinstance(plan, str):
            plan = json.loads(plan)
        return float(plan[0]['Plan']['Total Cost'])

    def resolve(self, statements):
        """Map each statement's column references to the tables (oids) they belong to (the catalogs left out: the
        statements of monitoring tools, and this module's own, read them)."""
        names = set()
        for statement in statements:
            for schema, name, _alias in statement.relations:
                names.add((schema, name))
        tables = {}
        for schema, name in names:
            row = self.session.row(
                "SELECT c.oid, n.nspname AS schema, c.relname AS name, "
                "ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum) AS columns FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(CASE WHEN %s::text IS NULL THEN "
                "quote_ident(%s) ELSE quote_ident(%s) || '.' || quote_ident(%s) END) AND c.relkind IN ('r', 'm', 'p') "
                "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
                (schema, name, schema, name))
            if row is not None:
                tables[(schema, name)] = row
        for statement in statements:
            if statement.skipped:
                continue
            by_alias = {}
            present = []
            for schema, name, alias in statement.relations:
                row = tables.get((schema, name))
                if row is None:
                    continue
                present.append(row)
                by_alias[alias or name] = row
            for qualifier, column, equality in statement.refs:
                if qualifier is not None:
                    owners = [by_alias[qualifier]] if qualifier in by_alias else []
                else:
                    owners = [r for r in present if column in r['columns']]
                owners = [r for r in owners if column in r['columns']]
                if len(set(r['oid'] for r in owners)) != 1:
                    continue
                columns = statement.tables.setdefault(owners[0]['oid'], [])
                if (column, equality) not in columns:
                    columns.append((column, equality))
            if not statement.tables:
                statement.skipped = 'no compared column found in a table'
        return dict((row['oid'], row) for row in tables.values())

    def existing_keys(self, oid):
        rows = self.session.rows(
            "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) AS keys, "
            "i.indkey::int2[] AS indkey FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am "
            "ON am.oid = c.relam WHERE i.indrelid = %s AND i.indisvalid AND am.amname = 'btree' "
            "AND i.indpred IS NULL AND i.indexprs IS NULL", (oid,))
        return [r['keys'] for r in rows]

    def run(self, statements, create_extension_in_transaction):
        """Advise: returns (advice, rejected, statements report). The caller rolls the transaction back."""
        session = self.session
        if create_extension_in_transaction:
            try:
                session.execute('CREATE EXTENSION IF NOT EXISTS hypopg')
            except psycopg2.Error as exc:
                raise definition.IndexFailure(
                    'hypopg is available on the server but not created in this database, and the advisor could not '
                    'create it for its transaction (creating it needs a superuser, or on Azure a member of '
                    'azure_pg_admin with hypopg allow-listed in azure.extensions; or CREATE EXTENSION hypopg once '
                    'as such a role): %s' % database_error_message(exc))
        self.hypopg_schema = hypopg_state(session)['schema']
        session.execute("SET LOCAL transaction_read_only = on")
        session.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        session.execute(sql.SQL('SELECT {}()').format(self.fn('hypopg_reset')))
        tables = self.resolve(statements)
        for statement in statements:
            if statement.skipped:
                continue
            try:
                statement.cost_before = self.cost(statement)
            except psycopg2.Error as exc:
                statement.skipped = 'not planned: %s' % database_error_message(exc)
        candidates = {}
        for position, statement in enumerate(statements):
            if statement.skipped:
                continue
            for oid, columns in statement.tables.items():
                existing = self.existing_keys(oid)
                for cand in candidate_columns(columns):
                    if not covered(cand, existing):
                        candidates.setdefault((oid, cand), []).append(position)
        failed = {}
        for key, positions in candidates.items():
            oid, columns = key
            table = tables[oid]
            text = sql.SQL('CREATE INDEX ON {} USING btree ({})').format(
                sql.Identifier(table['schema'], table['name']),
                sql.SQL(', ').join(sql.Identifier(c) for c in columns)).as_string(session.conn)
            session.execute('SAVEPOINT dbops_hypo')
            try:
                hypo = session.scalar(sql.SQL('SELECT indexrelid FROM {}(%s)').format(
                    self.fn('hypopg_create_index')), (text,))
            except psycopg2.Error as exc:
                session.execute('ROLLBACK TO SAVEPOINT dbops_hypo')
                failed[key] = 'hypopg could not create it: %s' % database_error_message(exc)
                continue
            session.execute('RELEASE SAVEPOINT dbops_hypo')
            try:
                for position in positions:
                    try:
                        statements[position].costs[key] = self.cost(statements[position])
                    except psycopg2.Error:
                        pass
            finally:
                session.execute(sql.SQL('SELECT {}(%s)').format(self.fn('hypopg_drop_index')), (hypo,))
        chosen = choose(statements, self.params['min_cost_savings'])
        advice = []
        by_key = {}
        for position, key in sorted(chosen.items()):
            if key not in by_key:
                oid, columns = key
                table = tables[oid]
                name = definition.generated_name(table['name'], columns)
                wanted = definition.Wanted(name, table['schema'], table['name'], [('column', c) for c in columns])
                by_key[key] = dict(table='%s.%s' % (table['schema'], table['name']), schema=table['schema'],
                                   table_name=table['name'], columns=list(columns), name=name, statements=[],
                                   cost_before=0.0, cost_after=0.0,
                                   create_sql=wanted.statement(concurrently=True).as_string(session.conn))
                advice.append(by_key[key])
            item = by_key[key]
            statement = statements[position]
            after = statement.costs[key]
            item['statements'].append(dict(query=statement.text, calls=statement.calls, total_ms=statement.total_ms,
                                           cost_before=statement.cost_before, cost_after=after,
                                           savings_pct=savings(statement.cost_before, after), generic_plan=bool(
                                               statement.params)))
            item['cost_before'] = round(item['cost_before'] + statement.cost_before, 2)
            item['cost_after'] = round(item['cost_after'] + after, 2)
        for item in advice:
            item['savings_pct'] = savings(item['cost_before'], item['cost_after'])
        rejected = []
        for key, positions in candidates.items():
            if key in by_key:
                continue
            oid, columns = key
            best = None
            for position in positions:
                statement = statements[position]
                if key in statement.costs:
                    value = savings(statement.cost_before, statement.costs[key])
                    best = value if best is None else max(best, value)
            table = tables[oid]
            rejected.append(dict(table='%s.%s' % (table['schema'], table['name']), columns=list(columns),
                                 best_savings_pct=best, statements=[statements[p].text for p in positions],
                                 reason=failed.get(key) or 'saves less than %s %%' % self.params['min_cost_savings']))
        report = [dict(query=s.text, calls=s.calls, total_ms=s.total_ms, cost_before=s.cost_before,
                       generic_plan=bool(s.params), skipped=s.skipped) for s in statements]
        return advice, rejected, report
