"""Photo and video reports of a school's life, as a gallery (issue 21, class reports).

Class teachers and the administration post reports into the school's «События школы»;
teachers post their class's pictures into its channel too. The gallery reads them back
from the homeserver (the bot is in every managed room), newest first:
- a school's gallery: every photo and video of its events room, for everyone of the
  school (staff, pupils, the parents of its pupils);
- a class's gallery: the reports the class's class teachers posted in the events room,
  and the photos and videos of the class channel, for the class's people and the staff.
Who may see what is decided here, on the server; the homeserver's files reach the browser
only through `open_media`, with a ticket the viewer's gallery page was given
(`media_tickets`), for a room the viewer may still see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix import media, rooms
from matrix.client import MatrixClient
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    ManagedRoom,
    Person,
    RoomKind,
    SchoolClass,
)
from provisioning.services.access import Access
from provisioning.services.media_tickets import MediaTickets, servable

MAX_ITEMS = 120  # a page shows the latest reports; older ones stay in the room's history
_READ_BACK = 1000  # media messages read per room to find them
_MEDIA_FILTER = json.dumps(
    {"types": ["m.room.message"], "contains_url": True, "lazy_load_members": True},
    separators=(",", ":"),
)
THUMBNAIL_SIZE = (480, 360)
# What a browser is given to display inline; any other file is offered as a download, so
# an uploaded page or script never runs on the admin UI's origin.
INLINE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/webm"}
)

_FILE_NAME = re.compile(r"[^\s/]+\.[A-Za-z0-9]{2,5}")  # IMG_0042.jpg: a name, not a caption
MediaKind = Literal["image", "video"]
_KINDS: dict[str, MediaKind] = {"m.image": "image", "m.video": "video"}


@dataclass(frozen=True)
class Report:
    """One photo or video of a gallery."""

    room_id: str
    event_id: str
    sender: str
    kind: MediaKind
    url: str  # mxc://
    thumbnail_url: str | None  # an image's own thumbnail comes from the homeserver
    caption: str
    mimetype: str
    posted_at: datetime
    width: int | None
    height: int | None


def report_of(room_id: str, event: dict[str, Any]) -> Report | None:
    """The photo or video an event carries, or None (a file, a redacted post, an edit)."""
    content = event.get("content")
    if not isinstance(content, dict) or event.get("type") != "m.room.message":
        return None
    kind = _KINDS.get(str(content.get("msgtype")))
    url = content.get("url")
    relation = content.get("m.relates_to")
    if kind is None or not isinstance(url, str) or not url.startswith("mxc://"):
        return None
    if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
        return None
    given = content.get("info")
    info: dict[str, Any] = given if isinstance(given, dict) else {}
    thumbnail = info.get("thumbnail_url")
    written = content.get("body")
    body = written if isinstance(written, str) else ""
    # Matrix's media captions: the body is the caption when it is not the file's name.
    caption = "" if body == content.get("filename") or _FILE_NAME.fullmatch(body) else body
    return Report(
        room_id=room_id,
        event_id=str(event.get("event_id")),
        sender=str(event.get("sender")),
        kind=kind,
        url=url,
        thumbnail_url=thumbnail if isinstance(thumbnail, str) and thumbnail.startswith("mxc://")
        else (url if kind == "image" else None),
        caption=caption[:500],
        mimetype=str(info.get("mimetype") or ""),
        posted_at=datetime.fromtimestamp(int(event.get("origin_server_ts") or 0) / 1000, UTC),
        width=info.get("w") if isinstance(info.get("w"), int) else None,
        height=info.get("h") if isinstance(info.get("h"), int) else None,
    )  # fmt: skip


def reports_in(room_id: str, events: Iterable[dict[str, Any]]) -> list[Report]:
    return [r for e in events if (r := report_of(room_id, e)) is not None]


# --- Who may see which gallery ------------------------------------------------------------


def _schools_of_family(session: Session, viewer: Access) -> tuple[set[int], set[int]]:
    """The schools and classes a pupil is in, or a parent's children are in."""
    pupils = {viewer.person_id} | set(viewer.parent_of)
    rows = session.execute(
        select(SchoolClass.school_id, SchoolClass.id)
        .join(Enrolment, Enrolment.class_id == SchoolClass.id)
        .where(
            Enrolment.person_id.in_(pupils),
            Enrolment.role == EnrolmentRole.PUPIL,
            Enrolment.confirmed_at.is_not(None),
            SchoolClass.archived_at.is_(None),
        )
    ).all()
    return {school for school, _ in rows}, {class_id for _, class_id in rows}


def may_view_school_gallery(session: Session, viewer: Access, school_id: int) -> bool:
    if viewer.may_view_school(school_id):
        return True
    return school_id in _schools_of_family(session, viewer)[0]


def may_view_class_gallery(session: Session, viewer: Access, school_class: SchoolClass) -> bool:
    if viewer.may_view_school(school_class.school_id):
        return True
    return school_class.id in _schools_of_family(session, viewer)[1]


# --- Reading the reports ------------------------------------------------------------------


def _room_id(session: Session, kind: RoomKind, **where: int) -> str | None:
    query = select(ManagedRoom.room_id).where(ManagedRoom.kind == kind)
    if "school_id" in where:
        query = query.where(ManagedRoom.school_id == where["school_id"])
    if "class_id" in where:
        query = query.where(ManagedRoom.class_id == where["class_id"])
    return session.scalar(query)


async def _reports(bot: MatrixClient, room_id: str | None) -> list[Report]:
    if room_id is None:
        return []  # the reconciler has not made the room yet
    events = await rooms.read_recent(bot, room_id, event_filter=_MEDIA_FILTER, limit=_READ_BACK)
    return reports_in(room_id, events)


async def school_reports(session: Session, bot: MatrixClient, school_id: int) -> list[Report]:
    room_id = _room_id(session, RoomKind.SCHOOL_EVENTS, school_id=school_id)
    return (await _reports(bot, room_id))[:MAX_ITEMS]


async def class_reports(
    session: Session, bot: MatrixClient, school_class: SchoolClass
) -> list[Report]:
    """The class teachers' reports in the events room and the class channel's pictures."""
    leads = set(
        session.scalars(
            select(Person.matrix_user_id)
            .join(Enrolment, Enrolment.person_id == Person.id)
            .where(
                Enrolment.class_id == school_class.id,
                Enrolment.role == EnrolmentRole.CLASS_TEACHER,
            )
        )
    )
    events_room = _room_id(session, RoomKind.SCHOOL_EVENTS, school_id=school_class.school_id)
    channel = _room_id(session, RoomKind.CLASS_CHANNEL, class_id=school_class.id)
    found = [r for r in await _reports(bot, events_room) if r.sender in leads]
    found += await _reports(bot, channel)
    found.sort(key=lambda r: r.posted_at, reverse=True)
    return found[:MAX_ITEMS]


def names_of(session: Session, reports: Iterable[Report]) -> dict[str, str]:
    senders = {r.sender for r in reports}
    rows = session.execute(
        select(Person.matrix_user_id, Person.display_name).where(Person.matrix_user_id.in_(senders))
    )
    return {str(user_id): name for user_id, name in rows}


# --- The files ------------------------------------------------------------------------------


class NoSuchReport(LookupError):
    """Not a photo or video of a gallery this person may see."""


class NotTheirTicket(LookupError):
    """A ticket minted for another person's page."""


@dataclass(frozen=True)
class MediaLinks:
    """The signed query strings of a report's thumbnail (if it has one) and whole file."""

    thumbnail: str | None
    file: str | None


def media_links(
    tickets: MediaTickets, viewer: Access, reports: Iterable[Report], now: float
) -> dict[str, MediaLinks]:
    """Tickets for the files of the reports this viewer's page shows, by event ID.

    The reports were read from their rooms just now, for a viewer allowed to see those
    rooms, so the page's links need no second look at the events.
    """

    def link(mxc: str | None, kind: Literal["thumbnail", "file"], room_id: str) -> str | None:
        if mxc is None or not servable(mxc):
            return None
        return tickets.mint(mxc, kind, viewer.user_id, room_id, now)

    return {
        r.event_id: MediaLinks(
            thumbnail=link(r.thumbnail_url, "thumbnail", r.room_id),
            file=link(r.url, "file", r.room_id),
        )
        for r in reports
    }


def gallery_room(session: Session, viewer: Access, room_id: str) -> ManagedRoom:
    """The managed room, if it is a gallery's and the viewer may see that gallery."""
    room = session.scalar(select(ManagedRoom).where(ManagedRoom.room_id == room_id))
    if room is None or room.school_id is None:
        raise NoSuchReport(room_id)
    if room.kind == RoomKind.SCHOOL_EVENTS:
        allowed = may_view_school_gallery(session, viewer, room.school_id)
    elif room.kind == RoomKind.CLASS_CHANNEL and room.class_id is not None:
        school_class = session.get(SchoolClass, room.class_id)
        allowed = school_class is not None and may_view_class_gallery(session, viewer, school_class)
    else:
        allowed = False
    if not allowed:
        raise NoSuchReport(room_id)
    return room


async def open_media(
    session: Session,
    bot: MatrixClient,
    tickets: MediaTickets,
    viewer: Access,
    ticket: str,
    *,
    now: float,
    range_header: str | None = None,
) -> httpx.Response:
    """The ticket's thumbnail or whole file, streaming (the caller closes it).

    Everything but the file is decided before the homeserver is asked: the ticket's
    signature and expiry, its viewer, and whether the viewer may still see its room (a
    pupil who left the school since the page was made).

    Raises:
        TicketRefused: forged, altered or expired.
        NotTheirTicket: minted for another person.
        NoSuchReport: the viewer may no longer see the ticket's room.
        MatrixError: the homeserver refused the file (gone, quarantined).
    """
    granted = tickets.check(ticket, now)
    if granted.user_id != viewer.user_id:
        raise NotTheirTicket(granted.user_id)
    gallery_room(session, viewer, granted.room_id)
    if granted.kind == "thumbnail":
        width, height = THUMBNAIL_SIZE
        return await media.open_thumbnail(bot, granted.mxc, width=width, height=height)
    return await media.open_file(bot, granted.mxc, range_header=range_header)
