"""Signed notes between the widget processes of one region: a viewer's ticket to an edge,
and an edge's proof when it links to a broadcast's origin.

The origin checks a viewer (OpenID, room membership) once, then sends the page to an edge
with a ticket; the edge admits the page on the ticket alone, so thousands of viewers cost
the homeserver one check each, not two. An edge that links to an origin to receive the
broadcast's streams proves it is one of the region's processes the same way.

Both are HMAC-SHA256 over the note, with a key derived from the application-service
token every widget process already holds (`key_from`): no new secret to generate, copy
to edge hosts or rotate separately. Compared in constant time; each note carries its
purpose and its expiry, so neither can stand in for the other or be kept for later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

TICKET_TTL_S = 60.0  # from the origin's answer to the page's join at the edge
LINK_TTL_S = 60.0  # an edge's proof, against clocks a little apart
MAX_NOTE_BYTES = 2048

Purpose = Literal["viewer", "link"]


class TicketError(Exception):
    """A note that is forged, altered, expired, or for another purpose."""


def key_from(as_token: str) -> bytes:
    """The processes' shared key, derived so that it opens nothing else."""
    return hmac.new(as_token.encode(), b"parta call edge tickets v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class ViewerTicket:
    """Who the origin admitted to watch which broadcast, until when."""

    room_id: str
    user_id: str
    display_name: str
    broadcast_id: int
    expires_at: float


@dataclass(frozen=True)
class TicketSigner:
    key: bytes

    def _sign(self, purpose: Purpose, body: dict[str, Any], expires_at: float) -> str:
        note = {"p": purpose, "exp": expires_at, **body}
        raw = base64.urlsafe_b64encode(json.dumps(note, separators=(",", ":")).encode())
        mac = hmac.new(self.key, raw, hashlib.sha256).digest()
        return f"{raw.decode()}.{base64.urlsafe_b64encode(mac).decode()}"

    def _open(self, purpose: Purpose, text: str, now: float) -> dict[str, Any]:
        if len(text) > MAX_NOTE_BYTES or text.count(".") != 1:
            raise TicketError("malformed")
        raw, _, mac_text = text.partition(".")
        try:
            mac = base64.urlsafe_b64decode(mac_text.encode())
        except ValueError as exc:
            raise TicketError("malformed") from exc
        expected = hmac.new(self.key, raw.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise TicketError("forged")
        note = json.loads(base64.urlsafe_b64decode(raw.encode()))
        if not isinstance(note, dict) or note.get("p") != purpose:
            raise TicketError("wrong_purpose")
        expires_at = note.get("exp")
        if not isinstance(expires_at, int | float) or expires_at < now:
            raise TicketError("expired")
        return note

    def viewer(self, ticket: ViewerTicket) -> str:
        body = {
            "room": ticket.room_id,
            "user": ticket.user_id,
            "name": ticket.display_name,
            "b": ticket.broadcast_id,
        }
        return self._sign("viewer", body, ticket.expires_at)

    def open_viewer(self, text: str, now: float) -> ViewerTicket:
        """Raises: TicketError."""
        note = self._open("viewer", text, now)
        try:
            return ViewerTicket(
                room_id=str(note["room"]),
                user_id=str(note["user"]),
                display_name=str(note["name"]),
                broadcast_id=int(note["b"]),
                expires_at=float(note["exp"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TicketError("malformed") from exc

    def link(self, room_id: str, edge_id: str, now: float) -> str:
        return self._sign("link", {"room": room_id, "edge": edge_id}, now + LINK_TTL_S)

    def open_link(self, text: str, room_id: str, now: float) -> str:
        """The linking edge's ID, if the proof is for this room.

        Raises: TicketError.
        """
        note = self._open("link", text, now)
        if note.get("room") != room_id or not isinstance(note.get("edge"), str):
            raise TicketError("wrong_room")
        return str(note["edge"])
