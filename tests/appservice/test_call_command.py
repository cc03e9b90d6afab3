"""`!call` and invitations, pure parts: what is a command, who may, what the bot says."""

from __future__ import annotations

import math
from typing import Any

import pytest

from matrix.room_state import RoomState
from provisioning.appservice.commands import (
    STALE_AFTER_MS,
    CallAsked,
    Invited,
    RoomRateLimit,
    decide,
    parse_call,
    translate,
)
from provisioning.appservice.replies import Outcome

BOT = "@parta:region.test"
TEACHER = "@olga:region.test"
PUPIL = "@ivan:region.test"
NOW = 1_800_000_000_000


def message(body: str, *, sender: str = TEACHER, **content: Any) -> dict[str, Any]:
    return {
        "event_id": "$m1",
        "room_id": "!room",
        "type": "m.room.message",
        "sender": sender,
        "origin_server_ts": NOW - 1000,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def commands(*events: Any) -> list[object]:
    return list(translate(events, bot_user_id=BOT, now_ms=NOW))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!call", (True, None)),
        ("  !CALL  ", (True, None)),
        ("!звонок", (True, None)),
        ("!Звонок Родительское   собрание", (True, "Родительское собрание")),
        ("!call Maths\nlesson", (True, "Maths lesson")),
        ("!call " + "x" * 200, (True, "x" * 80)),
        ("!calls", (False, None)),
        ("please !call", (False, None)),
        ("!callme", (False, None)),
        ("> <@a:b> !call\n\nthanks", (False, None)),  # a reply quoting a command
    ],
)
def test_what_counts_as_call(body: str, expected: tuple[bool, str | None]) -> None:
    assert parse_call(body) == expected


def test_a_call_message_becomes_a_command_with_its_name() -> None:
    assert commands(message("!call Урок физики")) == [
        CallAsked("!room", "$m1", TEACHER, "Урок физики")
    ]


def test_the_bots_own_words_edits_notices_and_old_commands_are_not_answered() -> None:
    assert commands(message("!call", sender=BOT)) == []
    assert commands(message("!call", sender="@parta-broadcast:region.test")) == []
    assert commands(message("!call", msgtype="m.notice")) == []
    assert commands(message("!call", msgtype="m.emote")) == []
    edit = message(
        "* !call",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "!call"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$m0"},
        },
    )
    assert commands(edit) == []
    stale = {**message("!call"), "origin_server_ts": NOW - STALE_AFTER_MS - 1}
    assert commands(stale) == []
    # Someone of another server named like the bot is not the bot.
    assert commands(message("!call", sender="@parta:elsewhere.test")) != []
    assert commands("junk", {"type": "m.room.message"}, message("hello")) == []


def test_invitations_of_the_bot_say_whether_the_inviter_is_local() -> None:
    def invite(sender: str, state_key: str = BOT, membership: str = "invite") -> dict[str, Any]:
        return {
            "event_id": "$i",
            "room_id": "!room",
            "type": "m.room.member",
            "state_key": state_key,
            "sender": sender,
            "content": {"membership": membership},
        }

    assert commands(invite(TEACHER)) == [Invited("!room", TEACHER, True)]
    assert commands(invite("@mallory:other.test")) == [
        Invited("!room", "@mallory:other.test", False)
    ]
    assert commands(invite(TEACHER, state_key=PUPIL)) == []  # someone else invited
    assert commands(invite(TEACHER, membership="join")) == []
    assert commands(invite(BOT)) == []  # the bot's own membership


def state(*, version: str = "12", creator: str = TEACHER, levels: dict[str, Any] | None = None,
          space: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    create: dict[str, Any] = {"room_version": version}
    if space:
        create["type"] = "m.space"
    events = [{"type": "m.room.create", "state_key": "", "sender": creator, "content": create}]
    if levels is not None:
        events.append({"type": "m.room.power_levels", "state_key": "", "content": levels})
    return events


def test_power_follows_the_spec_and_room_version_12_creators() -> None:
    levels = {"users": {PUPIL: 10, BOT: 50}, "state_default": 50, "events": {}}
    power = RoomState.from_events(state(levels=levels))
    assert power.level_of(TEACHER) == math.inf  # the creator, whatever the levels say
    assert (power.level_of(BOT), power.level_of(PUPIL), power.level_of("@x:y")) == (50, 10, 0)
    assert power.required_level("im.vector.modular.widgets", state=True) == 50
    widgets = {**levels, "events": {"im.vector.modular.widgets": "75"}, "users_default": 5}
    power = RoomState.from_events(state(version="10", levels=widgets))
    assert power.level_of(TEACHER) == 5  # before version 12 a creator is listed, or not
    assert power.required_level("im.vector.modular.widgets", state=True) == 75
    no_levels = RoomState.from_events(state(version="10"))
    assert (no_levels.level_of(TEACHER), no_levels.level_of(PUPIL)) == (100, 0)
    extra = state(levels=levels)
    extra[0]["content"]["additional_creators"] = [PUPIL]
    assert RoomState.from_events(extra).level_of(PUPIL) == math.inf


def test_the_bot_acts_only_where_the_sender_and_the_bot_both_may() -> None:
    def outcome(levels: dict[str, Any], sender: str, **kwargs: Any) -> Outcome:
        return decide(RoomState.from_events(state(levels=levels, **kwargs)), sender=sender,
                      bot_user_id=BOT)  # fmt: skip

    plain = {"users": {PUPIL: 0}, "state_default": 50}
    assert outcome(plain, TEACHER) is Outcome.BOT_MAY_NOT
    assert outcome(plain, PUPIL) is Outcome.SENDER_MAY_NOT  # the sender's rights come first
    granted = {"users": {BOT: 50}, "state_default": 50}
    assert outcome(granted, TEACHER) is Outcome.ADDED
    assert outcome(granted, PUPIL) is Outcome.SENDER_MAY_NOT
    lowered = {"users": {BOT: 50}, "state_default": 50, "events": {"im.vector.modular.widgets": 0}}
    assert outcome(lowered, PUPIL) is Outcome.ADDED
    assert outcome(granted, TEACHER, space=True) is Outcome.SPACE


def test_each_room_gets_a_few_answers_a_minute() -> None:
    now = [0.0]
    limit = RoomRateLimit(burst=3, window=60, clock=lambda: now[0])
    assert [limit.allow("!a") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("!b")  # another room has its own allowance
    now[0] = 59.9
    assert not limit.allow("!a")
    now[0] = 60.0
    assert limit.allow("!a")
