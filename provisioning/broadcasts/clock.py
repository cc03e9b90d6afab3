"""Posts what each broadcast owes its audience, on time, from the provisioning service.

`BroadcastClock` is a `Service` the app's lifespan runs beside the reconcile scheduler: it
ticks every `period` seconds (and at once after a save, `request()`), and `tick(now)` does
the work for a given moment, so tests drive it with any time instead of waiting a day.

Each message is claimed first by inserting its (broadcast, kind) row (`BroadcastNotice`),
so two provisioning processes, or a tick after a crash, never post it twice; the Matrix
transaction ID comes from the same pair, so a send retried after a lost answer is one
event. A homeserver that refuses is recorded on the row and not asked again; one that
does not answer gives the claim back, and the next tick tries while the moment still fits
(a reminder is never sent after the start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from foundation.lifecycle import cancel_and_wait
from foundation.settings import Settings
from matrix import rooms
from matrix.client import MatrixClient
from matrix.errors import HomeserverUnavailable, MatrixError
from matrix.room_state import WIDGETS_EVENT
from provisioning.db.base import as_utc, utcnow
from provisioning.db.models import Broadcast, BroadcastNotice, BroadcastState, Person

from . import notices

log = logging.getLogger(__name__)

DAY: Final = timedelta(days=1)
SOON: Final = timedelta(minutes=15)
STALE_CLAIM: Final = timedelta(minutes=10)  # a claim its process never finished
FORGET_AFTER: Final = timedelta(days=2)  # an ended broadcast owes nothing after this
PER_TICK: Final = 200


@dataclass
class TickReport:
    sent: list[tuple[int, str]] = field(default_factory=list)
    refused: list[tuple[int, str, str]] = field(default_factory=list)  # id, kind, errcode
    unavailable: list[tuple[int, str]] = field(default_factory=list)


class ClockPart(Protocol):
    """Another schedule on this clock (parent meetings): ticked after the broadcasts."""

    async def tick(self, now: datetime | None = None) -> TickReport: ...


def due(broadcast: Broadcast, done: set[str], now: datetime) -> list[str]:
    """What the broadcast owes its chat at `now`, in order, given the kinds claimed."""
    starts, ends = as_utc(broadcast.starts_at), as_utc(broadcast.ends_at)
    created = as_utc(broadcast.created_at)
    kinds: list[str] = []
    if broadcast.state is BroadcastState.CANCELLED:
        if "announce" in done and "cancel" not in done:
            kinds.append("cancel")
        if "start" in done and "end" not in done:
            kinds.append("end")
        return kinds
    if broadcast.state is BroadcastState.ENDED:
        return kinds
    if now >= ends:
        return ["end"] if "end" not in done else []
    if "announce" not in done:
        kinds.append("announce")
    elif broadcast.version > 1 and f"update:{broadcast.version}" not in done:
        kinds.append(f"update:{broadcast.version}")
    if starts - DAY <= now < starts - SOON and created < starts - DAY and "remind_day" not in done:
        kinds.append("remind_day")
    if starts - SOON <= now < starts and created < starts - SOON and "remind_15m" not in done:
        kinds.append("remind_15m")
    if now >= starts and "start" not in done:
        kinds.append("start")
    return kinds


def _txn(broadcast_id: int, kind: str, part: str = "") -> str:
    return f"parta-broadcast-{broadcast_id}-{kind.replace(':', '-')}{part}"


class BroadcastClock:
    """Lifecycle: `start()`, `request()` after a change, `stop()`; `tick(now)` for tests."""

    def __init__(
        self,
        client: MatrixClient,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        period: float = 30.0,
        parts: tuple[ClockPart, ...] = (),
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._settings = settings
        self._period = period
        self._parts = parts  # one loop, one `request()`, for every schedule
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    def request(self) -> None:
        """Tick soon (a broadcast was saved, edited or cancelled)."""
        self._wanted.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="broadcast-clock")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # the period is over: tick anyway
                await asyncio.wait_for(self._wanted.wait(), timeout=self._period)
            self._wanted.clear()
            try:
                await self.tick()
                self.last_error = None
            except Exception as exc:  # the next tick tries again; the service stays up
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("broadcast tick failed")

    async def tick(self, now: datetime | None = None) -> TickReport:
        """Send everything due at `now` (default: the real time); one tick at a time."""
        moment = now or utcnow()
        report = TickReport()
        try:
            async with self._lock:
                for broadcast_id, kind in self._due(moment):
                    await self._deliver(broadcast_id, kind, report)
        finally:  # a failing broadcast does not hold the other schedules back
            for part in self._parts:  # each part reports to its own caller's tests
                await part.tick(moment)
        return report

    def _due(self, now: datetime) -> list[tuple[int, str]]:
        with self._sessions() as session:
            stale = utcnow() - STALE_CLAIM  # the real time: claims are stamped with it
            session.execute(  # a claim whose process died: give it back (same transaction ID)
                delete(BroadcastNotice).where(
                    BroadcastNotice.sent_at.is_(None),
                    BroadcastNotice.errcode.is_(None),
                    BroadcastNotice.claimed_at < stale,
                )
            )
            session.commit()
            broadcasts = session.scalars(
                select(Broadcast)
                .where(Broadcast.ends_at > now - FORGET_AFTER)
                .where(Broadcast.state != BroadcastState.ENDED)
                .order_by(Broadcast.starts_at)
                .limit(PER_TICK)
            ).all()
            claimed: dict[int, set[str]] = {}
            for broadcast_id, kind in session.execute(
                select(BroadcastNotice.broadcast_id, BroadcastNotice.kind).where(
                    BroadcastNotice.broadcast_id.in_([b.id for b in broadcasts])
                )
            ):
                claimed.setdefault(broadcast_id, set()).add(kind)
            return [
                (b.id, kind) for b in broadcasts for kind in due(b, claimed.get(b.id, set()), now)
            ]

    def _claim(self, session: Session, broadcast_id: int, kind: str) -> bool:
        session.add(BroadcastNotice(broadcast_id=broadcast_id, kind=kind, claimed_at=utcnow()))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False  # another process (or an earlier tick) has it
        return True

    async def _deliver(self, broadcast_id: int, kind: str, report: TickReport) -> None:
        with self._sessions() as session:
            if not self._claim(session, broadcast_id, kind):
                return
            broadcast = session.get(Broadcast, broadcast_id)
            if broadcast is None:
                return
            room_id = broadcast.audience.room_id
            names = self._speaker_names(session, broadcast)
            session.commit()  # no transaction stays open while the homeserver is asked
            try:
                if room_id is None:
                    raise HomeserverUnavailable(
                        0, HomeserverUnavailable.errcode, "the audience chat is not made yet"
                    )
                event_id = await self._send(broadcast, kind, room_id, names)
            except HomeserverUnavailable as exc:
                session.execute(
                    delete(BroadcastNotice).where(
                        BroadcastNotice.broadcast_id == broadcast_id, BroadcastNotice.kind == kind
                    )
                )
                session.commit()
                report.unavailable.append((broadcast_id, kind))
                log.warning(
                    "broadcast notice not sent; the next tick tries: %s",
                    exc,
                    extra={"broadcast_id": broadcast_id, "kind": kind},
                )
                return
            except MatrixError as exc:
                self._finish(session, broadcast_id, kind, errcode=exc.errcode, error=str(exc))
                report.refused.append((broadcast_id, kind, exc.errcode))
                log.warning(
                    "the homeserver refused a broadcast notice: %s",
                    exc,
                    extra={"broadcast_id": broadcast_id, "kind": kind},
                )
                return
            # Conditional updates: a cancellation made while the homeserver was asked stays.
            row = update(Broadcast).where(Broadcast.id == broadcast_id)
            if kind == "start":
                session.execute(
                    row.where(Broadcast.state == BroadcastState.SCHEDULED).values(
                        state=BroadcastState.LIVE
                    )
                )
            elif kind == "end":
                session.execute(
                    row.where(
                        Broadcast.state.in_((BroadcastState.SCHEDULED, BroadcastState.LIVE))
                    ).values(state=BroadcastState.ENDED)
                )
            elif event_id and (kind == "announce" or kind.startswith("update:")):
                session.execute(row.values(announcement_event_id=event_id))
            self._finish(session, broadcast_id, kind, event_id=event_id, sent_at=utcnow())
            report.sent.append((broadcast_id, kind))

    def _finish(self, session: Session, broadcast_id: int, kind: str, **values: Any) -> None:
        session.execute(
            update(BroadcastNotice)
            .where(BroadcastNotice.broadcast_id == broadcast_id, BroadcastNotice.kind == kind)
            .values(**{k: (v[:500] if isinstance(v, str) else v) for k, v in values.items()})
        )
        session.commit()

    @staticmethod
    def _speaker_names(session: Session, broadcast: Broadcast) -> dict[str, str]:
        found = session.execute(
            select(Person.matrix_user_id, Person.display_name).where(
                Person.matrix_user_id.in_(broadcast.speakers)
            )
        )
        return {user_id: name for user_id, name in found if user_id}

    async def _send(
        self, broadcast: Broadcast, kind: str, room_id: str, names: dict[str, str]
    ) -> str | None:
        settings, client, bid = self._settings, self._client, broadcast.id

        async def post(content: dict[str, Any], part: str = "") -> str:
            return await rooms.send_message(
                client, room_id, content, transaction_id=_txn(bid, kind, part)
            )

        if kind == "announce" or kind.startswith("update:"):
            await post(notices.cover_image(broadcast), "-cover")
            content = notices.announcement(
                settings,
                broadcast,
                room_id,
                names,
                update=kind != "announce",
            )
            return await post(content)
        if kind in ("remind_day", "remind_15m"):
            return await post(
                notices.reminder(settings, broadcast, room_id, soon=kind == "remind_15m")
            )
        if kind == "start":
            widget = notices.widget(settings, broadcast)
            await rooms.put_state(
                client,
                room_id,
                WIDGETS_EVENT,
                widget.content(settings.bot_user_id),
                widget.widget_id,
            )
            return await post(notices.started(settings, broadcast, room_id))
        if kind == "end":
            if broadcast.state is BroadcastState.SCHEDULED:
                return None  # it never started (the homeserver was away): no widget to remove
            # An empty content removes a widget (the Widget API's convention).
            return await rooms.put_state(
                client, room_id, WIDGETS_EVENT, {}, notices.widget_id(broadcast.id)
            )
        if kind == "cancel":
            return await post(notices.cancelled(settings, broadcast))
        raise ValueError(f"unknown broadcast notice {kind!r}")
