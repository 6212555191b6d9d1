# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection capacity: what max_connections leaves for the application, and whether its pool fits. PRIVATE to the
collection (as every `_` module). Tuning checks a planned max_connections with it, the activity report the one in
force."""

from __future__ import annotations

# Connections Azure Database for PostgreSQL flexible server keeps for itself (replication, monitoring): Microsoft's
# "maximum user connections = max_connections - 15 reserved".
AZURE_RESERVED_CONNECTIONS = 15
PLATFORM_RESERVED = dict(postgres=0, azure=AZURE_RESERVED_CONNECTIONS)


def pool_check(db_max_connections, replicas, reserved, max_connections, superuser_reserved=0, reserved_roles=0,
               platform_reserved=0):
    """Does the application's pool (DB_MAX_CONNECTIONS x replicas + reserved) fit under max_connections?

    platform_reserved: connections the platform keeps for itself (Azure: 15 for replication and monitoring)."""
    needed = int(db_max_connections) * int(replicas) + int(reserved)
    available = int(max_connections) - int(superuser_reserved) - int(reserved_roles) - int(platform_reserved)
    return dict(db_max_connections=int(db_max_connections), replicas=int(replicas), reserved=int(reserved),
                needed=needed, max_connections=int(max_connections),
                superuser_reserved_connections=int(superuser_reserved), reserved_connections=int(reserved_roles),
                platform_reserved_connections=int(platform_reserved), available=available, fits=needed <= available)
