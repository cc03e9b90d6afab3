"""roster IDs: the region's own ID of a person, for the single sign-on's claim (issue 22)

people.roster_id holds the ID a region's roster (its education portal) gives a person,
imported from the roster CSV or the REST API. The region's provider may name people by it
(`PARTA_OIDC_CLAIM=roster_id`), so no two people may share one; most have none.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 23:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTERs and a unique index, never a batch copy of `people`: on SQLite a copy
    # drops the old table, and with foreign keys on that deletes everyone's enrolments.
    op.add_column("people", sa.Column("roster_id", sa.String(length=64), nullable=True))
    op.create_index("ix_people_roster_id", "people", ["roster_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_people_roster_id", table_name="people")
    op.drop_column("people", "roster_id")  # SQLite 3.35+ drops a column in place
