"""parent meetings a class teacher schedules in the class's parents chat, and their notices

parent_meetings holds the meeting (class, parents chat, times, agenda, remote or hybrid,
cancellation, minutes); meeting_notices one row per message the bot sends, unique per
meeting and kind, as broadcast_notices.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-04 20:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parent_meetings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("room_alias", sa.String(length=255), nullable=False),
        sa.Column("agenda", sa.String(length=2000), nullable=False),
        sa.Column("hybrid", sa.Boolean(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("minutes", sa.Text(), nullable=True),
        sa.Column("minutes_version", sa.Integer(), nullable=False),
        sa.Column("minutes_by", sa.String(length=255), nullable=True),
        sa.Column("minutes_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["school_classes.id"],
            name=op.f("fk_parent_meetings_class_id_school_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["room_alias"],
            ["managed_rooms.alias"],
            name=op.f("fk_parent_meetings_room_alias_managed_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_parent_meetings_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parent_meetings")),
    )
    op.create_index(op.f("ix_parent_meetings_school_id"), "parent_meetings", ["school_id"])
    op.create_index(op.f("ix_parent_meetings_class_id"), "parent_meetings", ["class_id"])
    op.create_index(op.f("ix_parent_meetings_starts_at"), "parent_meetings", ["starts_at"])
    op.create_table(
        "meeting_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("errcode", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["parent_meetings.id"],
            name=op.f("fk_meeting_notices_meeting_id_parent_meetings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_notices")),
        sa.UniqueConstraint("meeting_id", "kind", name=op.f("uq_meeting_notices_meeting_id")),
    )


def downgrade() -> None:
    op.drop_table("meeting_notices")
    op.drop_index(op.f("ix_parent_meetings_starts_at"), table_name="parent_meetings")
    op.drop_index(op.f("ix_parent_meetings_class_id"), table_name="parent_meetings")
    op.drop_index(op.f("ix_parent_meetings_school_id"), table_name="parent_meetings")
    op.drop_table("parent_meetings")
