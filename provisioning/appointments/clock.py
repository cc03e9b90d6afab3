"""The appointments' part of the broadcasts' clock: the private room and its messages.

No second scheduler: `BroadcastClock` ticks this part after the broadcasts and the
meetings (`parts=`); tests drive `tick(now)` with any moment. The meetings' discipline:
each message is claimed first by inserting its (booking, kind) row in
`appointment_notices`, the Matrix transaction ID comes from the same pair, a refusal is
recorded and not retried, a homeserver that does not answer gives the claim back, and a
reminder is never sent after the start.

The room: one per booking, made by the bot at the booking's first message (`booked`),
invite-only, the host and the parent invited, with the call widget as class chats have
it. Its alias (`appt-<offer>-<booking>`) is the natural key, so a retry after a lost answer
adopts the room made the first time. One room per booking rather than per teacher–parent
pair: a room's history then is one appointment's, and a cancelled booking leaves nothing
to tidy in another's room.
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
from matrix.room_state import WIDGETS_EVENT
from provisioning.broadcasts.clock import DAY, PER_TICK, SOON, STALE_CLAIM, TickReport
from provisioning.db.base import as_utc, utcnow
from provisioning.db.models import AppointmentBooking, AppointmentNotice, AppointmentSlot
from provisioning.reconciler.state import RoomWidget

from . import notices, service

log = logging.getLogger(__name__)
CALL_NAME = "Встреча"  # the call widget's name in an appointment's room


def due(
    booking: AppointmentBooking, slot: AppointmentSlot, done: set[str], now: datetime
) -> list[str]:
    """What the booking owes its room at `now`, in order, given the kinds claimed."""
    starts, ends = as_utc(slot.starts_at), as_utc(slot.ends_at)
    created = as_utc(booking.created_at)
    if booking.cancelled_at is not None:
        return ["cancel"] if "booked" in done and "cancel" not in done else []
    kinds: list[str] = []
    if now < ends:
        if "booked" not in done:
            kinds.append("booked")
        if (
            starts - DAY <= now < starts - SOON
            and created < starts - DAY
            and "remind_day" not in done
        ):
            kinds.append("remind_day")
        if starts - SOON <= now < starts and created < starts - SOON and "remind_15m" not in done:
            kinds.append("remind_15m")
    return kinds


def alias_name(booking: AppointmentBooking, slot: AppointmentSlot) -> str:
    return f"appt-{slot.offer_id}-{booking.id}"


def _txn(booking_id: int, kind: str) -> str:
    return f"parta-appointment-{booking_id}-{kind}"


class AppointmentClock:
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
            for booking_id, kind in self._due(moment):
                await self._deliver(booking_id, kind, report)
        return report

    def _due(self, now: datetime) -> list[tuple[int, str]]:
        with self._sessions() as session:
            session.execute(  # a claim whose process died: give it back (same transaction ID)
                delete(AppointmentNotice).where(
                    AppointmentNotice.sent_at.is_(None),
                    AppointmentNotice.errcode.is_(None),
                    AppointmentNotice.claimed_at < utcnow() - STALE_CLAIM,
                )
            )
            session.commit()
            bookings = service.owing(session, now, PER_TICK)
            claimed: dict[int, set[str]] = {}
            for booking_id, kind in session.execute(
                select(AppointmentNotice.booking_id, AppointmentNotice.kind).where(
                    AppointmentNotice.booking_id.in_([b.id for b in bookings])
                )
            ):
                claimed.setdefault(booking_id, set()).add(kind)
            return [
                (b.id, k) for b in bookings for k in due(b, b.slot, claimed.get(b.id, set()), now)
            ]

    async def _deliver(self, booking_id: int, kind: str, report: TickReport) -> None:
        with self._sessions() as session:
            session.add(AppointmentNotice(booking_id=booking_id, kind=kind, claimed_at=utcnow()))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return  # another process (or an earlier tick) has it
            booking = session.get(AppointmentBooking, booking_id)
            if booking is None:
                return
            slot = booking.slot
            host, parent, child = slot.host, booking.parent, booking.child
            names = (host.display_name, parent.display_name, child.display_name)
            members = [u for u in (host.matrix_user_id, parent.matrix_user_id) if u]
            room_id, alias = booking.room_id, alias_name(booking, slot)
            session.commit()  # no transaction stays open while the homeserver is asked
            try:
                if room_id is None:
                    if kind != "booked":
                        raise HomeserverUnavailable(
                            0, HomeserverUnavailable.errcode, "the room is not made yet"
                        )
                    room_id = await self._make_room(alias, members, names)
                    session.execute(
                        update(AppointmentBooking)
                        .where(AppointmentBooking.id == booking_id)
                        .values(room_id=room_id)
                    )
                    session.commit()
                content = self._content(slot, kind, names, room_id, booking.cancelled_by)
                event_id = await rooms.send_message(
                    self._client, room_id, content, transaction_id=_txn(booking_id, kind)
                )
            except HomeserverUnavailable as exc:
                session.execute(
                    delete(AppointmentNotice).where(
                        AppointmentNotice.booking_id == booking_id, AppointmentNotice.kind == kind
                    )
                )
                session.commit()
                report.unavailable.append((booking_id, kind))
                log.warning("appointment notice not sent; the next tick tries: %s", exc)
                return
            except MatrixError as exc:
                self._finish(session, booking_id, kind, errcode=exc.errcode, error=str(exc))
                report.refused.append((booking_id, kind, exc.errcode))
                log.warning("the homeserver refused an appointment notice: %s", exc)
                return
            self._finish(session, booking_id, kind, event_id=event_id, sent_at=utcnow())
            report.sent.append((booking_id, kind))

    async def _make_room(self, alias: str, members: list[str], names: tuple[str, str, str]) -> str:
        """The booking's private room: invite-only, the two invited, the call widget."""
        bot = self._settings.bot_user_id
        body: dict[str, Any] = {
            "name": f"{names[0]} — {names[1]}",
            "preset": "private_chat",
            "visibility": "private",
            "invite": members,
            "initial_state": [
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
                {
                    "type": "m.room.history_visibility",
                    "state_key": "",
                    "content": {"history_visibility": "invited"},
                },
            ],
        }
        widget_url = self._settings.call_widget_url
        if widget_url:
            widget = RoomWidget(widget_url, CALL_NAME)
            body["initial_state"].append(
                {
                    "type": WIDGETS_EVENT,
                    "state_key": widget.widget_id,
                    "content": widget.content(bot),
                }
            )
        ensured = await rooms.create_or_adopt(self._client, alias, self._settings.server_name, body)
        return ensured.room_id

    def _content(
        self,
        slot: AppointmentSlot,
        kind: str,
        names: tuple[str, str, str],
        room_id: str,
        cancelled_by: str | None,
    ) -> dict[str, Any]:
        settings = self._settings
        if kind == "booked":
            return notices.booked(settings, slot, *names, room_id)
        if kind in ("remind_day", "remind_15m"):
            return notices.reminder(settings, slot, room_id, soon=kind == "remind_15m")
        if kind == "cancel":
            return notices.cancelled(settings, slot, by_host=cancelled_by == "host")
        raise ValueError(f"unknown appointment notice {kind!r}")

    @staticmethod
    def _finish(session: Session, booking_id: int, kind: str, **values: Any) -> None:
        session.execute(
            update(AppointmentNotice)
            .where(AppointmentNotice.booking_id == booking_id, AppointmentNotice.kind == kind)
            .values(**{k: (v[:500] if isinstance(v, str) else v) for k, v in values.items()})
        )
        session.commit()
