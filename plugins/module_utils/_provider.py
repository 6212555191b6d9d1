# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Providers as data. PRIVATE to the collection (as every `_` module).

A module that runs against more than one kind of server (a PostgreSQL server, an Azure flexible server) declares a
table, as community.crypto's x509_certificate does with its provider_map:

    PROVIDERS = dict(
        postgres=Provider(postgres.Facts, 'Reading server facts', spec=postgres_spec()),
        azure=Provider(azure.Facts, 'Reading the Azure flexible server failed', spec=azure_spec()),
    )

    def main():
        module = provider_spec(PROVIDERS).merge(ArgumentSpec(dict(settings=...))).create_module()
        run_provider(module, PROVIDERS)

Each provider has its options (an `ArgumentSpec`; constraints that only hold for one provider are written as
`required_if` on `provider`), its operation (an `_operation.Operation`, or an `_azure.AzureOperation` which gets
an Azure client in its context), its own errors, and the words a database or Azure failure starts with. No `main()`
branches on the provider.
"""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
from ansible_collections.procgenie.dbops.plugins.module_utils._argspec import ArgumentSpec
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import ensure_psycopg2
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import run_operation


class Provider(object):
    """One row of a provider table. `azure_params(params)` gives the options to connect to Azure with, where a
    module names an Azure option differently (pg_tune_params: `azure_profile`). `validate(params)` checks what the
    argument spec cannot express (Ansible's int has no minimum) before anything is connected or read, raising one
    of `errors`; the operation's plan() runs the same check, so it stays complete on its own."""

    def __init__(self, operation, what, errors=(), spec=None, azure_params=None, defaults=None, validate=None):
        self.operation = operation
        self.what = what
        self.errors = errors
        self.spec = spec if spec is not None else ArgumentSpec()
        self.azure_params = azure_params
        self.defaults = dict(defaults or {})
        self.validate = validate

    @property
    def is_azure(self):
        return issubclass(self.operation, _azure.AzureOperation)

    def run(self, module):
        for name, value in self.defaults.items():  # defaults that differ by provider (timeouts)
            if module.params.get(name) is None:
                module.params[name] = value
        if self.validate is not None:
            own = (self.errors,) if isinstance(self.errors, type) else tuple(self.errors)
            try:
                self.validate(module.params)
            except own as exc:  # pylint: disable=catching-non-exception
                module.fail_json(msg=str(exc), queries=[], commands=[])
        if self.is_azure:
            params = self.azure_params(module.params) if self.azure_params else None
            _azure.run_operation(module, self.operation, self.errors, self.what, params=params)
        else:
            if getattr(self.operation, 'needs_psycopg2', True):
                ensure_psycopg2(module)
            run_operation(module, self.operation, self.errors, self.what)


def provider_spec(providers, default='postgres'):
    """The `provider` option (choices: the table's keys) with every provider's options and constraints."""
    spec = ArgumentSpec(dict(provider=dict(type='str', default=default, choices=list(providers))))
    for provider in providers.values():
        spec.merge(provider.spec)
    return spec


def run_provider(module, providers):
    """Run the operation of the provider the user chose; ends in exit_json or fail_json."""
    providers[module.params['provider']].run(module)
