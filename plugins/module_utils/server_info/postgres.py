# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_server_info, provider postgres: facts read from the catalogs and statistics views of one server."""

from __future__ import annotations

from ansible_collections.procgenie.dbops.plugins.module_utils._clients import server_major
from ansible_collections.procgenie.dbops.plugins.module_utils._connection import sql
from ansible_collections.procgenie.dbops.plugins.module_utils._operation import SessionOperation

# The parameters the runbook's tuning and connection-pool tables name, plus what replication and archiving need.
RUNBOOK_SETTINGS = [
    'shared_buffers', 'effective_cache_size', 'work_mem', 'maintenance_work_mem', 'max_connections',
    'random_page_cost', 'effective_io_concurrency', 'wal_buffers', 'checkpoint_completion_target',
    'statement_timeout', 'idle_session_timeout', 'idle_in_transaction_session_timeout',
    'default_transaction_read_only', 'wal_level', 'archive_mode', 'max_wal_senders', 'hot_standby',
    'shared_preload_libraries',
]


def _iso(value):
    return value.isoformat() if value is not None and hasattr(value, 'isoformat') else value


def _clean(row):
    return dict((k, _iso(v)) for k, v in row.items())


def version_facts(session):
    row = session.row(sql.SQL("SELECT current_setting('server_version') AS server_version, "
                              "current_setting('server_version_num')::int AS server_version_num, version() AS full"))
    num = row['server_version_num']
    return dict(server_version=row['server_version'], server_version_num=num, major=server_major(num),
                minor=num % 100, full=row['full'])


def recovery_facts(session):
    in_recovery = session.scalar(sql.SQL('SELECT pg_is_in_recovery()'))
    if not in_recovery:
        row = session.row(sql.SQL(
            "SELECT pg_current_wal_lsn()::text AS current_wal_lsn, "
            "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline"))
        return dict(in_recovery=False, timeline=row['timeline'], current_wal_lsn=row['current_wal_lsn'],
                    wal_receiver=None, replay=None)
    replay = session.row(sql.SQL(
        "SELECT pg_last_wal_receive_lsn()::text AS receive_lsn, pg_last_wal_replay_lsn()::text AS replay_lsn, "
        "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS replay_pending_bytes, "
        "pg_last_xact_replay_timestamp() AS last_replayed_xact_time, "
        "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
        "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8 AS replay_lag_seconds, "
        "(SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline"))
    receiver = session.row(sql.SQL(
        "SELECT status, received_tli, flushed_lsn::text AS flushed_lsn, latest_end_lsn::text AS latest_end_lsn, "
        "latest_end_time, slot_name, sender_host, sender_port FROM pg_stat_wal_receiver"))
    timeline = (receiver or {}).get('received_tli') or replay.pop('checkpoint_timeline')
    replay.pop('checkpoint_timeline', None)
    return dict(in_recovery=True, timeline=timeline, current_wal_lsn=None,
                wal_receiver=_clean(receiver) if receiver else None, replay=_clean(replay))


def archiving_facts(session, in_recovery=False):
    row = session.row(sql.SQL(
        "SELECT current_setting('archive_mode') AS archive_mode, "
        "current_setting('archive_command') <> '' AS archive_command_set, archived_count, last_archived_wal, "
        "last_archived_time, failed_count, last_failed_wal, last_failed_time, stats_reset FROM pg_stat_archiver"))
    facts = _clean(row)
    # archive_mode=on archives only on a primary; a standby archives only with archive_mode=always
    facts['enabled'] = row['archive_mode'] == 'always' or (row['archive_mode'] == 'on' and not in_recovery)
    facts['healthy'] = facts['enabled'] and (
        row['last_failed_time'] is None
        or (row['last_archived_time'] is not None and row['last_archived_time'] >= row['last_failed_time']))
    return facts


def replication_facts(session, in_recovery):
    current = sql.SQL('pg_last_wal_receive_lsn()' if in_recovery else 'pg_current_wal_lsn()')
    standbys = session.rows(sql.SQL(
        "SELECT pid, application_name, client_addr::text AS client_addr, state, sync_state, "
        "sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn, flush_lsn::text AS flush_lsn, "
        "replay_lsn::text AS replay_lsn, pg_wal_lsn_diff({current}, sent_lsn)::bigint AS send_lag_bytes, "
        "pg_wal_lsn_diff({current}, replay_lsn)::bigint AS lag_bytes, "
        "extract(epoch FROM write_lag)::float8 AS write_lag_seconds, "
        "extract(epoch FROM flush_lag)::float8 AS flush_lag_seconds, "
        "extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds, backend_start "
        "FROM pg_stat_replication ORDER BY application_name").format(current=current))
    slots = session.rows(sql.SQL(
        "SELECT slot_name, slot_type, database, active, restart_lsn::text AS restart_lsn, wal_status, "
        "pg_wal_lsn_diff({current}, restart_lsn)::bigint AS retained_bytes "
        "FROM pg_replication_slots ORDER BY slot_name").format(current=current))
    return [_clean(r) for r in standbys], [_clean(r) for r in slots]


def database_facts(session):
    return session.rows(sql.SQL(
        "SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding, "
        "d.datallowconn AS allow_connections, "
        "CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) END AS size_bytes "
        "FROM pg_database d WHERE NOT d.datistemplate ORDER BY d.datname"))


def extension_facts(session):
    return session.rows(sql.SQL(
        "SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema FROM pg_extension e "
        "JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY e.extname"))


def setting_facts(session, names):
    rows = session.rows(sql.SQL(
        "SELECT name, setting, unit, current_setting(name) AS value, source, context, vartype, boot_val, reset_val, "
        "pending_restart FROM pg_settings WHERE name = ANY(%s) ORDER BY name"), (list(names),))
    return dict((r.pop('name'), r) for r in rows)


def gather(session, settings=None):
    """Every fact of pg_server_info for the postgres provider."""
    facts = dict(provider='postgres', version=version_facts(session))
    facts.update(recovery_facts(session))
    facts['archiving'] = archiving_facts(session, facts['in_recovery'])
    facts['replication'], facts['replication_slots'] = replication_facts(session, facts['in_recovery'])
    facts['databases'] = database_facts(session)
    facts['extensions'] = extension_facts(session)
    wanted = settings if settings is not None else RUNBOOK_SETTINGS
    facts['settings'] = setting_facts(session, wanted)
    facts['unknown_settings'] = sorted(set(wanted) - set(facts['settings']))
    return facts


class Facts(SessionOperation):
    """pg_server_info (provider postgres): reads only, so the plan is the result."""

    def plan(self):
        return dict(gather(self.open(), self.params.get('settings')), changed=False)

    def apply(self, plan):
        return plan
