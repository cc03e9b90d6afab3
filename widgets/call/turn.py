"""Short-lived TURN credentials for call pages, by coturn's REST-API scheme.

coturn (`use-auth-secret`, `static-auth-secret`) and the widget service share one secret
(`PARTA_TURN_SHARED_SECRET`, generated into var/secrets.env). Nobody stores per-user TURN
accounts: the service signs a username that carries its own expiry, and coturn checks the
signature and the time on every request of an allocation. This is the scheme of
draft-uberti-behave-turn-rest-00, which Synapse's `turn_shared_secret` uses as well:

    username   = "<expiry, Unix seconds>:<Matrix user ID>"
    credential = base64(HMAC-SHA1(secret, username))

Only a page whose person the call service verified (OpenID, room membership) gets
credentials, in the SFU's `offer`; an anonymous caller never does, so the relay cannot
be used by strangers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from foundation.settings import Settings


@dataclass(frozen=True)
class TurnCredentials:
    """One person's TURN login, valid until `expires_at` (Unix seconds)."""

    uris: tuple[str, ...]
    username: str
    credential: str
    expires_at: int

    def ice_server(self) -> dict[str, object]:
        """As a page's `RTCPeerConnection` takes it (an `RTCIceServer` dictionary)."""
        return {"urls": list(self.uris), "username": self.username, "credential": self.credential}


def sign(secret: str, username: str) -> str:
    """The credential coturn expects for `username`: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid(secret: str, username: str, credential: str, *, now: float) -> bool:
    """What coturn checks: the signature matches and the expiry has not passed."""
    expiry, separator, _user = username.partition(":")
    if not separator or not expiry.isdigit() or int(expiry) <= now:
        return False
    return hmac.compare_digest(sign(secret, username), credential)


@dataclass(frozen=True)
class TurnIssuer:
    """Issues credentials for the region's TURN URIs; one per deployment."""

    secret: str = field(repr=False)
    uris: tuple[str, ...]
    lifetime_s: int
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnIssuer | None:
        """None when the deployment has no TURN (the local mode, unless configured).

        Raises:
            ValueError: TURN is configured but its shared secret is missing.
        """
        if not settings.turn_enabled:
            return None
        secret = settings.turn_shared_secret.get_secret_value()
        if not secret:
            raise ValueError(
                "TURN is configured but PARTA_TURN_SHARED_SECRET is empty; "
                "run `parta init` to generate it into var/secrets.env"
            )
        return cls(secret, tuple(settings.turn_server_uris), settings.turn_credential_lifetime_s)

    def issue(self, user_id: str) -> TurnCredentials:
        expires_at = int(self.clock()) + self.lifetime_s
        username = f"{expires_at}:{user_id}"
        return TurnCredentials(self.uris, username, sign(self.secret, username), expires_at)
