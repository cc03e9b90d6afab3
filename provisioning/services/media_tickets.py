"""Signed tickets for a gallery's files: decided once when the page is made, checked cheaply.

A gallery page shows up to 120 thumbnails. Looking each one's event up again at the
homeserver (is it a photo of this room?) cost a round trip per thumbnail before the file
itself. Instead, the page mints a ticket per file it shows: an HMAC-SHA256 over the file's
`mxc://` URI, whether the thumbnail or the whole file, the viewer, the room and an expiry.
`/gallery/media` checks the ticket in constant time, then only that the viewer may still
see the room (the database), and streams.

The key is derived from the application-service token the service already holds
(`key_from`), with its own purpose string, so no new secret is generated or copied, and a
ticket opens nothing else. Expiries are rounded up to a window, so a page reloaded within
it links the same addresses and the browser's cache still serves its thumbnails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from typing import Literal

TICKET_TTL_S = 15 * 60  # at least this long: a page left open, then a photo opened
_WINDOW_S = 5 * 60  # expiries rounded up to this: one address per file for a while
MAX_TICKET_CHARS = 1500  # a 255-character room, a 255-character mxc URI and a user ID fit

MediaKind = Literal["thumbnail", "file"]
_KINDS: frozenset[str] = frozenset({"thumbnail", "file"})
_MXC = re.compile(r"mxc://[A-Za-z0-9.:\[\]-]{1,255}/[A-Za-z0-9_-]{1,255}", re.ASCII)
# "<payload, URL-safe base64>.<HMAC-SHA256, URL-safe base64 without padding>"
_TICKET = re.compile(r"([A-Za-z0-9_-]{1,1400}={0,2})\.([A-Za-z0-9_-]{43})", re.ASCII)


class TicketRefused(Exception):
    """A ticket that is malformed, forged, altered or expired."""

    def __init__(self, reason: Literal["invalid", "expired"]) -> None:
        super().__init__(reason)
        self.reason = reason


def key_from(as_token: str) -> bytes:
    """The tickets' key, derived so that it opens nothing else the token opens."""
    return hmac.new(as_token.encode(), b"parta gallery media tickets v1", hashlib.sha256).digest()


def servable(mxc: str) -> bool:
    """Whether a ticket can name this URI (an `mxc://server/id` as the spec writes them)."""
    return _MXC.fullmatch(mxc) is not None


@dataclass(frozen=True)
class MediaTicket:
    """Who may fetch which file of which room, until when (Unix seconds)."""

    mxc: str
    kind: MediaKind
    user_id: str
    room_id: str
    expires_at: int


@dataclass(frozen=True)
class MediaTickets:
    key: bytes

    def mint(self, mxc: str, kind: MediaKind, user_id: str, room_id: str, now: float) -> str:
        expires = math.ceil((now + TICKET_TTL_S) / _WINDOW_S) * _WINDOW_S
        fields = "\n".join((kind, mxc, user_id, room_id, str(expires)))
        payload = base64.urlsafe_b64encode(fields.encode()).decode()
        return f"{payload}.{self._mac(payload)}"

    def check(self, text: str, now: float) -> MediaTicket:
        """The ticket's contents, if this service signed it and it has not expired.

        Raises:
            TicketRefused: malformed or forged ("invalid"), or out of date ("expired").
        """
        parsed = _TICKET.fullmatch(text) if len(text) <= MAX_TICKET_CHARS else None
        if parsed is None:
            raise TicketRefused("invalid")
        payload, mac = parsed.groups()
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise TicketRefused("invalid")
        try:  # signed by us, so well formed; checked anyway, a key leak is no 500
            kind, mxc, user_id, room_id, expires = (
                base64.urlsafe_b64decode(payload).decode().split("\n")
            )
            expires_at = int(expires)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise TicketRefused("invalid") from exc
        if kind not in _KINDS or not servable(mxc):
            raise TicketRefused("invalid")
        if expires_at < now:
            raise TicketRefused("expired")
        thumbnail_or_file: MediaKind = "thumbnail" if kind == "thumbnail" else "file"
        return MediaTicket(mxc, thumbnail_or_file, user_id, room_id, expires_at)

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self.key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
