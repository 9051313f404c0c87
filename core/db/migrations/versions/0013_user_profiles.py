"""Per-user security profiles and the devices each account has logged in from.

- `user_security_profiles`: one row per user who has settings of their own (session
  idle timeout, concurrent sessions, command rate limits per hour and class, storage
  quota, HIPAA consent date and version). A column left NULL takes the global policy
  ([auth] in the config), and a value may only be stricter than the policy
  (core/auth/profiles.py checks both when it is set).
- `user_devices`: each distinct client a user logged in from (a CURVE public key, or the
  host and program the transport and client report), hashed into a fingerprint with
  when it was first and last seen. A first login from a new device is a security event.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import strongroom.core.db.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_WHEN = strongroom.core.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "user_security_profiles",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("session_idle_minutes", sa.Integer()),
        sa.Column("max_sessions", sa.Integer()),
        sa.Column("rate_limits", _JSON),
        sa.Column("storage_quota_mb", sa.Integer()),
        sa.Column("hipaa_consent_at", _WHEN),
        sa.Column("hipaa_consent_version", sa.String(32)),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
    )
    op.create_table(
        "user_devices",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("first_seen_at", _WHEN, nullable=False),
        sa.Column("last_seen_at", _WHEN, nullable=False),
        sa.Column("logins", sa.Integer(), nullable=False),
        sa.UniqueConstraint("user_id", "fingerprint", name="uq_user_devices_user_id"),
    )


def downgrade() -> None:
    op.drop_table("user_devices")
    op.drop_table("user_security_profiles")
