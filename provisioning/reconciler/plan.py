"""`compute_plan(observed, desired)`: a pure, deterministic list of actions.

Order: accounts, then rooms (spaces before their children), then state that drifted,
then space links, then memberships. Joins are interleaved across rooms (round-robin),
because Synapse serialises joins into one room but runs joins into different rooms in
parallel. Only managed rooms appear in the inputs, so no other room is ever touched.
"""

from __future__ import annotations

from collections.abc import Iterator

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
)
from provisioning.reconciler.state import (
    CALL_WIDGET_ID,
    DOCUMENTS_WIDGET_ID,
    DesiredRoom,
    DesiredState,
    ObservedRoom,
    ObservedState,
    RoomAlias,
    UserID,
)


def _creation_order(desired: DesiredState) -> list[DesiredRoom]:
    """Spaces before the rooms inside them; aliases break ties, so the order is stable."""

    def depth(room: DesiredRoom) -> int:
        level, parent = 0, room.parent
        while parent is not None and parent in desired.rooms and level < 16:
            level, parent = level + 1, desired.rooms[parent].parent
        return level

    return sorted(desired.rooms.values(), key=lambda r: (depth(r), not r.is_space, r.alias))


def _state_fixes(want: DesiredRoom, have: ObservedRoom) -> Iterator[Action]:
    if have.name != want.name:
        yield SetName(want.alias, want.name)
    if have.topic != want.topic:
        yield SetTopic(want.alias, want.topic)
    if have.join_rule != want.join_rule:
        yield SetJoinRule(want.alias, want.join_rule)
    if have.history_visibility != want.history_visibility:
        yield SetHistoryVisibility(want.alias, want.history_visibility)
    if have.power_levels != want.power_levels:
        yield SetPowerLevels(want.alias, want.power_levels)
    if have.call_widget != want.call_widget:
        yield SetWidget(want.alias, CALL_WIDGET_ID, want.call_widget)
    if have.documents_widget != want.documents_widget:
        yield SetWidget(want.alias, DOCUMENTS_WIDGET_ID, want.documents_widget)


def _round_robin(per_room: dict[RoomAlias, list[Join]]) -> Iterator[Join]:
    """One join per room in turn; rooms whose joins are done drop out (linear time)."""
    queues = [iter(per_room[alias]) for alias in sorted(per_room)]
    while queues:
        still_busy = []
        for queue in queues:
            join = next(queue, None)
            if join is not None:
                yield join
                still_busy.append(queue)
        queues = still_busy


def _server_of(user_id: UserID) -> str:
    return user_id.split(":", 1)[1]


def compute_plan(observed: ObservedState, desired: DesiredState) -> list[Action]:
    """Return the actions that make `observed` match `desired`, and nothing else."""
    plan: list[Action] = [
        CreateUser(user_id, desired.users[user_id])
        for user_id in sorted(desired.users)
        if user_id not in observed.users
    ]
    home = _server_of(desired.bot)
    fixes: list[Action] = []
    links: list[Action] = []
    joins: dict[RoomAlias, list[Join]] = {}
    kicks: list[Action] = []
    for want in _creation_order(desired):
        have = observed.rooms.get(want.alias)
        if have is None:
            plan.append(CreateRoom(want))
            current_members: frozenset[UserID] = frozenset({desired.bot})
            invited: frozenset[UserID] = frozenset()
            linked = False
        else:
            fixes.extend(_state_fixes(want, have))
            current_members = have.members
            invited = have.invited
            parent = observed.rooms.get(want.parent) if want.parent else None
            linked = (
                have.parent == want.parent and parent is not None and want.alias in parent.children
            )
        if want.parent is not None and not linked:
            links.append(LinkChild(want.parent, want.alias))
        missing = sorted(want.members - current_members)
        if missing:
            joins[want.alias] = [Join(want.alias, user_id) for user_id in missing]
        # Invited but not wanted: the invitation is withdrawn. The bot is never removed, nor
        # the other regions' guests of a room the school opened to them.
        extra = (current_members | invited) - want.members - {desired.bot}
        if want.federated:
            extra = frozenset(u for u in extra if _server_of(u) == home)
        kicks.extend(Kick(want.alias, u) for u in sorted(extra))
    return [*plan, *fixes, *links, *_round_robin(joins), *kicks]
