"""Provisioning's tables: the source of truth for a region's schools, classes and people.

The reconciler turns these rows into Matrix spaces, rooms, power levels and memberships.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Select,
    String,
    Text,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from foundation.naming import transliterate
from provisioning.db.base import Base, utcnow

ROSTER_ID_MAX_CHARS = 64  # a region portal's IDs are a UUID (36) or a number; with room


class Role(enum.StrEnum):
    REGION_ADMIN = "region_admin"
    SCHOOL_ADMIN = "school_admin"
    TEACHER = "teacher"
    PUPIL = "pupil"
    PARENT = "parent"


class RoomKind(enum.StrEnum):
    """What a managed Matrix room stands for; see docs/mapping.md."""

    SCHOOL_SPACE = "school_space"
    ANNOUNCEMENTS = "announcements"
    STAFF_ROOM = "staff_room"
    CLASS_SPACE = "class_space"
    CLASS_CHAT = "class_chat"
    CLASS_CHANNEL = "class_channel"
    CLASS_PARENTS = "class_parents"
    FAMILY = "family"
    SCHOOL_MATERIALS = "school_materials"
    SCHOOL_EVENTS = "school_events"


class EnrolmentRole(enum.StrEnum):
    PUPIL = "pupil"
    CLASS_TEACHER = "class_teacher"
    SUBJECT_TEACHER = "subject_teacher"


def _values(enum_type: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_type]


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
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(255))
    matrix_user_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The region roster's own ID of the person (its education portal's); the single
    # sign-on may name people by it (`PARTA_OIDC_CLAIM=roster_id`), so it is unique.
    roster_id: Mapped[str | None] = mapped_column(
        String(ROSTER_ID_MAX_CHARS), unique=True, index=True
    )
    # Set by the reconciler once the Matrix account exists, so later runs need not ask.
    account_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    roles: Mapped[list[RoleAssignment]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )


class RoleAssignment(Base):
    """A role a person holds in the region (region admin) or in a school (admin, teacher).

    Class-level roles (pupil, class teacher, subject teacher) are `Enrolment`s; being a
    parent follows from `ParentLink`s.
    """

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("person_id", "role", "region_id", "school_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=32, values_callable=_values)
    )
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"))
    school_id: Mapped[int | None] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    person: Mapped[Person] = relationship(back_populates="roles")


class AuditEvent(Base):
    """Who did what, when: shown to administrators, never edited."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)  # a Matrix user ID or "system"
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    origin: Mapped[str | None] = mapped_column(String(64))  # the client's address, if any
    school_id: Mapped[int | None] = mapped_column(
        ForeignKey("schools.id", ondelete="SET NULL"), index=True
    )


class School(Base):
    """A school community: one Matrix space with its rooms and one sub-space per class."""

    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    # Set once at creation; aliases are built from it, so renaming a school keeps them.
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    last_grade: Mapped[int] = mapped_column(default=11)
    # Pupils who join through a class link wait for a parent (or the administration) to
    # confirm them before they are placed in any room.
    pupils_need_confirmation: Mapped[bool] = mapped_column(default=False)
    academic_year: Mapped[int] = mapped_column()  # the year the current school year began
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    classes: Mapped[list[SchoolClass]] = relationship(back_populates="school")
    subjects: Mapped[list[Subject]] = relationship(back_populates="school")


class SchoolClass(Base):
    """A class such as "5А" in the current academic year; graduated classes are archived.

    `graduation_year` and `letter` identify the class across years: a promotion raises
    `grade` while both stay, so the class keeps its rooms, aliases and history.
    """

    __tablename__ = "school_classes"
    __table_args__ = (UniqueConstraint("school_id", "graduation_year", "letter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    grade: Mapped[int] = mapped_column()
    letter: Mapped[str] = mapped_column(String(8))
    graduation_year: Mapped[int] = mapped_column()
    # The key in its rooms' aliases once the class is renamed (None: graduation year and
    # letter, "2033a"): a renamed class keeps its rooms and their history.
    room_key: Mapped[str | None] = mapped_column(String(40))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    school: Mapped[School] = relationship(back_populates="classes")
    enrolments: Mapped[list[Enrolment]] = relationship(
        back_populates="school_class", cascade="all, delete-orphan"
    )

    @property
    def label(self) -> str:
        """How people name the class: "5А"."""
        return f"{self.grade}{self.letter}"

    @property
    def natural_alias_key(self) -> str:
        """Graduation year and transliterated letter ("2032a"): stable across promotions."""
        return f"{self.graduation_year}{transliterate(self.letter)}"

    @property
    def alias_key(self) -> str:
        """The key in its rooms' aliases; a renamed class keeps the one it had."""
        return self.room_key or self.natural_alias_key


class SchoolPromotion(Base):
    """A school's move into a new school year, recorded once per year.

    The unique pair (school, year) is what makes a repeated or concurrent promotion request
    fail instead of promoting the school twice (issue 18: a retried request archived a school).
    """

    __tablename__ = "school_promotions"
    __table_args__ = (UniqueConstraint("school_id", "academic_year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    academic_year: Mapped[int] = mapped_column()  # the year the new school year begins
    promoted_by: Mapped[str] = mapped_column(String(255))  # a Matrix user ID or "system"
    promoted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Subject(Base):
    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("school_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))

    school: Mapped[School] = relationship(back_populates="subjects")


class Enrolment(Base):
    """A person's place in a class: pupil, class teacher, or teacher of a subject."""

    __tablename__ = "enrolments"
    __table_args__ = (UniqueConstraint("person_id", "class_id", "role", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    class_id: Mapped[int] = mapped_column(
        ForeignKey("school_classes.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[EnrolmentRole] = mapped_column(
        Enum(EnrolmentRole, native_enum=False, length=32, values_callable=_values)
    )
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # None: a pupil who registered themselves and waits for a parent or the administration.
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    person: Mapped[Person] = relationship()
    school_class: Mapped[SchoolClass] = relationship(back_populates="enrolments")


def pupil_ids() -> Select[int]:
    """Everyone enrolled as a pupil, confirmed or not. A pupil is nobody's parent: the
    reconciler and the policy snapshot ignore links naming one as a parent (made before
    `link_parent` refused them)."""
    return select(Enrolment.person_id).where(Enrolment.role == EnrolmentRole.PUPIL)


class ParentLink(Base):
    """A parent (or guardian) of a pupil."""

    __tablename__ = "parent_links"
    __table_args__ = (UniqueConstraint("parent_id", "child_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    child_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set when this parent confirmed the child in Parta: they get a family room together.
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ManagedRoom(Base):
    """A Matrix room or space Parta manages, found by its alias (the natural key).

    `room_id` is remembered once the room exists; `applied` records what the reconciler
    last made true there, so a run with nothing changed needs no calls to Synapse.
    """

    __tablename__ = "managed_rooms"

    alias: Mapped[str] = mapped_column(String(255), primary_key=True)  # localpart
    kind: Mapped[RoomKind] = mapped_column(
        Enum(RoomKind, native_enum=False, length=32, values_callable=_values)
    )
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id", ondelete="SET NULL"))
    class_id: Mapped[int | None] = mapped_column(
        ForeignKey("school_classes.id", ondelete="SET NULL")
    )
    room_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    applied: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dirty: Mapped[bool] = mapped_column(default=True)  # observe it from Synapse next run
    # The school opened this room to people of the federated regions (docs/safety.md); the
    # school policy module keeps every other room with pupils closed to other servers.
    federated: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The call widget, when the school decided it (admin UI or `!call`): True puts one in,
    # False keeps it out, None leaves the room kind's default (class and parents chats).
    call_widget: Mapped[bool | None] = mapped_column(default=None)
    call_widget_name: Mapped[str | None] = mapped_column(String(255))  # None: the default
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebSession(Base):
    """A signed-in browser of the admin UI; the cookie holds a token, this row its hash.

    Kept on the server so that signing out, or an administrator ending someone's sessions,
    takes effect at once, and so that a stolen database never yields a usable cookie.
    """

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class InviteLink(Base):
    """A link that lets people join a school in a role (a class for pupils, a child for
    parents); personal when it names the one person it was made for.

    The token is kept readable so that the link and its QR code can be shown and printed
    again; revoking or expiring it is what ends it.
    """

    __tablename__ = "invite_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=32, values_callable=_values)
    )
    class_id: Mapped[int | None] = mapped_column(
        ForeignKey("school_classes.id", ondelete="CASCADE")
    )
    child_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    max_uses: Mapped[int | None] = mapped_column()  # None: as many as come before expiry
    uses: Mapped[int] = mapped_column(default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    school: Mapped[School] = relationship()
    school_class: Mapped[SchoolClass | None] = relationship()


class InviteUse(Base):
    """Who registered through an invite link, and when."""

    __tablename__ = "invite_uses"

    id: Mapped[int] = mapped_column(primary_key=True)
    invite_id: Mapped[int] = mapped_column(ForeignKey("invite_links.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))

    person: Mapped[Person] = relationship()


class ReconcilerLease(Base):
    """One reconciler at a time per region: the service's, `parta sync`, `parta demo`.

    Two runs at once would both create the same room (each sees it missing). The holder
    renews the lease while it runs; a crashed holder's lease simply expires.
    """

    __tablename__ = "reconciler_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class TeacherApplication(Base):
    """A teacher who joined through a link asks to teach subjects in classes; the school's
    administration approves before the teacher is placed in any room."""

    __tablename__ = "teacher_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    subjects: Mapped[list[str]] = mapped_column(JSON, default=list)
    class_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    status: Mapped[RequestStatus] = mapped_column(
        Enum(RequestStatus, native_enum=False, length=16, values_callable=_values),
        default=RequestStatus.PENDING,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(255))  # a Matrix user ID

    person: Mapped[Person] = relationship()


class JoinRequest(Base):
    """Someone asks to join a class: a knock on the class's space from any Matrix client.

    Accepting it here or approving the knock in Element are the same decision: whichever
    comes first is recorded, and the other side is brought in line.
    """

    __tablename__ = "join_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(
        ForeignKey("school_classes.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[RequestStatus] = mapped_column(
        Enum(RequestStatus, native_enum=False, length=16, values_callable=_values),
        default=RequestStatus.PENDING,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_in: Mapped[str | None] = mapped_column(String(16))  # "parta" or "matrix"


class RosterImport(Base):
    """A roster file applied through the admin UI: what it changed, and whom it placed."""

    __tablename__ = "roster_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    person_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # created or moved


class LibraryItem(Base):
    """A verified material in the region's library: a file (by its `mxc://`) or a link.

    Region admins curate it; teachers find items by subject and grade and share them.
    Withdrawn items stay (soft removal) so shared copies keep their provenance.
    """

    __tablename__ = "library_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(255))
    # Case-folded copies for search: SQLite's lower() and PostgreSQL's under the C locale
    # leave Cyrillic as it is, so «математика» would not find «Математика».
    subject_key: Mapped[str] = mapped_column(String(1024), index=True)
    search_text: Mapped[str] = mapped_column(Text)  # title and description, case-folded
    grade_from: Mapped[int] = mapped_column()
    grade_to: Mapped[int] = mapped_column()
    description: Mapped[str] = mapped_column(String(4000), default="")
    kind: Mapped[str] = mapped_column(String(8))  # "file" or "link"
    url: Mapped[str] = mapped_column(String(2000))  # https link or mxc:// URI
    file_name: Mapped[str | None] = mapped_column(String(255))
    mimetype: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)  # bytes; files may exceed 2 GiB
    licence: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(500))
    verified_by: Mapped[str] = mapped_column(String(255))
    added_by: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefusedAction(Base):
    """A change the homeserver refused for good (`M_TOO_LARGE`, `M_BAD_JSON`, …): kept so
    the reconciler retries it with back-off instead of every run, and the school's
    administration sees it. `digest` is what the desired state asked for when refused: a
    different one (the name corrected) is a new change, tried at once. Issue 18."""

    __tablename__ = "refused_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_key: Mapped[str] = mapped_column(String(600), unique=True)  # kind, room, user
    action: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # `describe(action)`
    digest: Mapped[str] = mapped_column(String(64))
    school_id: Mapped[int | None] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), index=True
    )
    alias: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255), index=True)
    errcode: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(default=1)
    first_refused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_refused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BroadcastState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class Broadcast(Base):
    """A scheduled broadcast (трансляция) of a school into one of its chats: the audience
    is that chat's members, the speakers are people of the school (issue 21).

    `version` counts the edits: each edit after the announcement posts one update, keyed
    by it in `broadcast_notices`. The cover is Matrix media the bot uploaded.
    """

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(4000), default="")
    speakers: Mapped[list[str]] = mapped_column(JSON, default=list)  # Matrix user IDs
    audience_alias: Mapped[str] = mapped_column(
        ForeignKey("managed_rooms.alias", ondelete="CASCADE")
    )
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cover_mxc: Mapped[str] = mapped_column(String(500))
    cover_width: Mapped[int] = mapped_column()
    cover_height: Mapped[int] = mapped_column()
    cover_bytes: Mapped[int] = mapped_column()
    cover_mimetype: Mapped[str] = mapped_column(String(64))
    state: Mapped[BroadcastState] = mapped_column(
        Enum(BroadcastState, native_enum=False, length=16, values_callable=_values),
        default=BroadcastState.SCHEDULED,
    )
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[str] = mapped_column(String(255))  # a Matrix user ID
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    announcement_event_id: Mapped[str | None] = mapped_column(String(255))

    audience: Mapped[ManagedRoom] = relationship()


class BroadcastNotice(Base):
    """One message (or widget change) the bot owes a broadcast's audience, sent once.

    The unique (broadcast, kind) pair is the claim: of two provisioning processes, or a
    tick and its retry, only the one that inserts the row sends; the Matrix transaction
    ID is derived from the same pair, so a send retried after a lost answer is one event.
    Kinds: `announce`, `update:<version>`, `remind_day`, `remind_15m`, `start`, `end`,
    `cancel`. A homeserver refusal is recorded here (`errcode`) and never tried again.
    """

    __tablename__ = "broadcast_notices"
    __table_args__ = (UniqueConstraint("broadcast_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str | None] = mapped_column(String(255))
    errcode: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))


class MeetingState(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class ParentMeeting(Base):
    """A parent meeting a class teacher schedules in the class's parents chat (issue 21).

    Remote (everyone joins the chat's call) or hybrid (the classroom's computer joins the
    same call as one participant). Whether it is upcoming, under way or over follows from
    the clock; only a cancellation is stored. `version` counts edits (each posts one update)
    and `minutes_version` the saves of the minutes (the first posts them, later a correction),
    keyed by them in `meeting_notices`.
    """

    __tablename__ = "parent_meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int] = mapped_column(
        ForeignKey("school_classes.id", ondelete="CASCADE"), index=True
    )
    room_alias: Mapped[str] = mapped_column(ForeignKey("managed_rooms.alias", ondelete="CASCADE"))
    agenda: Mapped[str] = mapped_column(String(2000))
    hybrid: Mapped[bool] = mapped_column(default=False)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[MeetingState] = mapped_column(
        Enum(MeetingState, native_enum=False, length=16, values_callable=_values),
        default=MeetingState.SCHEDULED,
    )
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[str] = mapped_column(String(255))  # a Matrix user ID
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    minutes: Mapped[str | None] = mapped_column(Text)
    minutes_version: Mapped[int] = mapped_column(default=0)
    minutes_by: Mapped[str | None] = mapped_column(String(255))
    minutes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    room: Mapped[ManagedRoom] = relationship()


class MeetingNotice(Base):
    """One message the bot owes a parent meeting's chat, sent once (as `BroadcastNotice`).

    Kinds: `announce`, `update:<version>`, `remind_day`, `remind_15m`, `start`, `cancel`,
    `minutes:<minutes_version>`.
    """

    __tablename__ = "meeting_notices"
    __table_args__ = (UniqueConstraint("meeting_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("parent_meetings.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str | None] = mapped_column(String(255))
    errcode: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))


class AppointmentSlot(Base):
    """One time a teacher or the director offers for a talk with a parent (issue 21).

    Slots come in offers (`offer_id`): one form generates several slots of a length, or a
    single one; a parent books at most one slot of an offer. A cancelled slot is kept (its
    booking is cancelled with it and the parent told) but nobody can book it again.
    """

    __tablename__ = "appointment_slots"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    offer_id: Mapped[str] = mapped_column(String(32), index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    host: Mapped[Person] = relationship()


class AppointmentBooking(Base):
    """A parent's booking of a slot, and the private room the bot makes for it.

    Two parents cannot hold one slot: `holds_slot` is the slot's ID while the booking
    stands and NULL once cancelled, under a unique constraint (NULLs never collide, on
    SQLite and PostgreSQL alike), so a cancelled booking frees the slot. `holds_offer` does
    the same for "one slot per offer and parent".
    """

    __tablename__ = "appointment_bookings"
    __table_args__ = (
        UniqueConstraint("holds_slot"),
        UniqueConstraint("holds_offer", "parent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(
        ForeignKey("appointment_slots.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    holds_slot: Mapped[int | None] = mapped_column()
    holds_offer: Mapped[str | None] = mapped_column(String(32))
    room_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_by: Mapped[str | None] = mapped_column(String(16))  # "parent" or "host"

    slot: Mapped[AppointmentSlot] = relationship()
    parent: Mapped[Person] = relationship(foreign_keys=[parent_id])
    child: Mapped[Person] = relationship(foreign_keys=[child_id])


class AppointmentNotice(Base):
    """One message the bot owes a booking's room, sent once (as `MeetingNotice`).

    Kinds: `booked`, `remind_day`, `remind_15m`, `cancel`.
    """

    __tablename__ = "appointment_notices"
    __table_args__ = (UniqueConstraint("booking_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        ForeignKey("appointment_bookings.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str | None] = mapped_column(String(255))
    errcode: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))
