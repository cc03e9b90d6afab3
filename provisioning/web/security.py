"""Sessions, CSRF tokens and login throttling for the admin UI.

- The session cookie carries a random token; the database keeps only its SHA-256, so a
  copy of the database opens no session. Sessions slide: each visit extends them up to
  an absolute limit.
- CSRF: a signed double-submit token. Every browser gets a random `parta_csrf` cookie;
  forms carry HMAC(web_secret, cookie nonce + session). A forged form from another site
  can neither read the cookie nor compute the HMAC; the token changes when the person
  signs in, so a token seen before login is useless after it.
- Logins are throttled per person and per address, before the homeserver is asked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from sqlalchemy import delete
from sqlalchemy.orm import Session

from foundation.settings import Settings
from provisioning.db.base import as_utc, utcnow
from provisioning.db.models import WebSession

SESSION_COOKIE = "parta_session"
CSRF_COOKIE = "parta_csrf"
LANG_COOKIE = "parta_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

SESSION_IDLE = timedelta(hours=12)
SESSION_MAX = timedelta(days=7)
SESSION_TOUCH_EVERY = timedelta(minutes=5)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def client_ip(request: Request) -> str | None:
    """The caller's address as uvicorn reports it (behind nginx: from its trusted headers)."""
    return request.client.host if request.client else None


# --- Sessions ------------------------------------------------------------------------


def open_session(session: Session, person_id: int, request: Request) -> str:
    """Record a new signed-in session and return the cookie's token."""
    token = new_token()
    now = utcnow()
    session.add(
        WebSession(
            token_hash=token_hash(token),
            person_id=person_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_IDLE,
            ip=client_ip(request),
            user_agent=(request.headers.get("user-agent") or "")[:255] or None,
        )
    )
    # Sweep expired sessions now and then, so the table stays small without a cron job.
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    return token


def find_session(session: Session, token: str | None) -> WebSession | None:
    """The live session for a cookie token; it slides forward, within SESSION_MAX."""
    if not token:
        return None
    record = session.get(WebSession, token_hash(token))
    if record is None:
        return None
    now = utcnow()
    if as_utc(record.expires_at) <= now:
        session.delete(record)
        session.commit()
        return None
    if now - as_utc(record.last_seen_at) >= SESSION_TOUCH_EVERY:
        record.last_seen_at = now
        record.expires_at = min(now + SESSION_IDLE, as_utc(record.created_at) + SESSION_MAX)
        session.commit()
    return record


def close_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))
        session.commit()


# --- CSRF ----------------------------------------------------------------------------


def csrf_token(secret: bytes, nonce: str, session_token: str | None) -> str:
    binding = f"{nonce}|{token_hash(session_token) if session_token else ''}"
    return hmac.new(secret, binding.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, nonce: str | None, session_token: str | None, sent: str) -> bool:
    if not nonce or not sent:
        return False
    return hmac.compare_digest(csrf_token(secret, nonce, session_token), sent)


# --- Login throttling ----------------------------------------------------------------


@dataclass(frozen=True)
class LoginLimits:
    per_account: int = 5
    per_address: int = 20
    window_s: float = 900.0


class LoginThrottle:
    """Counts failed logins in a sliding window, by account and by address (in memory).

    One provisioning process serves the UI, so memory is the right place; a restart
    forgets the counts, which is harmless next to the homeserver's own login limits.
    """

    MAX_KEYS = 50_000

    def __init__(self, limits: LoginLimits | None = None) -> None:
        self.limits = limits or LoginLimits()
        self._failures: dict[str, deque[float]] = {}

    def _keys(self, account: str, address: str | None) -> list[tuple[str, int]]:
        keys = [(f"account:{account.strip().lower()}", self.limits.per_account)]
        if address:
            keys.append((f"address:{address}", self.limits.per_address))
        return keys

    def retry_after(self, account: str, address: str | None) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        now = time.monotonic()
        wait = 0.0
        for key, limit in self._keys(account, address):
            failures = self._recent(key, now)
            if len(failures) >= limit:
                wait = max(wait, failures[0] + self.limits.window_s - now)
        return int(wait) + (1 if wait > 0 else 0)

    def failed(self, account: str, address: str | None) -> None:
        now = time.monotonic()
        if len(self._failures) >= self.MAX_KEYS:
            self._failures.clear()  # bounded memory; an attacker gains one fresh window
        for key, _ in self._keys(account, address):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, account: str) -> None:
        self._failures.pop(f"account:{account.strip().lower()}", None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] + self.limits.window_s <= now:
            failures.popleft()
        return failures


def secure_cookies(settings: Settings) -> bool:
    """Cookies carry `Secure` whenever the admin UI is served over https (always in production)."""
    return settings.environment == "production" or settings.web_url.startswith("https://")
