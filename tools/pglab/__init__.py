"""pglab: a throwaway local lab of real PostgreSQL clusters.

A lab is a folder (default ``<repo>/.lab``) holding a WAL archive, a primary
cluster and (optionally) a streaming standby made with ``pg_basebackup -R``,
both listening on 127.0.0.1 only, with scram-sha-256 authentication
everywhere, plus a seeded sample ``procgenie`` database.

Stdlib only: SQL runs through the cluster's own ``psql`` binary.

Usage from Python::

    sys.path.insert(0, "<repo>/tools")
    import pglab
    lab = pglab.Lab("/tmp/mylab", pg="auto")
    lab.start(tenants=3, scale=1, standby=True, seed=True)
    print(lab.psql("standby", "select count(*) from vendors", db="procgenie"))
    lab.destroy()
"""

from .errors import LabError
from .binaries import find_bindir, server_version
from .lab import Lab, default_lab_dir

__all__ = ["Lab", "LabError", "find_bindir", "server_version", "default_lab_dir"]
