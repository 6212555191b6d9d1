# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_integrity_check: physical corruption found by amcheck through pg_amcheck. PRIVATE to the collection.

* `amcheck`: pg_amcheck's command line (database as a quoted connection string, schemas and tables as literal
  patterns, --jobs, --heapallindexed, --parent-check) and its report parsed into one problem per item (pure).
* `check`: the options and the operation (plan: read and refuse, check where amcheck is installed; apply: create
  amcheck where asked, check there).

pg_amcheck checks tables (verify_heapam), their TOAST tables and their btree indexes (bt_index_check, or
bt_index_parent_check with the parent check). amcheck proves corruption when it finds it; a clean run does not prove
its absence. The server's own page checksums (data_checksums) and its pg_stat_database.checksum_failures counter are
reported beside: a damaged page with checksums on fails as "invalid page in block N".
"""
