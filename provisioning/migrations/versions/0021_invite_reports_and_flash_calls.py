"""invite reports: «это не я» on a personal link; flash-call codes (issue 22)

invite_reports keeps one report per personal link whose holder said the name is not
theirs: the link is suspended, and the school's administration re-issues or dismisses.
phone_codes.channel says how a code went: "sms" (6 digits) or "flash_call" (the last 4
digits of the calling number).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 23:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invite_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invite_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("new_invite_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invite_id"],
            ["invite_links.id"],
            name=op.f("fk_invite_reports_invite_id_invite_links"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_invite_reports_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_invite_reports_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["new_invite_id"],
            ["invite_links.id"],
            name=op.f("fk_invite_reports_new_invite_id_invite_links"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_reports")),
        sa.UniqueConstraint("invite_id", name=op.f("uq_invite_reports_invite_id")),
    )
    op.create_index(op.f("ix_invite_reports_school_id"), "invite_reports", ["school_id"])
    with op.batch_alter_table("phone_codes") as batch:
        batch.add_column(
            sa.Column("channel", sa.String(length=16), server_default="sms", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("phone_codes") as batch:
        batch.drop_column("channel")
    op.drop_index(op.f("ix_invite_reports_school_id"), table_name="invite_reports")
    op.drop_table("invite_reports")
