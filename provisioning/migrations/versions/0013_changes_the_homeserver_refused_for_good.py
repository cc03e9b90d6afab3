"""changes the homeserver refused for good, retried with back-off and shown to the school

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 08:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refused_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_key", sa.String(length=600), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("alias", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("errcode", sa.String(length=64), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_refused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_refused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("action_key"),
    )
    op.create_index("ix_refused_actions_school_id", "refused_actions", ["school_id"])
    op.create_index("ix_refused_actions_user_id", "refused_actions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_refused_actions_user_id", table_name="refused_actions")
    op.drop_index("ix_refused_actions_school_id", table_name="refused_actions")
    op.drop_table("refused_actions")
