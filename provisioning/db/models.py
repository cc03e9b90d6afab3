"""Provisioning's tables: the region, the people in it, their roles, and the audit log."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provisioning.db.base import Base, utcnow


class Role(enum.StrEnum):
    REGION_ADMIN = "region_admin"
    SCHOOL_ADMIN = "school_admin"
    TEACHER = "teacher"
    PUPIL = "pupil"
    PARENT = "parent"


class Region(Base):
    """The deployment's region: one homeserver, one server name."""

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    server_name: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Person(Base):
    """Someone Parta knows: a pupil, parent, teacher or administrator."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(255))
    matrix_user_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    roles: Mapped[list[RoleAssignment]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )


class RoleAssignment(Base):
    """A role a person holds within a scope (the region here; schools and classes later)."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("person_id", "role", "region_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])
    )
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    person: Mapped[Person] = relationship(back_populates="roles")


class AuditEvent(Base):
    """Who did what, when: shown to administrators, never edited."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))  # a Matrix user ID, or "system"
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
