"""A local HTTPS test double of the Azure Resource Manager API for PostgreSQL flexible servers, validated against
the published specification in tests/azure_double/spec/ (Microsoft's files, unmodified; see its README)."""

from __future__ import annotations

from .server import HANDLERS, AzureDouble, make_certificates  # noqa: F401
from .spec import SPEC_VERSION, Spec, spec_dir  # noqa: F401
from .state import State, server_id  # noqa: F401
