# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to build a module's `diff`. PRIVATE to the collection (as every `_` module).

    tracker = DifferenceTracker()
    tracker.add('retention_days', before=7, after=35)
    tracker.add('artifacts', before=[], after=[path])
    result['diff'] = tracker.diff()          # {'before': {...}, 'after': {...}}
    result['changed'] = tracker.has_difference()
"""

from __future__ import annotations

import copy


class DifferenceTracker(object):
    """Before/after values by name, in the order they were added. `active=False` adds a value that is shown in the
    diff but is not a difference by itself (context, such as the database a change happens in)."""

    def __init__(self):
        self._items = []

    def add(self, name, before=None, after=None, active=True):
        self._items = [item for item in self._items if item['name'] != name]
        self._items.append(dict(name=name, before=copy.deepcopy(before), after=copy.deepcopy(after), active=active))
        return self

    def merge(self, other):
        for item in other._items:
            self.add(item['name'], item['before'], item['after'], item['active'])
        return self

    def has_difference(self, name=None):
        return any(item['active'] and item['before'] != item['after']
                   for item in self._items if name is None or item['name'] == name)

    def differences(self):
        """[{name, before, after}] of the values that differ."""
        return [dict(name=i['name'], before=i['before'], after=i['after'])
                for i in self._items if i['active'] and i['before'] != i['after']]

    def diff(self, only_differences=False, created=False):
        """Ansible's diff: {'before': {name: value}, 'after': {name: value}}. `created`: the object does not exist
        before the change, so `before` is empty rather than a value per name."""
        items = [i for i in self._items if not only_differences or (i['active'] and i['before'] != i['after'])]
        return dict(before={} if created else dict((i['name'], i['before']) for i in items),
                    after=dict((i['name'], i['after']) for i in items))


def text_diff(before_lines, after_lines):
    """Ansible's diff of two texts given as lists of lines (each shown on a line of its own)."""
    def text(lines):
        return ''.join('%s\n' % line for line in lines)
    return dict(before=text(before_lines), after=text(after_lines))
