"""broadcasts a school schedules into one of its chats, and the notices the bot owes them

broadcasts holds the form (title, speakers, audience room, times, cover as Matrix media,
state); broadcast_notices one row per message the bot sends, unique per broadcast and kind.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 19:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("speakers", sa.JSON(), nullable=False),
        sa.Column("audience_alias", sa.String(length=255), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cover_mxc", sa.String(length=500), nullable=False),
        sa.Column("cover_width", sa.Integer(), nullable=False),
        sa.Column("cover_height", sa.Integer(), nullable=False),
        sa.Column("cover_bytes", sa.Integer(), nullable=False),
        sa.Column("cover_mimetype", sa.String(length=64), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "scheduled",
                "live",
                "ended",
                "cancelled",
                name="broadcaststate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("announcement_event_id", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["audience_alias"],
            ["managed_rooms.alias"],
            name=op.f("fk_broadcasts_audience_alias_managed_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_broadcasts_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    op.create_index(op.f("ix_broadcasts_school_id"), "broadcasts", ["school_id"])
    op.create_index(op.f("ix_broadcasts_starts_at"), "broadcasts", ["starts_at"])
    op.create_table(
        "broadcast_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("errcode", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
            name=op.f("fk_broadcast_notices_broadcast_id_broadcasts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_notices")),
        sa.UniqueConstraint("broadcast_id", "kind", name=op.f("uq_broadcast_notices_broadcast_id")),
    )


def downgrade() -> None:
    op.drop_table("broadcast_notices")
    op.drop_index(op.f("ix_broadcasts_starts_at"), table_name="broadcasts")
    op.drop_index(op.f("ix_broadcasts_school_id"), table_name="broadcasts")
    op.drop_table("broadcasts")
