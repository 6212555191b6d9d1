"""The published ARM specification of Microsoft.DBforPostgreSQL 2025-08-01: routes, parameters and JSON schemas.

Requests and responses of the test double are checked here; every problem is returned as a text (a "violation")
that the double records and the tests' fixtures assert to be absent.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import uuid
from urllib.parse import urljoin, urlsplit

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_VERSION = '2025-08-01'
COMMON_MARK = '/common-types/resource-management/'
API_VERSION_RE = re.compile(r'^\d{4}-\d{2}-\d{2}$')
# Microsoft's published files, copied unmodified into the repository (see spec/README.md: source, commits, license)
SPEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'spec')


def spec_dir():
    """tests/azure_double/spec: the specification the double validates against. It ships with the repository, so a
    missing file is an error (FileNotFoundError naming it), never a reason to skip."""
    main = os.path.join(SPEC_DIR, SPEC_VERSION, 'openapi.json')
    if not os.path.isfile(main):
        raise FileNotFoundError('The Azure REST specification is missing from the repository: %s (see '
                                'tests/azure_double/spec/README.md)' % main)
    return SPEC_DIR


def _date_time(value):
    if not isinstance(value, str):
        return True
    try:
        datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))
    except ValueError:
        return False
    return 'T' in value


def _uuid(value):
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks('date-time')(_date_time)
FORMATS.checks('uuid')(_uuid)


class Operation(object):
    """One operation of the spec: method, path template, parameters (refs resolved), responses, LRO options."""

    def __init__(self, spec, method, template, body):
        self.spec = spec
        self.method = method.upper()
        self.template = template
        self.operation_id = body['operationId']
        self.parameters = [spec.deref(p) for p in body.get('parameters', [])]
        self.responses = body['responses']
        self.long_running = bool(body.get('x-ms-long-running-operation'))
        self.lro_options = body.get('x-ms-long-running-operation-options', {})
        # example file names (not all of them are in the reference data)
        self.examples = [os.path.basename(ref['$ref'])[:-5] for ref in body.get('x-ms-examples', {}).values()]
        names = re.findall(r'{(\w+)}', template)
        pattern = re.escape(template)
        for name in names:
            pattern = pattern.replace(re.escape('{%s}' % name), '(?P<%s>[^/]+)' % name)
        self.regex = re.compile('^%s$' % pattern, re.IGNORECASE)

    def param(self, name, where):
        for param in self.parameters:
            if param['name'] == name and param['in'] == where:
                return param
        return None

    def example(self, name):
        """The example file's content by file name (without .json)."""
        return self.spec.example(name)


class Spec(object):
    """openapi.json with the common types, as a router and a validator."""

    def __init__(self, root=None):
        self.root = root or spec_dir()
        self.main_path = os.path.join(self.root, SPEC_VERSION, 'openapi.json')
        self.main_uri = 'file://' + self.main_path
        self._docs = {}
        self.doc = self.load(self.main_uri)
        self.registry = Registry(retrieve=self._retrieve)
        self.operations = []
        for template, methods in self.doc['paths'].items():
            for method, body in methods.items():
                if method in ('get', 'put', 'patch', 'post', 'delete', 'head'):
                    self.operations.append(Operation(self, method, template, body))
        self.by_id = dict((op.operation_id, op) for op in self.operations)

    # files and references
    def local_path(self, uri):
        path = urlsplit(uri).path
        if COMMON_MARK in path:  # ../../../../common-types/... in the repository layout; beside 2025-08-01/ here
            return os.path.join(self.root, 'common-types', 'resource-management', path.split(COMMON_MARK, 1)[1])
        return path

    def load(self, uri):
        uri = uri.split('#', 1)[0]
        if uri not in self._docs:
            with open(self.local_path(uri)) as handle:
                self._docs[uri] = json.load(handle)
        return self._docs[uri]

    def _retrieve(self, uri):
        return Resource.from_contents(self.load(uri), default_specification=DRAFT4)

    def resolve(self, node, base=None):
        """Follow $refs to their target: (node, URI of the file it is in)."""
        base = base or self.main_uri
        while isinstance(node, dict) and '$ref' in node:
            target = urljoin(base, node['$ref'])
            uri, _sep, pointer = target.partition('#')
            node = self.load(uri)
            for part in [p for p in pointer.split('/') if p]:
                node = node[part.replace('~1', '/').replace('~0', '~')]
            base = uri
        return node, base

    def deref(self, node, base=None):
        """Follow a non-schema $ref (parameters) to its target."""
        return self.resolve(node, base)[0]

    def example(self, name):
        with open(os.path.join(self.root, SPEC_VERSION, 'examples', name + '.json')) as handle:
            return json.load(handle)

    # routing
    def match(self, method, path):
        """(operation, path parameters) for a request, or (None, {})."""
        for op in self.operations:
            if op.method != method.upper():
                continue
            found = op.regex.match(path)
            if found:
                return op, found.groupdict()
        return None, {}

    # validation
    def schema_errors(self, schema, instance, where):
        """Violations of a schema (a spec node whose $refs are relative to openapi.json)."""
        wrapped = dict(schema)
        if '$ref' in wrapped:
            wrapped['$ref'] = urljoin(self.main_uri, wrapped['$ref'])
        wrapped['id'] = self.main_uri
        validator = jsonschema.Draft4Validator(wrapped, registry=self.registry, format_checker=FORMATS)
        return ['%s: %s at %s' % (where, err.message, '/'.join(str(p) for p in err.absolute_path) or '(root)')
                for err in validator.iter_errors(instance)]

    def definition_errors(self, name, instance, where, uri=None):
        return self.schema_errors({'$ref': (uri or self.main_uri) + '#/definitions/' + name}, instance, where)

    def common_errors(self, name, instance, where):
        uri = urljoin(self.main_uri, '../../../../common-types/resource-management/v6/types.json')
        return self.schema_errors({'$ref': uri + '#/definitions/' + name}, instance, where)

    def _simple_errors(self, param, value, where):
        errors = []
        if param.get('type') == 'string':
            if 'minLength' in param and len(value) < param['minLength']:
                errors.append('%s %r is shorter than %s' % (where, value, param['minLength']))
            if 'maxLength' in param and len(value) > param['maxLength']:
                errors.append('%s %r is longer than %s' % (where, value, param['maxLength']))
            if 'pattern' in param and not re.search(param['pattern'], value):
                errors.append('%s %r does not match %s' % (where, value, param['pattern']))
            if 'enum' in param and value not in param['enum']:
                errors.append('%s %r is not one of %s' % (where, value, param['enum']))
            if param.get('format') == 'uuid' and not _uuid(value):
                errors.append('%s %r is not a UUID' % (where, value))
        elif param.get('type') in ('integer', 'number'):
            try:
                float(value)
            except ValueError:
                errors.append('%s %r is not a number' % (where, value))
        elif param.get('type') == 'boolean' and value not in ('true', 'false'):
            errors.append('%s %r is not a boolean' % (where, value))
        return errors

    def request_errors(self, op, path_params, query, body):
        """Violations of a request: api-version, path and query parameters, body (None when there is none)."""
        errors = []
        where = '%s %s' % (op.method, op.operation_id)
        version = query.get('api-version')
        if not version:
            errors.append('%s: api-version missing' % where)
        elif version != SPEC_VERSION and not (API_VERSION_RE.match(version) and version > SPEC_VERSION):
            # a newer stable version (the SDK's default) is accepted when the request validates against this spec
            errors.append('%s: api-version %s is neither %s nor a newer stable version'
                          % (where, version, SPEC_VERSION))
        for param in op.parameters:
            name, place = param['name'], param['in']
            if place == 'path':
                value = path_params.get(name)
                if value is None:
                    errors.append('%s: path parameter %s missing' % (where, name))
                else:
                    errors.extend(self._simple_errors(param, value, '%s: path parameter %s' % (where, name)))
            elif place == 'query' and name != 'api-version':
                if name in query:
                    errors.extend(self._simple_errors(param, query[name], '%s: query %s' % (where, name)))
                elif param.get('required'):
                    errors.append('%s: query parameter %s missing' % (where, name))
            elif place == 'body':
                if body is None:
                    if param.get('required'):
                        errors.append('%s: body required' % where)
                else:
                    errors.extend(self.schema_errors(param['schema'], body, '%s: body' % where))
                    errors.extend(self.read_only_errors(param['schema'], body, '%s: body' % where))
        known = set(p['name'] for p in op.parameters if p['in'] == 'query')
        for name in query:
            if name not in known:
                errors.append('%s: unknown query parameter %s' % (where, name))
        if body is not None and not any(p['in'] == 'body' for p in op.parameters):
            errors.append('%s: a body was sent to an operation that takes none' % where)
        return errors

    def read_only_errors(self, schema, body, where, base=None, depth=0):
        """Read-only properties a client sent (the service ignores or refuses them; the spec says not to)."""
        if depth > 12 or not isinstance(body, dict) or not isinstance(schema, dict):
            return []
        node, base = self.resolve(schema, base)
        props = self._properties(node, base)
        errors = []
        for key, value in body.items():
            if key not in props:
                continue
            prop, prop_base = props[key]
            target, target_base = self.resolve(prop, prop_base)
            if prop.get('readOnly') or target.get('readOnly'):
                errors.append('%s: read-only property %s sent' % (where, key))
            elif isinstance(value, dict):
                errors.extend(self.read_only_errors(target, value, '%s.%s' % (where, key), target_base, depth + 1))
        return errors

    def _properties(self, node, base):
        props = {}
        for parent in node.get('allOf', []):
            parent_node, parent_base = self.resolve(parent, base)
            props.update(self._properties(parent_node, parent_base))
        props.update((k, (v, base)) for k, v in node.get('properties', {}).items())
        return props

    def response_errors(self, op, status, body):
        """Violations of a response the double is about to send."""
        where = '%s %s response %s' % (op.method, op.operation_id, status)
        declared = op.responses.get(str(status))
        if declared is None:
            if status < 400:
                return ['%s: status not declared by the spec' % where]
            declared = op.responses.get('default')
            if declared is None:
                return ['%s: no default error response declared' % where]
        schema = declared.get('schema')
        if schema is None:
            return [] if body is None else ['%s: body sent where the spec declares none' % where]
        if body is None:
            return ['%s: body missing' % where]
        return self.schema_errors(schema, body, where)
