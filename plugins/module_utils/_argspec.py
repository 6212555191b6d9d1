# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options and their constraints kept together. PRIVATE to the collection (as every `_` module): it can change at
any time; do not use it from other collections.

A concern's spec helper returns an `ArgumentSpec`: the options with the `required_if`, `mutually_exclusive`, ...
that belong to them, so a module file merges specs and builds the module in one call, and a backend never checks
again what the spec enforces:

    spec = postgres_spec().merge(client_spec(), restore_spec())
    module = spec.create_module()
"""

from __future__ import annotations

import copy

from ansible.module_utils.basic import AnsibleModule

CONSTRAINTS = ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if', 'required_by')


class ArgumentSpec(object):
    """An argument spec with its constraints. `merge` adds other specs (options and constraints); an option defined
    twice must be defined the same way, so two concerns cannot silently disagree about one option."""

    def __init__(self, options=None, mutually_exclusive=None, required_together=None, required_one_of=None,
                 required_if=None, required_by=None):
        self.options = dict(options or {})
        self.mutually_exclusive = list(mutually_exclusive or [])
        self.required_together = list(required_together or [])
        self.required_one_of = list(required_one_of or [])
        self.required_if = list(required_if or [])
        self.required_by = dict((k, list(v)) for k, v in (required_by or {}).items())

    def copy(self):
        return copy.deepcopy(self)

    def add(self, **options):
        """Add (or redefine) options; returns the spec."""
        self.options.update(options)
        return self

    def remove(self, *names):
        """Drop options (and every constraint naming them); returns the spec."""
        for name in names:
            self.options.pop(name, None)

        def keeps(group):
            return not set(group) & set(names)
        self.mutually_exclusive = [g for g in self.mutually_exclusive if keeps(g)]
        self.required_together = [g for g in self.required_together if keeps(g)]
        self.required_one_of = [g for g in self.required_one_of if keeps(g)]
        self.required_if = [r for r in self.required_if if r[0] not in names and keeps(r[2])]
        self.required_by = dict((k, v) for k, v in self.required_by.items() if k not in names and keeps(v))
        return self

    def constrain(self, mutually_exclusive=None, required_together=None, required_one_of=None, required_if=None,
                  required_by=None):
        """Add constraints; returns the spec."""
        self.mutually_exclusive.extend(mutually_exclusive or [])
        self.required_together.extend(required_together or [])
        self.required_one_of.extend(required_one_of or [])
        self.required_if.extend(required_if or [])
        for name, needs in (required_by or {}).items():
            self.required_by[name] = list(dict.fromkeys(self.required_by.get(name, []) + list(needs)))
        return self

    def merge(self, *others):
        """Add the options and constraints of other specs; returns this spec. Raises ValueError when an option is
        defined twice in different ways (a programming error, caught by the unit tests)."""
        for other in others:
            for name, definition in other.options.items():
                if name in self.options and self.options[name] != definition:
                    raise ValueError('option %s is defined twice, differently: %r and %r' % (
                        name, self.options[name], definition))
                self.options[name] = definition
            self.constrain(other.mutually_exclusive, other.required_together, other.required_one_of,
                           other.required_if, other.required_by)
        return self

    def module_kwargs(self):
        kwargs = dict(argument_spec=self.options)
        for name in CONSTRAINTS:
            value = getattr(self, name)
            if value:
                kwargs[name] = value
        return kwargs

    def create_module(self, module_class=AnsibleModule, supports_check_mode=True, **kwargs):
        """The module (an AnsibleModule, or `module_class`) of these options and constraints, check mode supported
        unless said otherwise."""
        for name in ('argument_spec',) + CONSTRAINTS:
            if name in kwargs:
                raise ValueError('%s belongs in the ArgumentSpec, not in create_module()' % name)
        return module_class(supports_check_mode=supports_check_mode, **dict(self.module_kwargs(), **kwargs))


# The shared options as specs (each documented by its doc fragment) --------------------------------------------------
def postgres_spec():
    """The connection options (doc fragment procgenie.dbops.postgres)."""
    from ansible_collections.procgenie.dbops.plugins.module_utils._connection import postgres_argument_spec
    return ArgumentSpec(postgres_argument_spec())


def client_spec():
    """The client-program options (doc fragment procgenie.dbops.postgres.CLIENTS)."""
    from ansible_collections.procgenie.dbops.plugins.module_utils._clients import client_argument_spec
    return ArgumentSpec(client_argument_spec())


def azure_spec(wait=False):
    """The Azure options (doc fragment procgenie.dbops.azure), with `timeout` for long-running operations when
    `wait` (procgenie.dbops.azure.WAIT)."""
    from ansible_collections.procgenie.dbops.plugins.module_utils import _azure
    spec = ArgumentSpec(_azure.azure_argument_spec())
    return spec.add(**_azure.azure_wait_argument_spec()) if wait else spec
