# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove tenant isolation as the application role, inside one transaction that is rolled back."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import qualified
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import psycopg2, sql
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import catalog
from ansible_collections.procgenie.dbops.plugins.module_utils.rls import model as _rls

RLS_VIOLATION = '42501'
INTEGRITY = '23'  # integrity constraint violations

COLUMNS_SQL = """
SELECT attrelid::bigint AS oid, attname AS name, (atthasdef OR attidentity <> '') AS defaulted,
       has_column_privilege(%(role)s, attrelid, attname, 'INSERT') AS insertable
  FROM pg_attribute
 WHERE attrelid = ANY(%(oids)s::oid[]) AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
 ORDER BY attrelid, attnum
"""

# pg_sequence_last_value: NULL until the first nextval (is_called false), then the last value; a probe that
# consumed a value changes it. Sequences the login role may not read show NULL and are not watched.
SEQUENCES_SQL = "SELECT format('%I.%I', schemaname, sequencename) AS name, last_value::text AS value FROM pg_sequences"


class VerifyError(Exception):
    """The verification cannot run (bad role, no tenants, ...)."""


def _try(session, query, params=None, fetch=True):
    """Run a statement in a savepoint: (rows or rowcount, None) or (None, (sqlstate, message))."""
    session.execute(sql.SQL('SAVEPOINT rls_verify'))
    try:
        result = session.rows(query, params) if fetch else session.execute(query, params)
    except psycopg2.Error as exc:
        session.execute(sql.SQL('ROLLBACK TO SAVEPOINT rls_verify'))
        return None, (exc.pgcode, str(getattr(exc.diag, 'message_primary', None) or exc).strip())
    session.execute(sql.SQL('RELEASE SAVEPOINT rls_verify'))
    return result, None


def _set(session, name, value, local=True):
    session.execute('SELECT set_config(%(name)s, %(value)s, %(local)s)', dict(name=name, value=value, local=local))


def _reset(session, name):
    session.execute(sql.SQL('RESET {}').format(sql.Identifier(*name.split('.'))))


def sequences(session):
    return dict((r['name'], r['value']) for r in session.rows(SEQUENCES_SQL))


def prove(session, params):
    """run() inside one transaction that is rolled back, with every sequence's state read before and after:
    sequences are not transactional, so anything the probe advanced (a default the role may not write, a
    trigger) is reported in `sequences_advanced` and the module reports a change."""
    before = sequences(session)
    session.rollback()
    try:
        report = run(session, params)
    finally:
        session.rollback()
    after = sequences(session)
    session.rollback()
    report['sequences_advanced'] = sorted(name for name, value in after.items()
                                          if name in before and before[name] != value)
    return report


def run(session, params):
    column = params['tenant_column']
    setting = _rls.check_setting(params['tenant_setting'])
    bypass_settings = [_rls.check_setting(s) for s in params['verify_bypass_settings'] or []]
    role = params['verify_role']
    if not role:
        raise VerifyError('verify needs verify_role, the role the application runs as')
    info = session.row("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %(r)s", dict(r=role))
    if info is None:
        raise VerifyError('role %s does not exist' % role)
    report = dict(role=role, tables={}, leaks=[], isolated=True)
    if info['rolsuper'] or info['rolbypassrls']:
        report['isolated'] = False
        report['leaks'].append('role %s is %s and bypasses every policy' % (
            role, 'a superuser' if info['rolsuper'] else 'BYPASSRLS'))
        return report

    requested = [_rls.parse_table(t, params['schema']) for t in params['verify_tables'] or []]
    tables = catalog.managed_tables(session, requested, [] if requested else params['schemas'], column,
                                    partitions=True)
    missing = _rls.missing_tables(requested, tables)
    if missing:
        raise VerifyError('tables not found: %s' % ', '.join(missing))
    tables = [t for t in tables if t['has_tenant_column']]
    if not tables:
        raise VerifyError('no table with the tenant column %s to verify' % column)
    columns = dict()
    for r in session.rows(COLUMNS_SQL, dict(oids=[t['oid'] for t in tables], role=role)):
        # every column the role may insert into gets the source row's value: no default runs, so no nextval
        # (identity columns with OVERRIDING SYSTEM VALUE); a column with a default the role may not insert
        # into is left to its default (a sequence it calls is then seen advancing and reported)
        if r['insertable'] or not r['defaulted']:
            columns.setdefault(r['oid'], []).append(r['name'])

    tenants = [str(t) for t in params['verify_tenants'] or []]
    first = qualified(tables[0]['schema'], tables[0]['name'])
    if not tenants:
        tenants = [r['t'] for r in session.rows(sql.SQL(
            'SELECT DISTINCT {}::text AS t FROM {} ORDER BY 1 LIMIT 3').format(sql.Identifier(column), first))]
    else:
        typ = sql.SQL(tables[0]['tenant_type'])
        rows, err = _try(session, sql.SQL('SELECT x::{}::text AS t FROM unnest(%(ts)s::text[]) AS x').format(typ),
                         dict(ts=tenants))
        if err:
            raise VerifyError('verify_tenants are not valid %s values: %s' % (tables[0]['tenant_type'], err[1]))
        tenants = [r['t'] for r in rows]
    if len(tenants) < 2:
        raise VerifyError('verify needs at least two tenants (found %s)' % tenants)

    col = sql.Identifier(column)
    expected = {}
    for t in tables:
        rows = session.rows(sql.SQL('SELECT {}::text AS t, count(*)::int AS n FROM {} WHERE {}::text = ANY(%(ts)s)'
                                    ' GROUP BY 1').format(col, qualified(t['schema'], t['name']), col),
                            dict(ts=tenants))
        expected[t['oid']] = dict((r['t'], r['n']) for r in rows)

    session.execute(sql.SQL('SET LOCAL ROLE {}').format(sql.Identifier(role)))
    count_sql = 'SELECT count(*)::int AS visible, count(*) FILTER (WHERE {c}::text IS DISTINCT FROM %(t)s)::int' \
                ' AS foreign FROM {t}'

    def visible(target, tenant=None):
        rows, err = _try(session, sql.SQL(count_sql).format(c=col, t=target), dict(t=tenant))
        return (rows[0] if rows else None), err

    per_table = {}
    for label, prepare in (('unset', None), ('empty', ''), ('reset', 'reset')):
        if prepare == '':
            _set(session, setting, '')
        elif prepare == 'reset':
            _set(session, setting, tenants[0], local=False)
            _reset(session, setting)
        for t in tables:
            key = '%s.%s' % (t['schema'], t['name'])
            got, err = visible(qualified(t['schema'], t['name']))
            entry = per_table.setdefault(key, dict(tenants={}))
            entry['no_tenant_' + label] = dict(visible=got['visible'] if got else 0,
                                               error=err[1] if err else None)
            if got and got['visible']:
                report['leaks'].append('%s: %d rows visible with the tenant %s' % (
                    key, got['visible'], 'never set' if label == 'unset' else 'reset to empty'))

    for tenant in tenants:
        other = [x for x in tenants if x != tenant][0]
        _set(session, setting, tenant)
        for t in tables:
            key = '%s.%s' % (t['schema'], t['name'])
            target = qualified(t['schema'], t['name'])
            got, err = visible(target, tenant)
            res = dict(expected=expected[t['oid']].get(tenant, 0), visible=got['visible'] if got else 0,
                       foreign=got['foreign'] if got else 0, error=err[1] if err else None)
            res['complete'] = res['visible'] == res['expected']
            if res['foreign']:
                report['leaks'].append('%s: tenant %s sees %d rows of other tenants' % (key, tenant, res['foreign']))
            bypass = []
            for name in bypass_settings:
                _set(session, name, 'true')
                bgot, berr = visible(target, tenant)
                _set(session, name, '')
                seen = bgot['foreign'] if bgot else 0
                bypass.append(dict(setting=name, foreign=seen, error=berr[1] if berr else None))
                if seen:
                    report['leaks'].append('%s: setting %s = true shows tenant %s %d rows of other tenants' % (
                        key, name, tenant, seen))
            res['bypass'] = bypass
            cols = columns.get(t['oid'], [])
            if column not in cols:
                cols = cols + [column]
            select = sql.SQL(', ').join([sql.SQL('%(other)s::{}').format(sql.SQL(t['tenant_type'])) if c == column
                                         else sql.Identifier(c) for c in cols])
            insert = sql.SQL('INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {sel} FROM {t}'
                             ' WHERE {c}::text = %(tenant)s LIMIT 1'
                             ).format(t=target, cols=sql.SQL(', ').join(sql.Identifier(c) for c in cols),
                                      sel=select, c=col)
            update = sql.SQL('UPDATE {t} SET {c} = %(other)s::{typ} WHERE {c}::text = %(tenant)s').format(
                t=target, c=col, typ=sql.SQL(t['tenant_type']))
            for what, statement in (('insert', insert), ('update', update)):
                written, werr = _try(session, statement, dict(other=other, tenant=tenant), fetch=False)
                if werr and (werr[0] or '').startswith(INTEGRITY):
                    # PostgreSQL checks the row-level security WITH CHECK before constraints: the row passed
                    # the policies and only a constraint (the copied key, say) stopped it
                    res[what] = dict(outcome='accepted', sqlstate=werr[0], error=werr[1])
                    report['leaks'].append('%s: the policies let tenant %s %s a row for tenant %s (only a '
                                           'constraint stopped it: %s)' % (key, tenant, what, other, werr[1]))
                elif werr:
                    outcome = 'rejected' if werr[0] == RLS_VIOLATION else 'error'
                    res[what] = dict(outcome=outcome, sqlstate=werr[0], error=werr[1])
                    if outcome == 'error':
                        report['leaks'].append('%s: %s of a row for tenant %s as tenant %s failed with %s, '
                                               'not with a row-level security violation: %s' % (
                                                   key, what, other, tenant, werr[0], werr[1]))
                elif written:
                    res[what] = dict(outcome='written', rows=written)
                    report['leaks'].append('%s: tenant %s could %s %d rows for tenant %s' % (
                        key, tenant, what, written, other))
                else:
                    res[what] = dict(outcome='no row to try', rows=0)
            per_table[key]['tenants'][tenant] = res
    report['tables'] = per_table
    report['tenants'] = tenants
    report['isolated'] = not report['leaks']
    return report
