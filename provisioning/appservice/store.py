"""The bridge's durable records: transactions already processed and the event inbox.

They live in Parta's one database so that marking a transaction processed and keeping
its events commit together: a transaction Synapse retries is processed exactly once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db.base import Base, utcnow


class AppserviceTransaction(Base):
    __tablename__ = "appservice_transactions"

    txn_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    event_count: Mapped[int] = mapped_column(default=0)
    # What the transaction held (`fingerprint_of`): Synapse on SQLite numbers its
    # transactions from 1 again after a restart, so an ID alone does not mean "seen".
    fingerprint: Mapped[str | None] = mapped_column(String(64))


class InboxEvent(Base):
    """A state event from a room Parta manages, waiting for provisioning to act on it.

    Only state events are kept (memberships, knocks, power levels, widgets): message
    bodies never reach Parta's database.
    """

    __tablename__ = "inbox_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    txn_id: Mapped[str] = mapped_column(String(255), index=True)
    room_id: Mapped[str] = mapped_column(String(255), index=True)
    event_type: Mapped[str] = mapped_column(String(255))
    state_key: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    origin_server_ts: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
