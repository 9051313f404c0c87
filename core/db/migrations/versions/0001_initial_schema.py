"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import strongroom.core.db.types
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_logs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('occurred_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=True),
    sa.Column('record_id', sa.String(length=64), nullable=True),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_logs')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_logs_hash'))
    )
    with op.batch_alter_table('audit_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_logs_action'), ['action'], unique=False)
        batch_op.create_index('ix_audit_logs_actor_occurred', ['actor', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_logs_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index('ix_audit_logs_table_record', ['table_name', 'record_id'], unique=False)

    op.create_table('backup_configurations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('backup_type', sa.String(length=16), nullable=False),
    sa.Column('schedule', sa.String(length=120), nullable=True),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('compression_level', sa.Integer(), nullable=False),
    sa.Column('encryption_enabled', sa.Boolean(), nullable=False),
    sa.Column('retention', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('tables', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('verify_after', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backup_configurations')),
    sa.UniqueConstraint('name', name=op.f('uq_backup_configurations_name'))
    )
    op.create_table('change_counter',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_change_counter'))
    )
    op.create_table('data_keys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('purpose', sa.Enum('client', 'system', 'blind_index', 'audit_signing', name='keypurpose', native_enum=False, length=24), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=True),
    sa.Column('public_key', sa.LargeBinary(), nullable=True),
    sa.Column('kek_id', sa.String(length=32), nullable=False),
    sa.Column('state', sa.Enum('active', 'retired', 'destroyed', name='keystate', native_enum=False, length=24), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('destroyed_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_keys'))
    )
    with op.batch_alter_table('data_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_keys_client_id'), ['client_id'], unique=False)

    op.create_table('erasure_requests',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('requested_by', sa.String(length=120), nullable=False),
    sa.Column('approved_by', sa.String(length=120), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('executed_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_erasure_requests'))
    )
    with op.batch_alter_table('erasure_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasure_requests_client_id'), ['client_id'], unique=False)

    op.create_table('export_configurations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('schedule', sa.String(length=120), nullable=True),
    sa.Column('filters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('masking_profile', sa.String(length=40), nullable=False),
    sa.Column('encryption_enabled', sa.Boolean(), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_configurations')),
    sa.UniqueConstraint('name', name=op.f('uq_export_configurations_name'))
    )
    op.create_table('integrity_checks',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('check_type', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('expected', sa.String(length=200), nullable=True),
    sa.Column('actual', sa.String(length=200), nullable=True),
    sa.Column('evidence', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integrity_checks'))
    )
    op.create_table('job_runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_kind', sa.String(length=32), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled', name='jobstatus', native_enum=False, length=24), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('requested_by', sa.String(length=120), nullable=True),
    sa.Column('progress_done', sa.BigInteger(), nullable=False),
    sa.Column('progress_total', sa.BigInteger(), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('queued_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index('ix_job_runs_kind_started', ['job_kind', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_runs_status'), ['status'], unique=False)

    op.create_table('practices',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sync_version', sa.BigInteger(), nullable=False),
    sa.Column('data_checksum', sa.String(length=64), nullable=True),
    sa.Column('deleted_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_practices'))
    )
    with op.batch_alter_table('practices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_practices_sync_version'), ['sync_version'], unique=False)

    op.create_table('retention_policies',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('archive_after_days', sa.Integer(), nullable=True),
    sa.Column('delete_after_days', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_policies')),
    sa.UniqueConstraint('table_name', name=op.f('uq_retention_policies_table_name'))
    )
    op.create_table('security_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('occurred_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('username', sa.String(length=64), nullable=True),
    sa.Column('event_type', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_events'))
    )
    with op.batch_alter_table('security_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_security_events_event_type'), ['event_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_security_events_ip_address'), ['ip_address'], unique=False)
        batch_op.create_index(batch_op.f('ix_security_events_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_security_events_user_id'), ['user_id'], unique=False)

    op.create_table('sync_peers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('strategies', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('last_sync_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_peers')),
    sa.UniqueConstraint('name', name=op.f('uq_sync_peers_name'))
    )
    op.create_table('backups',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('configuration_id', sa.Uuid(), nullable=True),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('proof', sa.String(length=16), nullable=False),
    sa.Column('started_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('manifest_key', sa.String(length=200), nullable=True),
    sa.Column('change_watermark', sa.BigInteger(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('stored_bytes', sa.BigInteger(), nullable=True),
    sa.Column('row_count', sa.BigInteger(), nullable=True),
    sa.Column('verified_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('drilled_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['configuration_id'], ['backup_configurations.id'], name=op.f('fk_backups_configuration_id_backup_configurations')),
    sa.ForeignKeyConstraint(['parent_id'], ['backups.id'], name=op.f('fk_backups_parent_id_backups')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backups'))
    )
    op.create_table('exports',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('configuration_id', sa.Uuid(), nullable=True),
    sa.Column('requested_by', sa.String(length=120), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('filters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('location', sa.String(length=500), nullable=True),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['configuration_id'], ['export_configurations.id'], name=op.f('fk_exports_configuration_id_export_configurations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports'))
    )
    op.create_table('sync_conflicts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('peer_id', sa.Uuid(), nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('row_id', sa.Uuid(), nullable=False),
    sa.Column('base', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('local', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('remote', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolution', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('resolved_by', sa.String(length=120), nullable=True),
    sa.Column('resolved_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['peer_id'], ['sync_peers.id'], name=op.f('fk_sync_conflicts_peer_id_sync_peers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_conflicts'))
    )
    with op.batch_alter_table('sync_conflicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_conflicts_status'), ['status'], unique=False)

    op.create_table('sync_state',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('peer_id', sa.Uuid(), nullable=False),
    sa.Column('table_name', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('watermark', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['peer_id'], ['sync_peers.id'], name=op.f('fk_sync_state_peer_id_sync_peers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_state')),
    sa.UniqueConstraint('peer_id', 'table_name', 'direction', name=op.f('uq_sync_state_peer_id_table_name_direction'))
    )
    op.create_table('users',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('role', sa.Enum('ADMIN', 'MANAGER', 'PRACTITIONER', 'STAFF', 'admin', 'operator', 'auditor', name='role', native_enum=False, length=24), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('totp_secret_enc', sa.LargeBinary(), nullable=True),
    sa.Column('totp_enabled', sa.Boolean(), nullable=False),
    sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('practice_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sync_version', sa.BigInteger(), nullable=False),
    sa.Column('data_checksum', sa.String(length=64), nullable=True),
    sa.Column('deleted_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'], name=op.f('fk_users_practice_id_practices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_practice_id'), ['practice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_users_sync_version'), ['sync_version'], unique=False)

    op.create_table('auth_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('idle_timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('revoked_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=64), nullable=True),
    sa.Column('client_host', sa.String(length=255), nullable=True),
    sa.Column('client_addr', sa.String(length=64), nullable=True),
    sa.Column('client_name', sa.String(length=64), nullable=True),
    sa.Column('client_version', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_auth_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_auth_sessions_token_hash'))
    )
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('clients',
    sa.Column('key_id', sa.Uuid(), nullable=False),
    sa.Column('practitioner_id', sa.Uuid(), nullable=True),
    sa.Column('first_name_enc', sa.LargeBinary(), nullable=False),
    sa.Column('last_name_enc', sa.LargeBinary(), nullable=False),
    sa.Column('date_of_birth_enc', sa.LargeBinary(), nullable=True),
    sa.Column('ssn_enc', sa.LargeBinary(), nullable=True),
    sa.Column('email_enc', sa.LargeBinary(), nullable=True),
    sa.Column('phone_enc', sa.LargeBinary(), nullable=True),
    sa.Column('address_enc', sa.LargeBinary(), nullable=True),
    sa.Column('emergency_contact_enc', sa.LargeBinary(), nullable=True),
    sa.Column('medical_history_enc', sa.LargeBinary(), nullable=True),
    sa.Column('notes_enc', sa.LargeBinary(), nullable=True),
    sa.Column('email_bidx', sa.LargeBinary(length=16), nullable=True),
    sa.Column('ssn_last4_bidx', sa.LargeBinary(length=16), nullable=True),
    sa.Column('last_name_bidx', sa.LargeBinary(length=16), nullable=True),
    sa.Column('status', sa.Enum('ACTIVE', 'VIP', 'INACTIVE', name='clientstatus', native_enum=False, length=24), nullable=False),
    sa.Column('data_sensitivity', sa.Enum('standard', 'high', 'restricted', name='sensitivity', native_enum=False, length=24), nullable=False),
    sa.Column('intake_date', sa.Date(), nullable=True),
    sa.Column('retention_expiry_date', sa.Date(), nullable=True),
    sa.Column('conflict_resolution_strategy', sa.String(length=24), nullable=True),
    sa.Column('practice_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sync_version', sa.BigInteger(), nullable=False),
    sa.Column('data_checksum', sa.String(length=64), nullable=True),
    sa.Column('deleted_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['key_id'], ['data_keys.id'], name=op.f('fk_clients_key_id_data_keys')),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'], name=op.f('fk_clients_practice_id_practices')),
    sa.ForeignKeyConstraint(['practitioner_id'], ['users.id'], name=op.f('fk_clients_practitioner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients'))
    )
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index('ix_clients_email_bidx', ['practice_id', 'email_bidx'], unique=False)
        batch_op.create_index(batch_op.f('ix_clients_key_id'), ['key_id'], unique=False)
        batch_op.create_index('ix_clients_last_name_bidx', ['practice_id', 'last_name_bidx'], unique=False)
        batch_op.create_index(batch_op.f('ix_clients_practice_id'), ['practice_id'], unique=False)
        batch_op.create_index('ix_clients_ssn_last4_bidx', ['practice_id', 'ssn_last4_bidx'], unique=False)
        batch_op.create_index(batch_op.f('ix_clients_sync_version'), ['sync_version'], unique=False)

    op.create_table('role_grants',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('permission', sa.String(length=120), nullable=False),
    sa.Column('granted_by', sa.String(length=120), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('granted_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_role_grants_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_grants'))
    )
    with op.batch_alter_table('role_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_role_grants_user_id'), ['user_id'], unique=False)

    op.create_table('client_files',
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('key_id', sa.Uuid(), nullable=False),
    sa.Column('file_name_enc', sa.LargeBinary(), nullable=False),
    sa.Column('content_type', sa.String(length=120), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('storage_key', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by', sa.Uuid(), nullable=True),
    sa.Column('virus_scan_status', sa.String(length=16), nullable=False),
    sa.Column('practice_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sync_version', sa.BigInteger(), nullable=False),
    sa.Column('data_checksum', sa.String(length=64), nullable=True),
    sa.Column('deleted_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_client_files_client_id_clients')),
    sa.ForeignKeyConstraint(['key_id'], ['data_keys.id'], name=op.f('fk_client_files_key_id_data_keys')),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'], name=op.f('fk_client_files_practice_id_practices')),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], name=op.f('fk_client_files_uploaded_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_files'))
    )
    with op.batch_alter_table('client_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_files_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_files_key_id'), ['key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_files_practice_id'), ['practice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_files_sync_version'), ['sync_version'], unique=False)

    op.create_table('legal_holds',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('practice_id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.Uuid(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('released_by', sa.String(length=120), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_legal_holds_client_id_clients')),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'], name=op.f('fk_legal_holds_practice_id_practices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_holds'))
    )
    op.create_table('therapy_sessions',
    sa.Column('client_id', sa.Uuid(), nullable=False),
    sa.Column('practitioner_id', sa.Uuid(), nullable=True),
    sa.Column('key_id', sa.Uuid(), nullable=False),
    sa.Column('starts_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('session_type', sa.String(length=40), nullable=False),
    sa.Column('notes_enc', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.Enum('SCHEDULED', 'CONFIRMED', 'CANCELLED', 'COMPLETED', name='sessionstatus', native_enum=False, length=24), nullable=False),
    sa.Column('payment_status', sa.Enum('PENDING', 'PAID', 'FAILED', 'REFUNDED', name='paymentstatus', native_enum=False, length=24), nullable=False),
    sa.Column('price_cents', sa.Integer(), nullable=True),
    sa.Column('practice_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sync_version', sa.BigInteger(), nullable=False),
    sa.Column('data_checksum', sa.String(length=64), nullable=True),
    sa.Column('deleted_at', strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_therapy_sessions_client_id_clients')),
    sa.ForeignKeyConstraint(['key_id'], ['data_keys.id'], name=op.f('fk_therapy_sessions_key_id_data_keys')),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'], name=op.f('fk_therapy_sessions_practice_id_practices')),
    sa.ForeignKeyConstraint(['practitioner_id'], ['users.id'], name=op.f('fk_therapy_sessions_practitioner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_therapy_sessions'))
    )
    with op.batch_alter_table('therapy_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_therapy_sessions_client_starts', ['client_id', 'starts_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_therapy_sessions_key_id'), ['key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_therapy_sessions_practice_id'), ['practice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_therapy_sessions_sync_version'), ['sync_version'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('therapy_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_therapy_sessions_sync_version'))
        batch_op.drop_index(batch_op.f('ix_therapy_sessions_practice_id'))
        batch_op.drop_index(batch_op.f('ix_therapy_sessions_key_id'))
        batch_op.drop_index('ix_therapy_sessions_client_starts')

    op.drop_table('therapy_sessions')
    op.drop_table('legal_holds')
    with op.batch_alter_table('client_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_files_sync_version'))
        batch_op.drop_index(batch_op.f('ix_client_files_practice_id'))
        batch_op.drop_index(batch_op.f('ix_client_files_key_id'))
        batch_op.drop_index(batch_op.f('ix_client_files_client_id'))

    op.drop_table('client_files')
    with op.batch_alter_table('role_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_role_grants_user_id'))

    op.drop_table('role_grants')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clients_sync_version'))
        batch_op.drop_index('ix_clients_ssn_last4_bidx')
        batch_op.drop_index(batch_op.f('ix_clients_practice_id'))
        batch_op.drop_index('ix_clients_last_name_bidx')
        batch_op.drop_index(batch_op.f('ix_clients_key_id'))
        batch_op.drop_index('ix_clients_email_bidx')

    op.drop_table('clients')
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_sessions_user_id'))

    op.drop_table('auth_sessions')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_sync_version'))
        batch_op.drop_index(batch_op.f('ix_users_practice_id'))

    op.drop_table('users')
    op.drop_table('sync_state')
    with op.batch_alter_table('sync_conflicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_conflicts_status'))

    op.drop_table('sync_conflicts')
    op.drop_table('exports')
    op.drop_table('backups')
    op.drop_table('sync_peers')
    with op.batch_alter_table('security_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_security_events_user_id'))
        batch_op.drop_index(batch_op.f('ix_security_events_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_security_events_ip_address'))
        batch_op.drop_index(batch_op.f('ix_security_events_event_type'))

    op.drop_table('security_events')
    op.drop_table('retention_policies')
    with op.batch_alter_table('practices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_practices_sync_version'))

    op.drop_table('practices')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_runs_status'))
        batch_op.drop_index('ix_job_runs_kind_started')

    op.drop_table('job_runs')
    op.drop_table('integrity_checks')
    op.drop_table('export_configurations')
    with op.batch_alter_table('erasure_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasure_requests_client_id'))

    op.drop_table('erasure_requests')
    with op.batch_alter_table('data_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_keys_client_id'))

    op.drop_table('data_keys')
    op.drop_table('change_counter')
    op.drop_table('backup_configurations')
    with op.batch_alter_table('audit_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_logs_table_record')
        batch_op.drop_index(batch_op.f('ix_audit_logs_occurred_at'))
        batch_op.drop_index('ix_audit_logs_actor_occurred')
        batch_op.drop_index(batch_op.f('ix_audit_logs_action'))

    op.drop_table('audit_logs')

