# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup artifacts on disk: names, temp-name-then-rename, SHA-256, manifests, retention selection.

Everything that decides (names, retention) is pure and unit-tested; the file operations are small and atomic:
an artifact is written under a hidden temporary name in its final folder and renamed only once it is complete and
its manifest (with the checksum) is written, so a final name never holds a half-written backup.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import uuid

MANIFEST_SUFFIX = '.manifest.json'
MANIFEST_TOOL = 'procgenie.dbops.pg_backup'
MANIFEST_VERSION = 1
PARTIAL_MARK = '.partial-'
CHUNK = 1024 * 1024

# kind -> name prefix of the runbook's commands (backup_..., schema_...)
KIND_PREFIX = {'full': 'backup', 'schema_only': 'schema', 'tables': 'tables', 'tenant': 'tenant'}
# format -> file extension (the directory format makes a folder)
FORMAT_EXT = {'custom': '.dump', 'plain': '.sql', 'directory': '.dir'}
DEFAULT_NAME = '{prefix}_{timestamp}{ext}'
NAME_FIELDS = ('prefix', 'timestamp', 'ext', 'kind', 'format', 'database', 'tenant')


class ArtifactError(Exception):
    """A problem with an artifact or its manifest; the message says which file and why."""


# ---------------------------------------------------------------- time
def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    """ISO-8601 UTC with a Z, seconds precision plus microseconds when present."""
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).isoformat().replace('+00:00', 'Z')


def parse_iso(text):
    if not text:
        return None
    moment = datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


# ---------------------------------------------------------------- names
def artifact_name(kind, fmt, when, template=None, database='', tenant=''):
    """The artifact's file name from a template (runbook default: backup_YYYYMMDD_HHMMSS.dump, schema_....sql).

    Raises ArtifactError for a template that names an unknown field or makes a path rather than a file name."""
    template = template or DEFAULT_NAME
    fields = dict(prefix=KIND_PREFIX[kind], timestamp=when.astimezone(datetime.timezone.utc).strftime('%Y%m%d_%H%M%S'),
                  ext=FORMAT_EXT[fmt], kind=kind, format=fmt, database=database or '', tenant=tenant or '')
    try:
        name = template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise ArtifactError('name template %r is not valid (fields: %s): %s'
                            % (template, ', '.join('{%s}' % f for f in NAME_FIELDS), exc))
    if not name or '/' in name or '\x00' in name or name.startswith('.') or name.endswith(MANIFEST_SUFFIX):
        raise ArtifactError('name template %r gives %r, which is not a plain file name (no "/", not hidden, '
                            'not ending in %s)' % (template, name, MANIFEST_SUFFIX))
    return name


def manifest_path(artifact_path):
    return artifact_path.rstrip('/') + MANIFEST_SUFFIX


def artifact_of_manifest(path):
    return path[:-len(MANIFEST_SUFFIX)]


def temp_path(final_path, token=None):
    """Hidden temporary name beside the final one, carrying host and pid so stale ones can be recognised."""
    folder, name = os.path.split(final_path)
    token = token or '%s-%d-%s' % (re.sub(r'[^A-Za-z0-9_.]', '_', socket.gethostname()), os.getpid(),
                                   uuid.uuid4().hex[:8])
    return os.path.join(folder, '.%s%s%s' % (name, PARTIAL_MARK, token))


def parse_partial(name):
    """(host, pid) of a temporary name made by temp_path(), or None."""
    match = re.match(r'^\..+%s(.+)-(\d+)-[0-9a-f]{8}$' % re.escape(PARTIAL_MARK), name)
    if not match:
        return None
    return match.group(1), int(match.group(2))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def stale_partials(folder, host=None, alive=pid_alive):
    """Temporary artifacts that a killed run on this host left behind in folder (its process is gone)."""
    host = host or re.sub(r'[^A-Za-z0-9_.]', '_', socket.gethostname())
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in sorted(names):
        parsed = parse_partial(name)
        if parsed and parsed[0] == host and not alive(parsed[1]):
            found.append(os.path.join(folder, name))
    return found


def remove_path(path):
    """Remove a file or a folder; missing is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def fsync_path(path):
    """Flush a file (or every file of a folder) and the folder holding it to disk."""
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(root, f) for root, _dirs, files in os.walk(path) for f in files] + [path]
    for item in paths + [os.path.dirname(os.path.abspath(path))]:
        try:
            fd = os.open(item, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def check_writable_folder(folder):
    """Raise ArtifactError unless folder exists (or can be made) and we can write in it."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ArtifactError('Cannot create the backup folder %s: %s' % (folder, exc.strerror or exc))
    if not os.path.isdir(folder):
        raise ArtifactError('%s is not a folder' % folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ArtifactError('The backup folder %s is not writable by this user' % folder)


# ---------------------------------------------------------------- checksums
def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def combine_digests(files):
    """One SHA-256 for a set of files: of the sorted lines "<sha256>  <relative path>\\n" (like sha256sum)."""
    text = ''.join('%s  %s\n' % (files[name], name) for name in sorted(files))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def checksum(path):
    """(sha256, files, size_bytes) of an artifact: a file, or a folder (every file hashed, then combined)."""
    if os.path.isdir(path):
        files = {}
        size = 0
        for root, _dirs, names in os.walk(path):
            for name in names:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, path)
                files[rel] = sha256_file(full)
                size += os.path.getsize(full)
        return combine_digests(files), files, size
    return sha256_file(path), None, os.path.getsize(path)


def verify_checksum(path, manifest):
    """A list of problems (empty when the artifact matches its manifest)."""
    if not os.path.exists(path):
        return ['artifact %s does not exist' % path]
    try:
        digest, files, size = checksum(path)
    except OSError as exc:
        return ['cannot read %s: %s' % (path, exc)]
    problems = []
    if manifest.get('files') is not None or files is not None:
        wanted = manifest.get('files') or {}
        files = files or {}
        for name in sorted(set(wanted) | set(files)):
            if name not in files:
                problems.append('file %s is missing' % name)
            elif name not in wanted:
                problems.append('file %s is not in the manifest' % name)
            elif files[name] != wanted[name]:
                problems.append('file %s has SHA-256 %s, the manifest says %s' % (name, files[name], wanted[name]))
    if digest != manifest.get('sha256'):
        problems.append('SHA-256 is %s, the manifest says %s' % (digest, manifest.get('sha256')))
    if manifest.get('size_bytes') is not None and size != manifest.get('size_bytes'):
        problems.append('size is %s bytes, the manifest says %s' % (size, manifest.get('size_bytes')))
    return problems


# ---------------------------------------------------------------- manifests
def write_json_atomic(path, data):
    """Write JSON under a temporary name, flush it, rename it over path."""
    tmp = temp_path(path)
    try:
        with open(tmp, 'w') as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise
    fsync_path(path)


def read_manifest(path):
    """The manifest of an artifact (path of the artifact or of the manifest). Raises ArtifactError."""
    mpath = path if path.endswith(MANIFEST_SUFFIX) else manifest_path(path)
    try:
        with open(mpath) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ArtifactError('No manifest %s: the artifact was not made by pg_backup, or its backup did not finish'
                            % mpath)
    except (OSError, ValueError) as exc:
        raise ArtifactError('Cannot read the manifest %s: %s' % (mpath, exc))
    if not isinstance(data, dict) or data.get('tool') != MANIFEST_TOOL:
        raise ArtifactError('%s is not a pg_backup manifest' % mpath)
    return data


def publish(tmp_artifact, final_artifact, manifest):
    """Make a finished artifact visible: manifest first (it holds the checksum), then the artifact's rename.

    Until the rename nothing is under the artifact's final name; a manifest without its artifact is ignored by
    list_manifests() and removed by the next retention."""
    if os.path.lexists(final_artifact):
        raise ArtifactError('%s already exists; refusing to overwrite it' % final_artifact)
    fsync_path(tmp_artifact)
    write_json_atomic(manifest_path(final_artifact), manifest)
    try:
        os.rename(tmp_artifact, final_artifact)
    except OSError:
        remove_path(manifest_path(final_artifact))
        raise
    fsync_path(final_artifact)


def list_manifests(folder):
    """(manifest path, manifest) of every complete pg_backup artifact in folder, oldest first."""
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        if not name.endswith(MANIFEST_SUFFIX) or name.startswith('.'):
            continue
        path = os.path.join(folder, name)
        try:
            data = read_manifest(path)
        except ArtifactError:
            continue
        if not os.path.exists(artifact_of_manifest(path)):
            continue
        found.append((path, data))
    found.sort(key=lambda item: (item[1].get('end_time') or '', item[0]))
    return found


def newest_artifact(folder, series=None):
    """Path of the newest complete artifact in folder (of a series when given), or None."""
    entries = [(p, m) for p, m in list_manifests(folder) if series is None or m.get('series') == series]
    return artifact_of_manifest(entries[-1][0]) if entries else None


def series_key(database, kind, tables=None, tenant=None, fmt=None):
    """Which artifacts retention compares with each other: same database, kind, tables/tenant and format."""
    parts = [database or '', kind, fmt or '']
    if tables:
        parts.append(','.join(sorted(tables)))
    if tenant:
        parts.append(str(tenant))
    return '|'.join(parts)


def last_verification(manifest):
    runs = manifest.get('verifications') or []
    return runs[-1] if runs else None


def is_verified(manifest):
    run = last_verification(manifest)
    return bool(run and run.get('result') == 'passed')


def record_verification(path, record):
    """Append a verification record to an artifact's manifest (atomically rewritten); returns the manifest."""
    data = read_manifest(path)
    data.setdefault('verifications', []).append(record)
    write_json_atomic(manifest_path(path), data)
    return data


# ---------------------------------------------------------------- retention
def select_for_deletion(entries, now, keep_last=None, max_age_days=None):
    """Pure retention choice. entries: dicts with `path`, `end_time` (datetime) and `verified` (bool).

    An artifact is kept when it is among the newest `keep_last`, or younger than `max_age_days`; with neither
    option nothing is deleted. The newest artifact and the newest verified artifact are always kept.
    Returns (delete, keep) as lists of paths, newest first."""
    ordered = sorted(entries, key=lambda e: (e['end_time'], e['path']), reverse=True)
    if not ordered or (keep_last is None and max_age_days is None):
        return [], [e['path'] for e in ordered]
    protected = {ordered[0]['path']}
    verified = [e for e in ordered if e.get('verified')]
    if verified:
        protected.add(verified[0]['path'])
    delete, keep = [], []
    for index, entry in enumerate(ordered):
        reasons = []
        if keep_last is not None and index < keep_last:
            reasons.append('keep_last')
        if max_age_days is not None and now - entry['end_time'] <= datetime.timedelta(days=max_age_days):
            reasons.append('max_age_days')
        if reasons or entry['path'] in protected:
            keep.append(entry['path'])
        else:
            delete.append(entry['path'])
    return delete, keep


def retention_entries(folder, series):
    """The entries select_for_deletion() needs, for one series of artifacts in folder."""
    entries = []
    for path, data in list_manifests(folder):
        if data.get('series') != series:
            continue
        entries.append(dict(path=artifact_of_manifest(path), end_time=parse_iso(data.get('end_time')),
                            verified=is_verified(data)))
    return entries


def delete_artifact(path):
    """Remove an artifact, then its manifest (a manifest left without its artifact is never listed)."""
    remove_path(path)
    remove_path(manifest_path(path))
