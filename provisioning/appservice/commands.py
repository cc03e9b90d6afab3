"""The bot's answers in rooms: `!call` in any room, and invitations into rooms.

Anyone of the region may invite the bot into a room (a teacher's own room, a DM), and
`!call` there adds the call widget, as the reconciler puts it into class chats. Messages
are read here and nowhere else; none is stored (`inbox.py` keeps only state events).

`translate(events)` is pure, and so is `decide`: who may put the widget is the room's
power as `matrix.room_state` reads it; what the bot says is in `replies.py`.
`CommandRunner` answers the commands of transactions that were recorded for the first
time, so a transaction Synapse delivers again is not answered again: the transaction ID
already recorded in `appservice_transactions` decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from foundation.lifecycle import cancel_and_wait
from matrix import rooms
from matrix.client import MatrixClient
from matrix.errors import MatrixError
from matrix.room_state import RoomState, read_room_state
from provisioning.appservice.replies import (
    DECLINE_REASON,
    GREETING,
    Outcome,
    notice,
    reply_text,
    standalone_call_link,
)
from provisioning.db.models import ManagedRoom
from provisioning.reconciler.desired import CALL_NAME, call_name
from provisioning.reconciler.state import CALL_WIDGET_ID, WIDGETS_EVENT, RoomWidget
from provisioning.services import calls
from provisioning.services.schools import DomainError

log = logging.getLogger(__name__)

_CALL = re.compile(r"^!(?:call|звонок)(?:\s+(?P<name>.+))?$", re.IGNORECASE | re.DOTALL)
MAX_NAME = 80
STALE_AFTER_MS = 15 * 60 * 1000  # after an outage, an hour-old `!call` is not answered


@dataclass(frozen=True)
class Invited:
    """Someone invited the bot into a room."""

    room_id: str
    inviter: str
    local: bool  # of this region's homeserver


@dataclass(frozen=True)
class CallAsked:
    """`!call [name]` (or `!звонок`) was written in a room."""

    room_id: str
    event_id: str
    sender: str
    name: str | None


Command = Invited | CallAsked


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


def _is_ours(user_id: str, bot_user_id: str) -> bool:
    """The bot and the appservice's other users (`@parta-…`): never answered."""
    bot_localpart = bot_user_id[1:].partition(":")[0]
    localpart, _, server = user_id[1:].partition(":")
    return server == _server_of(bot_user_id) and (
        localpart == bot_localpart or localpart.startswith(f"{bot_localpart}-")
    )


def parse_call(body: str) -> tuple[bool, str | None]:
    """(is it `!call`, the widget's name if one was given)."""
    match = _CALL.match(body.strip())
    if match is None:
        return False, None
    name = " ".join((match.group("name") or "").split())[:MAX_NAME]
    return True, name or None


def translate(
    events: Iterable[Any], *, bot_user_id: str, now_ms: int | None = None
) -> list[Command]:
    """The commands for the bot in a transaction's events; everything else is ignored.

    Ignored: messages of the appservice's own users, notices and emotes, edits (an edited
    `!call` was answered when it was first written), and commands older than 15 minutes.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    commands: list[Command] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        room_id, sender, content = event.get("room_id"), event.get("sender"), event.get("content")
        if (
            not isinstance(room_id, str)
            or not isinstance(sender, str)
            or not sender.startswith("@")
        ):
            continue
        if not isinstance(content, dict) or _is_ours(sender, bot_user_id):
            continue
        kind = event.get("type")
        if kind == "m.room.member" and event.get("state_key") == bot_user_id:
            if content.get("membership") == "invite":
                local = _server_of(sender) == _server_of(bot_user_id)
                commands.append(Invited(room_id, sender, local))
            continue
        if kind != "m.room.message" or content.get("msgtype") != "m.text":
            continue
        relation = content.get("m.relates_to")
        if "m.new_content" in content or (
            isinstance(relation, dict) and relation.get("rel_type") == "m.replace"
        ):
            continue
        body, event_id, ts = (
            content.get("body"),
            event.get("event_id"),
            event.get("origin_server_ts"),
        )
        if not isinstance(body, str) or not isinstance(event_id, str):
            continue
        if isinstance(ts, int) and now - ts > STALE_AFTER_MS:
            continue
        is_call, name = parse_call(body)
        if is_call:
            commands.append(CallAsked(room_id, event_id, sender, name))
    return commands


# --- Who may put the widget: the room's power (matrix.room_state) -----------------------


def decide(room: RoomState, *, sender: str, bot_user_id: str) -> Outcome:
    """The bot puts the widget only where the one asking could have put it themselves."""
    if room.is_space:
        return Outcome.SPACE
    if not room.may_send(sender, WIDGETS_EVENT, state=True):
        return Outcome.SENDER_MAY_NOT
    if not room.may_send(bot_user_id, WIDGETS_EVENT, state=True):
        return Outcome.BOT_MAY_NOT
    return Outcome.ADDED


# --- Running them --------------------------------------------------------------------------


def _txn_id(*parts: str) -> str:
    """A transaction ID from what is answered: a retried send is one event, not two."""
    return "parta-" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class RoomRateLimit:
    """At most `burst` answers per room within `window` seconds; more are not answered."""

    def __init__(
        self, burst: int = 3, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.window, self._clock = burst, window, clock
        self._recent: dict[str, deque[float]] = {}

    def allow(self, room_id: str) -> bool:
        now = self._clock()
        if len(self._recent) > 10_000:  # forget quiet rooms, so the table stays small
            self._recent = {
                r: q for r, q in self._recent.items() if q and now - q[-1] < self.window
            }
        recent = self._recent.setdefault(room_id, deque())
        while recent and now - recent[0] >= self.window:
            recent.popleft()
        if len(recent) >= self.burst:
            return False
        recent.append(now)
        return True


def _record_call_choice(
    factory: sessionmaker[Session], room_id: str, name: str | None, actor: str
) -> str | None:
    """In a managed room, `!call` is the school's choice too, so the reconciler keeps the
    widget there (desired state) instead of taking it out again; returns the room's kind."""
    with factory() as session:
        room = session.scalar(select(ManagedRoom).where(ManagedRoom.room_id == room_id))
        if room is None:
            return None
        try:
            calls.set_room_call(session, room, True, name=name, actor=actor, via="matrix")
        except DomainError:
            return room.kind.value  # a space: `decide` has said so already
        room.dirty = True  # the next run reads the widget the bot puts now
        session.commit()
        return room.kind.value


class CommandRunner:
    """Answers commands one at a time, off the transaction's request: Synapse waits for
    the transaction's answer, and a command makes several calls to Synapse.

    Lifecycle: `start()`, `submit()` per transaction, `stop()`. Commands still queued at
    `stop()` are not answered (their transaction is recorded: at most once, never twice).
    """

    def __init__(
        self,
        client: MatrixClient,
        sessions: sessionmaker[Session],
        *,
        bot_user_id: str,
        call_widget_url: str,
        rate_limit: RoomRateLimit | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._bot = bot_user_id
        self._widget_url = call_widget_url
        self._limit = rate_limit or RoomRateLimit()
        self._queue: asyncio.Queue[Command] = asyncio.Queue(maxsize=1000)
        self._task: asyncio.Task[None] | None = None
        self.handled = 0  # commands taken off the queue, answered or not (for /healthz)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bridge-commands")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def submit(self, commands: Iterable[Command]) -> None:
        for command in commands:
            try:
                self._queue.put_nowait(command)
            except asyncio.QueueFull:
                log.warning(
                    "too many commands waiting; one is not answered",
                    extra={"room_id": command.room_id},
                )

    async def _run(self) -> None:
        while True:
            command = await self._queue.get()
            try:
                await self.handle(command)
            except MatrixError as exc:
                log.warning(
                    "could not answer a command: %s",
                    exc,
                    extra={"room_id": command.room_id, "command": type(command).__name__},
                )
            except Exception:  # one bad command must not stop the bot answering the others
                log.exception("answering a command failed", extra={"room_id": command.room_id})
            finally:
                self.handled += 1
                self._queue.task_done()

    async def handle(self, command: Command) -> None:
        match command:
            case Invited(local=True):
                await rooms.join(self._client, command.room_id)
                await self._send(
                    command.room_id, notice(GREETING), _txn_id("hello", command.room_id)
                )
                log.info(
                    "joined a room on invitation",
                    extra={"room_id": command.room_id, "by": command.inviter},
                )
            case Invited(local=False):
                await rooms.leave(
                    self._client, command.room_id, reason=DECLINE_REASON, user_id=self._bot
                )
                log.info(
                    "declined an invitation from another server",
                    extra={"room_id": command.room_id, "by": command.inviter},
                )
            case CallAsked():
                await self._answer_call(command)

    async def _answer_call(self, command: CallAsked) -> None:
        if not self._limit.allow(command.room_id):
            log.info("too many !call in a room; not answered", extra={"room_id": command.room_id})
            return
        room = await read_room_state(self._client, command.room_id, via_admin_api=False)
        outcome = decide(room, sender=command.sender, bot_user_id=self._bot)
        name = command.name or CALL_NAME
        if outcome is Outcome.ADDED:
            kind = await run_in_threadpool(
                _record_call_choice, self._sessions, command.room_id, command.name, command.sender
            )
            name = command.name or (call_name(kind) if kind else CALL_NAME)
            widget = RoomWidget(self._widget_url, name)
            await rooms.put_state(
                self._client,
                command.room_id,
                WIDGETS_EVENT,
                widget.content(self._bot),
                CALL_WIDGET_ID,
            )
        text = reply_text(
            outcome,
            link=standalone_call_link(self._widget_url, command.room_id),
            name=name,
            needed=room.required_level(WIDGETS_EVENT, state=True),
            sender_level=room.level_of(command.sender),
        )
        content = notice(text, reply_to=command.event_id)
        await self._send(command.room_id, content, _txn_id("call", command.event_id))
        log.info(
            "answered !call",
            extra={"room_id": command.room_id, "sender": command.sender, "outcome": outcome.value},
        )

    async def _send(self, room_id: str, content: dict[str, Any], txn_id: str) -> None:
        await rooms.send_message(self._client, room_id, content, transaction_id=txn_id)
