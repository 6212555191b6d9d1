# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_table_diff: compare tables by key between a `source` server and the target (the module's login options).
PRIVATE to the collection (as every module_utils package).

For other modules (pg_row_restore)
----------------------------------
* ``source.source_spec(required=True)``: the `source` option (a dict: login_host, login_port, login_user,
  login_password (no_log), login_db, login_unix_socket, ssl_mode, ca_cert, ssl_cert, ssl_key, connect_params) as an
  ArgumentSpec to merge. Unset login_user, login_password, login_db and the ssl options come from the module's own
  login options (a restored copy has the same roles and database name). ``source.open_source(params, log)`` connects
  (a `_connection.Session`); ``source.source_params(params)`` gives the connection parameters.
* ``operation.DiffSessions(params, log, target=None).open()``: both sessions (the target opened from the login
  options unless given), each with ``compare.begin_snapshot``: fixed output settings (DateStyle ISO, TimeZone UTC,
  extra_float_digits 3, bytea_output hex, IntervalStyle postgres, jit off), ``row_security = off``, and a
  ``REPEATABLE READ READ ONLY`` transaction; ``.close()`` ends them.
* ``compare.compare_tables(source_session, target_session, tables, limit=100)``: ``tables`` a list of
  ``dict(table='public.orders', where=None or 'created_at < ...', key=None or ['id'])``; returns one entry per table::

    {table, key: [columns], where, method: key_range | key_hash, source_rows, target_rows, rows_fetched, levels,
     only_in_source: {count, keys: [[k1, ...], ...]},              # missing in the target
     only_in_target: {count, rows: [{key: [...], target_hash}]},
     changed:        {count, rows: [{key: [...], columns: [names], target_hash}]},
     truncated: bool}                                               # more keys than `limit` in a list

  Key values are the key columns' TEXT forms (``col::text``, under the settings above), in key order; compare them
  in SQL as ``(k1, k2) = (%s, %s)`` (literals take the columns' types) or ``k::text = %s``.
  ``target_hash`` = ``md5(ROW(<every column in attnum order>)::text)`` of the target's row in the target's snapshot
  (under the settings above: pg_row_restore recomputes it in a session with ``begin_snapshot``'s settings).
  Raises ``compare.TableDiffError`` (no key, columns differ, row-level security would hide rows, bad where).

The algorithm
-------------
Both sessions read in their own REPEATABLE READ snapshot; every aggregate is computed on the servers, the two
sides at the same time (a thread each). Per table:

* integer single-column key (``key_range``): min and max of the key; the first level splits [min, max] into about
  rows/256 ranges (at most 16384) and returns per range ``count(*)`` and a hash of its rows in ONE scan (a
  parallel plan where the server allows one); ranges whose
  count or hash differ are split into 64 sub-ranges each (one query per level and side, index range scans of the
  differing ranges only), until a range holds at most 16 rows on each side (a leaf);
* any other key (text, uuid, composite: ``key_hash``): the same on buckets of a 64-bit hash of the key (the first
  level by its low bits, each further level 6 more bits, a scan of the differing buckets); collation-independent;
* only the rows of differing leaves are fetched (key, md5 of the row, md5 of each column): ``rows_fetched`` grows
  with the number of differences, not with the size of the table.

Range checksums (PostgreSQL 14+ on both sides): per row, the sum of each column's hash by its type's default hash
function (``hashtext(col::text)`` for types without one taking the column's own type) weighted by the column's
position, as bigint; per range ``count(*)`` and ``bit_xor`` of those (no numeric sums: the first level is one cheap
scan). Values equal by their type's equality hash equal (numeric 1.0 and 1.00). Before 14: ``md5(ROW(columns)::text)``
folded to bigint and summed. Key-hash buckets use ``hash_record_extended(ROW(key), 0)``. Fetched leaf rows are
compared by ``md5(ROW(columns)::text)`` and per column ``md5(col::text)``. The comparison row has the target's column
order by name; both tables must
have the same columns and types, and the same primary key (or the `key` given).

Why not reladiff (the maintained fork of data-diff, PyPI reladiff 0.6.0): its segment checksums run as separate
queries in a thread pool of autocommit connections (no one snapshot per side: rows changed during the diff appear
as differences), it cannot set ``row_security = off`` (a policy would silently compare a subset), it opens its own
connections from a URI (the password on a URI string, libpq options and the collection's connection options not
carried), it brings sqeleton, runtype, rich, click, dsnparse and toml into every module run, and its result has no
changed columns or row hashes pg_row_restore needs to guard its updates. bench/table_diff.py runs it beside.
"""
