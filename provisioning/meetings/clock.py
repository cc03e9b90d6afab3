"""The parent meetings' part of the broadcasts' clock: what each meeting owes its chat.

No second scheduler: `BroadcastClock` runs this part in its loop after the broadcasts
(`parts=`), so a save asks one clock to tick (`request()`) and tests drive `tick(now)`
with any moment. The same discipline as the broadcasts: each message is claimed first by
inserting its (meeting, kind) row in `meeting_notices`, the Matrix transaction ID comes
from the same pair, a refusal is recorded and not retried, a homeserver that does not
answer gives the claim back, and a reminder is never sent after the start.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from foundation.settings import Settings
from matrix import rooms
from matrix.client import MatrixClient
from matrix.errors import HomeserverUnavailable, MatrixError
from provisioning.broadcasts.clock import DAY, FORGET_AFTER, PER_TICK, SOON, STALE_CLAIM, TickReport
from provisioning.db.base import as_utc, utcnow
from provisioning.db.models import MeetingNotice, MeetingState, ParentMeeting, SchoolClass

from . import notices, service

log = logging.getLogger(__name__)


def due(meeting: ParentMeeting, done: set[str], now: datetime) -> list[str]:
    """What the meeting owes its chat at `now`, in order, given the kinds claimed."""
    starts, ends = as_utc(meeting.starts_at), as_utc(meeting.ends_at)
    created = as_utc(meeting.created_at)
    kinds: list[str] = []
    if meeting.state is MeetingState.CANCELLED:
        return ["cancel"] if "announce" in done and "cancel" not in done else []
    if now < ends:
        if "announce" not in done:
            kinds.append("announce")
        elif meeting.version > 1 and f"update:{meeting.version}" not in done:
            kinds.append(f"update:{meeting.version}")
        day_ahead = created < starts - DAY
        if starts - DAY <= now < starts - SOON and day_ahead and "remind_day" not in done:
            kinds.append("remind_day")
        if starts - SOON <= now < starts and created < starts - SOON and "remind_15m" not in done:
            kinds.append("remind_15m")
        if now >= starts and "start" not in done:
            kinds.append("start")
    if meeting.minutes_version > 0 and f"minutes:{meeting.minutes_version}" not in done:
        kinds.append(f"minutes:{meeting.minutes_version}")
    return kinds


def _txn(meeting_id: int, kind: str) -> str:
    return f"parta-meeting-{meeting_id}-{kind.replace(':', '-')}"


class MeetingClock:
    """A part of the broadcasts' clock; `tick(now)` sends what is due at `now`."""

    def __init__(
        self, client: MatrixClient, sessions: sessionmaker[Session], settings: Settings
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._settings = settings
        self._lock = asyncio.Lock()

    async def tick(self, now: datetime | None = None) -> TickReport:
        moment = now or utcnow()
        report = TickReport()
        async with self._lock:
            for meeting_id, kind in self._due(moment):
                await self._deliver(meeting_id, kind, report)
        return report

    def _due(self, now: datetime) -> list[tuple[int, str]]:
        with self._sessions() as session:
            session.execute(  # a claim whose process died: give it back (same transaction ID)
                delete(MeetingNotice).where(
                    MeetingNotice.sent_at.is_(None),
                    MeetingNotice.errcode.is_(None),
                    MeetingNotice.claimed_at < utcnow() - STALE_CLAIM,
                )
            )
            session.commit()
            meetings = service.owing(session, now, FORGET_AFTER, PER_TICK)
            claimed: dict[int, set[str]] = {}
            for meeting_id, kind in session.execute(
                select(MeetingNotice.meeting_id, MeetingNotice.kind).where(
                    MeetingNotice.meeting_id.in_([m.id for m in meetings])
                )
            ):
                claimed.setdefault(meeting_id, set()).add(kind)
            return [(m.id, k) for m in meetings for k in due(m, claimed.get(m.id, set()), now)]

    async def _deliver(self, meeting_id: int, kind: str, report: TickReport) -> None:
        with self._sessions() as session:
            session.add(MeetingNotice(meeting_id=meeting_id, kind=kind, claimed_at=utcnow()))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return  # another process (or an earlier tick) has it
            meeting = session.get(ParentMeeting, meeting_id)
            school_class = session.get(SchoolClass, meeting.class_id) if meeting else None
            if meeting is None or school_class is None:
                return
            room_id, label = meeting.room.room_id, school_class.label
            # Minutes are a correction only when earlier minutes reached the chat.
            posted = session.scalar(
                select(MeetingNotice.id).where(
                    MeetingNotice.meeting_id == meeting_id,
                    MeetingNotice.kind.startswith("minutes:"),
                    MeetingNotice.kind != kind,
                    MeetingNotice.sent_at.is_not(None),
                )
            )
            session.commit()  # no transaction stays open while the homeserver is asked
            try:
                if room_id is None:
                    raise HomeserverUnavailable(
                        0, HomeserverUnavailable.errcode, "the parents chat is not made yet"
                    )
                content = self._content(meeting, kind, label, room_id, posted is not None)
                event_id = await rooms.send_message(
                    self._client, room_id, content, transaction_id=_txn(meeting_id, kind)
                )
            except HomeserverUnavailable as exc:
                session.execute(
                    delete(MeetingNotice).where(
                        MeetingNotice.meeting_id == meeting_id, MeetingNotice.kind == kind
                    )
                )
                session.commit()
                report.unavailable.append((meeting_id, kind))
                log.warning("meeting notice not sent; the next tick tries: %s", exc)
                return
            except MatrixError as exc:
                self._finish(session, meeting_id, kind, errcode=exc.errcode, error=str(exc))
                report.refused.append((meeting_id, kind, exc.errcode))
                log.warning("the homeserver refused a meeting notice: %s", exc)
                return
            self._finish(session, meeting_id, kind, event_id=event_id, sent_at=utcnow())
            report.sent.append((meeting_id, kind))

    def _content(
        self, meeting: ParentMeeting, kind: str, label: str, room_id: str, corrects: bool
    ) -> dict[str, Any]:
        settings = self._settings
        if kind == "announce" or kind.startswith("update:"):
            return notices.invitation(settings, meeting, label, room_id, update=kind != "announce")
        if kind in ("remind_day", "remind_15m"):
            return notices.reminder(settings, meeting, label, room_id, soon=kind == "remind_15m")
        if kind == "start":
            return notices.started(settings, meeting, label, room_id)
        if kind == "cancel":
            return notices.cancelled(settings, meeting, label)
        if kind.startswith("minutes:"):
            return notices.minutes(settings, meeting, label, correction=corrects)
        raise ValueError(f"unknown meeting notice {kind!r}")

    @staticmethod
    def _finish(session: Session, meeting_id: int, kind: str, **values: Any) -> None:
        session.execute(
            update(MeetingNotice)
            .where(MeetingNotice.meeting_id == meeting_id, MeetingNotice.kind == kind)
            .values(**{k: (v[:500] if isinstance(v, str) else v) for k, v in values.items()})
        )
        session.commit()
