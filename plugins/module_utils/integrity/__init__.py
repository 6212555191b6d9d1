# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_integrity_check: physical corruption found by amcheck, through pg_amcheck or the extension's functions. PRIVATE
to the collection.

* `amcheck`: pg_amcheck's command line (database as a quoted connection string, schemas and tables as literal
  patterns, --jobs, --heapallindexed, --parent-check) and its report parsed into one problem per item (pure).
* `functions`: the same checks without the program (method: functions, or auto when pg_amcheck is not found): the
  relations pg_amcheck would choose, verify_heapam and bt_index_check (or bt_index_parent_check) per relation in
  one session of the module, errors caught per relation, a cancel ending the check and its session.
* `check`: the options and the operation (plan: read and refuse, check where amcheck is installed; apply: create
  amcheck where asked, check there).

pg_amcheck checks tables (verify_heapam), their TOAST tables and their btree indexes (bt_index_check, or
bt_index_parent_check with the parent check). amcheck proves corruption when it finds it; a clean run does not prove
its absence. The server's own page checksums (data_checksums) and its pg_stat_database.checksum_failures counter are
reported beside: a damaged page with checksums on fails as "invalid page in block N".
"""
