"""The data model of DESIGN.md §3 as SQLAlchemy Core tables, declared as classes.

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

from strongroom.core.db.types import JSONDoc, UTCDateTime, utcnow
from strongroom.core.ids import new_id

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class _TableClass(type):
    """Makes each class below that names a `__tablename__` into a Core Table in
    `Base.metadata`: its Column attributes in the order it declares them, then each
    mixin's (copied for each table), nearest mixin first, then its `__table_args__`
    (the order SQLAlchemy's declarative mapping gave them). The class then
    stands for its table: `Client.__table__`, `Client.id` (the table's column), and
    `select(Client)`, `update(Client)`, `insert(Client)` (`__clause_element__`).

    Why not SQLAlchemy's declarative ORM, which these classes were: nothing here uses the
    ORM (no Session, no mapped objects), and mapping 37 classes cost every process about
    0.2 s at start (importing sqlalchemy.orm and configuring the mappers), a fifth of a
    CLI command that lists a page of clients."""

    def __init__(cls, name: str, bases: tuple, namespace: dict) -> None:
        super().__init__(name, bases, namespace)
        tablename = namespace.get("__tablename__")
        if tablename is None:
            return
        columns: dict[str, Column] = {}
        for klass in cls.__mro__:
            for attr, value in vars(klass).items():
                if isinstance(value, Column) and attr not in columns:
                    column = value if klass is cls else value._copy()
                    if column.name is None:
                        column.name = attr
                    if column.key is None:
                        column.key = attr
                    columns[attr] = column
        args = namespace.get("__table_args__", ())
        options = args[-1] if args and isinstance(args[-1], dict) else {}
        items = args[:-1] if options else args
        cls.__table__ = Table(tablename, Base.metadata, *columns.values(), *items, **options)
        for attr in columns:
            setattr(cls, attr, cls.__table__.c[attr])

    def __clause_element__(cls) -> Table:
        return cls.__table__


class Base(metaclass=_TableClass):
    metadata = MetaData(naming_convention=NAMING)
    __table__: Table


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


def _uuid_pk() -> Column:
    return Column(Uuid, primary_key=True, default=new_id)


def _created() -> Column:
    return Column(UTCDateTime, nullable=False, default=utcnow)


class Syncable:
    """Columns every synchronised, backed-up-incrementally row carries."""

    id = Column(Uuid, primary_key=True, default=new_id)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow)
    # Indexed per table: synced tables by (sync_version, id), the rest by sync_version.
    sync_version = Column(BigInteger, nullable=False, default=0)
    data_checksum = Column(String(64))
    deleted_at = Column(UTCDateTime)


def synced_indexes(table: str) -> tuple[Index, Index]:
    """The indexes every synced table has (migrations 0009 and 0019): (sync_version, id),
    the order a pass reads changed rows in, a batch at a time (it serves every lookup by
    sync_version too); and (id, data_checksum), which the consistency check and the
    integrity job read whole, so that they scan the index rather than a table of notes."""
    return (Index(f"ix_{table}_sync_version_id", "sync_version", "id"),
            Index(f"ix_{table}_id_checksum", "id", "data_checksum"))


class PracticeScoped(Syncable):
    practice_id = Column(Uuid, ForeignKey("practices.id"), nullable=False, index=True)


# --- clinical -------------------------------------------------------------------------

class Practice(Syncable, Base):
    __tablename__ = "practices"
    __table_args__ = synced_indexes("practices")
    name = Column(String(200), nullable=False)
    timezone = Column(String(64), nullable=False, default="UTC")
    settings = Column(JSONDoc, nullable=False, default=dict)
    # Practice details (issue 20, migration 0016); tax id and licence number are secrets of
    # the practice, sealed with the system key (core.repository.practices).
    address = Column(String(500))
    phone = Column(String(40))
    email = Column(String(320))
    tax_id_enc = Column(LargeBinary)
    license_number_enc = Column(LargeBinary)


class User(PracticeScoped, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("username"), Index("ix_users_sync_version", "sync_version"))
    username = Column(String(64), nullable=False)
    full_name = Column(String(200), nullable=False, default="")
    email = Column(String(320))
    role = Column(_enum(Role), nullable=False)
    password_hash = Column(String(255), nullable=False)
    totp_secret_enc = Column(LargeBinary)
    totp_enabled = Column(Boolean, nullable=False, default=False)
    totp_last_step = Column(BigInteger)
    failed_logins = Column(Integer, nullable=False, default=0)
    locked_until = Column(UTCDateTime)
    last_login_at = Column(UTCDateTime)
    disabled = Column(Boolean, nullable=False, default=False)


class Client(PracticeScoped, Base):
    __tablename__ = "clients"
    __table_args__ = (
        Index("ix_clients_email_bidx", "practice_id", "email_bidx"),
        Index("ix_clients_ssn_last4_bidx", "practice_id", "ssn_last4_bidx"),
        Index("ix_clients_last_name_bidx", "practice_id", "last_name_bidx"),
        *synced_indexes("clients"),
    )
    key_id = Column(Uuid, ForeignKey("data_keys.id"), nullable=False, index=True)
    practitioner_id = Column(Uuid, ForeignKey("users.id"))
    first_name_enc = Column(LargeBinary, nullable=False)
    last_name_enc = Column(LargeBinary, nullable=False)
    date_of_birth_enc = Column(LargeBinary)
    ssn_enc = Column(LargeBinary)
    email_enc = Column(LargeBinary)
    phone_enc = Column(LargeBinary)
    address_enc = Column(LargeBinary)
    emergency_contact_enc = Column(LargeBinary)
    medical_history_enc = Column(LargeBinary)
    notes_enc = Column(LargeBinary)
    email_bidx = Column(LargeBinary(16))
    ssn_last4_bidx = Column(LargeBinary(16))
    last_name_bidx = Column(LargeBinary(16))
    status = Column(_enum(ClientStatus), nullable=False, default=ClientStatus.ACTIVE)
    data_sensitivity = Column(_enum(Sensitivity), nullable=False, default=Sensitivity.HIGH)
    intake_date = Column(Date)
    retention_expiry_date = Column(Date)
    conflict_resolution_strategy = Column(String(24))


class TherapySession(PracticeScoped, Base):
    __tablename__ = "therapy_sessions"
    __table_args__ = (Index("ix_therapy_sessions_client_starts", "client_id", "starts_at"),
                      *synced_indexes("therapy_sessions"))
    client_id = Column(Uuid, ForeignKey("clients.id"), nullable=False)
    practitioner_id = Column(Uuid, ForeignKey("users.id"))
    key_id = Column(Uuid, ForeignKey("data_keys.id"), nullable=False, index=True)
    starts_at = Column(UTCDateTime, nullable=False)
    duration_minutes = Column(Integer, nullable=False, default=50)
    session_type = Column(String(40), nullable=False, default="individual")
    notes_enc = Column(LargeBinary)
    status = Column(_enum(SessionStatus), nullable=False, default=SessionStatus.SCHEDULED)
    payment_status = Column(_enum(PaymentStatus), nullable=False, default=PaymentStatus.PENDING)
    price_cents = Column(Integer)
    # Issue 20 (migration 0016): the appointment it was booked as, and the clinical
    # fields of the first source; soap_summary, billing_codes and insurance_info are PHI
    # sealed with the client's key like notes.
    service_id = Column(Uuid, ForeignKey("services.id"))
    staff_id = Column(Uuid, ForeignKey("staff.id"))
    reminder_sent = Column(Boolean, nullable=False, default=False, server_default=text("false"))
    session_number = Column(Integer)
    soap_summary_enc = Column(LargeBinary)
    billing_codes_enc = Column(LargeBinary)
    insurance_info_enc = Column(LargeBinary)
    consent_verified = Column(Boolean, nullable=False, default=False,
                                                   server_default=text("false"))


class Staff(PracticeScoped, Base):
    """A member of the practice's staff, with or without a user account (issue 20)."""

    __tablename__ = "staff"
    __table_args__ = synced_indexes("staff")
    # Plain UUID, no foreign key: accounts are each site's own (they do not sync) while
    # staff rows do, so the account may exist at one site only.
    user_id = Column(Uuid, unique=True)
    first_name = Column(String(100), nullable=False)
    last_name = Column(String(100), nullable=False)
    role = Column(_enum(Role), nullable=False)
    # A list of short labels; working hours: weekday ("mon".."sun") -> ["HH:MM-HH:MM", ...].
    specializations = Column(JSONDoc, nullable=False, default=list)
    phone = Column(String(40))
    email = Column(String(320))
    working_hours = Column(JSONDoc, nullable=False, default=dict)
    hourly_rate_cents = Column(Integer)
    active = Column(Boolean, nullable=False, default=True)


class Service(PracticeScoped, Base):
    """One entry of the practice's service catalogue (issue 20); money in integer cents."""

    __tablename__ = "services"
    __table_args__ = synced_indexes("services")
    name = Column(String(200), nullable=False)
    category = Column(String(100), nullable=False)
    description = Column(String(2000))
    duration_minutes = Column(Integer, nullable=False)
    price_cents = Column(Integer, nullable=False)
    active = Column(Boolean, nullable=False, default=True)


class ClientFile(PracticeScoped, Base):
    __tablename__ = "client_files"
    __table_args__ = (Index("ix_client_files_sync_version", "sync_version"),)
    client_id = Column(Uuid, ForeignKey("clients.id"), nullable=False, index=True)
    key_id = Column(Uuid, ForeignKey("data_keys.id"), nullable=False, index=True)
    file_name_enc = Column(LargeBinary, nullable=False)
    content_type = Column(String(120), nullable=False, default="application/octet-stream")
    size_bytes = Column(BigInteger, nullable=False)
    storage_key = Column(String(200), nullable=False)
    sha256 = Column(String(64), nullable=False)
    uploaded_by = Column(Uuid, ForeignKey("users.id"))
    virus_scan_status = Column(String(16), nullable=False, default="pending")


# --- keys -----------------------------------------------------------------------------

class DataKey(Base):
    """A data-encryption key, stored only wrapped by the KEK identified by `kek_id`."""

    __tablename__ = "data_keys"
    # The KEKs wrapping live keys, found without reading every key (migration 0010).
    __table_args__ = (Index("ix_data_keys_live_kek", "kek_id", postgresql_where=text("state <> 'destroyed'"),
                            sqlite_where=text("state <> 'destroyed'")),)
    id = _uuid_pk()
    purpose = Column(_enum(KeyPurpose), nullable=False)
    # Plain UUID, no foreign key: a client row may be erased while its shredded key
    # record stays as evidence of the erasure.
    client_id = Column(Uuid, index=True)
    version = Column(Integer, nullable=False, default=1)
    wrapped_key = Column(LargeBinary)
    public_key = Column(LargeBinary)
    kek_id = Column(String(32), nullable=False)
    state = Column(_enum(KeyState), nullable=False, default=KeyState.ACTIVE)
    created_at = _created()
    retired_at = Column(UTCDateTime)
    destroyed_at = Column(UTCDateTime)
    # Set by a database trigger on every insert and update (migration 0005), never by
    # the application: incremental backups carry only the key records that changed.
    sync_version = Column(BigInteger, nullable=False, default=0, server_default="0",
                                              index=True)


# --- auth -----------------------------------------------------------------------------

class AuthSession(Base):
    __tablename__ = "auth_sessions"
    id = _uuid_pk()
    token_hash = Column(String(64), nullable=False, unique=True)
    user_id = Column(Uuid, ForeignKey("users.id"), nullable=False, index=True)
    created_at = _created()
    last_seen_at = _created()
    expires_at = Column(UTCDateTime, nullable=False)
    idle_timeout_seconds = Column(Integer, nullable=False)
    revoked_at = Column(UTCDateTime)
    revoked_reason = Column(String(64))
    client_host = Column(String(255))
    client_addr = Column(String(64))
    client_name = Column(String(64))
    client_version = Column(String(32))


class RoleGrant(Base):
    """A permission granted to one user beyond their role, usually until `expires_at`."""

    __tablename__ = "role_grants"
    id = _uuid_pk()
    user_id = Column(Uuid, ForeignKey("users.id"), nullable=False, index=True)
    permission = Column(String(120), nullable=False)
    granted_by = Column(String(120), nullable=False)
    reason = Column(String(500), nullable=False, default="")
    granted_at = _created()
    expires_at = Column(UTCDateTime)
    revoked_at = Column(UTCDateTime)


class SecurityEvent(Base):
    __tablename__ = "security_events"
    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    occurred_at = Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    user_id = Column(Uuid, index=True)
    username = Column(String(64))
    event_type = Column(String(40), nullable=False, index=True)
    severity = Column(String(10), nullable=False, default="info")
    description = Column(String(500), nullable=False, default="")
    ip_address = Column(String(64), index=True)
    user_agent = Column(String(200))
    details = Column(JSONDoc, nullable=False, default=dict)


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
    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    occurred_at = Column(UTCDateTime, nullable=False, index=True)
    actor = Column(String(120), nullable=False)
    session_id = Column(String(64))
    action = Column(String(24), nullable=False)
    table_name = Column(String(64))
    record_id = Column(String(64))
    ip_address = Column(String(64))
    user_agent = Column(String(200))
    outcome = Column(String(16), nullable=False, default="success")
    details = Column(Text, nullable=False, default="{}")
    prev_hash = Column(String(64), nullable=False)
    hash = Column(String(64), nullable=False, unique=True)
    # HMAC of `hash` under a key the database does not hold (core.audit); None for rows
    # from before sealing and for rows the PostgreSQL trigger writes.
    mac = Column(String(64))


# --- operations -----------------------------------------------------------------------

class BackupConfiguration(Base):
    __tablename__ = "backup_configurations"
    id = _uuid_pk()
    name = Column(String(120), nullable=False, unique=True)
    backup_type = Column(String(16), nullable=False, default="incremental")
    schedule = Column(String(120))
    target = Column(String(500), nullable=False)
    compression_level = Column(Integer, nullable=False, default=3)
    encryption_enabled = Column(Boolean, nullable=False, default=True)
    retention = Column(JSONDoc, nullable=False, default=dict)
    tables = Column(JSONDoc, nullable=False, default=list)
    verify_after = Column(Boolean, nullable=False, default=True)
    is_active = Column(Boolean, nullable=False, default=True)
    created_at = _created()
    updated_at = _created()


class Backup(Base):
    """A snapshot. It exists only once its manifest has been written (`manifest_key`)."""

    __tablename__ = "backups"
    id = _uuid_pk()
    configuration_id = Column(Uuid, ForeignKey("backup_configurations.id"))
    parent_id = Column(Uuid, ForeignKey("backups.id"))
    kind = Column(String(16), nullable=False)
    status = Column(String(16), nullable=False, default="running")
    proof = Column(String(16), nullable=False, default="none")
    started_at = _created()
    finished_at = Column(UTCDateTime)
    manifest_key = Column(String(200))
    change_watermark = Column(BigInteger)
    size_bytes = Column(BigInteger)
    stored_bytes = Column(BigInteger)
    row_count = Column(BigInteger)
    # Client files the snapshot carries: how many, their content bytes, and live rows
    # whose content was gone when read (migration 0012; NULL before it).
    file_count = Column(BigInteger)
    file_bytes = Column(BigInteger)
    files_missing = Column(BigInteger)
    verified_at = Column(UTCDateTime)
    drilled_at = Column(UTCDateTime)
    error = Column(Text)
    # Set when compaction replaced this snapshot with an equal one on a new chain (status
    # "superseded"). Plain UUID, no foreign key: the replacement may be forgotten later
    # while this row stays as the record of what happened.
    superseded_by = Column(Uuid)


class BackupPruneRequest(Base):
    """Four-eyes retention: snapshots one person (or the scheduler) asked to forget,
    deleted only after a different person approves, before `expires_at`.

    `snapshot_ids` is the approved upper bound: executing re-computes the plan and is
    refused if it would now forget anything outside it.
    """

    __tablename__ = "backup_prune_requests"
    id = _uuid_pk()
    configuration_id = Column(Uuid, ForeignKey("backup_configurations.id"),
                                                        nullable=False)
    kind = Column(String(16), nullable=False)  # prune | forget
    snapshot_ids = Column(JSONDoc, nullable=False, default=list)
    plan = Column(JSONDoc, nullable=False, default=dict)
    status = Column(String(16), nullable=False, default="pending", index=True)
    requested_by = Column(String(120), nullable=False)
    requested_at = _created()
    expires_at = Column(UTCDateTime, nullable=False)
    approved_by = Column(String(120))
    approved_at = Column(UTCDateTime)
    executed_at = Column(UTCDateTime)
    error = Column(Text)


class ExportConfiguration(Base):
    __tablename__ = "export_configurations"
    id = _uuid_pk()
    name = Column(String(120), nullable=False, unique=True)
    format = Column(String(16), nullable=False)
    schedule = Column(String(120))
    filters = Column(JSONDoc, nullable=False, default=dict)
    fields = Column(JSONDoc, nullable=False, default=list)
    masking_profile = Column(String(40), nullable=False, default="masked")
    encryption_enabled = Column(Boolean, nullable=False, default=True)
    retention_days = Column(Integer)
    is_active = Column(Boolean, nullable=False, default=True)
    created_at = _created()
    # When the daemon next runs it (with a schedule); the systemd credential naming an
    # encrypted scheduled export's ZIP password (migration 0014).
    next_export_at = Column(UTCDateTime)
    password_credential = Column(String(64))
    # The actor that saved it; its scheduled runs export as that actor (migration 0017;
    # NULL: saved before, runs as the system).
    created_by = Column(String(120))


class Export(Base):
    __tablename__ = "exports"
    id = _uuid_pk()
    configuration_id = Column(Uuid, ForeignKey("export_configurations.id"))
    requested_by = Column(String(120), nullable=False)
    format = Column(String(16), nullable=False)
    filters = Column(JSONDoc, nullable=False, default=dict)
    status = Column(String(16), nullable=False, default="running")
    row_count = Column(BigInteger)
    sha256 = Column(String(64))
    location = Column(String(500))
    created_at = _created()
    finished_at = Column(UTCDateTime)
    error = Column(Text)


class SyncPeer(Base):
    __tablename__ = "sync_peers"
    id = _uuid_pk()
    name = Column(String(120), nullable=False, unique=True)
    url = Column(String(500), nullable=False)
    direction = Column(String(8), nullable=False, default="both")
    strategies = Column(JSONDoc, nullable=False, default=dict)
    is_active = Column(Boolean, nullable=False, default=True)
    last_sync_at = Column(UTCDateTime)
    created_at = _created()
    site_id = Column(String(36))
    failures = Column(Integer, nullable=False, default=0, server_default="0")
    last_error = Column(String(500))
    last_attempt_at = Column(UTCDateTime)
    next_attempt_at = Column(UTCDateTime)
    # Milliseconds the peer's clock was ahead at the last pass (integer: backups carry
    # no floating point columns).
    clock_skew_ms = Column(Integer)


class SyncSite(Base):
    """This database as a sync site: its stable id and the last hybrid-logical-clock
    value it issued (core.sync.site). One row, made by migration 0009."""

    __tablename__ = "sync_site"
    id = Column(String(36), primary_key=True)
    hlc = Column(BigInteger, nullable=False)
    created_at = _created()


class SyncRow(Base):
    """The version metadata of one synced row (core.sync.stamp): what sync compares."""

    __tablename__ = "sync_rows"
    table_name = Column(String(64), primary_key=True)
    row_id = Column(Uuid, primary_key=True)
    origin = Column(String(36), nullable=False)
    hlc = Column(BigInteger, nullable=False)
    vv = Column(JSONDoc, nullable=False)
    dots = Column(JSONDoc, nullable=False)
    hashes = Column(JSONDoc, nullable=False)
    source = Column(String(36))
    pending = Column(JSONDoc)
    version = Column(BigInteger, nullable=False)


class SyncQuarantine(Base):
    """A row a peer sent that failed validation: kept (ciphertext only) with the reason,
    never applied."""

    __tablename__ = "sync_quarantine"
    id = _uuid_pk()
    peer_id = Column(Uuid)
    table_name = Column(String(64), nullable=False)
    row_id = Column(String(64), nullable=False)
    reason = Column(String(64), nullable=False)
    detail = Column(String(500), nullable=False)
    image = Column(JSONDoc, nullable=False)
    status = Column(String(16), nullable=False, index=True)
    received_at = Column(UTCDateTime, nullable=False)


class SyncLease(Base):
    """Who is running a pass of one pair of sites, until when (two at once are refused)."""

    __tablename__ = "sync_leases"
    pair = Column(String(80), primary_key=True)
    holder = Column(String(120), nullable=False)
    expires_at = Column(UTCDateTime, nullable=False)


class SyncState(Base):
    __tablename__ = "sync_state"
    __table_args__ = (UniqueConstraint("peer_id", "table_name", "direction"),)
    id = _uuid_pk()
    peer_id = Column(Uuid, ForeignKey("sync_peers.id"), nullable=False)
    table_name = Column(String(64), nullable=False)
    direction = Column(String(8), nullable=False)
    watermark = Column(BigInteger, nullable=False, default=0)
    updated_at = _created()
    # With `watermark`, a cursor: rows of version `watermark` up to this id are done too
    # (None: all of them). One bulk write gives many rows one version.
    after_id = Column(Uuid)


class SyncConflict(Base):
    __tablename__ = "sync_conflicts"
    id = _uuid_pk()
    peer_id = Column(Uuid, ForeignKey("sync_peers.id"), nullable=False)
    table_name = Column(String(64), nullable=False)
    row_id = Column(Uuid, nullable=False)
    base = Column(JSONDoc)
    local = Column(JSONDoc, nullable=False)
    remote = Column(JSONDoc, nullable=False)
    status = Column(String(16), nullable=False, default="open", index=True)
    resolution = Column(JSONDoc)
    resolved_by = Column(String(120))
    resolved_at = Column(UTCDateTime)
    created_at = _created()


class RetentionPolicy(Base):
    __tablename__ = "retention_policies"
    id = _uuid_pk()
    table_name = Column(String(64), nullable=False, unique=True)
    archive_after_days = Column(Integer)
    delete_after_days = Column(Integer)
    active = Column(Boolean, nullable=False, default=True)
    created_at = _created()
    updated_at = _created()


class LegalHold(Base):
    __tablename__ = "legal_holds"
    id = _uuid_pk()
    practice_id = Column(Uuid, ForeignKey("practices.id"), nullable=False)
    client_id = Column(Uuid, ForeignKey("clients.id"))
    reason = Column(String(500), nullable=False)
    created_by = Column(String(120), nullable=False)
    created_at = _created()
    released_at = Column(UTCDateTime)
    released_by = Column(String(120))


class ReconcilePair(Base):
    """Two clients of one practice the reconcile job found likely to be one person
    (strongroom.core.reconcile): ids, score and reason codes only, never a value."""

    __tablename__ = "reconcile_pairs"
    __table_args__ = (UniqueConstraint("client_a", "client_b", name="uq_reconcile_pairs_clients"),
                      Index("ix_reconcile_pairs_practice_status", "practice_id", "status"))
    id = _uuid_pk()
    practice_id = Column(Uuid, ForeignKey("practices.id"), nullable=False)
    client_a = Column(Uuid, ForeignKey("clients.id"), nullable=False)
    client_b = Column(Uuid, ForeignKey("clients.id"), nullable=False)
    score = Column(Float, nullable=False)
    reasons = Column(String(200), nullable=False)
    status = Column(String(16), nullable=False, default="open")
    found_at = _created()
    decided_by = Column(String(120))
    decided_at = Column(UTCDateTime)
    merge_record = Column(JSONDoc)


class ErasureRequest(Base):
    __tablename__ = "erasure_requests"
    id = _uuid_pk()
    client_id = Column(Uuid, nullable=False, index=True)
    requested_by = Column(String(120), nullable=False)
    approved_by = Column(String(120))
    status = Column(String(16), nullable=False, default="pending", index=True)
    reason = Column(String(500), nullable=False, default="")
    created_at = _created()
    executed_at = Column(UTCDateTime)
    # Four-eyes (strongroom.core.retention.erasure): approvable until expires_at, by
    # anyone but the requester; decided_at/rejected_by record a decision either way.
    expires_at = Column(UTCDateTime)
    decided_at = Column(UTCDateTime)
    rejected_by = Column(String(120))


class RetentionArchive(Base):
    """A clinical row the records-retention job archived, timed by our own clock.

    Plain UUIDs, no foreign keys: the ledger is evidence and outlives what it names.
    `sync_version` moves on every change so incremental backups carry only changed rows.
    """

    __tablename__ = "retention_archive"
    __table_args__ = (UniqueConstraint("table_name", "row_id"),)
    id = _uuid_pk()
    table_name = Column(String(64), nullable=False)
    row_id = Column(Uuid, nullable=False)
    practice_id = Column(Uuid, nullable=False)
    client_id = Column(Uuid, index=True)
    policy_id = Column(Uuid)
    archived_at = Column(UTCDateTime, nullable=False)
    deleted_at = Column(UTCDateTime)
    sync_version = Column(BigInteger, nullable=False, index=True)


class IntegrityCheck(Base):
    __tablename__ = "integrity_checks"
    id = _uuid_pk()
    check_type = Column(String(40), nullable=False)
    name = Column(String(120), nullable=False)
    table_name = Column(String(64))
    status = Column(String(16), nullable=False)
    expected = Column(String(200))
    actual = Column(String(200))
    evidence = Column(JSONDoc, nullable=False, default=dict)
    error = Column(Text)
    started_at = _created()
    completed_at = Column(UTCDateTime)


class ComplianceScore(Base):
    """The compliance score of one UTC day (the day's latest report), for the trend."""

    __tablename__ = "compliance_scores"
    day = Column(String(10), primary_key=True)
    score = Column(Integer, nullable=False)
    areas = Column(JSONDoc, nullable=False, default=dict)
    recorded_at = _created()


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_kind_started", "job_kind", "started_at"),)
    id = _uuid_pk()
    job_kind = Column(String(32), nullable=False)
    trigger = Column(String(16), nullable=False, default="manual")
    status = Column(_enum(JobStatus), nullable=False, default=JobStatus.QUEUED, index=True)
    params = Column(JSONDoc, nullable=False, default=dict)
    requested_by = Column(String(120))
    progress_done = Column(BigInteger, nullable=False, default=0)
    progress_total = Column(BigInteger)
    message = Column(String(500))
    result = Column(JSONDoc)
    error = Column(Text)
    queued_at = _created()
    started_at = Column(UTCDateTime)
    finished_at = Column(UTCDateTime)


class ChangeCounter(Base):
    """SQLite's stand-in for a PostgreSQL sequence: the last `sync_version` handed out."""

    __tablename__ = "change_counter"
    name = Column(String(32), primary_key=True)
    value = Column(BigInteger, nullable=False, default=0)


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
    holder = Column(String(64), primary_key=True)


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
    user_id = Column(Uuid, ForeignKey("users.id"), primary_key=True)
    session_idle_minutes = Column(Integer)
    max_sessions = Column(Integer)
    rate_limits = Column(JSONDoc)
    storage_quota_mb = Column(Integer)
    hipaa_consent_at = Column(UTCDateTime)
    hipaa_consent_version = Column(String(32))
    updated_at = Column(UTCDateTime, nullable=False)
    updated_by = Column(String(120), nullable=False)


class UserDevice(Base):
    """A client a user has logged in from: its fingerprint (a hash, never the key or
    address itself), a label a person recognises, and when it was seen."""

    __tablename__ = "user_devices"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint", name="uq_user_devices_user_id"),)
    id = _uuid_pk()
    user_id = Column(Uuid, ForeignKey("users.id"), nullable=False)
    fingerprint = Column(String(64), nullable=False)
    kind = Column(String(16), nullable=False)
    label = Column(String(200), nullable=False)
    first_seen_at = Column(UTCDateTime, nullable=False)
    last_seen_at = Column(UTCDateTime, nullable=False)
    logins = Column(Integer, nullable=False, default=1)
