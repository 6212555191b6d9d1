"""A local HTTPS Azure Resource Manager + Microsoft Entra token endpoint for the PostgreSQL flexible server API.

Every ARM request is routed through the published 2025-08-01 specification: path, api-version, query and body are
validated, and so is every response the double sends (built from Microsoft's examples). Problems are recorded in
`state.violations`, which the tests' fixtures assert to be empty.

Operations are added to HANDLERS by operationId. Long-running ones answer 202 with Azure-AsyncOperation, Location
and Retry-After (see `accepted`), and their status resources go InProgress, then Succeeded/Failed/Canceled.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import ssl
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .spec import Spec
from .state import RP, State, error_body, merge, utcnow

METADATA_API_VERSIONS = ('2015-01-01',)
HANDLERS = {}


def handles(operation_id):
    def register(func):
        HANDLERS[operation_id] = func
        return func
    return register


def make_certificates(folder):
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'procgenie azure double CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName('localhost'),
                                                        x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(folder, name) for name in ('ca.pem', 'server.pem', 'server.key')]
    with open(paths[0], 'wb') as handle:
        handle.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], 'wb') as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], 'wb') as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return paths


class Reply(Exception):
    """An answer decided early (errors): status, body, headers."""

    def __init__(self, status, body=None, headers=None):
        super(Reply, self).__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


class Context(object):
    """One ARM request, routed: operation, path parameters, query, JSON body, caller."""

    def __init__(self, double, op, path, params, query, body, caller):
        self.double = double
        self.path = path
        self.state = double.state
        self.op = op
        self.params = params
        self.query = query
        self.body = body
        self.caller = caller

    @property
    def subscription(self):
        return self.params.get('subscriptionId')

    def server(self):
        found = self.state.server(self.subscription, self.params['resourceGroupName'], self.params['serverName'])
        if found is None:
            raise Reply(404, error_body('ResourceNotFound', "The Resource '%s/%s' under resource group '%s' was not "
                                        "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
                                        % (RP + '/flexibleServers', self.params['serverName'],
                                           self.params['resourceGroupName'])))
        return found

    def accepted(self, resource_id, location, on_success=None, result=None, on_end=None):
        """202 for a long-running operation, with the status monitor and result URLs the spec declares.

        on_success() runs when it succeeds, on_end(outcome) when it ends in any way."""
        operation = self.state.start_operation(self.op.operation_id, self.subscription, location, resource_id,
                                               on_success=on_success, result=result, on_end=on_end)
        base = '%s/subscriptions/%s/providers/%s/locations/%s' % (self.double.url, self.subscription, RP, location)
        version = urlencode({'api-version': self.query.get('api-version')})
        headers = {'Azure-AsyncOperation': '%s/azureAsyncOperation/%s?%s' % (base, operation.id, version),
                   'Location': '%s/operationResults/%s?%s' % (base, operation.id, version),
                   'Retry-After': str(self.state.lro_retry_after)}
        return 202, None, headers


@handles('Servers_Get')
def servers_get(ctx):
    server = ctx.server()
    return 200, ctx.state.read_server(server['id']), {}


@handles('BackupsAutomaticAndOnDemand_ListByServer')
def backups_list(ctx):
    server = ctx.server()
    items = ctx.state.backups.get(server['id'].lower(), [])
    return 200, ctx.double.page(ctx, items), {}


@handles('Servers_Restart')
def servers_restart(ctx):
    """Restart; with restartWithFailover the standby takes over: HA FailingOver, then the zones swap and HA is
    Healthy again (or what State.settle says). Without HA, a failover restart fails like Azure's."""
    server = ctx.server()
    params = ctx.body or {}
    props = server['properties']
    ha = props.setdefault('highAvailability', {})
    failover = bool(params.get('restartWithFailover'))
    if failover and ha.get('mode', 'Disabled') == 'Disabled':
        raise Reply(400, error_body('HANotEnabledForServer', "High availability is not enabled for server '%s'; "
                                    'restart with failover is not possible.' % server['name']))
    before = dict(state=props.get('state'), ha_state=ha.get('state'))
    props['state'] = 'Restarting'
    if failover:
        ha['state'] = 'FailingOver'

    def done():
        if failover and ha.get('standbyAvailabilityZone'):
            props['availabilityZone'], ha['standbyAvailabilityZone'] = (ha['standbyAvailabilityZone'],
                                                                        props.get('availabilityZone'))

    def end(outcome):
        props['state'] = 'Ready'
        if failover:
            ha['state'] = 'Healthy' if outcome == 'Succeeded' else before['ha_state']
            ctx.state.arm_settling(server['id'])
    return ctx.accepted(server['id'], server['location'], on_success=done, on_end=end)


WRITE_ONLY = ('administratorLoginPassword', 'createMode')


@handles('Servers_Update')
def servers_update(ctx):
    """PATCH, long-running: state Updating, then the changes merged. Backup retention must be 7 to 35 days
    (Azure's limits; the spec has none)."""
    server = ctx.server()
    changes = ctx.body or {}
    retention = changes.get('properties', {}).get('backup', {}).get('backupRetentionDays')
    if retention is not None and not 7 <= retention <= 35:
        raise Reply(400, error_body('InvalidBackupRetentionDays', 'The backup retention days %s is invalid. It '
                                    'must be between 7 and 35.' % retention))
    props = server['properties']
    props['state'] = 'Updating'

    def done():
        merge(server, dict(changes, properties=dict((k, v) for k, v in changes.get('properties', {}).items()
                                                    if k not in WRITE_ONLY)))

    def end(_outcome):
        props['state'] = 'Ready'
    return ctx.accepted(server['id'], server['location'], on_success=done, on_end=end)


class AzureDouble(object):
    """The HTTPS server in a thread: .url, .ca_bundle, .state (see State), .spec, start()/stop()."""

    def __init__(self, folder=None, spec=None):
        self.folder = folder or tempfile.mkdtemp(prefix='azure-double-')
        self.spec = spec or Spec()
        self.state = State(self.spec)
        self.ca_bundle, self._cert, self._key = make_certificates(self.folder)
        self.httpd = None
        self.thread = None
        self.url = None

    def start(self):
        handler = type('Handler', (_Handler,), {'double': self})
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cert, self._key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = 'https://127.0.0.1:%d' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name='azure-double', daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def audience(self):
        return self.url + '/'

    @property
    def env(self):
        """Environment for processes that talk to the double (the CA bundle requests uses)."""
        return {'REQUESTS_CA_BUNDLE': self.ca_bundle, 'SSL_CERT_FILE': self.ca_bundle}

    def page(self, ctx, items):
        """One page of a pageable list, with a nextLink carrying ARM's $skipToken."""
        start = int(ctx.query.get('$skipToken') or 0)
        size = self.state.page_size
        body = {'value': items[start:start + size]}
        if start + size < len(items):
            query = {'api-version': ctx.query.get('api-version'), '$skipToken': str(start + size)}
            body['nextLink'] = '%s%s?%s' % (self.url, ctx.path, urlencode(query))
        return body

    # ARM
    def arm(self, method, path, query, raw, headers):
        state = self.state
        op, params = self.spec.match(method, path)
        entry = dict(method=method, path=path, query=query, operation_id=op.operation_id if op else None,
                     body=raw.decode('utf-8', 'replace'), user_agent=headers.get('User-Agent'))
        state.record(entry)
        try:
            status, body, extra = self._arm(op, params, method, path, query, raw, headers, entry)
        except Reply as reply:
            status, body, extra = reply.status, reply.body, reply.headers
        if op is not None:
            for text in self.spec.response_errors(op, status, body):
                state.violation('double sent: ' + text)
        entry['status'] = status
        return status, body, extra

    def _arm(self, op, params, method, path, query, raw, headers, entry):
        state = self.state
        if op is None:
            state.violation('%s %s: no operation of the specification matches' % (method, path))
            raise Reply(404, error_body('InvalidResourceType', 'The resource type could not be found.'))
        caller = state.token_info(headers.get('Authorization'))
        if caller is None or caller['scope'] != self.audience + '.default':
            state.violation('%s %s: no valid bearer token for %s' % (method, path, self.audience))
            raise Reply(401, error_body('InvalidAuthenticationToken', 'The access token is invalid.'),
                        {'WWW-Authenticate': 'Bearer authorization_uri="%s/common", error="invalid_token"'
                         % self.url})
        entry['client_id'] = caller['client_id']
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                state.violation('%s %s: body is not JSON' % (method, path))
                raise Reply(400, error_body('InvalidRequestContent', 'The request content is not valid JSON.'))
        for text in self.spec.request_errors(op, params, self._spec_query(op, query), body):
            state.violation(text)
        fault = state.take_fault(op.operation_id, method)
        if fault is not None:
            raise Reply(fault.status, fault.body, fault.headers)
        action = self._action(op)
        if action in state.denied.get(caller['client_id'], ()):
            scope = re.sub(r'\?.*$', '', path)
            raise Reply(403, error_body('AuthorizationFailed', "The client '%s' with object id '%s' does not have "
                                        "authorization to perform action '%s' over scope '%s' or the scope is "
                                        "invalid. If access was recently granted, please refresh your credentials."
                                        % (caller['client_id'], caller['client_id'], action, scope)))
        subscription = params.get('subscriptionId')
        if subscription is not None:
            if subscription not in state.subscriptions:
                raise Reply(404, error_body('SubscriptionNotFound',
                                            "The subscription '%s' could not be found." % subscription))
            group = params.get('resourceGroupName')
            if group is not None and state.resource_group(subscription, group) is None:
                raise Reply(404, error_body('ResourceGroupNotFound',
                                            "Resource group '%s' could not be found." % group))
        handler = HANDLERS.get(op.operation_id)
        if handler is None:
            state.violation('%s: not implemented by the test double' % op.operation_id)
            raise Reply(501, error_body('NotImplemented', '%s is not implemented by the test double.'
                                        % op.operation_id))
        ctx = Context(self, op, path, params, query, body, caller)
        with state.lock:
            return handler(ctx)

    @staticmethod
    def _spec_query(op, query):
        """The query without ARM's paging token, which nextLinks of pageable operations carry."""
        return dict((k, v) for k, v in query.items() if not (k.lower() == '$skiptoken' and op.method == 'GET'))

    @staticmethod
    def _action(op):
        """The RBAC action of an operation: provider/type[/child]/read|write|delete|action."""
        parts = [p for p in op.template.split('/providers/', 1)[-1].split('/') if p]
        names = [p for p in parts[1:] if not p.startswith('{')]
        kind = {'GET': 'read', 'PUT': 'write', 'PATCH': 'write', 'DELETE': 'delete'}.get(op.method, 'action')
        return '/'.join([parts[0]] + names + [kind]) if parts else kind

    def async_status(self, kind, operation_id, query):
        state = self.state
        operation = state.operations.get(operation_id)
        if operation is None:
            return 404, error_body('ResourceNotFound', 'Operation %s not found.' % operation_id), {}
        if not query.get('api-version'):
            state.violation('GET %s %s: api-version missing' % (kind, operation_id))
        with state.lock:
            status = operation.poll()
        retry = {'Retry-After': str(state.lro_retry_after)}
        if kind == 'azureAsyncOperation':
            body = operation.status_body()
            for text in self.spec.common_errors('OperationStatusResult', body, 'status monitor'):
                state.violation('double sent: ' + text)
            return 200, body, retry if status == 'InProgress' else {}
        if status == 'InProgress':
            return 202, None, dict(retry, Location=self.url + '/subscriptions/%s/providers/%s/locations/%s/'
                                   'operationResults/%s?%s' % (operation.subscription, RP, operation.location,
                                                               operation.id, urlencode(query)))
        if status == 'Succeeded':
            return (200, operation.result, {}) if operation.result is not None else (204, None, {})
        return 500, {'error': operation.error or {'code': status, 'message': 'Operation %s.' % status}}, {}

    # Microsoft Entra ID (the client-secret flow azure-identity and MSAL use) and cloud metadata
    def metadata(self, query):
        if query.get('api-version') not in METADATA_API_VERSIONS:
            self.state.violation('metadata/endpoints: api-version %r' % query.get('api-version'))
        return 200, {'galleryEndpoint': '', 'graphEndpoint': '', 'portalEndpoint': '',
                     'authentication': {'loginEndpoint': self.url + '/', 'audiences': [self.audience]}}, {}

    def openid(self, tenant):
        base = '%s/%s' % (self.url, tenant)
        return 200, {'token_endpoint': base + '/oauth2/v2.0/token',
                     'authorization_endpoint': base + '/oauth2/v2.0/authorize',
                     'device_authorization_endpoint': base + '/oauth2/v2.0/devicecode',
                     'issuer': base + '/v2.0', 'jwks_uri': base + '/discovery/v2.0/keys',
                     'response_types_supported': ['code', 'id_token', 'code id_token', 'token id_token'],
                     'token_endpoint_auth_methods_supported': ['client_secret_post', 'private_key_jwt',
                                                               'client_secret_basic'],
                     'tenant_region_scope': None}, {}

    def token(self, tenant, form):
        state = self.state
        state.record(dict(method='POST', path='/%s/oauth2/v2.0/token' % tenant, operation_id='token',
                          client_id=form.get('client_id'), grant_type=form.get('grant_type'),
                          scope=form.get('scope')))
        if form.get('grant_type') != 'client_credentials':
            return 400, self._aad_error('unsupported_grant_type', 70003, 'The app requested an unsupported grant '
                                        'type.'), {}
        if not any(t == tenant for t, _c in state.clients):
            return 400, self._aad_error('invalid_request', 90002, "Tenant '%s' not found. Check to make sure you "
                                        "have the correct tenant ID and are signing into the correct cloud."
                                        % tenant), {}
        secret = state.clients.get((tenant, form.get('client_id')))
        if secret is None:
            return 400, self._aad_error('unauthorized_client', 700016, "Application with identifier '%s' was not "
                                        "found in the directory '%s'." % (form.get('client_id'), tenant)), {}
        if form.get('client_secret') != secret:
            return 401, self._aad_error('invalid_client', 7000215, 'Invalid client secret provided. Ensure the '
                                        "secret being sent in the request is the client secret value, not the "
                                        "client secret ID, for a secret added to app '%s'." % form.get('client_id')), {}
        scopes = (form.get('scope') or '').split()
        if scopes != [self.audience + '.default']:
            return 400, self._aad_error('invalid_scope', 70011, 'The provided value for scope %s is not valid.'
                                        % form.get('scope')), {}
        token = state.issue_token(tenant, form['client_id'], scopes[0])
        return 200, {'token_type': 'Bearer', 'expires_in': 3599, 'ext_expires_in': 3599, 'access_token': token}, {}

    @staticmethod
    def _aad_error(error, number, text):
        return {'error': error, 'error_description': 'AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s'
                % (number, text, uuid.uuid4(), uuid.uuid4(), utcnow().strftime('%Y-%m-%d %H:%M:%SZ')),
                'error_codes': [number], 'timestamp': utcnow().strftime('%Y-%m-%d %H:%M:%SZ'),
                'trace_id': str(uuid.uuid4()), 'correlation_id': str(uuid.uuid4())}


class _Handler(BaseHTTPRequestHandler):
    double = None
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 pylint: disable=invalid-name
        self._handle('GET')

    def do_POST(self):  # noqa: N802 pylint: disable=invalid-name
        self._handle('POST')

    def do_PUT(self):  # noqa: N802 pylint: disable=invalid-name
        self._handle('PUT')

    def do_PATCH(self):  # noqa: N802 pylint: disable=invalid-name
        self._handle('PATCH')

    def do_DELETE(self):  # noqa: N802 pylint: disable=invalid-name
        self._handle('DELETE')

    def _handle(self, method):
        parts = urlsplit(self.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        double = self.double
        try:
            match = re.match(r'^/([^/]+)/(?:v2\.0/)?\.well-known/openid-configuration$', path)
            if path == '/metadata/endpoints':
                status, body, headers = double.metadata(query)
            elif match:
                status, body, headers = double.openid(match.group(1))
            elif re.match(r'^/([^/]+)/oauth2/v2\.0/token$', path) and method == 'POST':
                form = dict(parse_qsl(raw.decode('utf-8')))
                status, body, headers = double.token(path.split('/')[1], form)
            else:
                lro = re.match(r'^/subscriptions/[^/]+/providers/%s/locations/[^/]+/'
                               r'(azureAsyncOperation|operationResults)/([^/]+)$' % re.escape(RP), path, re.I)
                if lro and method == 'GET':
                    status, body, headers = double.async_status(lro.group(1), lro.group(2), query)
                else:
                    status, body, headers = double.arm(method, path, query, raw, self.headers)
        except Exception as exc:  # pylint: disable=broad-except
            double.state.violation('double crashed on %s %s: %r' % (method, path, exc))
            status, body, headers = 500, error_body('InternalServerError', 'test double error: %r' % exc), {}
        self._send(status, body, headers)

    def _send(self, status, body, headers):
        data = b'' if body is None else json.dumps(body).encode('utf-8')
        self.send_response(status)
        self.send_header('x-ms-request-id', str(uuid.uuid4()))
        self.send_header('x-ms-correlation-request-id', str(uuid.uuid4()))
        if body is not None:
            self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


# Handlers of further operations live in their own modules and register themselves in HANDLERS on import.
from . import configurations, create  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
