"""phone codes: one-time SMS codes that confirm a phone number (issue 22)

phone_codes keeps each code's keyed hash (never the code), its purpose, the client
address that asked for it, its expiry and the attempts made; the daily limits per number
and per address count these rows.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 22:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "phone_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_codes")),
    )
    for column in ("phone", "origin", "created_at"):
        op.create_index(op.f(f"ix_phone_codes_{column}"), "phone_codes", [column])


def downgrade() -> None:
    for column in ("phone", "origin", "created_at"):
        op.drop_index(op.f(f"ix_phone_codes_{column}"), table_name="phone_codes")
    op.drop_table("phone_codes")
