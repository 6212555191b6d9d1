# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup artifacts on disk: names, temp-name-then-rename, SHA-256, manifests, retention selection.

Everything that decides (names, retention) is pure and unit-tested; the file operations are small and atomic:
an artifact is written under a hidden temporary name in its final folder and renamed only once it is complete and
its manifest (with the checksum) is written, so a final name never holds a half-written backup.
"""

from __future__ import annotations

import contextlib
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
FOLDER_MODE = 0o700  # backup folders this collection creates, and artifact folders
FILE_MODE = 0o600  # artifacts and manifests
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
    name = format_template(template, fields, NAME_FIELDS)
    if not plain_name(name) or name.endswith(MANIFEST_SUFFIX):
        raise ArtifactError('name template %r gives %r, which is not a plain file name (no "/", no control '
                            'character, not hidden, not ending in %s)' % (template, name, MANIFEST_SUFFIX))
    return name


def format_template(template, fields, names):
    """template.format(**fields), or ArtifactError naming the fields a template may use: an unknown field, an
    attribute or index of a field ({timestamp.x}), a bad format spec, a lone brace are all refused."""
    try:
        name = str(template).format(**fields)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise ArtifactError('name template %r is not valid (fields: %s): %s: %s'
                            % (template, ', '.join('{%s}' % f for f in names), type(exc).__name__, exc))
    return name


def plain_name(name):
    """Whether name is a plain, visible file name without control characters."""
    return bool(name) and name not in ('.', '..') and '/' not in name and not name.startswith('.') and \
        not any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in name)


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
    for name in _sorted_names(folder):
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
    """Raise ArtifactError unless folder exists (or can be made) and we can write in it.

    Folders this creates are FOLDER_MODE (0700: a backup holds every row); an existing folder keeps its mode."""
    if not folder or not str(folder).strip():
        raise ArtifactError('The backup folder must not be empty (an empty dest would mean the current directory)')
    missing = []
    parent = os.path.abspath(folder)
    while parent and not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    try:
        os.makedirs(folder, mode=FOLDER_MODE, exist_ok=True)
        for path in missing:
            os.chmod(path, FOLDER_MODE)
    except OSError as exc:
        raise ArtifactError('Cannot create the backup folder %s: %s' % (folder, exc.strerror or exc))
    if not os.path.isdir(folder):
        raise ArtifactError('%s is not a folder' % folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ArtifactError('The backup folder %s is not writable by this user' % folder)


def option_problem(params, what='backup'):
    """Pure: what is wrong with the options the backup modules share (keep_last, max_age_days, timeout, dest), or
    None; `what` names the artifact the newest of which retention always keeps."""
    if params.get('keep_last') is not None and params['keep_last'] < 1:
        return 'keep_last must be 1 or more (the newest %s is always kept)' % what
    if params.get('max_age_days') is not None and params['max_age_days'] < 0:
        return 'max_age_days must not be negative'
    if params.get('timeout') is not None and params['timeout'] < 1:
        return 'timeout must be 1 second or more (it was %s)' % params['timeout']
    if 'dest' in params and not str(params.get('dest') or '').strip():
        return 'dest must name the backup folder; an empty dest would write into the current directory'
    return None


def _sorted_names(folder):
    """The names in folder, sorted; none when it cannot be read (missing, not a folder)."""
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def check_folder_can_be_written(folder):
    """The read-only half of check_writable_folder, for a plan step: raise ArtifactError unless folder is a writable
    folder, or the nearest existing folder above it is one (so it can be made). Creates nothing."""
    if not folder or not str(folder).strip():
        raise ArtifactError('The backup folder must not be empty (an empty dest would mean the current directory)')
    path = os.path.abspath(folder)
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise ArtifactError('%s is not a folder' % folder)
        if not os.access(path, os.W_OK | os.X_OK):
            raise ArtifactError('The backup folder %s is not writable by this user' % folder)
        return
    parent = os.path.dirname(path)
    while parent and not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ArtifactError('Cannot create the backup folder %s: %s' % (folder, os.strerror(errno.ENOTDIR)))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArtifactError('Cannot create the backup folder %s: %s' % (folder, os.strerror(errno.EACCES)))


def prepare_folder(folder):
    """Before an artifact is written: the folder made (check_writable_folder) and the temporary artifacts of killed
    runs removed from it. Raises ArtifactError."""
    check_writable_folder(folder)
    for stale in stale_partials(folder):
        remove_path(stale)


@contextlib.contextmanager
def private_files():
    """While it lasts, files and folders this process and its children (pg_dump, pg_basebackup) create are readable
    by their owner only (umask 077): a temporary artifact is never readable by others, not even for a moment."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def restrict_modes(path):
    """FILE_MODE (0600) for an artifact file, FOLDER_MODE (0700) for an artifact folder and its subfolders with
    FILE_MODE for every file in it. Symbolic links are left alone (never followed)."""
    if os.path.islink(path):
        return
    if not os.path.isdir(path):
        os.chmod(path, FILE_MODE)
        return
    os.chmod(path, FOLDER_MODE)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), FOLDER_MODE)
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), FILE_MODE)


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
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), 'w') as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise
    fsync_path(path)


# ---------------------------------------------------------------- the manifest schema (the only one)
LOGICAL_KINDS = ('full', 'schema_only', 'tables', 'tenant')
BASE_KIND = 'base'
KINDS = LOGICAL_KINDS + (BASE_KIND,)
LSN_RE = re.compile(r'^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$')
SHA256_RE = re.compile(r'^[0-9a-f]{64}$')


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value):
    if not isinstance(value, str):
        return False
    try:
        parse_iso(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _dict_of(check):
    return lambda v: isinstance(v, dict) and all(isinstance(k, str) and check(x) for k, x in v.items())


def _list_of(check):
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _rls_table(value):
    return isinstance(value, dict) and isinstance(value.get('policies', []), list) and \
        all(isinstance(p, dict) and isinstance(p.get('name'), str) for p in value.get('policies', []))


def _is_str(value):
    return isinstance(value, str)


def _is_count(value):
    return _is_int(value) and value >= 0


def _is_lsn(value):
    return isinstance(value, str) and bool(LSN_RE.match(value))


# field -> (required, check, what it must be); None values of optional fields are accepted
COMMON_FIELDS = (
    ('kind', True, lambda v: v in KINDS, 'one of %s' % ', '.join(KINDS)),
    ('format', True, _is_str, 'a string'),
    ('series', True, _is_str, 'a string'),
    ('sha256', True, lambda v: isinstance(v, str) and bool(SHA256_RE.match(v)), 'a SHA-256 in hex'),
    ('end_time', True, _is_time, 'an ISO-8601 time'),
    ('start_time', False, _is_time, 'an ISO-8601 time'),
    ('size_bytes', False, _is_count, 'a whole number of bytes'),
    ('files', False, _dict_of(lambda x: isinstance(x, str) and bool(SHA256_RE.match(x))),
     'an object of file name -> SHA-256'),
    ('verifications', False, _list_of(lambda x: isinstance(x, dict)), 'a list of objects'),
)
LOGICAL_FIELDS = (
    ('format', True, lambda v: v in FORMAT_EXT, 'one of %s' % ', '.join(sorted(FORMAT_EXT))),
    ('database', False, _is_str, 'a string'),
    ('tables', False, _list_of(_is_str), 'a list of table names'),
    ('row_counts', False, _dict_of(lambda x: x is None or _is_count(x)), 'an object of table -> row count'),
    ('rls', False, _dict_of(_rls_table), 'an object of table -> {enabled, forced, policies}'),
    ('tenant', False, lambda v: isinstance(v, (str, int)) and not isinstance(v, bool), 'a string or an integer'),
    ('tenant_column', False, _is_str, 'a string'),
    ('tenant_filters', False, _dict_of(_is_str), 'an object of table -> column'),
    ('jobs', False, lambda v: _is_int(v) and v >= 1, 'a whole number, 1 or more'),
)
BASE_FIELDS = (
    ('format', True, lambda v: v in ('tar', 'plain'), 'tar or plain'),
    ('start_lsn', True, _is_lsn, 'an LSN such as 0/2000028'),
    ('end_lsn', True, _is_lsn, 'an LSN such as 0/2000100'),
    ('timeline', True, lambda v: _is_int(v) and v >= 1, 'a timeline number, 1 or more'),
    ('major', True, lambda v: _is_int(v) and v >= 9, 'a PostgreSQL major version number'),
    ('system_identifier', True, lambda v: isinstance(v, str) and v.isdigit(), 'a system identifier (digits)'),
    ('server_version_num', False, _is_count, 'a whole number'),
    ('verified', False, lambda v: isinstance(v, bool), 'true or false'),
)


def validate_manifest(data, path, kind=None):
    """The one check of a manifest against the schema this collection writes: raises ArtifactError naming the
    manifest's path and the first field that is missing or of the wrong type; returns data.

    kind: 'logical' (a pg_backup artifact), 'base' (a pg_base_backup folder), a manifest kind, or None (any)."""
    if not isinstance(data, dict) or data.get('tool') != MANIFEST_TOOL:
        raise ArtifactError('%s is not a pg_backup manifest' % path)
    fields = COMMON_FIELDS + (BASE_FIELDS if data.get('kind') == BASE_KIND else LOGICAL_FIELDS)
    for field, required, check, what in fields:
        if field not in data or data[field] is None:
            if required:
                raise ArtifactError('The manifest %s is damaged: field %s is missing (it must be %s)'
                                    % (path, field, what))
            continue
        if not check(data[field]):
            raise ArtifactError('The manifest %s is damaged: field %s is %s, it must be %s'
                                % (path, field, _show(data[field]), what))
    wanted = {'logical': LOGICAL_KINDS, 'base': (BASE_KIND,)}.get(kind, (kind,) if kind else KINDS)
    if data['kind'] not in wanted:
        raise ArtifactError('%s is the manifest of a %s artifact, not of a %s one'
                            % (path, data['kind'], ' or '.join(wanted)))
    return data


def _show(value):
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + '...'


def read_manifest(path, kind=None):
    """The validated manifest of an artifact (path of the artifact or of the manifest). Raises ArtifactError
    naming the path (and the field, for a damaged manifest). kind: see validate_manifest()."""
    mpath = path if path.endswith(MANIFEST_SUFFIX) else manifest_path(path)
    try:
        with open(mpath) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ArtifactError('No manifest %s: the artifact was not made by pg_backup, or its backup did not finish'
                            % mpath)
    except (OSError, ValueError) as exc:
        raise ArtifactError('Cannot read the manifest %s: %s' % (mpath, exc))
    return validate_manifest(data, mpath, kind)


load_manifest = read_manifest


def publish(tmp_artifact, final_artifact, manifest):
    """Make a finished artifact visible: manifest first (it holds the checksum), then the artifact's rename.

    Until the rename nothing is under the artifact's final name; a manifest without its artifact is ignored by
    list_manifests() and removed by the next retention."""
    if os.path.lexists(final_artifact):
        raise ArtifactError('%s already exists; refusing to overwrite it' % final_artifact)
    restrict_modes(tmp_artifact)
    fsync_path(tmp_artifact)
    write_json_atomic(manifest_path(final_artifact), manifest)
    try:
        os.rename(tmp_artifact, final_artifact)
    except OSError:
        remove_path(manifest_path(final_artifact))
        raise
    fsync_path(final_artifact)


def list_manifests(folder, skipped=None, kind=None):
    """(manifest path, manifest) of every complete artifact in folder with a valid manifest, oldest first.

    A foreign or damaged manifest never stops the others from being listed: it is left out, and when skipped is
    a list, (manifest path, reason) is appended to it. kind: see validate_manifest()."""
    found = []
    for name in _sorted_names(folder):
        if not name.endswith(MANIFEST_SUFFIX) or name.startswith('.'):
            continue
        path = os.path.join(folder, name)
        if not os.path.exists(artifact_of_manifest(path)):
            continue
        try:
            data = read_manifest(path, kind)
        except ArtifactError as exc:
            if skipped is not None:
                skipped.append((path, str(exc)))
            continue
        found.append((path, data))
    found.sort(key=lambda item: (parse_iso(item[1]['end_time']), item[0]))
    return found


def skipped_messages(skipped):
    """Warnings for the manifests list_manifests() skipped."""
    return ['skipped %s: %s' % (path, reason) if path not in reason else 'skipped: %s' % reason
            for path, reason in skipped]


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


def retention_entries(folder, series, skipped=None):
    """The entries select_for_deletion() needs, for one series of artifacts in folder (damaged manifests are
    skipped, see list_manifests())."""
    entries = []
    for path, data in list_manifests(folder, skipped):
        if data.get('series') != series:
            continue
        entries.append(dict(path=artifact_of_manifest(path), end_time=parse_iso(data.get('end_time')),
                            verified=is_verified(data)))
    return entries


def delete_artifact(path):
    """Remove an artifact, then its manifest (a manifest left without its artifact is never listed)."""
    remove_path(path)
    remove_path(manifest_path(path))
