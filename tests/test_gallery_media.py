"""Gallery media tickets (provisioning/services/media_tickets.py) and `gallery.open_media`.

A refused ticket must cost the homeserver nothing: `open_media` is given a Matrix client
whose "homeserver" is a real HTTP server on loopback that counts what it is asked, and
the refusals are checked to leave the count at zero, while a good ticket reaches it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

import pytest
from sqlalchemy.orm import Session

from matrix.client import MatrixClient
from matrix.errors import MatrixError
from provisioning.db.models import ManagedRoom, Region, Role, RoomKind
from provisioning.services import gallery
from provisioning.services import schools as svc
from provisioning.services.access import Access, load_access
from provisioning.services.media_tickets import (
    TICKET_TTL_S,
    MediaTickets,
    TicketRefused,
    key_from,
)

NOW = 1_800_000_030.0  # inside a 5-minute window, not on its edge
MXC = "mxc://hs/AbCdEf0123456789"
ROOM_A, ROOM_B = "!events_a:hs", "!events_b:hs"
TICKETS = MediaTickets(key_from("as-token-of-the-region"))


class _CountingServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Homeserver)
        self.asked: list[str] = []


class _Homeserver(BaseHTTPRequestHandler):
    """Answers every request with Matrix's 404, after counting it."""

    def do_GET(self) -> None:
        cast(_CountingServer, self.server).asked.append(self.path)
        body = json.dumps({"errcode": "M_NOT_FOUND", "error": "Not found"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def homeserver() -> Iterator[tuple[str, list[str]]]:
    server = _CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def viewers(migrated_session: Session) -> dict[str, Access]:
    """A teacher of school A and a teacher of school B, each school with its events room."""
    session = migrated_session
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    found: dict[str, Access] = {}
    for tag, room_id in (("a", ROOM_A), ("b", ROOM_B)):
        school = svc.create_school(session, region, f"Школа {tag}", academic_year=2026)
        session.add(ManagedRoom(alias=f"events-{tag}", kind=RoomKind.SCHOOL_EVENTS,
                                school_id=school.id, room_id=room_id))  # fmt: skip
        teacher = svc.add_person(session, f"teacher {tag}", f"@teacher{tag}:hs")
        svc.grant_school_role(session, teacher, school, Role.TEACHER)
        session.flush()
        found[tag] = load_access(session, teacher)
    session.commit()
    return found


def _open(session: Session, url: str, viewer: Access, ticket: str, now: float = NOW) -> None:
    async def run() -> None:
        async with MatrixClient(url, "bot-token") as bot:
            await gallery.open_media(session, bot, TICKETS, viewer, ticket, now=now)

    asyncio.run(run())


def test_a_ticket_names_its_file_viewer_and_room_until_it_expires() -> None:
    ticket = TICKETS.mint(MXC, "thumbnail", "@a:hs", ROOM_A, NOW)
    granted = TICKETS.check(ticket, NOW)
    assert (granted.mxc, granted.kind, granted.user_id, granted.room_id) == (
        MXC, "thumbnail", "@a:hs", ROOM_A,
    )  # fmt: skip
    assert NOW + TICKET_TTL_S <= granted.expires_at <= NOW + TICKET_TTL_S + 300
    # Minted again a moment later: the same address, so the browser's cache serves it.
    assert TICKETS.mint(MXC, "thumbnail", "@a:hs", ROOM_A, NOW + 1) == ticket
    with pytest.raises(TicketRefused) as refused:
        TICKETS.check(ticket, granted.expires_at + 1)
    assert refused.value.reason == "expired"


@pytest.mark.parametrize(
    "ticket",
    [
        MediaTickets(key_from("another-token")).mint(MXC, "file", "@a:hs", ROOM_A, NOW),
        "",
        "no-dot",
        "a" * 2000 + "." + "b" * 43,
        "Zm9v." + "A" * 43,
        "Zm9v.." + "A" * 42,
        "\u0662\u0663." + "A" * 43,  # Arabic-Indic digits: letters to `isalnum`, not to us
    ],
)
def test_forged_and_malformed_tickets_are_invalid(ticket: str) -> None:
    with pytest.raises(TicketRefused) as refused:
        TICKETS.check(ticket, NOW)
    assert refused.value.reason == "invalid"


def test_an_altered_ticket_is_invalid() -> None:
    ticket = TICKETS.mint(MXC, "thumbnail", "@a:hs", ROOM_A, NOW)
    other = TICKETS.mint(MXC, "file", "@b:hs", ROOM_B, NOW)
    # Another ticket's payload under this one's signature, and a character changed.
    swapped = f"{other.split('.')[0]}.{ticket.split('.')[1]}"
    flipped = ("B" if ticket[0] != "B" else "C") + ticket[1:]
    for bad in (swapped, flipped):
        with pytest.raises(TicketRefused):
            TICKETS.check(bad, NOW)


def test_refused_tickets_never_reach_the_homeserver(
    migrated_session: Session,
    viewers: dict[str, Access],
    homeserver: tuple[str, list[str]],
) -> None:
    url, asked = homeserver
    a, b = viewers["a"], viewers["b"]
    forged = MediaTickets(key_from("another-token")).mint(MXC, "file", a.user_id, ROOM_A, NOW)
    expired = TICKETS.mint(MXC, "file", a.user_id, ROOM_A, NOW - 2 * 3600)
    for ticket, refusal in ((forged, TicketRefused), (expired, TicketRefused)):
        with pytest.raises(refusal):
            _open(migrated_session, url, a, ticket)
    # B's own ticket, to B's school's room: A may not use it.
    with pytest.raises(gallery.NotTheirTicket):
        _open(migrated_session, url, a, TICKETS.mint(MXC, "file", b.user_id, ROOM_B, NOW))
    # A ticket for A to a room A may not see (minted before A left, say): refused too.
    with pytest.raises(gallery.NoSuchReport):
        _open(migrated_session, url, a, TICKETS.mint(MXC, "thumbnail", a.user_id, ROOM_B, NOW))
    assert asked == []
    # A's good ticket reaches the homeserver (which has no such file here): the counter works.
    with pytest.raises(MatrixError):
        _open(migrated_session, url, a, TICKETS.mint(MXC, "thumbnail", a.user_id, ROOM_A, NOW))
    assert len(asked) == 1 and "/thumbnail/hs/AbCdEf0123456789" in asked[0]
