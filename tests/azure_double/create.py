"""Servers_CreateOrUpdate of the Azure double: point-in-time restore and geo-restore to a new server.

Like Azure, it refuses a restore time outside the source's window (earliest restore date to now), a geo-restore of a
source without geo-redundant backups or into the source's region, a point-in-time restore into another region, and
a name that is taken. The new server is a copy of the source (SKU, version, storage, administrator login) with its
own id, name, FQDN, region and tags, without high availability, Provisioning until the operation ends; a restore
that ends Failed leaves no server behind.
"""

from __future__ import annotations

import copy
import datetime
import re

from .server import WRITE_ONLY, Reply, handles
from .state import RP, error_body, server_id, utcnow

SOURCE_RE = re.compile(r'^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/%s/flexibleServers/([^/]+)$'
                       % re.escape(RP), re.IGNORECASE)
RESTORE_MODES = ('PointInTimeRestore', 'GeoRestore')


def _time(text):
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _invalid(code, message):
    return Reply(400, error_body(code, message))


@handles('Servers_CreateOrUpdate')
def servers_create(ctx):
    state = ctx.state
    body = ctx.body or {}
    props = body.get('properties') or {}
    mode = props.get('createMode')
    group, name = ctx.params['resourceGroupName'], ctx.params['serverName']
    if mode not in RESTORE_MODES:
        state.violation('Servers_CreateOrUpdate with createMode %r: the double only implements restores' % mode)
        raise _invalid('NotImplemented', 'createMode %s is not implemented by the test double.' % mode)
    if state.server(ctx.subscription, group, name) is not None:
        raise Reply(409, error_body('ServerNameAlreadyExists', "Specified server name '%s' is already used. Please "
                                    'use a different name and try again.' % name))
    match = SOURCE_RE.match(props.get('sourceServerResourceId') or '')
    source = state.server(*match.groups()) if match and match.group(1) in state.subscriptions else None
    if source is None:
        raise Reply(404, error_body('SourceServerNotFound', "The source server '%s' could not be found."
                                    % props.get('sourceServerResourceId')))
    moment = _time(props.get('pointInTimeUTC'))
    if moment is None:
        raise _invalid('InvalidParameterValue', "The value of 'pointInTimeUTC' is invalid.")
    backup = source['properties'].get('backup', {})
    location = body.get('location') or ''
    if mode == 'PointInTimeRestore':
        earliest = _time(backup.get('earliestRestoreDate')) if backup.get('earliestRestoreDate') else None
        now = utcnow()
        if (earliest is not None and moment < earliest) or moment > now:
            raise _invalid('InvalidRestorePointInTime', "The restore point in time '%s' is not valid. It must be "
                           "between the earliest restore point '%s' and the current time '%s'."
                           % (props['pointInTimeUTC'], backup.get('earliestRestoreDate'), now.isoformat()))
        if location.replace(' ', '').lower() != source['location'].replace(' ', '').lower():
            raise _invalid('InvalidLocationForRestore', 'A point in time restore must be in the region of the source '
                           "server '%s'." % source['location'])
    else:
        if backup.get('geoRedundantBackup') != 'Enabled':
            raise _invalid('GeoBackupsNotEnabled', "Geo-restore is not supported: geo-redundant backup is not "
                           "enabled on the source server '%s'." % source['name'])
        if location.replace(' ', '').lower() == source['location'].replace(' ', '').lower():
            raise _invalid('InvalidLocationForGeoRestore', 'A geo-restore must be to a region other than the region '
                           "of the source server '%s'." % source['location'])
    new = copy.deepcopy(source)
    rid = server_id(ctx.subscription, state.resource_group(ctx.subscription, group), name)
    new.update(id=rid, name=name, location=location)
    new['tags'] = copy.deepcopy(body.get('tags') or {})
    new_props = new['properties']
    for key in WRITE_ONLY + ('pointInTimeUTC', 'sourceServerResourceId', 'replica', 'replicationRole'):
        new_props.pop(key, None)
    new_props.update(state='Provisioning', fullyQualifiedDomainName='%s.postgres.database.azure.com' % name,
                     highAvailability={'mode': 'Disabled', 'state': 'NotEnabled'})
    if props.get('availabilityZone'):
        new_props['availabilityZone'] = props['availabilityZone']
    new_props.setdefault('backup', {})['earliestRestoreDate'] = utcnow().strftime('%Y-%m-%dT%H:%M:%S.%f') + 'Z'
    with state.lock:
        state.servers[rid.lower()] = new
        state.backups[rid.lower()] = []

    def end(outcome):
        if outcome == 'Succeeded':
            new_props['state'] = 'Ready'
        else:
            state.servers.pop(rid.lower(), None)
            state.backups.pop(rid.lower(), None)
    return ctx.accepted(rid, location.replace(' ', '').lower(), on_end=end)
