# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The attribute descriptions; modules state their own support level.
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
'''

    # For modules that only read.
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This module only reads, so check mode runs it as usual.
  diff_mode:
    support: N/A
    details:
      - This module does not change anything.
'''

    # For modules that belong to the action group.
    ACTIONGROUP = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/procgenie.dbops.dbops) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - procgenie.dbops.dbops
'''
