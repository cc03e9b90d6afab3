"""a school is promoted into each school year once; a renamed class keeps its rooms' key

school_promotions holds one row per school and school year (unique), and
school_classes.room_key the alias key a class keeps when it is renamed.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-04 08:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "school_promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("academic_year", sa.Integer(), nullable=False),
        sa.Column("promoted_by", sa.String(length=255), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "academic_year"),
    )
    # Plain ALTER TABLE on both backends: a batch copy of school_classes would drop the
    # table, and SQLite's foreign keys would take every enrolment with it.
    op.add_column("school_classes", sa.Column("room_key", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("school_classes", "room_key")  # SQLite 3.35 and later drop it in place
    op.drop_table("school_promotions")
