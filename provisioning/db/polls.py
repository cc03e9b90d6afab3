"""Polls in managed rooms (MSC3381), as the bridge saw them: facts, never tallies.

Each row is one Matrix event, kept by its event ID, so a transaction Synapse delivers
again, or a start the admin UI recorded before the bridge saw it, is stored once. The
results are computed from these rows when a page asks (`services.poll_results`), so a
late response, an end that does not count or a changed vote never needs a row updated.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from matrix.polls import PollKind
from provisioning.db.base import Base, utcnow


class Poll(Base):
    """A poll start event in a managed room: from the admin UI or from any client."""

    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    room_id: Mapped[str] = mapped_column(String(255), index=True)
    school_id: Mapped[int | None] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), index=True
    )
    class_id: Mapped[int | None] = mapped_column(
        ForeignKey("school_classes.id", ondelete="SET NULL")
    )
    creator: Mapped[str] = mapped_column(String(255))  # the start event's sender
    question: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(64))  # matrix.polls.PollKind's value
    max_selections: Mapped[int] = mapped_column(default=1)
    answers: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # [{"id", "text"}] in order
    origin_server_ts: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def answer_ids(self) -> list[str]:
        return [answer["id"] for answer in self.answers]

    @property
    def answer_texts(self) -> dict[str, str]:
        return {answer["id"]: answer["text"] for answer in self.answers}

    @property
    def disclosed(self) -> bool:
        return self.kind == PollKind.DISCLOSED.value


class PollResponse(Base):
    """One response event; a person's latest one is their vote. `id` orders responses
    that carry the same timestamp (the order the bridge received them)."""

    __tablename__ = "poll_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    poll_event_id: Mapped[str] = mapped_column(String(255), index=True)
    room_id: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    origin_server_ts: Mapped[int] = mapped_column(BigInteger)
    selections: Mapped[list[str]] = mapped_column(JSON)  # as sent, bounded
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PollEnd(Base):
    """One end event, valid or not: whether it counts is decided with the poll's creator,
    and `sender_may_redact` (the sender's power when the bridge received it)."""

    __tablename__ = "poll_ends"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    poll_event_id: Mapped[str] = mapped_column(String(255), index=True)
    room_id: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    origin_server_ts: Mapped[int] = mapped_column(BigInteger)
    sender_may_redact: Mapped[bool] = mapped_column(default=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
