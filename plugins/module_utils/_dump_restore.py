# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pg_backup artifact restored with the stock tools (pg_restore for the custom and directory formats, psql for a
plain script): its format told and checked against its manifest, a plain script too new for the server refused, and
the restore itself. PRIVATE to the collection. pg_restore and pg_backup_verify restore artifacts with it, and
pg_migrate's rehearsal restores one into its scratch database."""

from __future__ import annotations

import os
import re
import tempfile

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import ClientError, pg_restore_argv, psql_argv

FORMATS = ('custom', 'directory', 'plain')


class RestoreFailure(Exception):
    """A restore could not run or failed; the message says why (pg_restore's or psql's stderr)."""


def plain_script_too_new(manifest, path, major):
    """Why a plain SQL artifact cannot run on a server of `major`, or None: pg_dump 17 and newer write
    `SET transaction_timeout`, which PostgreSQL before 17 refuses, so psql would stop at that line after the target
    was already dropped or cleaned. Told by the manifest's pg_dump_version, else by the script's preamble."""
    if major >= 17:
        return None
    version = (manifest or {}).get('pg_dump_version')
    writer = None
    try:
        writer = int(str(version).split('.', 1)[0]) if version else None
    except ValueError:
        writer = None
    if writer is None:
        with open(path, 'rb') as handle:
            head = handle.read(65536)
        if b'\nSET transaction_timeout' not in b'\n' + head:
            return None
    elif writer < 17:
        return None
    return ('%s was written by pg_dump %s, whose SQL sets transaction_timeout, which PostgreSQL %d does not know: '
            'make the backup with a pg_dump of PostgreSQL %d (pg_bindir), or restore into PostgreSQL 17 or newer'
            % (path, version or '17 or newer', major, major))


def uses_pg_restore(fmt):
    return fmt in ('custom', 'directory')


def without_fk_constraints(listing):
    """Pure: a pg_restore -l listing without its FK CONSTRAINT entries (commented out)."""
    lines = []
    for line in listing.splitlines():
        if not line.startswith(';') and ' FK CONSTRAINT ' in line:
            line = ';' + line
        lines.append(line)
    return '\n'.join(lines) + '\n'


def ordered_listing(listing, order):
    """Pure: a pg_restore -l listing with the TABLE DATA entries of `order` ((schema, name) pairs) moved, in that
    order, to where the first of them was; every other line stays as it is."""
    def entry_of(line):
        # "<dumpId>; <tableoid> <oid> TABLE DATA <schema> <name> <owner>"; names may hold spaces, owners rarely
        match = re.match(r'^\d+; \d+ \d+ TABLE DATA (.*) (\S+)$', line)
        if match is None:
            return None
        for schema, name in order:
            if match.group(1) == '%s %s' % (schema, name):
                return (schema, name)
        return None
    lines = listing.splitlines()
    found = dict()
    first = None
    for index, line in enumerate(lines):
        entry = entry_of(line)
        if entry is not None and entry not in found:
            found[entry] = line
            first = index if first is None else first
    if first is None:
        return listing if listing.endswith('\n') else listing + '\n'
    moved = set(found.values())
    out = []
    for index, line in enumerate(lines):
        if index == first:
            out.extend(found[t] for t in order if t in found)
        if line not in moved:
            out.append(line)
    return '\n'.join(out) + '\n'


FORGIVEN_ERRORS = ('cannot drop inherited constraint',)


def restore_errors(stderr):
    """Pure: pg_restore's error messages, split into real errors and the forgiven --clean ones."""
    errors, forgiven = [], []
    blocks = stderr.split('pg_restore: error: ')[1:]
    for block in blocks:
        text = block.split('pg_restore: warning: errors ignored')[0].strip()
        (forgiven if any(f in text for f in FORGIVEN_ERRORS) else errors).append(text)
    return errors, forgiven


def run_restore(runner, major, path, manifest, database, jobs=1, clean=False, data_only=False, tables=(),
                single_transaction=False, no_owner=False, skip_fk=False, timeout=None, disable_triggers=False,
                schemas=(), order=None, program=None):
    """Restore an artifact into database with the stock tools. Raises RestoreFailure with their stderr.

    `order` ((schema, name) pairs) makes pg_restore load those tables' data in that order (through --use-list,
    which pg_restore follows), so a data-only subset goes in foreign-key order. `program` is the pg_restore or psql
    already found (by a plan step); without it the program is looked up here."""
    fmt = manifest.get('format')
    list_file = None
    try:
        if uses_pg_restore(fmt):
            pg_restore = program or runner.find('pg_restore', min_major=major)
            if skip_fk or order:
                _rc, listing, _err = runner.run([pg_restore, '--list', path], timeout=timeout)
                if order:
                    listing = ordered_listing(listing, order)
                if skip_fk:
                    listing = without_fk_constraints(listing)
                handle, list_file = tempfile.mkstemp(prefix='dbops-restore-', suffix='.list')
                with os.fdopen(handle, 'w') as out:
                    out.write(listing)
            # --clean drops the partitions' inherited constraints one by one, which PostgreSQL refuses; those
            # errors are harmless (the parent's drop takes them), so a clean restore runs to the end and only
            # they are forgiven
            tolerant = clean and not single_transaction
            argv = pg_restore_argv(pg_restore, path, database, jobs=jobs, clean=clean, data_only=data_only,
                                   tables=tables, single_transaction=single_transaction, no_owner=no_owner,
                                   use_list=list_file, disable_triggers=disable_triggers, schemas=schemas,
                                   exit_on_error=not tolerant)
            if tolerant:
                rc, _out, err = runner.run(argv, database=database, timeout=timeout, check=False)
                errors, forgiven = restore_errors(err)
                if errors or (rc != 0 and not forgiven):
                    raise RestoreFailure('pg_restore failed (exit code %s): %s' % (
                        rc, '\n'.join(errors) or err.strip() or '(no error output)'))
                return forgiven
        else:
            if tables or clean or (data_only and manifest.get('kind') != 'tenant'):
                raise RestoreFailure('a plain SQL artifact is restored as a whole: tables, clean and data_only '
                                     'need the custom or directory format')
            argv = psql_argv(program or runner.find('psql', min_major=None), path, database,
                             single_transaction=single_transaction and manifest.get('kind') != 'tenant')
        runner.run(argv, database=database, timeout=timeout)
        return []
    except ClientError as exc:
        raise RestoreFailure(str(exc))
    finally:
        if list_file:
            os.unlink(list_file)


def detect_format(path):
    """custom, directory or plain, for a dump without a manifest."""
    if os.path.isdir(path):
        return 'directory'
    with open(path, 'rb') as handle:
        return 'custom' if handle.read(5) == b'PGDMP' else 'plain'


def artifact_format(manifest_format, found):
    """Pure: the format to restore with: what the artifact is (`found`, from detect_format), which a manifest must
    agree with. Raises RestoreFailure when the manifest says otherwise (a psql fed a custom dump, a pg_restore fed a
    script, would fail only after the target was prepared)."""
    if manifest_format is None:
        return found
    if manifest_format not in FORMATS:
        raise RestoreFailure('the manifest gives the format %r, not one of %s' % (manifest_format, ', '.join(FORMATS)))
    if manifest_format != found:
        raise RestoreFailure('the manifest says the artifact is in the %s format, but it is a %s%s; refusing to '
                             'restore it' % (manifest_format, found, ' dump' if found != 'plain' else ' SQL script'))
    return found
