"""The data model of DESIGN.md §3 as SQLAlchemy 2 typed models.

Columns ending in `_enc` hold field ciphertext (see strongroom.core.crypto.fields) and
never plaintext; columns ending in `_bidx` hold blind indexes (truncated HMACs) used to
look rows up by email, ssn last four or last name without decrypting anything. The
encrypted row's `key_id` names the data key its fields are sealed with, so key rotation
can count the rows still on each key without parsing ciphertext.

Every syncable row carries `id`, `practice_id`, `created_at`, `updated_at`,
`sync_version` (a database-wide change counter value, see repository.next_change_version),
`data_checksum` (SHA-256 over the stored row, ciphertext included) and `deleted_at`
(a tombstone: deletes travel to peers and backups as rows).
"""
from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Float,
    Boolean,
    Column,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from strongroom.core.db.types import JSONDoc, UTCDateTime, utcnow
from strongroom.core.ids import new_id

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as VARCHAR + CHECK on both engines: native PG enums make migrations painful.
    return Enum(cls, native_enum=False, length=24, validate_strings=True,
                values_callable=lambda e: [m.value for m in e])


class Role(str, enum.Enum):
    # Clinical roles, from the source's UserRole.
    ADMIN = "ADMIN"
    MANAGER = "MANAGER"
    PRACTITIONER = "PRACTITIONER"
    STAFF = "STAFF"
    # Operator roles: people who run Strongroom rather than the practice.
    OP_ADMIN = "admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class ClientStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    VIP = "VIP"
    INACTIVE = "INACTIVE"


class Sensitivity(str, enum.Enum):
    STANDARD = "standard"
    HIGH = "high"
    RESTRICTED = "restricted"


class SessionStatus(str, enum.Enum):
    SCHEDULED = "SCHEDULED"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"


class PaymentStatus(str, enum.Enum):
    PENDING = "PENDING"
    PAID = "PAID"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"


class KeyState(str, enum.Enum):
    ACTIVE = "active"
    RETIRED = "retired"
    DESTROYED = "destroyed"


class KeyPurpose(str, enum.Enum):
    CLIENT = "client"          # one per client: crypto-shredding erases that client
    SYSTEM = "system"          # secrets that belong to no client (TOTP seeds)
    BLIND_INDEX = "blind_index"  # HMAC key for searchable fields
    AUDIT_SIGNING = "audit_signing"  # Ed25519 seed for signed chain checkpoints


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=new_id)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Syncable:
    """Columns every synchronised, backed-up-incrementally row carries."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # Indexed per table: synced tables by (sync_version, id), the rest by sync_version.
    sync_version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    data_checksum: Mapped[str | None] = mapped_column(String(64))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def synced_indexes(table: str) -> tuple[Index, Index]:
    """The indexes every synced table has (migrations 0009 and 0019): (sync_version, id),
    the order a pass reads changed rows in, a batch at a time (it serves every lookup by
    sync_version too); and (id, data_checksum), which the consistency check and the
    integrity job read whole, so that they scan the index rather than a table of notes."""
    return (Index(f"ix_{table}_sync_version_id", "sync_version", "id"),
            Index(f"ix_{table}_id_checksum", "id", "data_checksum"))


class PracticeScoped(Syncable):
    @declared_attr
    def practice_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(Uuid, ForeignKey("practices.id"), nullable=False, index=True)


# --- clinical -------------------------------------------------------------------------

class Practice(Syncable, Base):
    __tablename__ = "practices"
    __table_args__ = synced_indexes("practices")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    settings: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    # Practice details (issue 20, migration 0016); tax id and licence number are secrets of
    # the practice, sealed with the system key (core.repository.practices).
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(320))
    tax_id_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    license_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)


class User(PracticeScoped, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("username"), Index("ix_users_sync_version", "sync_version"))
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[Role] = mapped_column(_enum(Role), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    totp_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Client(PracticeScoped, Base):
    __tablename__ = "clients"
    __table_args__ = (
        Index("ix_clients_email_bidx", "practice_id", "email_bidx"),
        Index("ix_clients_ssn_last4_bidx", "practice_id", "ssn_last4_bidx"),
        Index("ix_clients_last_name_bidx", "practice_id", "last_name_bidx"),
        *synced_indexes("clients"),
    )
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("data_keys.id"), nullable=False, index=True)
    practitioner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    first_name_enc: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    last_name_enc: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    date_of_birth_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    ssn_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    emergency_contact_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    medical_history_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    notes_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    ssn_last4_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    last_name_bidx: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    status: Mapped[ClientStatus] = mapped_column(_enum(ClientStatus), nullable=False, default=ClientStatus.ACTIVE)
    data_sensitivity: Mapped[Sensitivity] = mapped_column(_enum(Sensitivity), nullable=False, default=Sensitivity.HIGH)
    intake_date: Mapped[date | None] = mapped_column(Date)
    retention_expiry_date: Mapped[date | None] = mapped_column(Date)
    conflict_resolution_strategy: Mapped[str | None] = mapped_column(String(24))


class TherapySession(PracticeScoped, Base):
    __tablename__ = "therapy_sessions"
    __table_args__ = (Index("ix_therapy_sessions_client_starts", "client_id", "starts_at"),
                      *synced_indexes("therapy_sessions"))
    client_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("clients.id"), nullable=False)
    practitioner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("data_keys.id"), nullable=False, index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    duration_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=50)
    session_type: Mapped[str] = mapped_column(String(40), nullable=False, default="individual")
    notes_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[SessionStatus] = mapped_column(_enum(SessionStatus), nullable=False, default=SessionStatus.SCHEDULED)
    payment_status: Mapped[PaymentStatus] = mapped_column(_enum(PaymentStatus), nullable=False, default=PaymentStatus.PENDING)
    price_cents: Mapped[int | None] = mapped_column(Integer)
    # Issue 20 (migration 0016): the appointment it was booked as, and the clinical
    # fields of the first source; soap_summary, billing_codes and insurance_info are PHI
    # sealed with the client's key like notes.
    service_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("services.id"))
    staff_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("staff.id"))
    reminder_sent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=text("false"))
    session_number: Mapped[int | None] = mapped_column(Integer)
    soap_summary_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    billing_codes_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    insurance_info_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    consent_verified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                                   server_default=text("false"))


class Staff(PracticeScoped, Base):
    """A member of the practice's staff, with or without a user account (issue 20)."""

    __tablename__ = "staff"
    __table_args__ = synced_indexes("staff")
    # Plain UUID, no foreign key: accounts are each site's own (they do not sync) while
    # staff rows do, so the account may exist at one site only.
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True)
    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    last_name: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[Role] = mapped_column(_enum(Role), nullable=False)
    # A list of short labels; working hours: weekday ("mon".."sun") -> ["HH:MM-HH:MM", ...].
    specializations: Mapped[list] = mapped_column(JSONDoc, nullable=False, default=list)
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(320))
    working_hours: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    hourly_rate_cents: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Service(PracticeScoped, Base):
    """One entry of the practice's service catalogue (issue 20); money in integer cents."""

    __tablename__ = "services"
    __table_args__ = synced_indexes("services")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    category: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(String(2000))
    duration_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    price_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class ClientFile(PracticeScoped, Base):
    __tablename__ = "client_files"
    __table_args__ = (Index("ix_client_files_sync_version", "sync_version"),)
    client_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("clients.id"), nullable=False, index=True)
    key_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("data_keys.id"), nullable=False, index=True)
    file_name_enc: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    content_type: Mapped[str] = mapped_column(String(120), nullable=False, default="application/octet-stream")
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    storage_key: Mapped[str] = mapped_column(String(200), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    virus_scan_status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")


# --- keys -----------------------------------------------------------------------------

class DataKey(Base):
    """A data-encryption key, stored only wrapped by the KEK identified by `kek_id`."""

    __tablename__ = "data_keys"
    # The KEKs wrapping live keys, found without reading every key (migration 0010).
    __table_args__ = (Index("ix_data_keys_live_kek", "kek_id", postgresql_where=text("state <> 'destroyed'"),
                            sqlite_where=text("state <> 'destroyed'")),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    purpose: Mapped[KeyPurpose] = mapped_column(_enum(KeyPurpose), nullable=False)
    # Plain UUID, no foreign key: a client row may be erased while its shredded key
    # record stays as evidence of the erasure.
    client_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[KeyState] = mapped_column(_enum(KeyState), nullable=False, default=KeyState.ACTIVE)
    created_at: Mapped[datetime] = _created()
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by a database trigger on every insert and update (migration 0005), never by
    # the application: incremental backups carry only the key records that changed.
    sync_version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0",
                                              index=True)


# --- auth -----------------------------------------------------------------------------

class AuthSession(Base):
    __tablename__ = "auth_sessions"
    id: Mapped[uuid.UUID] = _uuid_pk()
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), nullable=False, index=True)
    created_at: Mapped[datetime] = _created()
    last_seen_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    idle_timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    client_host: Mapped[str | None] = mapped_column(String(255))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    client_name: Mapped[str | None] = mapped_column(String(64))
    client_version: Mapped[str | None] = mapped_column(String(32))


class RoleGrant(Base):
    """A permission granted to one user beyond their role, usually until `expires_at`."""

    __tablename__ = "role_grants"
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), nullable=False, index=True)
    permission: Mapped[str] = mapped_column(String(120), nullable=False)
    granted_by: Mapped[str] = mapped_column(String(120), nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    granted_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SecurityEvent(Base):
    __tablename__ = "security_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    username: Mapped[str | None] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    severity: Mapped[str] = mapped_column(String(10), nullable=False, default="info")
    description: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    ip_address: Mapped[str | None] = mapped_column(String(64), index=True)
    user_agent: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)


# --- audit ----------------------------------------------------------------------------

class AuditLog(Base):
    """One link of the hash chain (strongroom.core.audit). Append-only: triggers on both
    engines refuse UPDATE and DELETE."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_table_record", "table_name", "record_id"),
        # Filtered paging (newest first by id, keyset on id) for the console's audit browser.
        Index("ix_audit_logs_actor_id", "actor", "id"),
        Index("ix_audit_logs_action_id", "action", "id"),
        Index("ix_audit_logs_table_id", "table_name", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    actor: Mapped[str] = mapped_column(String(120), nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(24), nullable=False)
    table_name: Mapped[str | None] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(String(64))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16), nullable=False, default="success")
    details: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # HMAC of `hash` under a key the database does not hold (core.audit); None for rows
    # from before sealing and for rows the PostgreSQL trigger writes.
    mac: Mapped[str | None] = mapped_column(String(64))


# --- operations -----------------------------------------------------------------------

class BackupConfiguration(Base):
    __tablename__ = "backup_configurations"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(120), nullable=False, unique=True)
    backup_type: Mapped[str] = mapped_column(String(16), nullable=False, default="incremental")
    schedule: Mapped[str | None] = mapped_column(String(120))
    target: Mapped[str] = mapped_column(String(500), nullable=False)
    compression_level: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    encryption_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    retention: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    tables: Mapped[list] = mapped_column(JSONDoc, nullable=False, default=list)
    verify_after: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Backup(Base):
    """A snapshot. It exists only once its manifest has been written (`manifest_key`)."""

    __tablename__ = "backups"
    id: Mapped[uuid.UUID] = _uuid_pk()
    configuration_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("backup_configurations.id"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("backups.id"))
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    proof: Mapped[str] = mapped_column(String(16), nullable=False, default="none")
    started_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    manifest_key: Mapped[str | None] = mapped_column(String(200))
    change_watermark: Mapped[int | None] = mapped_column(BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    # Client files the snapshot carries: how many, their content bytes, and live rows
    # whose content was gone when read (migration 0012; NULL before it).
    file_count: Mapped[int | None] = mapped_column(BigInteger)
    file_bytes: Mapped[int | None] = mapped_column(BigInteger)
    files_missing: Mapped[int | None] = mapped_column(BigInteger)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    drilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # Set when compaction replaced this snapshot with an equal one on a new chain (status
    # "superseded"). Plain UUID, no foreign key: the replacement may be forgotten later
    # while this row stays as the record of what happened.
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class BackupPruneRequest(Base):
    """Four-eyes retention: snapshots one person (or the scheduler) asked to forget,
    deleted only after a different person approves, before `expires_at`.

    `snapshot_ids` is the approved upper bound: executing re-computes the plan and is
    refused if it would now forget anything outside it.
    """

    __tablename__ = "backup_prune_requests"
    id: Mapped[uuid.UUID] = _uuid_pk()
    configuration_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("backup_configurations.id"),
                                                        nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # prune | forget
    snapshot_ids: Mapped[list] = mapped_column(JSONDoc, nullable=False, default=list)
    plan: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending", index=True)
    requested_by: Mapped[str] = mapped_column(String(120), nullable=False)
    requested_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    approved_by: Mapped[str | None] = mapped_column(String(120))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class ExportConfiguration(Base):
    __tablename__ = "export_configurations"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(120), nullable=False, unique=True)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    schedule: Mapped[str | None] = mapped_column(String(120))
    filters: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    fields: Mapped[list] = mapped_column(JSONDoc, nullable=False, default=list)
    masking_profile: Mapped[str] = mapped_column(String(40), nullable=False, default="masked")
    encryption_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _created()
    # When the daemon next runs it (with a schedule); the systemd credential naming an
    # encrypted scheduled export's ZIP password (migration 0014).
    next_export_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_credential: Mapped[str | None] = mapped_column(String(64))
    # The actor that saved it; its scheduled runs export as that actor (migration 0017;
    # NULL: saved before, runs as the system).
    created_by: Mapped[str | None] = mapped_column(String(120))


class Export(Base):
    __tablename__ = "exports"
    id: Mapped[uuid.UUID] = _uuid_pk()
    configuration_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("export_configurations.id"))
    requested_by: Mapped[str] = mapped_column(String(120), nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    filters: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class SyncPeer(Base):
    __tablename__ = "sync_peers"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(120), nullable=False, unique=True)
    url: Mapped[str] = mapped_column(String(500), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False, default="both")
    strategies: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()
    site_id: Mapped[str | None] = mapped_column(String(36))
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Milliseconds the peer's clock was ahead at the last pass (integer: backups carry
    # no floating point columns).
    clock_skew_ms: Mapped[int | None] = mapped_column(Integer)


class SyncSite(Base):
    """This database as a sync site: its stable id and the last hybrid-logical-clock
    value it issued (core.sync.site). One row, made by migration 0009."""

    __tablename__ = "sync_site"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    hlc: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = _created()


class SyncRow(Base):
    """The version metadata of one synced row (core.sync.stamp): what sync compares."""

    __tablename__ = "sync_rows"
    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    origin: Mapped[str] = mapped_column(String(36), nullable=False)
    hlc: Mapped[int] = mapped_column(BigInteger, nullable=False)
    vv: Mapped[dict] = mapped_column(JSONDoc, nullable=False)
    dots: Mapped[dict] = mapped_column(JSONDoc, nullable=False)
    hashes: Mapped[dict] = mapped_column(JSONDoc, nullable=False)
    source: Mapped[str | None] = mapped_column(String(36))
    pending: Mapped[dict | None] = mapped_column(JSONDoc)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SyncQuarantine(Base):
    """A row a peer sent that failed validation: kept (ciphertext only) with the reason,
    never applied."""

    __tablename__ = "sync_quarantine"
    id: Mapped[uuid.UUID] = _uuid_pk()
    peer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    table_name: Mapped[str] = mapped_column(String(64), nullable=False)
    row_id: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    detail: Mapped[str] = mapped_column(String(500), nullable=False)
    image: Mapped[dict] = mapped_column(JSONDoc, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class SyncLease(Base):
    """Who is running a pass of one pair of sites, until when (two at once are refused)."""

    __tablename__ = "sync_leases"
    pair: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class SyncState(Base):
    __tablename__ = "sync_state"
    __table_args__ = (UniqueConstraint("peer_id", "table_name", "direction"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    peer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sync_peers.id"), nullable=False)
    table_name: Mapped[str] = mapped_column(String(64), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    watermark: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = _created()
    # With `watermark`, a cursor: rows of version `watermark` up to this id are done too
    # (None: all of them). One bulk write gives many rows one version.
    after_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class SyncConflict(Base):
    __tablename__ = "sync_conflicts"
    id: Mapped[uuid.UUID] = _uuid_pk()
    peer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("sync_peers.id"), nullable=False)
    table_name: Mapped[str] = mapped_column(String(64), nullable=False)
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    base: Mapped[dict | None] = mapped_column(JSONDoc)
    local: Mapped[dict] = mapped_column(JSONDoc, nullable=False)
    remote: Mapped[dict] = mapped_column(JSONDoc, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open", index=True)
    resolution: Mapped[dict | None] = mapped_column(JSONDoc)
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()


class RetentionPolicy(Base):
    __tablename__ = "retention_policies"
    id: Mapped[uuid.UUID] = _uuid_pk()
    table_name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    archive_after_days: Mapped[int | None] = mapped_column(Integer)
    delete_after_days: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class LegalHold(Base):
    __tablename__ = "legal_holds"
    id: Mapped[uuid.UUID] = _uuid_pk()
    practice_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("practices.id"), nullable=False)
    client_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("clients.id"))
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    created_by: Mapped[str] = mapped_column(String(120), nullable=False)
    created_at: Mapped[datetime] = _created()
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(120))


class ReconcilePair(Base):
    """Two clients of one practice the reconcile job found likely to be one person
    (strongroom.core.reconcile): ids, score and reason codes only, never a value."""

    __tablename__ = "reconcile_pairs"
    __table_args__ = (UniqueConstraint("client_a", "client_b", name="uq_reconcile_pairs_clients"),
                      Index("ix_reconcile_pairs_practice_status", "practice_id", "status"))
    id: Mapped[uuid.UUID] = _uuid_pk()
    practice_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("practices.id"), nullable=False)
    client_a: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("clients.id"), nullable=False)
    client_b: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("clients.id"), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    reasons: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    found_at: Mapped[datetime] = _created()
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    merge_record: Mapped[dict | None] = mapped_column(JSONDoc)


class ErasureRequest(Base):
    __tablename__ = "erasure_requests"
    id: Mapped[uuid.UUID] = _uuid_pk()
    client_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    requested_by: Mapped[str] = mapped_column(String(120), nullable=False)
    approved_by: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending", index=True)
    reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    created_at: Mapped[datetime] = _created()
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Four-eyes (strongroom.core.retention.erasure): approvable until expires_at, by
    # anyone but the requester; decided_at/rejected_by record a decision either way.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_by: Mapped[str | None] = mapped_column(String(120))


class RetentionArchive(Base):
    """A clinical row the records-retention job archived, timed by our own clock.

    Plain UUIDs, no foreign keys: the ledger is evidence and outlives what it names.
    `sync_version` moves on every change so incremental backups carry only changed rows.
    """

    __tablename__ = "retention_archive"
    __table_args__ = (UniqueConstraint("table_name", "row_id"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    table_name: Mapped[str] = mapped_column(String(64), nullable=False)
    row_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    practice_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    client_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    policy_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sync_version: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)


class IntegrityCheck(Base):
    __tablename__ = "integrity_checks"
    id: Mapped[uuid.UUID] = _uuid_pk()
    check_type: Mapped[str] = mapped_column(String(40), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    table_name: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    expected: Mapped[str | None] = mapped_column(String(200))
    actual: Mapped[str | None] = mapped_column(String(200))
    evidence: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ComplianceScore(Base):
    """The compliance score of one UTC day (the day's latest report), for the trend."""

    __tablename__ = "compliance_scores"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    score: Mapped[int] = mapped_column(Integer, nullable=False)
    areas: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    recorded_at: Mapped[datetime] = _created()


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_kind_started", "job_kind", "started_at"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    job_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False, default="manual")
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), nullable=False, default=JobStatus.QUEUED, index=True)
    params: Mapped[dict] = mapped_column(JSONDoc, nullable=False, default=dict)
    requested_by: Mapped[str | None] = mapped_column(String(120))
    progress_done: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[dict | None] = mapped_column(JSONDoc)
    error: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChangeCounter(Base):
    """SQLite's stand-in for a PostgreSQL sequence: the last `sync_version` handed out."""

    __tablename__ = "change_counter"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


# Tables whose rows belong to one practice: PostgreSQL row-level security covers these.
PRACTICE_TABLES = ("clients", "therapy_sessions", "client_files", "legal_holds")
# Tables whose writes PostgreSQL triggers audit when they bypass the application.
AUDITED_TABLES = ("practices", "users", "clients", "therapy_sessions", "client_files",
                  "role_grants", "data_keys", "auth_sessions")


# --- sync bases (core/db/sync_bases.py: tables and triggers, made by migration 0011) ----

class SyncApplying(Base):
    """Present only inside a sync pass's transaction while it applies a peer's rows: the
    base-keeping triggers skip those writes (they are agreed versions, not local edits)."""

    __tablename__ = "sync_applying"
    holder: Mapped[str] = mapped_column(String(64), primary_key=True)


def _shadow(table: Table) -> Table:
    """`sync_base_<table>`: the row's last agreed version before a local edit, with the
    version vector it was stamped with (core.sync.bases reads it)."""
    columns = [Column(c.name, c.type, primary_key=c.name == "id", nullable=c.name != "id") for c in table.columns]
    return Table(f"sync_base_{table.name}", Base.metadata, *columns, Column("base_vv", JSONDoc))


SYNC_BASES = {t.name: _shadow(t) for t in (Client.__table__, TherapySession.__table__)}


# --- per-user security profiles (core/auth/profiles.py, migration 0013) -----------------

class UserSecurityProfile(Base):
    """A user's own security settings; NULL takes the global policy, which also bounds
    every value (a user's setting may be stricter, never looser)."""

    __tablename__ = "user_security_profiles"
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), primary_key=True)
    session_idle_minutes: Mapped[int | None] = mapped_column(Integer)
    max_sessions: Mapped[int | None] = mapped_column(Integer)
    rate_limits: Mapped[dict | None] = mapped_column(JSONDoc)
    storage_quota_mb: Mapped[int | None] = mapped_column(Integer)
    hipaa_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hipaa_consent_version: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(120), nullable=False)


class UserDevice(Base):
    """A client a user has logged in from: its fingerprint (a hash, never the key or
    address itself), a label a person recognises, and when it was seen."""

    __tablename__ = "user_devices"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint", name="uq_user_devices_user_id"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    logins: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
