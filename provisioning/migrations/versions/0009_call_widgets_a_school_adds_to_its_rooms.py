"""call widgets a school adds to (or keeps out of) its rooms

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("managed_rooms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("call_widget", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("call_widget_name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("managed_rooms", schema=None) as batch_op:
        batch_op.drop_column("call_widget_name")
        batch_op.drop_column("call_widget")
