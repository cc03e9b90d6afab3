"""schools, classes, subjects, enrolments, parent links, managed rooms

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 08:09:12.980284
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parent_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["people.id"],
            name=op.f("fk_parent_links_child_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["people.id"],
            name=op.f("fk_parent_links_parent_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parent_links")),
        sa.UniqueConstraint("parent_id", "child_id", name=op.f("uq_parent_links_parent_id")),
    )
    op.create_table(
        "schools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("last_grade", sa.Integer(), nullable=False),
        sa.Column("academic_year", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
            name=op.f("fk_schools_region_id_regions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schools")),
        sa.UniqueConstraint("slug", name=op.f("uq_schools_slug")),
    )
    op.create_table(
        "school_classes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("letter", sa.String(length=8), nullable=False),
        sa.Column("graduation_year", sa.Integer(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_school_classes_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_school_classes")),
        sa.UniqueConstraint(
            "school_id", "graduation_year", "letter", name=op.f("uq_school_classes_school_id")
        ),
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_subjects_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subjects")),
        sa.UniqueConstraint("school_id", "name", name=op.f("uq_subjects_school_id")),
    )
    op.create_table(
        "enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "pupil",
                "class_teacher",
                "subject_teacher",
                name="enrolmentrole",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["school_classes.id"],
            name=op.f("fk_enrolments_class_id_school_classes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_enrolments_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_enrolments_subject_id_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
        sa.UniqueConstraint(
            "person_id", "class_id", "role", "subject_id", name=op.f("uq_enrolments_person_id")
        ),
    )
    op.create_table(
        "managed_rooms",
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "school_space",
                "announcements",
                "staff_room",
                "class_space",
                "class_chat",
                "class_channel",
                "class_parents",
                name="roomkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("class_id", sa.Integer(), nullable=True),
        sa.Column("room_id", sa.String(length=255), nullable=True),
        sa.Column("applied", sa.JSON(), nullable=False),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["school_classes.id"],
            name=op.f("fk_managed_rooms_class_id_school_classes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_managed_rooms_school_id_schools"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("alias", name=op.f("pk_managed_rooms")),
        sa.UniqueConstraint("room_id", name=op.f("uq_managed_rooms_room_id")),
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("email", sa.String(length=255), nullable=True))

    with op.batch_alter_table("role_assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("school_id", sa.Integer(), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_role_assignments_person_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_role_assignments_person_id"),
            ["person_id", "role", "region_id", "school_id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_role_assignments_school_id_schools"),
            "schools",
            ["school_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("role_assignments", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_role_assignments_school_id_schools"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_role_assignments_person_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_role_assignments_person_id"), ["person_id", "role", "region_id"]
        )
        batch_op.drop_column("school_id")

    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("email")
        batch_op.drop_column("phone")

    op.drop_table("managed_rooms")
    op.drop_table("enrolments")
    op.drop_table("subjects")
    op.drop_table("school_classes")
    op.drop_table("schools")
    op.drop_table("parent_links")
