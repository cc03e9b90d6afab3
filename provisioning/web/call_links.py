"""Where the admin UI sends people for their lessons, meetings and documents.

A call and a room's documents open on the widget service by the room's Matrix ID
(`/call/?room_id=…`, `/documents/?room_id=…`): the same pages Element shows as widgets,
standalone, so they work in any browser and on a phone. Room IDs live in `ManagedRoom`
once the reconciler has made the rooms; until then a class has no links yet.

Who may join is the room's business (the call service lets in only the room's members),
so the links follow the rooms' members as provisioning places them: a class's lesson is
its chat (its pupils and teachers), its parents' meeting is its parents' room (its class
teachers and the parents of its placed pupils).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.settings import Settings
from provisioning.db.models import ManagedRoom, RoomKind, SchoolClass
from provisioning.reconciler.desired import family_alias


@dataclass(frozen=True)
class ClassLinks:
    """A class's call pages and its documents; None where the room does not exist yet."""

    lesson: str | None  # the call of the class chat («Урок»)
    parents_meeting: str | None  # the call of the parents' room («Родительское собрание»)
    documents: str | None  # the class chat's files on the documents page
    calls_closed: bool  # a graduated class: its rooms are read-only, no calls any more


def call_url(settings: Settings, room_id: str) -> str:
    return f"{settings.widgets_base_url}/call/?{urlencode({'room_id': room_id})}"


def documents_url(settings: Settings, room_id: str | None = None) -> str:
    """The documents page; on a room's files, or on the person's own («Мои документы»)."""
    query = f"?{urlencode({'room_id': room_id})}" if room_id else ""
    return f"{settings.widgets_base_url}/documents/{query}"


def class_links(
    session: Session, settings: Settings, classes: Iterable[SchoolClass]
) -> dict[int, ClassLinks]:
    """Each class's links, by class ID, in one query."""
    by_id = {school_class.id: school_class for school_class in classes}
    rooms: dict[tuple[int, RoomKind], str] = {}
    for class_id, kind, room_id in session.execute(
        select(ManagedRoom.class_id, ManagedRoom.kind, ManagedRoom.room_id).where(
            ManagedRoom.class_id.in_(by_id),
            ManagedRoom.kind.in_((RoomKind.CLASS_CHAT, RoomKind.CLASS_PARENTS)),
            ManagedRoom.room_id.is_not(None),
        )
    ):
        if class_id is not None and room_id is not None:  # as the query asked
            rooms[(class_id, kind)] = room_id
    links: dict[int, ClassLinks] = {}
    for class_id, school_class in by_id.items():
        closed = school_class.archived_at is not None
        chat = rooms.get((class_id, RoomKind.CLASS_CHAT))
        parents = rooms.get((class_id, RoomKind.CLASS_PARENTS))
        links[class_id] = ClassLinks(
            lesson=call_url(settings, chat) if chat and not closed else None,
            parents_meeting=call_url(settings, parents) if parents and not closed else None,
            documents=documents_url(settings, chat) if chat else None,
            calls_closed=closed,
        )
    return links


def family_calls(
    session: Session, settings: Settings, parent_id: int, child_ids: Iterable[int]
) -> dict[int, str]:
    """The call of each family room a parent shares with a child, by the child's ID."""
    aliases = {str(family_alias(parent_id, child_id)): child_id for child_id in child_ids}
    found = session.execute(
        select(ManagedRoom.alias, ManagedRoom.room_id).where(
            ManagedRoom.alias.in_(aliases), ManagedRoom.room_id.is_not(None)
        )
    )
    return {aliases[alias]: call_url(settings, room_id) for alias, room_id in found if room_id}
