"""`apply(plan)`: carry out the actions through the bridge's client, with bounded concurrency.

This module is the runner: the order (phases), the concurrency (per run and per room),
the records of what each room now holds, the failures and skips. The Matrix side of each
handler is a call of `matrix.rooms` (create-or-adopt, admin join, kick, put state).

Each handler is an "ensure": doing it twice leaves the same state, so a plan interrupted
by a crash or a Synapse outage is simply planned and applied again. What a room holds
is recorded only after Synapse accepted the change, so a record never claims more than
is true; at worst the next run repeats an action that had already succeeded.

One action that fails (refused, or a request slower than its deadline) does not stop the
run: it is reported, the actions that need its room are skipped, and the next run tries
again. A homeserver that cannot be reached at all ends the run at once, since every
later action would only wait out its own deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import update
from sqlalchemy.orm import Session

from matrix import rooms
from matrix.client import JsonDict, MatrixClient
from matrix.errors import HomeserverUnreachable, MatrixError
from provisioning.db.base import utcnow
from provisioning.db.models import Person
from provisioning.reconciler.actions import (
    Action,
    CreateRoom,
    CreateUser,
    Join,
    Kick,
    LinkChild,
    SetHistoryVisibility,
    SetJoinRule,
    SetName,
    SetPowerLevels,
    SetTopic,
    SetWidget,
    describe,
)
from provisioning.reconciler.limiter import PriorityLimiter
from provisioning.reconciler.observe import read_room, remember
from provisioning.reconciler.state import (
    CALL_WIDGET_ID,
    DOCUMENTS_WIDGET_ID,
    WIDGETS_EVENT,
    DesiredRoom,
    JoinRule,
    ObservedRoom,
    ObservedState,
    RoomAlias,
    RoomOwner,
    RoomWidget,
    UserID,
)

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
# Changes in flight per room. Synapse persists a room's events one at a time, so more do
# not add members faster, but a few hide each request's latency when Synapse is busy with
# other rooms. Many fork the room's history: measured on Synapse 1.163 with 800 joins
# into one room, 1 and 4 at once both ran at 6.1 joins/s, flat as the room grew; 8 at
# once, 4.5/s, and the last quarter took 2.4 times the first (state resolution).
ROOM_CONCURRENCY = 4
INVITE_AT_CREATION_MAX = 100  # members of a class's rooms: see `Applier._invitees`
KICK_REASON = "Изменился состав класса или школы"
DEFAULT_MAX_FAILURES = 100  # beyond this many, something is wrong with the run, not an action


@dataclass(frozen=True)
class FailedAction:
    action: Action
    error: str
    errcode: str = "M_UNKNOWN"

    def describe(self) -> dict[str, object]:
        return {**describe(self.action), "error": self.error}


@dataclass
class ApplyReport:
    done: int = 0
    by_action: dict[str, int] = field(default_factory=dict)
    failed: list[FailedAction] = field(default_factory=list)
    skipped: int = 0  # actions whose room could not be created in this run
    done_actions: list[Action] = field(default_factory=list)  # what succeeded, in order


class TooManyFailures(Exception):
    """More actions failed than a healthy run could explain; the run stopped."""

    def __init__(self, report: ApplyReport) -> None:
        first = report.failed[0]
        super().__init__(
            f"{len(report.failed)} actions failed, the first {first.describe()}; "
            "see the homeserver's log, then run the reconciler again"
        )
        self.report = report


class Applier:
    """Applies one plan; keeps what each managed room now holds, in memory and in the DB."""

    def __init__(
        self,
        client: MatrixClient,
        session: Session,
        observed: ObservedState,
        *,
        server_name: str,
        bot: UserID,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        self.client = client
        self.max_failures = max_failures
        self.session = session
        self.server_name = server_name
        self.bot = bot
        self.rooms: dict[RoomAlias, ObservedRoom] = dict(observed.rooms)
        self.owners: dict[RoomAlias, RoomOwner] = {}
        self.created: dict[RoomAlias, asyncio.Event] = {}
        self.limit = PriorityLimiter(concurrency)
        self.room_slots: dict[RoomAlias, asyncio.Semaphore] = {}
        self.work_left: Counter[RoomAlias] = Counter()  # in this phase, not yet started
        self.report = ApplyReport()

    # --- helpers ----------------------------------------------------------------------

    def _room_id(self, alias: RoomAlias) -> str:
        return self.rooms[alias].room_id

    def _join_rule_content(self, rule: JoinRule) -> JsonDict:
        content: JsonDict = {"join_rule": rule.rule}
        if rule.allow_spaces:
            content["allow"] = [
                {"type": "m.room_membership", "room_id": self._room_id(space)}
                for space in rule.allow_spaces
            ]
        return content

    def _update(self, alias: RoomAlias, room: ObservedRoom) -> None:
        self.rooms[alias] = room
        remember(self.session, alias, room, owner=self.owners.get(alias))
        # Commit at once: on SQLite an open write transaction would lock out the bridge,
        # the admin UI and the lease renewal for as long as a phase lasts (up to hours).
        self.session.commit()

    async def _put_state(
        self, alias: RoomAlias, event_type: str, content: JsonDict, state_key: str = ""
    ) -> None:
        await rooms.put_state(self.client, self._room_id(alias), event_type, content, state_key)

    # --- handlers -----------------------------------------------------------------------

    def _invitees(self, room: DesiredRoom) -> list[str]:
        """Who is invited in the creation request itself: the members of a small room.

        The admin join later finds the invite from the same sender and only adds the
        join. Synapse sends a creation's invites one after another, though, each slower
        as the room fills: a school's space took 27 minutes to create with its 2,585
        invites. A bigger room starts empty and gets its members by admin joins (an
        invite and a join each), several at once and first in line (see `limiter`).
        """
        members: list[str] = sorted(room.members - {self.bot})
        return members if len(members) <= INVITE_AT_CREATION_MAX else []

    async def create_user(self, action: CreateUser) -> None:
        await self.client.admin_put_user(action.user_id, {"displayname": action.display_name})

    async def create_room(self, action: CreateRoom) -> None:
        room = action.room
        self.owners[room.alias] = room.owner
        try:
            await self._create_or_adopt(room)
        finally:
            # Set even on failure: rooms restricted to this one stop waiting (and are skipped).
            self.created.setdefault(room.alias, asyncio.Event()).set()

    async def _create_or_adopt(self, room: DesiredRoom) -> None:
        for space in room.join_rule.allow_spaces:
            if space not in self.rooms and space in self.created:
                await self.created[space].wait()
        missing = [space for space in room.join_rule.allow_spaces if space not in self.rooms]
        if missing:
            raise _Skipped(missing)
        ensured = await rooms.create_or_adopt(
            self.client, room.alias, self.server_name, self._creation(room)
        )
        if not ensured.created:
            # The alias exists: a previous run created the room and died before recording it.
            alias_of = {r.room_id: a for a, r in self.rooms.items()}
            adopted = await read_room(self.client, room.alias, ensured.room_id, alias_of)
            self._update(room.alias, adopted)
            log.info("adopted an existing room", extra={"alias": room.alias})
        else:
            self._update(
                room.alias,
                ObservedRoom(
                    alias=room.alias,
                    room_id=ensured.room_id,
                    name=room.name,
                    topic=room.topic,
                    join_rule=room.join_rule,
                    power_levels=room.power_levels,
                    history_visibility=room.history_visibility,
                    members=frozenset({self.bot}),
                    invited=frozenset(UserID(u) for u in self._invitees(room)),
                    call_widget=room.call_widget,
                    documents_widget=room.documents_widget,
                ),
            )
        # Commit each new room at once: a crash right after must find its record (it
        # would be adopted by its alias anyway, at the cost of reading it back).
        self.session.commit()

    def _creation(self, room: DesiredRoom) -> JsonDict:
        """The `createRoom` body: the room's whole initial state (the alias is added)."""
        body: JsonDict = {
            "name": room.name,
            "topic": room.topic,
            "preset": "private_chat",
            "visibility": "private",
            "invite": self._invitees(room),
            "power_level_content_override": room.power_levels.content(),
            "initial_state": [
                {
                    "type": "m.room.join_rules",
                    "state_key": "",
                    "content": self._join_rule_content(room.join_rule),
                },
                {
                    "type": "m.room.history_visibility",
                    "state_key": "",
                    "content": {"history_visibility": room.history_visibility},
                },
            ],
        }
        for widget in (room.call_widget, room.documents_widget):
            if widget is not None:
                body["initial_state"].append(
                    {
                        "type": WIDGETS_EVENT,
                        "state_key": widget.widget_id,
                        "content": widget.content(self.bot),
                    }
                )
        if room.is_space:
            body["creation_content"] = {"type": "m.space"}
        return body

    async def set_name(self, action: SetName) -> None:
        await self._put_state(action.alias, "m.room.name", {"name": action.name})
        self._update(action.alias, replace(self.rooms[action.alias], name=action.name))

    async def set_topic(self, action: SetTopic) -> None:
        await self._put_state(action.alias, "m.room.topic", {"topic": action.topic})
        self._update(action.alias, replace(self.rooms[action.alias], topic=action.topic))

    async def set_join_rule(self, action: SetJoinRule) -> None:
        content = self._join_rule_content(action.join_rule)
        await self._put_state(action.alias, "m.room.join_rules", content)
        self._update(action.alias, replace(self.rooms[action.alias], join_rule=action.join_rule))

    async def set_history_visibility(self, action: SetHistoryVisibility) -> None:
        content = {"history_visibility": action.history_visibility}
        await self._put_state(action.alias, "m.room.history_visibility", content)
        room = replace(self.rooms[action.alias], history_visibility=action.history_visibility)
        self._update(action.alias, room)

    async def set_power_levels(self, action: SetPowerLevels) -> None:
        await self._put_state(action.alias, "m.room.power_levels", action.power_levels.content())
        room = replace(self.rooms[action.alias], power_levels=action.power_levels)
        self._update(action.alias, room)

    async def set_widget(self, action: SetWidget) -> None:
        widget = action.widget
        # Empty content removes a widget (the Widget API's convention for state events).
        content = widget.content(self.bot) if widget is not None else {}
        await self._put_state(action.alias, WIDGETS_EVENT, content, action.widget_id)
        room = with_widget(self.rooms[action.alias], action.widget_id, widget)
        self._update(action.alias, room)

    async def link_child(self, action: LinkChild) -> None:
        via = {"via": [self.server_name]}
        child_id = self._room_id(action.child)
        parent_id = self._room_id(action.parent)
        await self._put_state(action.parent, "m.space.child", via, child_id)
        await self._put_state(action.child, "m.space.parent", {**via, "canonical": True}, parent_id)
        parent = self.rooms[action.parent]
        self._update(action.parent, replace(parent, children=parent.children | {action.child}))
        self._update(action.child, replace(self.rooms[action.child], parent=action.parent))

    async def join(self, action: Join) -> None:
        await rooms.admin_join(self.client, self._room_id(action.alias), action.user_id)
        room = self.rooms[action.alias]
        self._update(
            action.alias,
            replace(
                room,
                members=room.members | {action.user_id},
                invited=room.invited - {action.user_id},
            ),
        )

    async def kick(self, action: Kick) -> None:
        room_id = self._room_id(action.alias)
        await rooms.kick(self.client, room_id, action.user_id, reason=KICK_REASON)
        room = self.rooms[action.alias]
        self._update(
            action.alias,
            replace(
                room,
                members=room.members - {action.user_id},
                invited=room.invited - {action.user_id},
            ),
        )

    # --- running --------------------------------------------------------------------------

    def _handler(self, action: Action) -> Callable[[], Awaitable[None]]:
        match action:
            case CreateUser():
                return lambda: self.create_user(action)
            case CreateRoom():
                return lambda: self.create_room(action)
            case SetName():
                return lambda: self.set_name(action)
            case SetTopic():
                return lambda: self.set_topic(action)
            case SetWidget():
                return lambda: self.set_widget(action)
            case SetJoinRule():
                return lambda: self.set_join_rule(action)
            case SetHistoryVisibility():
                return lambda: self.set_history_visibility(action)
            case SetPowerLevels():
                return lambda: self.set_power_levels(action)
            case LinkChild():
                return lambda: self.link_child(action)
            case Join():
                return lambda: self.join(action)
            case Kick():
                return lambda: self.kick(action)

    async def _run_one(self, action: Action) -> None:
        missing = [alias for alias in rooms_needed(action) if alias not in self.rooms]
        if missing:
            self._skip(action, missing)
            return
        try:
            async with contextlib.AsyncExitStack() as held:
                aliases = sorted(set(rooms_needed(action)))  # in order: no deadlock
                for alias in aliases:
                    await held.enter_async_context(
                        self.room_slots.setdefault(alias, asyncio.Semaphore(ROOM_CONCURRENCY))
                    )
                # The room with the most changes left goes first: see `limiter`.
                await held.enter_async_context(
                    self.limit.slot(max((self.work_left[a] for a in aliases), default=0))
                )
                self.work_left.subtract(aliases)
                await self._handler(action)()
        except _Skipped as skipped:
            self._skip(action, skipped.missing)
            return
        except HomeserverUnreachable:
            raise
        except MatrixError as exc:
            self._fail(action, exc)
            return
        name = type(action).__name__
        self.report.done += 1
        self.report.done_actions.append(action)
        self.report.by_action[name] = self.report.by_action.get(name, 0) + 1

    def _skip(self, action: Action, missing: list[RoomAlias]) -> None:
        self.report.skipped += 1
        log.warning(
            "skipped: its room could not be created in this run",
            extra={"action": describe(action), "missing": missing},
        )

    def _fail(self, action: Action, exc: MatrixError) -> None:
        self.report.failed.append(FailedAction(action, f"{exc.errcode}: {exc}", exc.errcode))
        log.warning(
            "action failed; the next run tries again",
            extra={"action": describe(action), "error": str(exc), "errcode": exc.errcode},
        )
        if len(self.report.failed) > self.max_failures:
            raise TooManyFailures(self.report)

    async def run(self, plan: Sequence[Action]) -> ApplyReport:
        """Apply the plan phase by phase; within a phase, up to `concurrency` at once."""
        for action in plan:
            if isinstance(action, CreateRoom):
                self.created.setdefault(action.room.alias, asyncio.Event())
        phases: list[list[Action]] = []
        for action in plan:
            kind = _phase(action)
            if not phases or _phase(phases[-1][0]) != kind:
                phases.append([])
            phases[-1].append(action)
        try:
            for phase in phases:
                self.work_left = Counter(a for action in phase for a in rooms_needed(action))
                try:
                    async with asyncio.TaskGroup() as group:
                        for action in phase:
                            group.create_task(self._run_one(action))
                except* (HomeserverUnreachable, TooManyFailures) as group_error:
                    raise group_error.exceptions[0] from None
                if isinstance(phase[0], CreateUser):
                    self._mark_accounts_created(
                        [a.user_id for a in phase if isinstance(a, CreateUser)]
                    )
                self.session.commit()
        finally:
            self.session.commit()  # keep what succeeded, even when a later action failed
        return self.report

    def _mark_accounts_created(self, user_ids: list[UserID]) -> None:
        self.session.execute(
            update(Person)
            .where(Person.matrix_user_id.in_(user_ids))
            .values(account_created_at=utcnow())
        )


class _Skipped(Exception):
    def __init__(self, missing: list[RoomAlias]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


def with_widget(room: ObservedRoom, widget_id: str, widget: RoomWidget | None) -> ObservedRoom:
    """The room as it is once the widget `widget_id` is set (or taken out)."""
    if widget_id == DOCUMENTS_WIDGET_ID:
        return replace(room, documents_widget=widget)
    if widget_id == CALL_WIDGET_ID:
        return replace(room, call_widget=widget)
    raise ValueError(f"not a widget Parta keeps: {widget_id}")


def rooms_needed(action: Action) -> tuple[RoomAlias, ...]:
    """The managed rooms an action works in, which must exist before it runs."""
    match action:
        case CreateUser() | CreateRoom():
            return ()
        case LinkChild(parent=parent, child=child):
            return (parent, child)
        case SetJoinRule(alias=alias, join_rule=rule):
            return (alias, *rule.allow_spaces)
        case _:
            return (action.alias,)


def _phase(action: Action) -> int:
    """Actions of one phase may run in parallel; phases run in the plan's order."""
    match action:
        case CreateUser():
            return 0
        case CreateRoom():
            return 1
        case LinkChild():
            return 3
        case Join():
            return 4
        case Kick():
            return 5
        case _:
            return 2


async def apply(
    plan: Sequence[Action],
    client: MatrixClient,
    session: Session,
    observed: ObservedState,
    *,
    server_name: str,
    bot: UserID,
    owners: dict[RoomAlias, RoomOwner] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ApplyReport:
    applier = Applier(
        client, session, observed, server_name=server_name, bot=bot, concurrency=concurrency
    )
    applier.owners.update(owners or {})
    return await applier.run(plan)
