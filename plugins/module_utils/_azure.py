# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way in to Azure for every module: options, credential, client, retries, long-running operations, errors.

Authentication follows azure.azcollection: O(auth_source) auto/env/credential_file/cli/msi, the AZURE_* environment
variables, profiles of ~/.azure/credentials, and O(cloud_environment) as a cloud name or the URL of an Azure
Resource Manager endpoint that serves C(/metadata/endpoints) (Azure Stack Hub and other private clouds).
"""

from __future__ import annotations

import datetime
import json
import os
import time
import traceback

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves import configparser

from ansible_collections.procgenie.dbops.plugins.module_utils._connection import QueryLog, missing_requirement_message
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import Context, Operation

try:
    from azure.core.exceptions import (AzureError, ClientAuthenticationError, HttpResponseError,
                                       ServiceRequestError)
    from azure.core.pipeline.policies import RetryPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest
    from azure.core import PipelineClient
    from azure.identity import AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential
    from azure.mgmt.postgresqlflexibleservers import PostgreSQLManagementClient
except ImportError:
    AZURE_IMPORT_ERROR = traceback.format_exc()

    class AzureError(Exception):
        """Stand-in for azure-core's exceptions when the SDK is absent (ensure_azure() fails first)."""

    HttpResponseError = ClientAuthenticationError = ServiceRequestError = AzureError
else:
    AZURE_IMPORT_ERROR = None

AZURE_LIBRARIES = 'azure-mgmt-postgresqlflexibleservers>=3.0 and azure-identity ' \
                  '(pip install azure-mgmt-postgresqlflexibleservers azure-identity)'
AUTH_SOURCES = ['auto', 'cli', 'credential_file', 'env', 'msi']
METADATA_API_VERSION = '2015-01-01'

# The clouds azure.azcollection knows by name (msrestazure's names), with their ARM endpoint, Microsoft Entra
# authority and ARM token audience.
CLOUDS = {
    'AzureCloud': ('https://management.azure.com/', 'https://login.microsoftonline.com/',
                   'https://management.azure.com/'),
    'AzureChinaCloud': ('https://management.chinacloudapi.cn/', 'https://login.chinacloudapi.cn/',
                        'https://management.chinacloudapi.cn/'),
    'AzureUSGovernment': ('https://management.usgovcloudapi.net/', 'https://login.microsoftonline.us/',
                          'https://management.usgovcloudapi.net/'),
}
CLOUD_ALIASES = {'azurepubliccloud': 'AzureCloud', 'azurecloud': 'AzureCloud', 'azurechinacloud': 'AzureChinaCloud',
                 'azureusgovernment': 'AzureUSGovernment', 'azureusgovernmentcloud': 'AzureUSGovernment'}

# Retries of throttled (429) and failed (408, 500, 502, 503, 504) requests, honouring Retry-After: azure-core's
# RetryPolicy does it; these are its settings.
RETRY = dict(retry_total=6, retry_status=5, retry_backoff_factor=1.0, retry_backoff_max=60)
DEFAULT_POLL_INTERVAL = 15


class AzureModuleError(Exception):
    """A failure with a message fit for fail_json (no traceback, no secret)."""


def azure_argument_spec():
    """The Azure options (documented by the procgenie.dbops.azure doc fragment)."""
    return dict(
        auth_source=dict(type='str', choices=AUTH_SOURCES, default='auto',
                         fallback=(env_fallback, ['ANSIBLE_AZURE_AUTH_SOURCE'])),
        subscription_id=dict(type='str'),
        client_id=dict(type='str'),
        secret=dict(type='str', no_log=True),
        tenant=dict(type='str'),
        cloud_environment=dict(type='str'),
        profile=dict(type='str'),
        resource_group=dict(type='str'),
        server_name=dict(type='str'),
    )


def azure_wait_argument_spec():
    """The options of modules that wait for long-running operations (procgenie.dbops.azure.WAIT)."""
    return dict(timeout=dict(type='int', default=1800))


def ensure_azure(module):
    """Fail with a message naming the interpreter without the Azure SDK and how to fix it."""
    if AZURE_IMPORT_ERROR is not None:
        msg = missing_requirement_message('azure-mgmt-postgresqlflexibleservers>=3.0 and azure-identity',
                                          "'azure-mgmt-postgresqlflexibleservers>=3.0' azure-identity",
                                          AZURE_IMPORT_ERROR)
        module.fail_json(msg=msg, queries=[], commands=[])


# authentication settings ----------------------------------------------------------------------------------------
def _credential_file_profile(name, home=None):
    path = os.path.join(home or os.path.expanduser('~'), '.azure', 'credentials')
    if not os.path.isfile(path):
        return None
    parser = configparser.ConfigParser()
    parser.read(path)
    if not parser.has_section(name):
        return None
    return dict(parser.items(name))


def _cli_default_subscription(home=None):
    """The subscription `az account set` made the default (azureProfile.json of the Azure CLI)."""
    folder = os.environ.get('AZURE_CONFIG_DIR') or os.path.join(home or os.path.expanduser('~'), '.azure')
    try:
        with open(os.path.join(folder, 'azureProfile.json'), encoding='utf-8-sig') as handle:
            profile = json.load(handle)
    except (OSError, ValueError):
        return None
    for subscription in profile.get('subscriptions', []):
        if subscription.get('isDefault'):
            return subscription.get('id')
    return None


def resolve_auth(params, environ=None, home=None):
    """Where the credentials come from, as azure.azcollection resolves them.

    Returns a dict: kind (secret, cli or msi), source (parameters, env, credential_file, cli, msi), subscription_id,
    client_id, secret, tenant, cloud_environment. Raises AzureModuleError when nothing usable is found.
    """
    environ = os.environ if environ is None else environ
    source = params.get('auth_source') or 'auto'
    keys = ('subscription_id', 'client_id', 'secret', 'tenant')
    from_params = dict((k, params.get(k)) for k in keys)
    from_env = dict(subscription_id=environ.get('AZURE_SUBSCRIPTION_ID'), client_id=environ.get('AZURE_CLIENT_ID'),
                    secret=environ.get('AZURE_SECRET'), tenant=environ.get('AZURE_TENANT'))
    profile_name = params.get('profile') or environ.get('AZURE_PROFILE') or 'default'
    cloud = params.get('cloud_environment') or environ.get('AZURE_CLOUD_ENVIRONMENT')

    def secret_auth(values, label):
        if values.get('client_id') and values.get('secret') and values.get('tenant'):
            return dict(kind='secret', source=label, cloud_environment=cloud,
                        **dict((k, values.get(k)) for k in keys))
        return None

    def subscription_of(*candidates):
        for candidate in candidates:
            if candidate:
                return candidate
        return None

    found = None
    if source in ('auto',):
        found = secret_auth(from_params, 'parameters')
    if found is None and source in ('auto', 'env'):
        found = secret_auth(dict((k, from_params[k] or from_env[k]) for k in keys), 'env')
    if found is None and source in ('auto', 'credential_file'):
        values = _credential_file_profile(profile_name, home)
        if values is None and source == 'credential_file':
            raise AzureModuleError("No profile '%s' in ~/.azure/credentials." % profile_name)
        if values is not None:
            found = secret_auth(dict((k, from_params[k] or values.get(k)) for k in keys), 'credential_file')
            if found is not None:
                cloud = cloud or values.get('cloud_environment')
                found['cloud_environment'] = cloud
            elif source == 'credential_file':
                raise AzureModuleError("Profile '%s' of ~/.azure/credentials needs client_id, secret and tenant."
                                       % profile_name)
    if found is None and source in ('auto', 'cli'):
        found = dict(kind='cli', source='cli', client_id=None, secret=None, tenant=from_params['tenant'],
                     cloud_environment=cloud,
                     subscription_id=subscription_of(from_params['subscription_id'], from_env['subscription_id'],
                                                     _cli_default_subscription(home)))
    if found is None and source == 'msi':
        found = dict(kind='msi', source='msi', client_id=from_params['client_id'] or from_env['client_id'],
                     secret=None, tenant=None, cloud_environment=cloud,
                     subscription_id=subscription_of(from_params['subscription_id'], from_env['subscription_id']))
    if found is None:
        raise AzureModuleError('auth_source=%s found no credentials: set client_id, secret and tenant (or the '
                               'AZURE_CLIENT_ID, AZURE_SECRET and AZURE_TENANT environment variables).' % source)
    found['cloud_environment'] = found.get('cloud_environment') or 'AzureCloud'
    found['subscription_id'] = subscription_of(found.get('subscription_id'), from_params['subscription_id'],
                                               from_env['subscription_id'])
    if not found['subscription_id']:
        raise AzureModuleError('No subscription: set subscription_id or the AZURE_SUBSCRIPTION_ID environment '
                               'variable (auth_source=%s).' % found['source'])
    return found


# clouds ---------------------------------------------------------------------------------------------------------
def resolve_cloud(name_or_url, fetch=None):
    """dict(name, resource_manager, authority, audience, private) for a cloud name or an ARM endpoint URL.

    A URL is a private cloud (Azure Stack Hub, sovereign or test endpoints): its login endpoint and token audience
    are read from <url>/metadata/endpoints, as azure.azcollection does.
    """
    value = (name_or_url or 'AzureCloud').strip()
    if '://' not in value:
        name = CLOUD_ALIASES.get(value.lower().replace('_', ''))
        if name is None:
            raise AzureModuleError('Unknown cloud_environment %r: use one of %s, or the https URL of an Azure '
                                   'Resource Manager endpoint.' % (value, ', '.join(sorted(CLOUDS))))
        arm, authority, audience = CLOUDS[name]
        return dict(name=name, resource_manager=arm, authority=authority, audience=audience, private=False)
    if not value.lower().startswith('https://'):
        raise AzureModuleError('cloud_environment %r must be an https URL: Azure SDKs send bearer tokens over '
                               'https only.' % value)
    arm = value.rstrip('/') + '/'
    metadata = (fetch or _fetch_metadata)(arm + 'metadata/endpoints?api-version=' + METADATA_API_VERSION)
    try:
        authentication = metadata['authentication']
        authority = authentication['loginEndpoint']
        audience = authentication['audiences'][0]
    except (KeyError, IndexError, TypeError):
        raise AzureModuleError('%smetadata/endpoints does not name a loginEndpoint and audiences.' % arm)
    return dict(name=arm, resource_manager=arm, authority=authority, audience=audience, private=True)


def _fetch_metadata(url):
    client = PipelineClient(base_url=url, transport=RequestsTransport(),
                            policies=[RetryPolicy(**RETRY)])
    try:
        response = client.send_request(HttpRequest('GET', url))
        response.raise_for_status()
        return response.json()
    except AzureError as exc:
        raise AzureModuleError('Could not read the cloud metadata at %s: %s' % (url, _first_line(exc)))
    except ValueError:
        raise AzureModuleError('The cloud metadata at %s is not JSON.' % url)
    finally:
        client.close()


# credential and client ------------------------------------------------------------------------------------------
def credential(auth, cloud):
    """The azure-identity credential for resolve_auth()'s answer in a resolve_cloud() cloud."""
    options = dict(authority=cloud['authority'])
    if cloud['private']:
        # documented azure-identity option for private clouds and Azure Stack: no instance discovery against
        # login.microsoftonline.com and no authority validation
        options['disable_instance_discovery'] = True
    if auth['kind'] == 'secret':
        return ClientSecretCredential(auth['tenant'], auth['client_id'], auth['secret'], **options)
    if auth['kind'] == 'msi':
        return ManagedIdentityCredential(client_id=auth.get('client_id')) if auth.get('client_id') \
            else ManagedIdentityCredential()
    return AzureCliCredential(tenant_id=auth.get('tenant')) if auth.get('tenant') else AzureCliCredential()


class Azure(object):
    """A module's connection to Azure: the resolved settings and the flexible server management client."""

    def __init__(self, params, environ=None, home=None, fetch=None):
        self.params = params
        self.auth = resolve_auth(params, environ=environ, home=home)
        self.cloud = resolve_cloud(self.auth['cloud_environment'], fetch=fetch)
        self.subscription_id = self.auth['subscription_id']
        self.resource_group = params.get('resource_group')
        self.server_name = params.get('server_name')
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = PostgreSQLManagementClient(
                credential(self.auth, self.cloud), self.subscription_id,
                base_url=self.cloud['resource_manager'],
                credential_scopes=[self.cloud['audience'].rstrip('/') + '/.default'],
                retry_policy=RetryPolicy(**RETRY), polling_interval=DEFAULT_POLL_INTERVAL)
        return self._client

    @property
    def secrets(self):
        return [s for s in (self.auth.get('secret'),) if s]

    def close(self):
        if self._client is not None:
            self._client.close()

    def scrub(self, text):
        return scrub(text, self.secrets)


def connect(module, params=None):
    """An Azure for the module's options (or `params`, where a module names an Azure option differently), or
    fail_json with a clear message."""
    ensure_azure(module)
    params = module.params if params is None else params
    try:
        return Azure(params)
    except AzureModuleError as exc:
        module.fail_json(msg=scrub(str(exc), [params.get('secret')]), queries=[], commands=[])


# long-running operations ----------------------------------------------------------------------------------------
def wait(poller, timeout, what, budget=None):
    """Wait for a long-running operation (an LROPoller) and return its result.

    Raises AzureModuleError naming `what` when the operation does not end within `timeout` seconds (it goes on in
    Azure) or ends Failed/Canceled (with Azure's error code and message). `budget` is the timeout the user gave,
    named in the message when `timeout` is what is left of it.
    """
    deadline = time.monotonic() + timeout
    try:
        while not poller.done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AzureModuleError('%s did not finish within %s s (status %s); the operation goes on in Azure.'
                                       % (what, budget or timeout, poller.status()))
            poller.wait(timeout=min(left, 5))
        return poller.result()
    except HttpResponseError as exc:
        status = _operation_status(exc)
        code, message = _error_detail(exc)
        if status is None and not code:
            raise AzureModuleError('%s failed: %s' % (what, error_message(exc)))
        detail = '(%s) %s' % (code, message) if code else (message or _first_line(exc))
        raise AzureModuleError('%s ended %s: %s' % (what, status or 'Failed', detail))


def _operation_status(exc):
    response = getattr(exc, 'response', None)
    try:
        body = response.json() if response is not None else None
    except (ValueError, AttributeError):
        body = None
    if isinstance(body, dict) and body.get('status') in ('Failed', 'Canceled'):
        return body['status']
    return None


# errors ---------------------------------------------------------------------------------------------------------
def scrub(text, secrets):
    """Mask secrets in a message. Secrets shorter than 4 characters are left alone: masking them would garble
    ordinary words (Ansible itself masks no_log values in everything it prints)."""
    text = str(text).strip()
    for secret in secrets or ():
        if secret and len(secret) >= 4:
            text = text.replace(secret, '********')
    return text


def _first_line(exc):
    text = str(getattr(exc, 'message', None) or exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _error_detail(exc):
    """(code, message) of an Azure error body, from the SDK's parsed error or the response itself."""
    error = getattr(exc, 'error', None)
    code = getattr(error, 'code', None)
    message = getattr(error, 'message', None)
    if not code:
        response = getattr(exc, 'response', None)
        try:
            body = response.json() if response is not None else None
        except (ValueError, AttributeError):
            body = None
        if isinstance(body, dict) and isinstance(body.get('error'), dict):
            code = body['error'].get('code')
            message = body['error'].get('message')
    return code, message


def error_message(exc, secrets=()):
    """A one-paragraph message for an Azure SDK or azure-identity exception, without secrets."""
    if isinstance(exc, AzureModuleError):
        return scrub(str(exc), secrets)
    if isinstance(exc, ClientAuthenticationError):
        text = str(getattr(exc, 'message', None) or exc)
        text = ' '.join([line.strip() for line in text.splitlines() if line.strip()][:6])
        if text.lower().startswith('authentication failed: '):
            text = text[len('authentication failed: '):]
        return scrub('Azure authentication failed: %s' % text, secrets)
    if isinstance(exc, HttpResponseError):
        code, message = _error_detail(exc)
        status = exc.status_code
        if code or message:
            text = '(%s) %s' % (code, message) if code else message
        else:
            text = _first_line(exc)
        prefix = 'Azure returned %s: ' % status if status else ''
        return scrub(prefix + text, secrets)
    if isinstance(exc, ServiceRequestError):
        return scrub('Could not reach Azure: %s' % _first_line(exc), secrets)
    return scrub('%s: %s' % (exc.__class__.__name__, _first_line(exc)), secrets)


def fail(module, azure, exc, what, **result):
    """fail_json for an exception raised while talking to Azure."""
    secrets = azure.secrets if azure is not None else [module.params.get('secret')]
    result.setdefault('queries', [])
    result.setdefault('commands', [])
    module.fail_json(msg='%s: %s' % (what, error_message(exc, secrets)), **result)


def run_module(module, run, what, own_errors=(), params=None):
    """The Azure part of a module's main(): connect, result = run(module, azure), exit_json(**result).

    `own_errors` are the backend's refusals (their `result` attribute, if any, goes into fail_json with the message);
    Azure errors end in fail_json as `what: <Azure's message>`. Secrets are masked; the client is always closed.
    `params` replaces the module's options for connecting (see connect())."""
    if module.params.get('timeout') is not None and module.params['timeout'] < 1:
        module.fail_json(msg='timeout must be positive', queries=[], commands=[])
    own_errors = (own_errors,) if isinstance(own_errors, type) else tuple(own_errors)
    azure = connect(module, params)
    try:
        result = run(module, azure)
    except own_errors as exc:  # pylint: disable=catching-non-exception
        result = dict(getattr(exc, 'result', None) or {}, queries=[], commands=[])
        module.fail_json(msg=azure.scrub(str(exc)), **result)
    except (AzureModuleError, AzureError) as exc:
        fail(module, azure, exc, what)
    finally:
        azure.close()
    module.exit_json(**result)


# operations -----------------------------------------------------------------------------------------------------
class AzureOperation(Operation):
    """An operation against Azure Resource Manager (see `_operation`): the same plan/apply shape, with the Azure
    client in its context (`self.azure`) and no client programs."""

    @classmethod
    def make_runner(cls, params):
        return None

    @property
    def azure(self):
        return self.ctx.azure


def run_operation(module, operation_class, own_errors, what, params=None):
    """`_operation.run_operation` for an AzureOperation: connect, plan (and apply unless in check mode), exit_json;
    the operation's own errors and Azure's end in fail_json as run_module's do. `params` as for connect()."""
    def run(_module, azure):
        ctx = Context(log=QueryLog(), warn=module.warn, check_mode=module.check_mode)
        ctx.azure = azure
        return dict(dict(queries=[], commands=[]), **operation_class(module.params, ctx).run())
    run_module(module, run, what, own_errors, params=params)


# server reads ---------------------------------------------------------------------------------------------------
# How every Azure backend reads the SDK's models (azure-mgmt-postgresqlflexibleservers 3.0 changed the keys of
# as_dict(), so fields are read as attributes): enums as their values, times as ISO-8601 UTC.
def text(value):
    """An SDK enum's value, a str as is, None as None."""
    if value is None:
        return None
    return getattr(value, 'value', value)


def iso(value):
    """An SDK time as ISO-8601 UTC (a naive time is UTC), None as None."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).isoformat()
    return str(value)


def backup_facts(server):
    """A server's backup settings: retention_days, geo_redundant_backup, earliest_restore_date."""
    backup = server.backup
    if backup is None:
        return dict(retention_days=None, geo_redundant_backup=None, earliest_restore_date=None)
    return dict(retention_days=backup.backup_retention_days, geo_redundant_backup=text(backup.geo_redundant_backup),
                earliest_restore_date=iso(backup.earliest_restore_date))
