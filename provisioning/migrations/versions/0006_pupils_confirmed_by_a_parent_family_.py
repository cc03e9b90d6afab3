"""pupils confirmed by a parent, family rooms

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 12:06:30.666563
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("parent_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("schools", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "pupils_need_confirmation", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    # Everyone enrolled before confirmation existed was placed by an administrator.
    op.execute("UPDATE enrolments SET confirmed_at = created_at WHERE confirmed_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("schools", schema=None) as batch_op:
        batch_op.drop_column("pupils_need_confirmation")

    with op.batch_alter_table("parent_links", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")

    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
