"""An in-memory model of what each action does on a homeserver, for the planner's property."""

from __future__ import annotations

from dataclasses import replace

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
from provisioning.reconciler.apply import with_widget
from provisioning.reconciler.state import (
    DesiredState,
    ObservedRoom,
    ObservedState,
    RoomAlias,
    UserID,
)


def apply_to_model(state: ObservedState, plan: list[Action], bot: UserID) -> ObservedState:
    users = set(state.users)
    rooms: dict[RoomAlias, ObservedRoom] = dict(state.rooms)
    for action in plan:
        match action:
            case CreateUser(user_id=user_id):
                users.add(user_id)
            case CreateRoom(room=room):
                assert room.alias not in rooms, f"room {room.alias} created twice"
                rooms[room.alias] = ObservedRoom(
                    alias=room.alias,
                    room_id=f"!{room.alias}",
                    name=room.name,
                    topic=room.topic,
                    join_rule=room.join_rule,
                    power_levels=room.power_levels,
                    history_visibility=room.history_visibility,
                    members=frozenset({bot}),
                    call_widget=room.call_widget,
                    documents_widget=room.documents_widget,
                )
            case SetName(alias=alias, name=name):
                rooms[alias] = replace(rooms[alias], name=name)
            case SetTopic(alias=alias, topic=topic):
                rooms[alias] = replace(rooms[alias], topic=topic)
            case SetJoinRule(alias=alias, join_rule=rule):
                rooms[alias] = replace(rooms[alias], join_rule=rule)
            case SetHistoryVisibility(alias=alias, history_visibility=visibility):
                rooms[alias] = replace(rooms[alias], history_visibility=visibility)
            case SetPowerLevels(alias=alias, power_levels=levels):
                rooms[alias] = replace(rooms[alias], power_levels=levels)
            case SetWidget(alias=alias, widget_id=widget_id, widget=widget):
                rooms[alias] = with_widget(rooms[alias], widget_id, widget)
            case LinkChild(parent=parent, child=child):
                rooms[parent] = replace(rooms[parent], children=rooms[parent].children | {child})
                rooms[child] = replace(rooms[child], parent=parent)
            case Join(alias=alias, user_id=user_id):
                assert user_id in users, f"{user_id} joins {alias} before the account exists"
                room = rooms[alias]
                rooms[alias] = replace(
                    room, members=room.members | {user_id}, invited=room.invited - {user_id}
                )
            case Kick(alias=alias, user_id=user_id):
                assert user_id != bot, "the bot must never be kicked"
                room = rooms[alias]
                rooms[alias] = replace(
                    room, members=room.members - {user_id}, invited=room.invited - {user_id}
                )
    return ObservedState(users=frozenset(users), rooms=rooms)


def assert_matches(state: ObservedState, desired: DesiredState) -> None:
    """Check the model against the desired state directly, not through the planner."""
    assert set(desired.users) <= state.users
    for alias, want in desired.rooms.items():
        have = state.rooms[alias]
        assert (have.name, have.topic) == (want.name, want.topic)
        assert have.join_rule == want.join_rule
        assert have.power_levels == want.power_levels
        assert have.history_visibility == want.history_visibility
        assert have.call_widget == want.call_widget
        assert have.documents_widget == want.documents_widget
        home = desired.bot.split(":", 1)[1]
        # A room the school opened to other regions keeps its guests from other servers.
        guests = {u for u in have.members | have.invited if u.split(":", 1)[1] != home}
        kept = guests if want.federated else set()
        assert have.members - kept == want.members | {desired.bot}
        assert not (have.invited - want.members - kept), "an unwanted invitation was left"
        if want.parent is not None:
            assert have.parent == want.parent
            assert alias in state.rooms[want.parent].children
