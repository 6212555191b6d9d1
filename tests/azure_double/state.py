"""What the Azure test double knows: identities, tokens, subscriptions, servers, backups, operations, faults, and
the record of every request and every specification violation."""

from __future__ import annotations

import copy
import datetime
import re
import threading
import time
import uuid

RP = 'Microsoft.DBforPostgreSQL'
SERVER_TYPE = RP + '/flexibleServers'


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%f') + 'Z'


def server_id(subscription, resource_group, name):
    return '/subscriptions/%s/resourceGroups/%s/providers/%s/%s' % (subscription, resource_group, SERVER_TYPE, name)


def merge(target, changes):
    """Deep-merge changes into target (dicts merged, everything else replaced; None deletes)."""
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def error_body(code, message, details=None):
    body = {'error': {'code': code, 'message': message}}
    if details:
        body['error']['details'] = details
    return body


class Fault(object):
    """An answer given instead of the real one, `times` times, to requests of an operation (or any)."""

    def __init__(self, status, operation_id=None, times=1, code=None, message=None, headers=None, method=None):
        self.status = status
        self.operation_id = operation_id
        self.method = method
        self.times = times
        self.headers = dict(headers or {})
        default_code = {429: 'TooManyRequests', 500: 'InternalServerError', 502: 'BadGateway',
                        503: 'ServiceUnavailable', 504: 'GatewayTimeout'}.get(status, 'Error%s' % status)
        self.body = error_body(code or default_code, message or 'Injected %s by the test double.' % status)
        self.served = 0

    def matches(self, operation_id, method):
        return (self.served < self.times and self.operation_id in (None, operation_id)
                and self.method in (None, method))


class AsyncOperation(object):
    """A long-running operation: InProgress for `polls` status reads, then its outcome."""

    def __init__(self, subscription, location, resource_id, polls=1, outcome='Succeeded', error=None,
                 on_success=None, result=None, on_end=None):
        self.id = str(uuid.uuid4())
        self.subscription = subscription
        self.location = location
        self.resource_id = resource_id
        self.polls = polls
        self.outcome = outcome
        self.error = error
        self.on_success = on_success
        self.on_end = on_end
        self.result = result
        self.start = utcnow()
        self.end = None
        self.reads = 0

    @property
    def status(self):
        return 'InProgress' if self.end is None else self.outcome

    def poll(self):
        """One status read: advance the operation, return its status."""
        self.reads += 1
        if self.end is None and self.reads > self.polls:
            self.end = utcnow()
            if self.outcome == 'Succeeded' and self.on_success:
                self.result = self.on_success() or self.result
            if self.on_end:
                self.on_end(self.outcome)
        return self.status

    def status_body(self):
        body = {'id': '/subscriptions/%s/providers/%s/locations/%s/azureAsyncOperation/%s' % (
            self.subscription, RP, self.location, self.id), 'name': self.id, 'status': self.status,
            'startTime': iso(self.start)}
        if self.end is not None:
            body['endTime'] = iso(self.end)
        if self.status in ('Failed', 'Canceled') and self.error:
            body['error'] = dict(self.error)
        return body


class State(object):
    """Everything the double serves, behind one lock."""

    def __init__(self, spec):
        self.spec = spec
        self.lock = threading.RLock()
        self.clients = {}        # (tenant, client_id) -> secret
        self.tokens = {}         # access token -> dict(tenant, client_id, scope, expires)
        self.subscriptions = {}  # subscription -> {resource group (lower) -> name as created}
        self.servers = {}        # server id (lower) -> resource body
        self.backups = {}        # server id (lower) -> [backup bodies]
        self.configurations = {}  # server id (lower) -> {configuration name -> body} (see configurations.py)
        self.operations = {}     # async operation id -> AsyncOperation
        self.outcomes = {}       # operation id -> dict(outcome=, error=, polls=) for the next LRO of that kind
        self.denied = {}         # client_id -> set of actions it may not perform
        self.faults = []
        self.requests = []
        self.violations = []
        self.settling = {}       # server id (lower) -> HA states the next Servers_Get reads show, one per read
        self.page_size = 1000
        self.lro_retry_after = 1

    # identities
    def add_client(self, tenant, client_id, secret):
        with self.lock:
            self.clients[(tenant, client_id)] = secret

    def issue_token(self, tenant, client_id, scope):
        token = 'double-%s' % uuid.uuid4().hex
        with self.lock:
            self.tokens[token] = dict(tenant=tenant, client_id=client_id, scope=scope,
                                      expires=utcnow() + datetime.timedelta(hours=1))
        return token

    def token_info(self, authorization):
        match = re.match(r'^Bearer (\S+)$', authorization or '')
        info = self.tokens.get(match.group(1)) if match else None
        if info is None or info['expires'] < utcnow():
            return None
        return info

    def deny(self, client_id, action):
        with self.lock:
            self.denied.setdefault(client_id, set()).add(action)

    # resources
    def add_subscription(self, subscription, *resource_groups):
        with self.lock:
            groups = self.subscriptions.setdefault(subscription, {})
            for group in resource_groups:
                groups[group.lower()] = group

    def resource_group(self, subscription, resource_group):
        """The resource group's name as created, None when missing; KeyError when the subscription is."""
        return self.subscriptions[subscription].get(resource_group.lower())

    def add_server(self, subscription, resource_group, name, example='ServersGet', changes=None, backups=True):
        """A server built from a Microsoft example (ids and names rewritten), deep-merged with `changes`."""
        body = copy.deepcopy(self.spec.example(example)['responses']['200']['body'])
        if body.get('properties', {}).get('storage', {}).get('type') == '':
            # The ServersGet examples carry storage.type "", which the spec's enum does not allow.
            del body['properties']['storage']['type']
        rid = server_id(subscription, resource_group, name)
        body.update(id=rid, name=name)
        body['properties']['fullyQualifiedDomainName'] = '%s.postgres.database.azure.com' % name
        merge(body, changes or {})
        self.add_subscription(subscription, resource_group)
        with self.lock:
            self.servers[rid.lower()] = body
            self.backups[rid.lower()] = self._example_backups(rid) if backups else []
        return body

    def _example_backups(self, rid):
        listing = self.spec.example('BackupsAutomaticAndOnDemandListByServer')['responses']['200']['body']
        backups = []
        for item in copy.deepcopy(listing['value']):
            item['id'] = '%s/backups/%s' % (rid, item['name'])
            backups.append(item)
        return backups

    def server(self, subscription, resource_group, name):
        return self.servers.get(server_id(subscription, resource_group, name).lower())

    def set_high_availability(self, subscription, resource_group, name, mode=None, state=None, standby_zone=None,
                              primary_zone=None):
        """Set a server's HA mode/state (and zones); mode Disabled means state NotEnabled and no standby zone."""
        with self.lock:
            props = self.server(subscription, resource_group, name)['properties']
            ha = props.setdefault('highAvailability', {})
            if mode is not None:
                ha['mode'] = mode
                if mode == 'Disabled':
                    ha['state'] = 'NotEnabled'
                    ha.pop('standbyAvailabilityZone', None)
            if state is not None:
                ha['state'] = state
            if standby_zone is not None:
                ha['standbyAvailabilityZone'] = standby_zone
            if primary_zone is not None:
                props['availabilityZone'] = primary_zone
            return ha

    def settle(self, subscription, resource_group, name, ha_states):
        """After the server's next operation ends, its reads show these HA states (one per Servers_Get) before
        the state it had at the end of the operation."""
        with self.lock:
            key = server_id(subscription, resource_group, name).lower()
            self.settling[key] = dict(pending=list(ha_states), armed=False)

    def arm_settling(self, rid):
        with self.lock:
            plan = self.settling.get(rid.lower())
            if plan is not None:
                plan['armed'] = True

    def read_server(self, rid):
        """The server body one Servers_Get returns (settling HA states applied, one per read)."""
        with self.lock:
            body = self.servers[rid.lower()]
            plan = self.settling.get(rid.lower())
            if plan is None or not plan['armed']:
                return body
            if not plan['pending']:
                del self.settling[rid.lower()]
                return body
            shown = copy.deepcopy(body)
            shown['properties'].setdefault('highAvailability', {})['state'] = plan['pending'].pop(0)
            return shown

    # long-running operations
    def set_outcome(self, operation_id, outcome='Succeeded', code=None, message=None, polls=1):
        """How the next long-running operation of that kind ends (Succeeded, Failed or Canceled)."""
        error = dict(code=code or 'InternalServerError', message=message or 'The operation failed.') \
            if outcome != 'Succeeded' else None
        with self.lock:
            self.outcomes[operation_id] = dict(outcome=outcome, error=error, polls=polls)

    def start_operation(self, operation_id, subscription, location, resource_id, on_success=None, result=None,
                        on_end=None):
        with self.lock:
            plan = self.outcomes.pop(operation_id, dict(outcome='Succeeded', error=None, polls=1))
            operation = AsyncOperation(subscription, location, resource_id, polls=plan['polls'],
                                       outcome=plan['outcome'], error=plan['error'], on_success=on_success,
                                       result=result, on_end=on_end)
            self.operations[operation.id] = operation
        return operation

    # faults and records
    def inject(self, status, operation_id=None, times=1, **kwargs):
        fault = Fault(status, operation_id=operation_id, times=times, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, operation_id, method):
        with self.lock:
            for fault in self.faults:
                if fault.matches(operation_id, method):
                    fault.served += 1
                    return fault
        return None

    def violation(self, text):
        with self.lock:
            self.violations.append(text)

    def record(self, entry):
        entry.setdefault('time', time.monotonic())
        with self.lock:
            self.requests.append(entry)

    def calls(self, operation_id=None):
        """The recorded ARM requests, optionally of one operation."""
        with self.lock:
            return [r for r in self.requests if operation_id is None or r.get('operation_id') == operation_id]
