"""`RoomState`: the Matrix spec's power rules, case by case (m.room.power_levels, MSC4289)."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from matrix.client import MatrixClient, path
from matrix.errors import Forbidden
from matrix.room_state import (
    CREATE,
    POWER_LEVELS,
    PowerLevelsContent,
    RoomState,
    membership_key,
    parse_level,
    read_room_state,
)

CREATOR, OTHER, EXTRA, BOT = "@olga:hs", "@ivan:hs", "@anna:hs", "@parta:hs"
WIDGETS = "im.vector.modular.widgets"


def room(
    version: str | None = "12",
    levels: dict[str, Any] | None = None,
    *,
    extra: list[Any] | None = None,
    creator_field: str | None = None,
    space: bool = False,
) -> RoomState:
    """A room's state events: a create event by CREATOR (unless `version` is None), and a
    power-levels event when `levels` is given."""
    events: list[dict[str, Any]] = []
    if version is not None:
        create: dict[str, Any] = {"room_version": version}
        if extra is not None:
            create["additional_creators"] = extra
        if creator_field is not None:
            create["creator"] = creator_field
        if space:
            create["type"] = "m.space"
        events.append(
            {"type": "m.room.create", "state_key": "", "sender": CREATOR, "content": create}
        )
    if levels is not None:
        events.append({"type": "m.room.power_levels", "state_key": "", "content": levels})
    return RoomState.from_events(events)


LISTED = {"users": {OTHER: 50, CREATOR: 10}}

# (case, room, user, level)
LEVELS: list[tuple[str, RoomState, str, float]] = [
    ("no power levels: the creator has 100", room("10"), CREATOR, 100),
    ("no power levels: everyone else 0", room("10"), OTHER, 0),
    ("v11 creator is like anyone once levels exist", room("11", LISTED), CREATOR, 10),
    ("v11 creator not listed: users_default", room("11", {"users_default": 3}), CREATOR, 3),
    ("v12 creator unlimited whatever the levels", room("12", LISTED), CREATOR, math.inf),
    ("v12 creator unlimited without levels", room("12"), CREATOR, math.inf),
    ("v12 without levels: others 0", room("12"), OTHER, 0),
    (
        "hydra.11 is room version 12's preview",
        room("org.matrix.hydra.11", LISTED),
        CREATOR,
        math.inf,
    ),
    ("another hydra is not", room("org.matrix.hydra.10", LISTED), CREATOR, 10),
    ("additional_creators in v12", room("12", LISTED, extra=[EXTRA]), EXTRA, math.inf),
    ("additional_creators mean nothing before v12", room("11", extra=[EXTRA]), EXTRA, 0),
    ("listed users", room("12", LISTED), OTHER, 50),
    ("users_default for the unlisted", room("12", {"users_default": 7}), OTHER, 7),
    ("users_default missing: 0", room("12", {"users": {}}), OTHER, 0),
    ("string levels (old rooms)", room("5", {"users": {OTHER: "60"}}), OTHER, 60),
    ("string users_default", room("5", {"users_default": " 20 "}), OTHER, 20),
    ("booleans are not levels", room("12", {"users": {OTHER: True}}), OTHER, 0),
    (
        "garbage is not a level",
        room("5", {"users": {OTHER: "lots"}, "users_default": 1}),
        OTHER,
        1,
    ),
    ("pre-v11 creator is the content's creator", room("10", creator_field=EXTRA), EXTRA, 100),
    ("v11 creator is the sender", room("11", creator_field=EXTRA), CREATOR, 100),
    ("v12 creator is the sender", room("12", creator_field=EXTRA), EXTRA, 0),
    ("no create event read: no creator known", room(None), CREATOR, 0),
]


@pytest.mark.parametrize(("case", "state", "user", "level"), LEVELS, ids=[c[0] for c in LEVELS])
def test_level_of(case: str, state: RoomState, user: str, level: float) -> None:
    assert state.level_of(user) == level


# (case, room, event type, is state, required level)
REQUIRED: list[tuple[str, RoomState, str, bool, int]] = [
    ("state events: 50 by default", room("12", {}), "m.room.name", True, 50),
    ("messages: 0 by default", room("12", {}), "m.room.message", False, 0),
    ("no power levels: state still 50 (MSC1304)", room("10"), WIDGETS, True, 50),
    ("no power levels: messages 0", room("10"), "m.room.message", False, 0),
    ("state_default", room("12", {"state_default": 30}), WIDGETS, True, 30),
    ("events_default", room("12", {"events_default": 40}), "m.room.message", False, 40),
    (
        "events override for a state type",
        room("12", {"events": {WIDGETS: 0}}),
        WIDGETS,
        True,
        0,
    ),
    (
        "events override for a message type",
        room("12", {"events": {"m.reaction": 10}, "events_default": 40}),
        "m.reaction",
        False,
        10,
    ),
    (
        "an override of another type does not apply",
        room("12", {"events": {"m.room.topic": 0}}),
        WIDGETS,
        True,
        50,
    ),
    ("string override", room("5", {"events": {WIDGETS: "75"}}), WIDGETS, True, 75),
    ("string state_default", room("5", {"state_default": "25"}), WIDGETS, True, 25),
]


@pytest.mark.parametrize(
    ("case", "state", "event_type", "is_state", "level"), REQUIRED, ids=[c[0] for c in REQUIRED]
)
def test_required_level(
    case: str, state: RoomState, event_type: str, is_state: bool, level: int
) -> None:
    assert state.required_level(event_type, state=is_state) == level


def test_may_send_compares_the_two() -> None:
    levels = {"users": {OTHER: 50, BOT: 49}, "events": {WIDGETS: 50}}
    state = room("12", levels)
    assert state.may_send(OTHER, WIDGETS, state=True)
    assert not state.may_send(BOT, WIDGETS, state=True)
    assert state.may_send(BOT, "m.room.message", state=False)
    assert state.may_send(CREATOR, "m.room.power_levels", state=True)  # unlimited
    assert not room("10").may_send(OTHER, "m.room.topic", state=True)
    assert room("10").may_send(CREATOR, "m.room.topic", state=True)


# (case, room, user, moderates)
MODERATORS: list[tuple[str, RoomState, str, bool]] = [
    ("at the kick level", room("12", {"users": {OTHER: 50}}), OTHER, True),
    ("below it", room("12", {"users": {OTHER: 49}}), OTHER, False),
    ("the room's own kick level", room("12", {"users": {OTHER: 10}, "kick": 10}), OTHER, True),
    ("everyone at users_default 50", room("12", {"users_default": 50}), OTHER, True),
    ("string kick level", room("5", {"users": {OTHER: 20}, "kick": "20"}), OTHER, True),
    ("v12 creator", room("12", {"users": {}}), CREATOR, True),
    ("no power levels: the old creator's 100", room("10"), CREATOR, True),
    ("no power levels: nobody else", room("10"), OTHER, False),
    ("nothing known: nobody", RoomState(), CREATOR, False),
]


@pytest.mark.parametrize(
    ("case", "state", "user", "moderates"), MODERATORS, ids=[c[0] for c in MODERATORS]
)
def test_is_moderator_at_the_kick_level(
    case: str, state: RoomState, user: str, moderates: bool
) -> None:
    assert state.is_moderator(user) is moderates


def test_may_redact_others_at_the_redact_level() -> None:
    """MSC3381: who may end someone else's poll; the room's `redact`, not its `kick`."""
    state = room("12", {"users": {OTHER: 50, EXTRA: 30}, "redact": 30, "kick": 60})
    assert state.redact_level == 30
    assert state.may_redact_others(EXTRA) and state.may_redact_others(OTHER)
    assert not state.is_moderator(EXTRA)  # below kick, yet may redact
    assert not state.may_redact_others(BOT)  # users_default 0
    assert state.may_redact_others(CREATOR)  # room version 12: unlimited
    assert not room("12", {"users": {OTHER: 49}}).may_redact_others(OTHER)  # default 50


def test_defaults_of_a_power_levels_event() -> None:
    assert PowerLevelsContent.parse({}) == PowerLevelsContent(
        users={},
        users_default=0,
        events={},
        events_default=0,
        state_default=50,
        invite=0,
        kick=50,
        ban=50,
        redact=50,
    )
    parsed = PowerLevelsContent.parse({"users": {OTHER: "5", EXTRA: None}, "ban": 70})
    assert (dict(parsed.users), parsed.ban) == ({OTHER: 5}, 70)
    assert [parse_level(v) for v in (3, "-4", True, 2.5, None, "x")] == [
        3,
        -4,
        None,
        None,
        None,
        None,
    ]


def test_users_with_level_names_the_creators_and_the_listed() -> None:
    state = room("12", {"users": {OTHER: 50, BOT: 100, EXTRA: 0}})
    assert state.users_with_level(50) == {CREATOR, OTHER, BOT}
    assert room("11", {"users": {OTHER: 50}}).users_with_level(50) == {OTHER}


def test_members_widgets_join_rule_and_space() -> None:
    events = [
        {
            "type": "m.room.create",
            "state_key": "",
            "sender": CREATOR,
            "content": {"room_version": "12", "type": "m.space"},
        },
        {
            "type": "m.room.member",
            "state_key": OTHER,
            "content": {"membership": "join", "displayname": "Иван"},
        },
        {"type": "m.room.member", "state_key": EXTRA, "content": {"membership": "invite"}},
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}},
        {"type": WIDGETS, "state_key": "parta-call", "content": {"url": "https://w/call"}},
        {"type": WIDGETS, "state_key": "gone", "content": {}},
        {"type": "m.room.message", "content": {"body": "not state"}},
        "not an event",
    ]
    state = RoomState.from_events(events)
    assert state.is_space and state.join_rule == "knock" and state.room_version == "12"
    assert dict(state.members) == {OTHER: "join", EXTRA: "invite"}
    assert state.joined == {OTHER} and state.membership(EXTRA) == "invite"
    assert state.display_names == {OTHER: "Иван"}
    assert list(state.widgets) == ["parta-call"]  # a removed widget is empty content
    assert state.creators == {CREATOR}
    assert not room("12").is_space and room("12").power_levels is None


# --- read_room_state, against a homeserver that answers from a table -------------------

ROOM = "!r:hs"
STATE = [
    {
        "type": "m.room.create",
        "state_key": "",
        "sender": CREATOR,
        "content": {"room_version": "12"},
    },
    {"type": "m.room.member", "state_key": OTHER, "content": {"membership": "join"}},
]


def homeserver(*, member: bool, admin: bool = True) -> tuple[MatrixClient, list[str]]:
    """A client whose homeserver holds STATE, for the bot as a member or not."""
    asked: list[str] = []
    single = {path("rooms", ROOM, "state", e["type"], e["state_key"]): e for e in STATE}

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        where = request.url.raw_path.decode().partition("?")[0]  # as encoded by path()
        forbidden = httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "no"})
        if where == path("rooms", ROOM, "state", base="/_synapse/admin/v1"):
            return httpx.Response(200, json={"state": STATE}) if admin else forbidden
        if not member:
            return forbidden
        if where == path("rooms", ROOM, "state"):
            return httpx.Response(200, json=STATE)
        if where in single:
            return httpx.Response(200, json=single[where])
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "none"})

    client = MatrixClient("http://hs", "token", transport=httpx.MockTransport(answer))
    return client, asked


async def test_read_as_a_member_whole_or_by_event() -> None:
    client, asked = homeserver(member=True)
    whole = await read_room_state(client, ROOM)
    assert whole.joined == {OTHER} and whole.creators == {CREATOR} and len(asked) == 1
    some = await read_room_state(client, ROOM, only=(CREATE, POWER_LEVELS, membership_key(EXTRA)))
    assert some.creators == {CREATOR} and some.power_levels is None and not some.members
    assert all("format=event" in url for url in asked[1:]) and len(asked) == 4


async def test_read_as_an_admin_where_the_bot_is_no_member() -> None:
    client, asked = homeserver(member=False)
    room_state = await read_room_state(client, ROOM, only=(CREATE, membership_key(OTHER)))
    assert room_state.joined == {OTHER} and "/_synapse/admin/v1/rooms/" in asked[-1]
    with pytest.raises(Forbidden):
        await read_room_state(client, ROOM, via_admin_api=False)
    with pytest.raises(Forbidden):
        await read_room_state(homeserver(member=False, admin=False)[0], ROOM)
