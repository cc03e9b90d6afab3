"""One-time codes sent by SMS to confirm a phone number: only their keyed hash is kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db.base import Base, utcnow


class PhoneCode(Base):
    """A code sent to a number for one purpose (registration, a password reset).

    The row also counts: codes per number and per client address in the last 24 hours
    are the daily limits, so rows are kept for a day after they stop mattering.
    """

    __tablename__ = "phone_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(16), index=True)  # E.164
    purpose: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 of purpose, phone and code
    origin: Mapped[str | None] = mapped_column(String(64), index=True)  # the client address
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)
    # "sms" (6 digits in a text) or "flash_call" (the calling number's last 4 digits)
    channel: Mapped[str] = mapped_column(String(16), default="sms", server_default="sms")
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
