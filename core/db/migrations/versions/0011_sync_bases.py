"""Base versions for sync conflicts: `sync_base_clients`, `sync_base_therapy_sessions`,
the `sync_applying` flag table and the triggers that keep them (core/db/sync_bases.py
says how and why).

A manual conflict queued by a sync pass had no base (the last version both sites agreed
on), so a person settling it saw two values and could not tell which side had changed
the field. The shadows keep, per row edited locally since it last travelled, the version
before that edit; they hold only those rows, so they grow with the edits waiting to
sync, not with the database.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
from alembic import op

from strongroom.core.db import sync_bases

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sync_bases.install(op.get_bind())


def downgrade() -> None:
    sync_bases.uninstall(op.get_bind())
