"""Knocks and their answers, read from membership events (pure translation)."""

from __future__ import annotations

from typing import Any

from matrix.appservice import select_state_events
from provisioning.appservice.knocks import KnockAnswered, Knocked, translate

BOT = "@parta:region.test"
PUPIL = "@timur:region.test"
TEACHER = "@teacher:region.test"


def member(sender: str, membership: str, prev: str | None = None, **content: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"$e{len(content)}{membership}{sender}",
        "room_id": "!class",
        "type": "m.room.member",
        "state_key": PUPIL,
        "sender": sender,
        "origin_server_ts": 1,
        "content": {"membership": membership, **content},
    }
    if prev is not None:
        event["unsigned"] = {"prev_content": {"membership": prev}}
    return event


def commands(*events: dict[str, Any]) -> list[object]:
    return list(translate(select_state_events(events), bot_user_id=BOT))


def test_a_knock_is_a_request_with_the_knockers_name_and_reason() -> None:
    assert commands(member(PUPIL, "knock", displayname="Тимур", reason="Я новенький")) == [
        Knocked("!class", PUPIL, "Тимур", "Я новенький")
    ]
    assert commands(member(PUPIL, "knock")) == [Knocked("!class", PUPIL, PUPIL, None)]


def test_a_teacher_answering_a_knock_in_element_is_a_decision() -> None:
    assert commands(member(TEACHER, "invite", prev="knock")) == [
        KnockAnswered("!class", PUPIL, TEACHER, True)
    ]
    assert commands(member(TEACHER, "leave", prev="knock")) == [
        KnockAnswered("!class", PUPIL, TEACHER, False)
    ]
    assert commands(member(TEACHER, "ban", prev="knock")) == [
        KnockAnswered("!class", PUPIL, TEACHER, False)
    ]
    # The knocker withdrawing is a decision too: theirs.
    assert commands(member(PUPIL, "leave", prev="knock")) == [
        KnockAnswered("!class", PUPIL, PUPIL, False)
    ]


def test_what_is_not_about_knocks_is_ignored() -> None:
    assert commands(member(BOT, "invite", prev="knock")) == []  # Parta's own decision
    assert commands(member(TEACHER, "invite")) == []
    assert commands(member(PUPIL, "join", prev="invite")) == []
    assert commands(member(TEACHER, "knock")) == []  # nobody knocks for someone else
    assert commands({"type": "m.room.message", "room_id": "!class", "content": {}}) == []
