# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Row-level security model, pure: the wanted policies, input checks, comparison with the catalog's rows."""

from __future__ import annotations

import hashlib
import re

from ansible_collections.procgenie.dbops.plugins.module_utils._catalog import CatalogError, literal_table_name

COMMANDS = ('ALL', 'SELECT', 'INSERT', 'UPDATE', 'DELETE')
# pg_policy.polcmd letters
CMD_LETTERS = {'*': 'ALL', 'r': 'SELECT', 'a': 'INSERT', 'w': 'UPDATE', 'd': 'DELETE'}
# A custom (placeholder) parameter: a dotted name, as PostgreSQL requires for settings of no extension.
SETTING_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)+$')
# A plain type name for the pure text path (the modules resolve the type on the server with to_regtype instead):
# one name, optionally schema-qualified, optionally an array; or one of SQL's multi-word type names.
TYPE_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?(\[\])*$')
MULTIWORD_TYPES = ('double precision', 'character varying', 'bit varying', 'timestamp with time zone',
                   'timestamp without time zone', 'time with time zone', 'time without time zone')
CONTROL_RE = re.compile(r'[\x00-\x1f\x7f]')
IDENT_TOKEN_RE = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')
SETTING_REF_RE = re.compile(r"current_setting\('((?:[^']|'')+)'")


class RlsError(Exception):
    """Input the module refuses, with a message for fail_json."""


def quote_ident(name):
    """A double-quoted SQL identifier (for expression text; statements use psycopg2.sql.Identifier)."""
    if not name or '\x00' in name:
        raise RlsError('invalid identifier %r' % (name,))
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text):
    return "'" + text.replace("'", "''") + "'"


def check_setting(name):
    if not isinstance(name, str) or not SETTING_RE.match(name):
        raise RlsError('invalid setting name %r: use a dotted custom parameter name such as app.current_tenant_id'
                       % (name,))
    return name


def check_type(name):
    """A plain type name for tenant_expression() (pure text path). The modules never use it: they resolve
    tenant_type with the server (check_type_text, then to_regtype and format_type)."""
    if not isinstance(name, str):
        raise RlsError('invalid type name %r' % (name,))
    text = ' '.join(name.split())
    if not (TYPE_RE.match(text) or text.lower() in MULTIWORD_TYPES):
        raise RlsError('invalid type name %r: give a type name such as uuid, bigint or text' % (name,))
    return text


def check_type_text(name):
    """tenant_type before the server resolves it: a non-empty string without control characters (libpq cannot
    carry a NUL byte). Whether it names a type is for to_regtype to say; the text itself never reaches SQL."""
    if not isinstance(name, str) or not name.strip() or CONTROL_RE.search(name) or len(name) > 512:
        raise RlsError('invalid type name %r: give a type name such as uuid, bigint or text' % (name,))
    return name.strip()


def is_public(role):
    """PUBLIC in any case, with or without double quotes or spaces around it."""
    return isinstance(role, str) and role.strip().strip('"').strip().lower() == 'public'


def check_bypass_roles(roles):
    """Roles a bypass policy (sees and writes every row) may name: never PUBLIC, which is every role."""
    if not roles:
        raise RlsError('bypass=role needs bypass_roles')
    public = [r for r in roles if is_public(r)]
    if public:
        raise RlsError('bypass_roles must not contain PUBLIC (%s): a bypass policy TO PUBLIC lets every session see '
                       'and write the rows of every tenant' % ', '.join(repr(r) for r in public))
    return roles


def check_no_nul(params, names):
    """Refuse NUL bytes in the given parameters (strings, lists, dicts): libpq cannot carry them and psycopg2
    raises ValueError instead of a database error."""
    def walk(value, where):
        if isinstance(value, str):
            if '\x00' in value:
                raise RlsError('%s must not contain a NUL character: %r' % (where, value))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key, where)
                walk(item, '%s.%s' % (where, key))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, where)
    for name in names:
        walk(params.get(name), name)


def check_expression(text, what='expression'):
    """Refuse text that could end the policy's expression: statement separators, comments, dollar quotes,
    unbalanced parentheses outside string literals and quoted identifiers."""
    if not isinstance(text, str) or not text.strip():
        raise RlsError('%s must be a non-empty SQL expression' % what)
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in ("'", '"'):
            j = i + 1
            while True:
                if j >= n:
                    raise RlsError('%s has an unterminated quote: %r' % (what, text))
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if ch == ';':
            raise RlsError('%s must not contain ";": %r' % (what, text))
        if text.startswith('--', i) or text.startswith('/*', i):
            raise RlsError('%s must not contain comments: %r' % (what, text))
        after_word = i > 0 and re.match(r'[A-Za-z0-9_]', text[i - 1])
        if ch == '$' and re.match(r'\$[A-Za-z_]*\$', text[i:]) and not after_word:
            raise RlsError('%s must not contain dollar quotes: %r' % (what, text))
        if ch == '\\':
            raise RlsError('%s must not contain backslashes: %r' % (what, text))
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
            if depth < 0:
                raise RlsError('%s has unbalanced parentheses: %r' % (what, text))
        i += 1
    if depth != 0:
        raise RlsError('%s has unbalanced parentheses: %r' % (what, text))
    return text.strip()


def identifier_tokens(text):
    """Names an expression may refer to (unquoted folded to lower case); used to build probe tables."""
    out = set()
    stripped = re.sub(r"'(?:[^']|'')*'", "''", text)
    for quoted, plain in IDENT_TOKEN_RE.findall(stripped):
        out.add(quoted.replace('""', '"') if quoted else plain.lower())
    return out


def tenant_expression(column, setting, type_name):
    """The default tenant isolation expression.

    current_setting(name, true) returns NULL when the parameter was never set and '' after RESET of a parameter
    set earlier in the session (a pooled connection); NULLIF turns both into NULL, so the comparison is NULL and
    no row is visible or writable. Without missing_ok the unset case errors; ''::uuid would error too. Neither
    case ever widens visibility.
    """
    return '%s = NULLIF(current_setting(%s, true), \'\')::%s' % (
        quote_ident(column), quote_literal(check_setting(setting)), check_type(type_name))


def setting_bypass_expression(setting):
    """The runbook's superadmin_bypass, made safe against '' after RESET (''::boolean errors)."""
    return "COALESCE(NULLIF(current_setting(%s, true), ''), 'off')::boolean" % quote_literal(check_setting(setting))


def normalize_roles(roles):
    """Sorted role names; PUBLIC (any case) as 'public', the way pg_policies shows it."""
    if not roles:
        return ['public']
    out = set()
    for role in roles:
        if not isinstance(role, str) or not role or '\x00' in role:
            raise RlsError('invalid role name %r' % (role,))
        out.add('public' if role.lower() == 'public' else role)
    return sorted(out)


def normalize_command(cmd):
    value = (cmd or 'ALL').upper()
    if value not in COMMANDS:
        raise RlsError('invalid command %r: use one of %s' % (cmd, ', '.join(COMMANDS)))
    return value


def make_policy(name, using=None, with_check=None, command='ALL', roles=None, permissive=True):
    """One wanted policy. SELECT/DELETE take no WITH CHECK; INSERT takes no USING."""
    if (not isinstance(name, str) or not name or len(name.encode('utf-8')) > 63
            or re.search(r'["\';\\]|[\x00-\x1f]', name)):
        raise RlsError('invalid policy name %r: at most 63 bytes, no quotes, semicolons, backslashes or control '
                       'characters' % (name,))
    command = normalize_command(command)
    if command in ('SELECT', 'DELETE'):
        with_check = None
    if command == 'INSERT':
        using = None
    if using is not None:
        using = check_expression(using, 'USING of policy %s' % name)
    if with_check is not None:
        with_check = check_expression(with_check, 'WITH CHECK of policy %s' % name)
    if using is None and with_check is None:
        raise RlsError('policy %s needs a USING or WITH CHECK expression' % name)
    return dict(name=name, command=command, roles=normalize_roles(roles), permissive=bool(permissive),
                using=using, with_check=with_check)


def _given(params, key, default):
    """A parameter's value, the default only when it was not given (an empty string is refused later, not
    silently replaced)."""
    value = params.get(key)
    return default if value is None else value


def wanted_policies(params, tenant_expr=None):
    """The policies every managed table should carry, from the module parameters. `tenant_expr` is the tenant
    isolation expression as the module composed it with the server-resolved type; without it (pure use) the
    text form of tenant_expression() with a plain type name."""
    out = []
    column = _given(params, 'tenant_column', 'tenant_id')
    if params.get('tenant_policy', True):
        expr = tenant_expr
        if expr is None:
            expr = tenant_expression(column, _given(params, 'tenant_setting', 'app.current_tenant_id'),
                                     _given(params, 'tenant_type', 'uuid'))
        command = normalize_command(params.get('command'))
        out.append(make_policy(_given(params, 'policy_name', 'tenant_isolation'), using=expr, with_check=expr,
                               command=command, roles=params.get('roles'),
                               permissive=params.get('permissive', True)))
    bypass = params.get('bypass') or 'none'
    if bypass == 'role':
        check_bypass_roles(params.get('bypass_roles'))
        out.append(make_policy(_given(params, 'bypass_policy_name', 'admin_bypass'), using='true',
                               with_check='true', roles=params['bypass_roles']))
    elif bypass == 'setting':
        expr = setting_bypass_expression(_given(params, 'bypass_setting', 'app.is_superadmin'))
        out.append(make_policy(_given(params, 'bypass_policy_name', 'superadmin_bypass'), using=expr,
                               with_check=expr, roles=params.get('bypass_roles')))
    for custom in params.get('policies') or []:
        out.append(make_policy(custom.get('name'), using=custom.get('using'), with_check=custom.get('with_check'),
                               command=custom.get('command'), roles=custom.get('roles'),
                               permissive=custom.get('permissive', True)))
    names = [p['name'] for p in out]
    dupes = sorted(set(n for n in names if names.count(n) > 1))
    if dupes:
        raise RlsError('policy names used twice: %s' % ', '.join(dupes))
    return out


def parse_table(entry, default_schema='public'):
    """'schema.table', 'table' or {schema:, name:} -> (schema, table); names are taken literally (case kept), as
    the modules document (_catalog.literal_table_name)."""
    try:
        return literal_table_name(entry, default_schema)
    except CatalogError as exc:
        raise RlsError(str(exc))


def missing_tables(requested, tables):
    """The requested (schema, name) pairs that no table row answers, as schema.name."""
    found = set((t['schema'], t['name']) for t in tables)
    return ['%s.%s' % r for r in requested if r not in found]


def signature(columns, policy):
    """The columns a policy's expressions may refer to, as a hashable probe-table signature."""
    tokens = set()
    for expr in (policy['using'], policy['with_check']):
        if expr:
            tokens |= identifier_tokens(expr)
    return tuple(sorted((name, typ) for name, typ in columns.items() if name in tokens))


def differences(wanted, current):
    """What differs between a wanted policy (its expressions already deparsed by PostgreSQL) and the catalog's.

    Returns None when they match, 'alter' when ALTER POLICY can fix it (roles, USING, WITH CHECK),
    'replace' when the command or permissive/restrictive differ (ALTER POLICY cannot change those)."""
    if current is None:
        return 'create'
    if current['command'] != wanted['command'] or bool(current['permissive']) != wanted['permissive']:
        return 'replace'
    if (sorted(current['roles']) != wanted['roles'] or current['using'] != wanted['using']
            or current['with_check'] != wanted['with_check']):
        # ALTER POLICY cannot remove an expression, only set one.
        if (current['using'] and not wanted['using']) or (current['with_check'] and not wanted['with_check']):
            return 'replace'
        return 'alter'
    return None


def plan_table(table, wanted, current, exclusive=False, force=True):
    """Actions for one table: list of (action, policy_or_name) and the RLS flags to set."""
    actions = []
    have = dict((p['name'], p) for p in current)
    for policy in wanted:
        change = differences(policy, have.get(policy['name']))
        if change:
            actions.append((change, policy))
    if exclusive:
        names = set(p['name'] for p in wanted)
        for name in sorted(have):
            if name not in names:
                actions.append(('drop', name))
    flags = {}
    if not table['rowsecurity']:
        flags['enable'] = True
    if force and not table['forcerowsecurity']:
        flags['force'] = True
    if not force and table['forcerowsecurity']:
        flags['force'] = False
    return actions, flags


def referenced_settings(expr):
    """Parameter names an expression reads with current_setting('...')."""
    return [m.replace("''", "'") for m in SETTING_REF_RE.findall(expr or '')]


def self_grantable(policy, tenant_settings):
    """A permissive policy whose rows open up through a parameter any session can SET (not the tenant setting)."""
    if not policy.get('permissive', True):
        return []
    found = []
    for expr in (policy.get('using'), policy.get('with_check')):
        for name in referenced_settings(expr):
            if name not in tenant_settings and '.' in name and name not in found:
                found.append(name)
    return found


def index_name(table, column):
    """<table>_<column>_rls_idx, cut to 63 bytes with a stable suffix when too long."""
    base = '%s_%s_rls_idx' % (table, column)
    if len(base.encode('utf-8')) <= 63:
        return base
    digest = hashlib.sha1(base.encode('utf-8')).hexdigest()[:8]
    cut = base.encode('utf-8')[:50].decode('utf-8', 'ignore')
    return '%s_%s_idx' % (cut, digest)
