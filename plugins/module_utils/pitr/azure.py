# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_restore_pitr, provider azure: a point-in-time restore or geo-restore of a flexible server into a NEW server.

Order of work: read the source server, validate the restore (time inside the window between the earliest restore
date Azure reports and now, geo-redundant backups for a geo-restore, region), look for a server of the new name -
one restored from the same source at the same time (recorded in its tags) is reported unchanged, any other is an
error - and only then send the one PUT (Servers_CreateOrUpdate with createMode PointInTimeRestore or GeoRestore),
wait for it and until the new server is Ready.
"""

from __future__ import annotations

import datetime
import re
import time

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art
from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._azure import AzureOperation, text
from ansible_collections.procgenie.dbops.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.procgenie.dbops.plugins.module_utils.pitr.options import target_spec

# The tags that record where a restored server comes from (Azure tag names may not contain < > % & \ ? /).
TAG_SOURCE = 'procgenie-dbops-restore-source'
TAG_TIME = 'procgenie-dbops-restore-time'
TAG_MODE = 'procgenie-dbops-restore-mode'
CREATE_MODES = {'point_in_time': 'PointInTimeRestore', 'geo': 'GeoRestore'}
SERVER_ID_RE = re.compile(r'^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.DBforPostgreSQL/'
                          r'flexibleServers/([^/]+)$', re.IGNORECASE)
WARNING = ('A point-in-time restore creates a NEW server (%s). Applications still use %s: after verifying the '
           'restored data, update their connection strings (or swap DNS) to point to the new server.')
MAX_POLL_INTERVAL = 15
UNSUPPORTED_TARGETS = ('target_lsn', 'target_xid', 'target_name')


def argument_spec():
    """The options of provider azure (besides the Azure options of _azure)."""
    return target_spec().merge(ArgumentSpec(dict(
        source_server=dict(type='str'),
        source_resource_group=dict(type='str'),
        restore_mode=dict(type='str', default='point_in_time', choices=list(CREATE_MODES)),
        location=dict(type='str'),
        availability_zone=dict(type='str'),
        tags=dict(type='dict'),
    ), required_if=[('provider', 'azure', ('resource_group', 'server_name', 'source_server'))]))


class AzurePitrError(Exception):
    """The restore was refused or failed; `result` holds what is known (window, plan, server)."""

    def __init__(self, message, result=None):
        super(AzurePitrError, self).__init__(message)
        self.result = result or {}


# ---------------------------------------------------------------- pure helpers

def source_reference(source, subscription_id, resource_group):
    """(subscription, resource group, name, id) of the source server, given as a name or a resource ID."""
    source = (source or '').strip()
    match = SERVER_ID_RE.match(source)
    if match:
        sub, group, name = match.groups()
    elif source and '/' not in source:
        sub, group, name = subscription_id, resource_group, source
    else:
        raise AzurePitrError('source_server must be a flexible server name or its resource ID '
                             '(/subscriptions/.../resourceGroups/.../providers/Microsoft.DBforPostgreSQL/'
                             'flexibleServers/NAME), not %r' % source)
    rid = '/subscriptions/%s/resourceGroups/%s/providers/Microsoft.DBforPostgreSQL/flexibleServers/%s' % (
        sub, group, name)
    return sub, group, name, rid


def restore_target(params):
    """dict(kind 'time' or 'latest', value datetime or None, text) for the Azure provider. Raises AzurePitrError.

    A point-in-time restore needs target_time (alias restore_time) or target=latest; a geo-restore always restores
    the latest geo-replicated backup (Azure chooses it), so it takes no time."""
    given = [k for k in ('target_time',) + UNSUPPORTED_TARGETS if params.get(k) not in (None, '')]
    if params.get('target'):
        given.append('target')
    unsupported = [k for k in given if k in UNSUPPORTED_TARGETS] + (
        ['target=immediate'] if params.get('target') == 'immediate' else [])
    if unsupported:
        raise AzurePitrError('%s: Azure restores to a time only (target_time/restore_time, or target=latest)'
                             % ', '.join(unsupported))
    geo = params.get('restore_mode') == 'geo'
    if geo:
        if 'target_time' in given:
            raise AzurePitrError('A geo-restore restores the latest geo-replicated backup (Azure chooses it; it can '
                                 'be up to an hour behind): leave restore_time out, or use '
                                 'restore_mode=point_in_time for a chosen time in the source region')
        return dict(kind='latest', value=None, text='latest')
    if len(given) != 1:
        raise AzurePitrError('Give exactly one of restore_time (target_time) or target=latest; got %s'
                             % (', '.join(given) or 'none'))
    if given[0] == 'target':
        return dict(kind='latest', value=None, text='latest')
    raw = str(params['target_time']).strip()
    try:
        value = art.parse_iso(raw.replace(' ', 'T', 1))
    except ValueError:
        raise AzurePitrError('restore_time %r is not an ISO-8601 time (e.g. 2026-02-08T12:00:00Z; without a zone it '
                             'is UTC)' % raw)
    return dict(kind='time', value=value, text=art.iso(value))


def check_window(moment, earliest, now):
    """None when `moment` lies in [earliest, now], else the reason (with the window)."""
    window = 'the restorable window is %s to %s' % (art.iso(earliest) if earliest else 'unknown', art.iso(now))
    if earliest is None:
        return 'Azure does not report the earliest restore date of the source server; %s' % window
    if moment < earliest:
        return 'restore_time %s is before the earliest restore date; %s' % (art.iso(moment), window)
    if moment > now:
        return 'restore_time %s is in the future; %s' % (art.iso(moment), window)
    return None


def wire_time(moment):
    """pointInTimeUTC as the restore records it (microseconds kept, Z)."""
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def region(name):
    """A region name as Azure compares them: 'West Europe' and 'westeurope' are the same region."""
    return (name or '').replace(' ', '').lower()


def restore_tags(source_id, moment, mode, extra=None):
    tags = dict((str(k), '' if v is None else str(v)) for k, v in (extra or {}).items())  # Azure tags are strings
    tags.update({TAG_SOURCE: source_id, TAG_TIME: wire_time(moment), TAG_MODE: mode})
    return tags


def matches(tags, source_id, moment, mode):
    """Is a server with these tags the restore asked for? With moment None (latest, geo) any time matches."""
    tags = tags or {}
    if (tags.get(TAG_SOURCE) or '').lower() != source_id.lower() or tags.get(TAG_MODE) != mode:
        return False
    if moment is None:
        return bool(tags.get(TAG_TIME))
    try:
        recorded = art.parse_iso(tags.get(TAG_TIME))
    except (TypeError, ValueError):
        return False
    return recorded is not None and abs((recorded - moment).total_seconds()) < 1e-6


def create_body(location, source_id, moment, mode, tags, zone=None):
    """The Servers_CreateOrUpdate body of the restore (wire format)."""
    props = {'createMode': CREATE_MODES[mode], 'sourceServerResourceId': source_id,
             'pointInTimeUTC': wire_time(moment)}
    if zone:
        props['availabilityZone'] = zone
    return {'location': location, 'tags': tags, 'properties': props}


def server_summary(server, resource_group):
    if server is None:
        return None
    return dict(id=server.id, name=server.name, resource_group=resource_group, location=server.location,
                state=text(server.state), fqdn=server.fully_qualified_domain_name,
                version=text(server.version), sku=server.sku.name if server.sku is not None else None,
                availability_zone=server.availability_zone, tags=dict(server.tags or {}))


def connection_of(server):
    """Connection options for the procgenie.dbops modules to reach the restored server (no password)."""
    if server is None or not server.fully_qualified_domain_name:
        return None
    return dict(login_host=server.fully_qualified_domain_name, login_port=5432,
                login_user=server.administrator_login, login_db='postgres', ssl_mode='require')


# ---------------------------------------------------------------- Azure

def _get(azure, group, name):
    """The server, or None when Azure answers 404."""
    try:
        return azure.client.servers.get(group, name)
    except _azure.HttpResponseError as exc:
        if exc.status_code == 404:
            return None
        raise


def wait_ready(azure, group, name, deadline, sleep=time.sleep, clock=time.monotonic):
    """Read the new server until it is Ready (1, 2, 4... up to 15 s apart)."""
    interval = 1
    while True:
        server = _get(azure, group, name)
        state = text(server.state) if server is not None else None
        if state == 'Ready':
            return server
        left = deadline - clock()
        if left <= 0:
            raise _azure.AzureModuleError('Server %s is not Ready within the timeout (state %s); the restore goes on '
                                          'in Azure: run the module again to wait for it.' % (name, state or 'absent'))
        sleep(min(interval, left))
        interval = min(interval * 2, MAX_POLL_INTERVAL)


def restore_diff(after):
    """The diff of a restore: a new server (nothing before it)."""
    tracker = DifferenceTracker()
    for name, value in after.items():
        tracker.add(name, before=None, after=value)
    return tracker.diff(created=True)  # the server does not exist before the restore: no value to show


class Restore(AzureOperation):
    """The Azure restore. plan() validates the target, reads the source and looks for a server of the new name (ours:
    nothing to do; another: refused); apply() sends the one PUT and waits for it and until the server is Ready (or
    waits for our server still restoring)."""

    def __init__(self, params, ctx):
        super(Restore, self).__init__(params, ctx)
        self.mode = params['restore_mode']
        self.existing = None  # our server of an earlier run
        self.known = None  # what is known of the restore before that server is described
        self.body = None
        self.what = None

    @property
    def group(self):
        return self.azure.resource_group

    @property
    def name(self):
        return self.azure.server_name

    # -------------------------------------------------------- plan
    def plan(self):
        params = self.params
        target = restore_target(params)
        sub, src_group, src_name, source_id = source_reference(
            params['source_server'], self.azure.subscription_id, params['source_resource_group'] or self.group)
        if sub.lower() != self.azure.subscription_id.lower():
            raise AzurePitrError('The source server is in subscription %s; a restore creates the new server in the '
                                 'source\'s subscription (%s given)' % (sub, self.azure.subscription_id))
        if src_group.lower() == self.group.lower() and src_name.lower() == self.name.lower():
            raise AzurePitrError('server_name %s is the source server: a restore always creates a NEW server; choose '
                                 'another name' % self.name)
        result = dict(changed=False, provider='azure', restore_mode=self.mode, source_server_id=source_id,
                      server_name=self.name, resource_group=self.group, subscription_id=self.azure.subscription_id,
                      target=dict(kind=target['kind'], value=target['text']))
        source = _get(self.azure, src_group, src_name)
        if source is None:
            raise AzurePitrError('Source server %s not found in resource group %s' % (src_name, src_group), result)
        source_id = source.id or source_id
        result['source_server_id'] = source_id
        now = art.utc_now()
        backup = source.backup
        earliest = backup.earliest_restore_date if backup is not None else None
        if earliest is not None and earliest.tzinfo is None:
            earliest = earliest.replace(tzinfo=datetime.timezone.utc)
        result['window'] = dict(earliest=art.iso(earliest), latest=art.iso(now))
        location = params['location'] or source.location
        problems = self.validate(source, target, earliest, now, location)
        existing = _get(self.azure, self.group, self.name)
        if existing is not None:
            return self.already(existing, source_id, target, result)
        if problems:
            raise AzurePitrError('Nothing was restored: %s' % '; '.join(problems), result)
        moment = target['value'] if target['kind'] == 'time' else now
        tags = restore_tags(source_id, moment, self.mode, params['tags'])
        self.body = create_body(location, source_id, moment, self.mode, tags, params['availability_zone'])
        self.what = '%s of %s into the new server %s' % (CREATE_MODES[self.mode], src_name, self.name)
        result.update(restore_time=wire_time(moment), location=location, request=self.body,
                      warning=WARNING % (self.name, src_name),
                      plan=['create server %s in %s (%s) from %s %s' % (
                          self.name, location, CREATE_MODES[self.mode], src_name,
                          'at %s' % wire_time(moment) if self.mode == 'point_in_time'
                          else 'from its latest geo-replicated backup'),
                          'wait for the operation and until server %s is Ready' % self.name,
                          'update the applications\' connection strings to the new server (not done by the '
                          'module)'])
        result['diff'] = restore_diff(dict(server=self.name, resource_group=self.group, location=location,
                                           restore_mode=CREATE_MODES[self.mode], source=source_id,
                                           restore_time=wire_time(moment)))
        result.update(changed=True, duration_s=self.elapsed())
        return result

    # -------------------------------------------------------- apply
    def apply(self, plan):
        if self.existing is not None:
            return self.wait_existing(plan)
        params = self.params
        result = dict(plan, changed=False)
        result.pop('duration_s', None)
        deadline = self.started + params['timeout']
        what = self.what
        try:
            poller = self.azure.client.servers.begin_create_or_update(self.group, self.name, parameters=self.body)
        except _azure.AzureError as exc:
            raise AzurePitrError('%s was refused: %s' % (what, _azure.error_message(exc, self.azure.secrets)), result)
        result['changed'] = True
        try:
            _azure.wait(poller, max(1, int(deadline - time.monotonic())), what, budget=params['timeout'])
            server = wait_ready(self.azure, self.group, self.name, deadline)
        except _azure.AzureModuleError as exc:
            left = self._left_behind()
            raise AzurePitrError(self.azure.scrub(str(exc)) + left, result)
        except _azure.AzureError as exc:
            raise AzurePitrError('%s failed: %s%s' % (what, _azure.error_message(exc, self.azure.secrets),
                                                      self._left_behind()), result)
        result.update(server=server_summary(server, self.group), fqdn=server.fully_qualified_domain_name,
                      id=server.id, connection=connection_of(server), duration_s=self.elapsed())
        self.warn(result['warning'])
        return result

    def validate(self, source, target, earliest, now, location):
        """The reasons the restore cannot be asked for (empty when it can)."""
        problems = []
        state = text(source.state)
        if state in ('Dropping', 'Disabled', 'Inaccessible'):
            problems.append('source server %s is %s' % (source.name, state))
        if self.mode == 'point_in_time':
            if target['kind'] == 'time':
                reason = check_window(target['value'], earliest, now)
                if reason:
                    problems.append(reason)
            if region(location) != region(source.location):
                problems.append('a point-in-time restore creates the server in the source\'s region (%s), not %s: '
                                'use restore_mode=geo for another region' % (source.location, location))
        else:
            geo = text(source.backup.geo_redundant_backup) if source.backup is not None else None
            if geo != 'Enabled':
                problems.append('source server %s has no geo-redundant backups (geo_redundant_backup %s); they can '
                                'only be chosen when a server is created' % (source.name, geo or 'unknown'))
            if not self.params['location']:
                problems.append('a geo-restore needs the location (region) of the new server')
            elif region(location) == region(source.location):
                problems.append('a geo-restore restores into another region than the source\'s (%s); use '
                                'restore_mode=point_in_time in the same region' % source.location)
        return problems

    def already(self, server, source_id, target, result):
        """A server of the new name exists: ours (tags match) is unchanged (apply waits for it when it is still
        restoring); any other is refused."""
        tags = dict(server.tags or {})
        moment = target['value'] if target['kind'] == 'time' else None
        if not matches(tags, source_id, moment, self.mode):
            where = tags.get(TAG_SOURCE)
            raise AzurePitrError(
                'A server named %s already exists in resource group %s and is not this restore (%s): choose another '
                'server_name, or delete that server first' % (
                    self.name, self.group, 'it was restored from %s at %s (%s)' % (where, tags.get(TAG_TIME),
                                                                                   tags.get(TAG_MODE))
                    if where else 'it carries no restore tags of procgenie.dbops'), result)
        self.existing = server
        self.known = dict(result)
        result.update(self.server_result(server), location=server.location, restore_time=tags.get(TAG_TIME),
                      warning=WARNING % (self.name, source_id.rsplit('/', 1)[-1]),
                      plan=['server %s already restored from %s at %s: nothing to do' % (
                          self.name, source_id.rsplit('/', 1)[-1], tags.get(TAG_TIME))],
                      duration_s=self.elapsed())
        return result

    def server_result(self, server):
        return dict(server=server_summary(server, self.group), fqdn=server.fully_qualified_domain_name, id=server.id,
                    connection=connection_of(server))

    def wait_existing(self, plan):
        """Our server of an earlier run: waited for until Ready when it is still restoring."""
        result = dict(plan)
        server = self.existing
        if text(server.state) != 'Ready':
            try:
                server = wait_ready(self.azure, self.group, self.name, self.started + self.params['timeout'])
            except _azure.AzureModuleError as exc:
                raise AzurePitrError(self.azure.scrub(str(exc)), self.known)
            result.update(self.server_result(server), location=server.location)
        result['duration_s'] = self.elapsed()
        return result

    def _left_behind(self):
        try:
            server = _get(self.azure, self.group, self.name)
        except _azure.AzureError:
            return ''
        if server is None:
            return ' No server %s was left behind.' % self.name
        return (' Server %s exists in state %s: check it in Azure; a run of the module with the same options waits for '
                'it, or delete it before retrying.' % (self.name, text(server.state)))
