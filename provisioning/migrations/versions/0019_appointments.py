"""individual appointments: slots a teacher or the director offers, parents' bookings, notices

appointment_slots holds each offered time (grouped by offer_id); appointment_bookings a
parent's booking with its private room, where holds_slot / holds_offer are unique while the
booking stands (NULL once cancelled); appointment_notices one row per message the bot sends.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 20:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "appointment_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.String(length=32), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["people.id"],
            name=op.f("fk_appointment_slots_host_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_appointment_slots_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_slots")),
    )
    for column in ("school_id", "host_id", "offer_id", "starts_at"):
        op.create_index(op.f(f"ix_appointment_slots_{column}"), "appointment_slots", [column])
    op.create_table(
        "appointment_bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("holds_slot", sa.Integer(), nullable=True),
        sa.Column("holds_offer", sa.String(length=32), nullable=True),
        sa.Column("room_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["people.id"],
            name=op.f("fk_appointment_bookings_child_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["people.id"],
            name=op.f("fk_appointment_bookings_parent_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["appointment_slots.id"],
            name=op.f("fk_appointment_bookings_slot_id_appointment_slots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_bookings")),
        sa.UniqueConstraint("holds_slot", name=op.f("uq_appointment_bookings_holds_slot")),
        sa.UniqueConstraint(
            "holds_offer", "parent_id", name=op.f("uq_appointment_bookings_holds_offer")
        ),
    )
    op.create_index(op.f("ix_appointment_bookings_slot_id"), "appointment_bookings", ["slot_id"])
    op.create_index(
        op.f("ix_appointment_bookings_parent_id"), "appointment_bookings", ["parent_id"]
    )
    op.create_table(
        "appointment_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("errcode", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["appointment_bookings.id"],
            name=op.f("fk_appointment_notices_booking_id_appointment_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_notices")),
        sa.UniqueConstraint("booking_id", "kind", name=op.f("uq_appointment_notices_booking_id")),
    )


def downgrade() -> None:
    op.drop_table("appointment_notices")
    op.drop_index(op.f("ix_appointment_bookings_parent_id"), table_name="appointment_bookings")
    op.drop_index(op.f("ix_appointment_bookings_slot_id"), table_name="appointment_bookings")
    op.drop_table("appointment_bookings")
    for column in ("starts_at", "offer_id", "host_id", "school_id"):
        op.drop_index(op.f(f"ix_appointment_slots_{column}"), table_name="appointment_slots")
    op.drop_table("appointment_slots")
