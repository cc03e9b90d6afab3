"""Codes sent by SMS to prove a phone number is the person's: the rules, not the sending.

A code is 6 random digits, kept only as an HMAC keyed with a deploy-time secret (a copy
of the database yields no code), compared in constant time, valid for 5 minutes and for
5 attempts; only the newest code of a number counts. A new code comes only after a
60-second countdown, and a number and a client address each get a few codes a day, since
every SMS costs the region money and could be used to pester someone.

A code may also come by flash call (`Channel.FLASH_CALL`): then it is the 4 last digits
of the number that calls, under the same countdown, expiry, attempts, daily limits and
storage; an SMS asked for after the countdown replaces it as the newest code.

Every refusal is a `CodeRefused` whose message says what to do and when. Callers commit
after `check` also when it refuses: the attempt it counted must stay counted.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from provisioning.db.base import as_utc, utcnow
from provisioning.db.phone_codes import PhoneCode
from provisioning.i18n import N_
from provisioning.services.schools import DomainError

CODE_DIGITS: Final = 6
FLASH_CALL_DIGITS: Final = 4
RESEND_AFTER: Final = timedelta(seconds=60)
LIFETIME: Final = timedelta(minutes=5)
MAX_ATTEMPTS: Final = 5
DAY: Final = timedelta(hours=24)


class Purpose(enum.StrEnum):
    REGISTRATION = "registration"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose, not a password


class Channel(enum.StrEnum):
    SMS = "sms"
    FLASH_CALL = "flash_call"

    @property
    def digits(self) -> int:
        return FLASH_CALL_DIGITS if self is Channel.FLASH_CALL else CODE_DIGITS


class CodeRefused(DomainError):
    """No code now, or the code typed is not accepted; `retry_after_s` when waiting helps."""

    def __init__(self, template: str, retry_after_s: int | None = None, **params: object) -> None:
        super().__init__(template, **params)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class DailyLimits:
    per_number: int = 5
    per_address: int = 20


@dataclass(frozen=True)
class IssuedCode:
    """A code to send now; the row is already in the caller's transaction."""

    id: int
    code: str
    resend_at: datetime
    channel: Channel = Channel.SMS


def code_key(secret: str) -> bytes:
    """The HMAC key of the codes, derived from a deploy-time secret for this one use."""
    return hashlib.sha256(b"parta phone codes\0" + secret.encode()).digest()


def _digest(key: bytes, purpose: Purpose, phone: str, code: str) -> str:
    return hmac.new(key, f"{purpose}\0{phone}\0{code}".encode(), hashlib.sha256).hexdigest()


def _newest(session: Session, phone: str, purpose: Purpose) -> PhoneCode | None:
    return session.scalar(
        select(PhoneCode)
        .where(PhoneCode.phone == phone, PhoneCode.purpose == purpose.value)
        .order_by(PhoneCode.created_at.desc(), PhoneCode.id.desc())
        .limit(1)
    )


def live_channel(
    session: Session, phone: str, purpose: Purpose, now: datetime | None = None
) -> Channel | None:
    """How the code that can still be typed for this number came, or None."""
    newest = _newest(session, phone, purpose)
    if (
        newest is None
        or newest.used_at is not None
        or newest.attempts >= MAX_ATTEMPTS
        or as_utc(newest.expires_at) <= (now or utcnow())
    ):
        return None
    return Channel(newest.channel)


def seconds_until_resend(
    session: Session, phone: str, purpose: Purpose, now: datetime | None = None
) -> int:
    """How long the countdown still runs for this number (0: a new code may be asked)."""
    newest = _newest(session, phone, purpose)
    if newest is None:
        return 0
    left = as_utc(newest.created_at) + RESEND_AFTER - (now or utcnow())
    return max(0, int(left.total_seconds() + 0.999))


def _refuse_over_daily_limits(
    session: Session, phone: str, origin: str | None, limits: DailyLimits, now: datetime
) -> None:
    since = now - DAY
    by_number = session.execute(
        select(func.count(), func.min(PhoneCode.created_at)).where(
            PhoneCode.phone == phone, PhoneCode.created_at > since
        )
    ).one()
    if by_number[0] >= limits.per_number:
        wait = as_utc(by_number[1]) + DAY - now
        raise CodeRefused(
            N_(
                "This number has had %(count)s codes in the last 24 hours, the most allowed. "
                "Try again in %(hours)s h, or ask the school for a personal link."
            ),
            retry_after_s=int(wait.total_seconds()) + 1,
            count=by_number[0],
            hours=max(1, round(wait.total_seconds() / 3600)),
        )
    if origin is None:
        return
    by_address = session.scalar(
        select(func.count()).where(PhoneCode.origin == origin, PhoneCode.created_at > since)
    )
    if (by_address or 0) >= limits.per_address:
        raise CodeRefused(
            N_(
                "Too many codes were asked for from your network today. Try again tomorrow, "
                "or from another network (such as the phone's mobile data)."
            ),
            retry_after_s=int(DAY.total_seconds()),
        )


def issue(
    session: Session,
    phone: str,
    purpose: Purpose,
    *,
    key: bytes,
    origin: str | None,
    limits: DailyLimits,
    now: datetime | None = None,
    channel: Channel = Channel.SMS,
) -> IssuedCode:
    """A new code for `phone` (E.164), recorded in the caller's transaction: 6 digits for
    an SMS, 4 for a flash call.

    Raises:
        CodeRefused: the countdown still runs, or a daily limit is reached.
    """
    now = now or utcnow()
    wait = seconds_until_resend(session, phone, purpose, now)
    if wait:
        raise CodeRefused(
            N_("A code was sent a moment ago. You can ask for a new one in %(seconds)s s."),
            retry_after_s=wait,
            seconds=wait,
        )
    _refuse_over_daily_limits(session, phone, origin, limits, now)
    code = f"{secrets.randbelow(10**channel.digits):0{channel.digits}d}"
    row = PhoneCode(
        phone=phone,
        purpose=purpose.value,
        digest=_digest(key, purpose, phone, code),
        origin=origin,
        created_at=now,
        expires_at=now + LIFETIME,
        attempts=0,
        channel=channel.value,
    )
    session.add(row)
    session.execute(delete(PhoneCode).where(PhoneCode.created_at < now - 2 * DAY))
    session.flush()
    return IssuedCode(row.id, code, now + RESEND_AFTER, channel)


def forget(session: Session, code_id: int) -> None:
    """Drop a code that could not be sent: it must not start a countdown or count."""
    session.execute(delete(PhoneCode).where(PhoneCode.id == code_id))


def check(
    session: Session,
    phone: str,
    purpose: Purpose,
    typed: str,
    *,
    key: bytes,
    now: datetime | None = None,
) -> None:
    """Accept the code typed for `phone`, once; it cannot be used again.

    Raises:
        CodeRefused: no code was sent, it expired, it was used, it is wrong (with the
            attempts left), or its attempts are spent. Commit anyway.
    """
    now = now or utcnow()
    digits = "".join(typed.split()).replace("-", "")
    newest = _newest(session, phone, purpose)
    channel = Channel(newest.channel) if newest is not None else Channel.SMS
    if not (len(digits) == channel.digits and digits.isascii() and digits.isdigit()):
        if channel is Channel.FLASH_CALL:
            raise CodeRefused(N_("Enter the last 4 digits of the number that called you."))
        raise CodeRefused(N_("Enter the 6 digits of the code from the SMS."))
    if newest is None:
        raise CodeRefused(N_("No code was sent to this number yet. Ask for a code first."))
    if newest.used_at is not None:
        raise CodeRefused(N_("This code has been used already. Ask for a new one."))
    if as_utc(newest.expires_at) <= now:
        raise CodeRefused(N_("The code has expired (a code lasts 5 minutes). Ask for a new one."))
    counted = session.execute(
        update(PhoneCode)
        .where(PhoneCode.id == newest.id, PhoneCode.attempts < MAX_ATTEMPTS)
        .values(attempts=PhoneCode.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount != 1:  # type: ignore[attr-defined]
        raise CodeRefused(
            N_("The code was typed wrong %(count)s times. Ask for a new one."), count=MAX_ATTEMPTS
        )
    session.refresh(newest)
    if not hmac.compare_digest(newest.digest, _digest(key, purpose, phone, digits)):
        left = MAX_ATTEMPTS - newest.attempts
        if left <= 0:
            raise CodeRefused(
                N_("The code is wrong, and that was the last try. Ask for a new one.")
            )
        if channel is Channel.FLASH_CALL:
            raise CodeRefused(
                N_(
                    "These are not the last digits of the number that called. Check the "
                    "missed call and type them again (tries left: %(left)s)."
                ),
                left=left,
            )
        raise CodeRefused(
            N_("The code is wrong. Check the SMS and type it again (tries left: %(left)s)."),
            left=left,
        )
    used = session.execute(
        update(PhoneCode)
        .where(PhoneCode.id == newest.id, PhoneCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise CodeRefused(N_("This code has been used already. Ask for a new one."))


def sms_template(purpose: Purpose) -> str:
    """The SMS's text (marked with N_, with `%(code)s`), translated by the sender into the
    region's language."""
    if purpose is Purpose.PASSWORD_RESET:
        return N_("Parta: code %(code)s to set a new password. Do not tell it to anyone.")
    return N_("Parta: your code is %(code)s. Do not tell it to anyone.")
