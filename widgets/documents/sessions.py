"""Who is calling the documents API: an OpenID token once, then a session token.

The widget (or the standalone page) proves who the person is with a Matrix OpenID token,
verified at their homeserver like the call's. Verifying on every request would cost a
homeserver round trip per thumbnail, so the service hands out its own random session
token for an hour. Only a digest of it is kept, compared in constant time.

Media elements (`<img>`, `<video>`, pdf.js's range requests) cannot send a header, so a
file's address carries a ticket instead: an HMAC of the person, the room, the event and
an expiry, valid for minutes and only for that one file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_LIFETIME_S = 3600.0
TICKET_LIFETIME_S = 600.0
MAX_SESSIONS = 50_000
# Live sessions one OpenID token may open: a page, a reload, a second tab. One token opened
# any number before (issue 18), each a cheap way to make the service keep state.
SESSIONS_PER_TOKEN = 3
# "<expiry, Unix seconds>.<HMAC, URL-safe base64>", ASCII only: `str.isdigit` also accepts
# «²» or «٣», which `int` then refuses (issue 18: a 500 instead of a refusal).
_TICKET = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{1,64})", re.ASCII)


class NotSignedIn(Exception):
    """No session, an unknown or expired one, or a ticket that does not fit."""


class TooManySessions(Exception):
    """This OpenID token has opened `SESSIONS_PER_TOKEN` sessions that are still live."""


@dataclass
class Sessions:
    lifetime_s: float = SESSION_LIFETIME_S
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _by_digest: dict[bytes, tuple[str, float]] = field(default_factory=dict)
    _by_grant: dict[str, list[bytes]] = field(default_factory=dict)

    def open(self, user_id: str, grant: str | None = None) -> str:
        """A new session token for a person verified with the OpenID token named `grant`
        (`matrix.openid.token_grant`).

        Raises:
            TooManySessions: that OpenID token has `SESSIONS_PER_TOKEN` live sessions.
        """
        now = self.clock()
        if len(self._by_digest) >= MAX_SESSIONS:
            self._by_digest = {k: v for k, v in self._by_digest.items() if v[1] > now}
            self._by_grant = {
                g: live for g, digests in self._by_grant.items()
                if (live := [d for d in digests if d in self._by_digest])
            }  # fmt: skip
        opened: list[bytes] = []
        if grant is not None:
            opened = [d for d in self._by_grant.get(grant, []) if self._live(d, now)]
            if len(opened) >= SESSIONS_PER_TOKEN:
                raise TooManySessions()
        token = secrets.token_urlsafe(32)
        digest = _digest(token)
        self._by_digest[digest] = (user_id, now + self.lifetime_s)
        if grant is not None:
            self._by_grant[grant] = [*opened, digest]
        return token

    def _live(self, digest: bytes, now: float) -> bool:
        found = self._by_digest.get(digest)
        return found is not None and found[1] > now

    def user_for(self, token: str | None) -> str:
        if not token:
            raise NotSignedIn("no session token")
        digest = _digest(token)
        found = self._by_digest.get(digest)
        if found is None or found[1] <= self.clock():
            self._by_digest.pop(digest, None)
            raise NotSignedIn("the session is unknown or has expired; sign in again")
        return found[0]

    def ticket(self, user_id: str, room_id: str, event_id: str) -> str:
        expires = int(self.wall_clock() + TICKET_LIFETIME_S)
        return f"{expires}.{self._mac(user_id, room_id, event_id, expires)}"

    def check_ticket(self, ticket: str, user_id: str, room_id: str, event_id: str) -> None:
        """Accept a file link's ticket only for its file and person, until it expires.

        Raises:
            NotSignedIn: the ticket is malformed, expired, or made for another file or person.
        """
        parsed = _TICKET.fullmatch(ticket)
        if parsed is None:
            raise NotSignedIn("the file's link is not valid; open the file again")
        expires_text, mac = parsed.groups()
        if int(expires_text) < self.wall_clock():
            raise NotSignedIn("the file's link has expired; open it again")
        expected = self._mac(user_id, room_id, event_id, int(expires_text))
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            raise NotSignedIn("the file's link is not valid")

    def _mac(self, user_id: str, room_id: str, event_id: str, expires: int) -> str:
        message = "\n".join((user_id, room_id, event_id, str(expires))).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
