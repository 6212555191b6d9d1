"""_artifacts: names, atomic publishing, checksums, manifests, retention selection."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.procgenie.dbops.plugins.module_utils import _artifacts as art

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2026, 2, 8, 12, 0, 5, tzinfo=UTC)


def test_default_names_follow_the_runbook():
    assert art.artifact_name('full', 'custom', WHEN) == 'backup_20260208_120005.dump'
    assert art.artifact_name('schema_only', 'plain', WHEN) == 'schema_20260208_120005.sql'
    assert art.artifact_name('full', 'directory', WHEN) == 'backup_20260208_120005.dir'
    assert art.artifact_name('tables', 'custom', WHEN, 'requisitions_backup{ext}') == 'requisitions_backup.dump'
    other_zone = WHEN.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert art.artifact_name('full', 'custom', other_zone) == 'backup_20260208_120005.dump'  # always UTC
    assert art.artifact_name('tenant', 'plain', WHEN, '{database}_{tenant}_{timestamp}{ext}', 'db', 't1') == \
        'db_t1_20260208_120005.sql'


@pytest.mark.parametrize('template', ['../x_{timestamp}', 'a/b{ext}', '.hidden{ext}', '{nope}', '{', '',
                                      'x.manifest.json'])
def test_bad_name_templates_are_refused(template):
    with pytest.raises(art.ArtifactError):
        art.artifact_name('full', 'custom', WHEN, template or '{kind}/{ext}')


def test_temp_names_are_hidden_and_recognised(tmp_path):
    final = str(tmp_path / 'backup_1.dump')
    tmp = art.temp_path(final, token='host-123-abcdef01')
    assert os.path.basename(tmp) == '.backup_1.dump.partial-host-123-abcdef01'
    assert art.parse_partial(os.path.basename(tmp)) == ('host', 123)
    assert art.parse_partial('backup_1.dump') is None
    open(tmp, 'w').close()
    open(art.temp_path(final, token='host-456-abcdef02'), 'w').close()
    open(art.temp_path(final, token='other-789-abcdef03'), 'w').close()
    stale = art.stale_partials(str(tmp_path), host='host', alive=lambda pid: pid == 456)
    assert stale == [tmp]


def test_checksum_of_a_file_and_of_a_folder(tmp_path):
    path = tmp_path / 'a.dump'
    path.write_bytes(b'hello')
    digest, files, size = art.checksum(str(path))
    assert digest == '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824' and files is None
    assert size == 5
    folder = tmp_path / 'd.dir'
    folder.mkdir()
    (folder / 'toc.dat').write_bytes(b'toc')
    (folder / '3001.dat.gz').write_bytes(b'data')
    digest, files, size = art.checksum(str(folder))
    assert set(files) == {'toc.dat', '3001.dat.gz'} and size == 7
    assert digest == art.combine_digests(files)
    manifest = dict(sha256=digest, files=files, size_bytes=size)
    assert art.verify_checksum(str(folder), manifest) == []
    (folder / 'toc.dat').write_bytes(b'TOC')
    problems = art.verify_checksum(str(folder), manifest)
    assert any('file toc.dat has SHA-256' in p for p in problems)
    os.unlink(str(folder / '3001.dat.gz'))
    assert any('file 3001.dat.gz is missing' in p for p in art.verify_checksum(str(folder), manifest))
    assert art.verify_checksum(str(tmp_path / 'none'), manifest) == ['artifact %s does not exist' % (tmp_path / 'none')]


def _publish(folder, name, end, series='s', verified=False):
    final = os.path.join(folder, name)
    tmp = art.temp_path(final)
    with open(tmp, 'w') as handle:
        handle.write(name)
    manifest = dict(tool=art.MANIFEST_TOOL, kind='full', format='custom', series=series, end_time=art.iso(end),
                    sha256=art.sha256_file(tmp), verifications=[dict(result='passed')] if verified else [])
    art.publish(tmp, final, manifest)
    return final


def test_publish_writes_the_manifest_then_renames(tmp_path):
    final = _publish(str(tmp_path), 'backup_1.dump', WHEN)
    assert sorted(os.listdir(str(tmp_path))) == ['backup_1.dump', 'backup_1.dump.manifest.json']
    assert art.read_manifest(final)['sha256'] == art.sha256_file(final)
    with pytest.raises(art.ArtifactError):  # never overwrites
        _publish(str(tmp_path), 'backup_1.dump', WHEN)
    # a manifest whose artifact is gone is not listed; a foreign JSON is not a manifest
    (tmp_path / 'lost.dump.manifest.json').write_text(json.dumps(dict(tool=art.MANIFEST_TOOL, end_time='x')))
    (tmp_path / 'other.dump').write_text('x')
    (tmp_path / 'other.dump.manifest.json').write_text('{"tool": "someone else"}')
    assert [art.artifact_of_manifest(p) for p, _m in art.list_manifests(str(tmp_path))] == [final]
    with pytest.raises(art.ArtifactError, match='not a pg_backup manifest'):
        art.read_manifest(str(tmp_path / 'other.dump'))
    with pytest.raises(art.ArtifactError, match='No manifest'):
        art.read_manifest(str(tmp_path / 'nothing.dump'))


def test_record_verification_and_newest(tmp_path):
    first = _publish(str(tmp_path), 'a.dump', WHEN)
    second = _publish(str(tmp_path), 'b.dump', WHEN + datetime.timedelta(hours=1))
    assert art.newest_artifact(str(tmp_path)) == second
    assert not art.is_verified(art.read_manifest(first))
    art.record_verification(first, dict(result='passed', time='t'))
    assert art.is_verified(art.read_manifest(first))
    art.record_verification(first, dict(result='failed', time='t2'))
    assert not art.is_verified(art.read_manifest(first))


def entries(*specs):
    return [dict(path=p, end_time=WHEN - datetime.timedelta(days=age), verified=v) for p, age, v in specs]


def test_retention_keep_last():
    items = entries(('a', 10, False), ('b', 5, False), ('c', 1, False), ('d', 0, False))
    assert art.select_for_deletion(items, WHEN, keep_last=2) == (['b', 'a'], ['d', 'c'])


def test_retention_max_age_and_both():
    items = entries(('a', 40, False), ('b', 20, False), ('c', 1, False))
    assert art.select_for_deletion(items, WHEN, max_age_days=35)[0] == ['a']
    # with both, an artifact goes only when neither rule keeps it
    assert art.select_for_deletion(items, WHEN, keep_last=1, max_age_days=7)[0] == ['b', 'a']
    assert art.select_for_deletion(items, WHEN, keep_last=3, max_age_days=7)[0] == []


def test_retention_never_deletes_the_newest_or_the_newest_verified():
    items = entries(('old_verified', 60, True), ('older_verified', 90, True), ('mid', 30, False), ('new', 50, False))
    delete, keep = art.select_for_deletion(items, WHEN, max_age_days=1)
    assert 'mid' in keep and 'old_verified' in keep  # newest overall and newest verified
    assert sorted(delete) == ['new', 'older_verified']
    assert art.select_for_deletion(items, WHEN) == ([], ['mid', 'new', 'old_verified', 'older_verified'])
    assert art.select_for_deletion([], WHEN, keep_last=1) == ([], [])


def test_retention_entries_are_per_series(tmp_path):
    _publish(str(tmp_path), 'a.dump', WHEN, series='full')
    _publish(str(tmp_path), 'b.sql', WHEN, series='schema', verified=True)
    found = art.retention_entries(str(tmp_path), 'schema')
    assert [os.path.basename(e['path']) for e in found] == ['b.sql'] and found[0]['verified'] is True
    assert art.series_key('db', 'tables', ['b', 'a'], None, 'custom') == 'db|tables|custom|a,b'


@pytest.mark.parametrize('template', ['{timestamp.x}', '{timestamp[99]}', '{timestamp:d}', '{0}', 'a\n{ext}',
                                      '{tenant}'])
def test_templates_that_break_format_are_refused_clearly(template):
    with pytest.raises(art.ArtifactError, match='name template'):
        art.artifact_name('full', 'custom', WHEN, template, tenant='a\nb')


def test_folders_and_files_are_private(tmp_path):
    folder = str(tmp_path / 'a' / 'b')
    art.check_writable_folder(folder)
    assert os.stat(folder).st_mode & 0o777 == 0o700 and os.stat(str(tmp_path / 'a')).st_mode & 0o777 == 0o700
    with pytest.raises(art.ArtifactError, match='must not be empty'):
        art.check_writable_folder('')
    final = _publish(folder, 'x.dump', WHEN)
    assert os.stat(final).st_mode & 0o777 == 0o600
    assert os.stat(art.manifest_path(final)).st_mode & 0o777 == 0o600
    art.record_verification(final, dict(result='passed'))
    assert os.stat(art.manifest_path(final)).st_mode & 0o777 == 0o600
    with art.private_files():
        open(os.path.join(folder, 'y'), 'w').close()
    assert os.stat(os.path.join(folder, 'y')).st_mode & 0o777 == 0o600


GOOD = dict(tool=art.MANIFEST_TOOL, kind='full', format='custom', series='s', end_time='2026-02-08T12:00:05Z',
            sha256='0' * 64, size_bytes=3, files=None, row_counts={'public.a': 1}, rls={}, verifications=[])
GOOD_BASE = dict(GOOD, kind='base', format='tar', start_lsn='0/2000028', end_lsn='0/2000100', timeline=1, major=15,
                 system_identifier='7000000000000000001', verified=True)


@pytest.mark.parametrize('base, field, value', [
    (GOOD, 'end_time', 'garbage'), (GOOD, 'end_time', 12345), (GOOD, 'files', ['a']), (GOOD, 'row_counts', ['a']),
    (GOOD, 'rls', ['public.a']), (GOOD, 'verifications', 'x'), (GOOD, 'sha256', None), (GOOD, 'kind', 'other'),
    (GOOD, 'row_counts', {'public.a': 'many'}), (GOOD_BASE, 'end_lsn', None), (GOOD_BASE, 'end_lsn', 'garbage'),
    (GOOD_BASE, 'timeline', 'one'), (GOOD_BASE, 'major', 'fifteen'), (GOOD_BASE, 'start_time', 'x'),
])
def test_damaged_manifests_name_the_path_and_the_field(base, field, value):
    data = dict(base)
    if value is None:
        del data[field]
    else:
        data[field] = value
    with pytest.raises(art.ArtifactError) as info:
        art.validate_manifest(data, '/b/x.manifest.json')
    assert '/b/x.manifest.json' in str(info.value) and 'field %s' % field in str(info.value)


def test_valid_manifests_and_kinds():
    assert art.validate_manifest(dict(GOOD), 'p') and art.validate_manifest(dict(GOOD_BASE), 'p', 'base')
    with pytest.raises(art.ArtifactError, match='not of a base'):
        art.validate_manifest(dict(GOOD), 'p', 'base')
    with pytest.raises(art.ArtifactError, match='not a pg_backup manifest'):
        art.validate_manifest([GOOD], 'p')


def test_damaged_manifests_never_block_the_others(tmp_path):
    folder = str(tmp_path)
    good = _publish(folder, 'good.dump', WHEN)
    bad = _publish(folder, 'bad.dump', WHEN)
    with open(art.manifest_path(bad)) as handle:
        data = json.load(handle)
    data['end_time'] = 'garbage'
    with open(art.manifest_path(bad), 'w') as handle:
        json.dump(data, handle)
    skipped = []
    assert [e['path'] for e in art.retention_entries(folder, 's', skipped)] == [good]
    assert skipped and skipped[0][0] == art.manifest_path(bad) and 'field end_time' in skipped[0][1]
    assert 'field end_time' in art.skipped_messages(skipped)[0]
    with pytest.raises(art.ArtifactError, match='field end_time'):
        art.record_verification(bad, dict(result='passed'))
