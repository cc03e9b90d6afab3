"""parent links recorded before 0012 belong to the log of the child's school

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 10:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_events = sa.table(
    "audit_events",
    sa.column("id", sa.Integer),
    sa.column("action", sa.String),
    sa.column("details", sa.JSON),
    sa.column("school_id", sa.Integer),
)
_enrolments = sa.table(
    "enrolments",
    sa.column("person_id", sa.Integer),
    sa.column("class_id", sa.Integer),
    sa.column("role", sa.String),
)
_classes = sa.table(
    "school_classes", sa.column("id", sa.Integer), sa.column("school_id", sa.Integer)
)


def upgrade() -> None:
    """Each unattributed `parent.linked` event gets the school of the child's class now
    (the child's ID is in its details); a child in no class keeps it in the region's log."""
    bind = op.get_bind()
    schools = dict(
        bind.execute(
            sa.select(_enrolments.c.person_id, _classes.c.school_id)
            .join(_classes, _classes.c.id == _enrolments.c.class_id)
            .where(_enrolments.c.role == "pupil")
        ).all()
    )
    unattributed = bind.execute(
        sa.select(_events.c.id, _events.c.details).where(
            _events.c.action == "parent.linked", _events.c.school_id.is_(None)
        )
    ).all()
    for event_id, details in unattributed:
        school_id = schools.get((details or {}).get("child"))
        if school_id is not None:
            bind.execute(
                sa.update(_events).where(_events.c.id == event_id).values(school_id=school_id)
            )


def downgrade() -> None:
    """Nothing to undo: the attribution is what 0012's code records anyway."""
