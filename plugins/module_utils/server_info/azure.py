# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_server_info, provider azure: an Azure Database for PostgreSQL flexible server as the Resource Manager sees it.

Fields are read through the SDK's model attributes (azure-mgmt-postgresqlflexibleservers 3.0 changed the keys of
as_dict()), enums as their values, times as ISO-8601 UTC.
"""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._azure import AzureOperation, backup_facts, iso, text


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def version_facts(server):
    major = text(server.version)
    minor = text(server.minor_version)
    return dict(server_version='%s.%s' % (major, minor) if major and minor is not None else major,
                major=_int(major), minor=_int(minor))


def high_availability_facts(server):
    ha = server.high_availability
    mode = text(ha.mode) if ha is not None else None
    return dict(mode=mode, enabled=mode not in (None, 'Disabled'), state=text(ha.state) if ha is not None else None,
                standby_availability_zone=ha.standby_availability_zone if ha is not None else None)


def backup_item(item):
    return dict(name=item.name, id=item.id, backup_type=text(item.backup_type), source=text(item.source),
                completed_time=iso(item.completed_time))


def server_facts(server):
    sku = server.sku
    storage = server.storage
    return dict(
        id=server.id,
        name=server.name,
        location=server.location,
        state=text(server.state),
        version=version_facts(server),
        sku=dict(name=sku.name, tier=text(sku.tier)) if sku is not None else None,
        fqdn=server.fully_qualified_domain_name,
        availability_zone=server.availability_zone,
        high_availability=high_availability_facts(server),
        backup=backup_facts(server),
        replication_role=text(server.replication_role),
        storage=dict(size_gb=storage.storage_size_gb, tier=text(storage.tier), auto_grow=text(storage.auto_grow))
        if storage is not None else None,
    )


def gather(azure):
    """The server's facts and its backups (automatic and on-demand), newest first."""
    client = azure.client
    server = client.servers.get(azure.resource_group, azure.server_name)
    facts = server_facts(server)
    items = [backup_item(b) for b in client.backups_automatic_and_on_demand.list_by_server(azure.resource_group,
                                                                                           azure.server_name)]
    items.sort(key=lambda b: b['completed_time'] or '', reverse=True)
    facts['backups'] = items
    facts.update(provider='azure', subscription_id=azure.subscription_id, resource_group=azure.resource_group)
    return facts


class Facts(AzureOperation):
    """pg_server_info (provider azure): reads only, so the plan is the result."""

    def plan(self):
        return dict(gather(self.azure), changed=False)

    def apply(self, plan):
        return plan
