"""The call's moderation as pure functions: the teacher decides, nothing else unmutes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from matrix.room_state import PowerLevelsContent, RoomState
from widgets.call import messages as m
from widgets.call.moderation import CallError, CallMode, CallState, Source, floor_is_open

TEACHER, IVAN, MASHA, KOLYA = "@olga:hs", "@ivan:hs", "@masha:hs", "@kolya:hs"


def room(power_levels: dict[str, Any] | None, creators: frozenset[str] = frozenset()) -> RoomState:
    """A room version 12 room with these power levels (None: no such event) and creators."""
    levels = None if power_levels is None else PowerLevelsContent.parse(power_levels)
    return RoomState(room_version="12", creators=creators, power_levels=levels)


def is_moderator(
    power_levels: dict[str, Any] | None, user_id: str, creators: frozenset[str] = frozenset()
) -> bool:
    return room(power_levels, creators).is_moderator(user_id)


def lesson(*pupils: str, last_n: int = 6) -> CallState:
    call = CallState("!chat:hs", last_n=last_n)
    call.join(TEACHER, "Ольга Сергеевна", moderator=True, now=0.0)
    for index, pupil in enumerate(pupils or (IVAN, MASHA)):
        call.join(pupil, pupil[1:].split(":")[0].capitalize(), moderator=False, now=1.0 + index)
    return call


def test_moderators_come_from_the_rooms_power_levels() -> None:
    levels = {"users": {TEACHER: 50, "@director:hs": 100}, "kick": 50, "users_default": 0}
    assert is_moderator(levels, TEACHER) and is_moderator(levels, "@director:hs")
    assert not is_moderator(levels, IVAN)
    assert is_moderator({"users": {IVAN: 10}, "kick": 10}, IVAN)  # whatever the room sets
    assert not is_moderator({"users": {IVAN: 49}}, IVAN)  # the spec's default kick is 50
    assert is_moderator({"users_default": 50}, IVAN)
    assert not is_moderator(None, TEACHER)  # no power levels known: nobody moderates
    assert not is_moderator({"users": {IVAN: True}}, IVAN)  # booleans are not levels
    # Room version 12: creators have unlimited power and are not listed in `users`.
    assert is_moderator({"users": {}}, TEACHER, creators=frozenset({TEACHER}))
    assert not is_moderator({"users": {}}, IVAN, creators=frozenset({TEACHER}))


def test_pupils_join_muted_and_the_teacher_gives_the_floor() -> None:
    call = lesson()
    assert call.may_forward(TEACHER, Source.AUDIO) and call.may_forward(TEACHER, Source.CAMERA)
    assert call.may_forward(TEACHER, Source.SCREEN)  # teachers always may share
    for source in Source:
        assert not call.may_forward(IVAN, source)
    call.raise_hand(IVAN, now=5.0)
    assert [p.user_id for p in call.hand_queue()] == [IVAN]
    call.grant_floor(TEACHER, IVAN)
    assert call.may_forward(IVAN, Source.AUDIO) and call.may_forward(IVAN, Source.CAMERA)
    assert not call.may_forward(IVAN, Source.SCREEN)
    assert call.hand_queue() == []  # the hand goes down with the floor
    assert call.audio_for(MASHA) == {TEACHER, IVAN}
    call.revoke_floor(TEACHER, IVAN)
    assert not call.may_forward(IVAN, Source.AUDIO)
    assert call.audio_for(MASHA) == {TEACHER}


def test_only_a_moderator_decides() -> None:
    call = lesson()
    attempts: list[Callable[[], None]] = [
        lambda: call.grant_floor(IVAN, IVAN),
        lambda: call.grant_floor(IVAN, MASHA),
        lambda: call.mute_all(IVAN),
        lambda: call.allow_cameras(IVAN, True),
        lambda: call.allow_screen(IVAN, IVAN, True),
        lambda: call.remove(IVAN, MASHA, now=9.0),
        lambda: call.lower_hand(IVAN, MASHA),
    ]
    for attempt in attempts:
        with pytest.raises(CallError, match="not_moderator"):
            attempt()
    assert not any(call.may_forward(p, s) for p in (IVAN, MASHA) for s in Source)
    call.raise_hand(MASHA, now=3.0)
    call.lower_hand(MASHA, MASHA)  # one's own hand
    assert call.hand_queue() == []
    with pytest.raises(CallError, match="not_in_call"):
        call.grant_floor(TEACHER, "@stranger:hs")


def test_hands_queue_in_the_order_they_were_raised() -> None:
    call = lesson(IVAN, MASHA, KOLYA)
    call.raise_hand(MASHA, now=10.0)
    call.raise_hand(KOLYA, now=11.0)
    call.raise_hand(IVAN, now=12.0)
    call.raise_hand(MASHA, now=13.0)  # raising again keeps the place in the queue
    assert [p.user_id for p in call.hand_queue()] == [MASHA, KOLYA, IVAN]
    call.mute_all(TEACHER)
    assert [p.user_id for p in call.hand_queue()] == [MASHA, KOLYA, IVAN]
    assert call.public()["hands"] == [MASHA, KOLYA, IVAN]


def test_mute_all_and_camera_and_screen_permissions() -> None:
    call = lesson(IVAN, MASHA)
    call.grant_floor(TEACHER, IVAN)
    call.grant_floor(TEACHER, MASHA)
    call.mute_all(TEACHER)
    assert not call.may_forward(IVAN, Source.AUDIO) and not call.may_forward(MASHA, Source.AUDIO)
    assert call.may_forward(TEACHER, Source.AUDIO)  # the teacher keeps talking
    call.allow_cameras(TEACHER, True)
    assert call.may_forward(IVAN, Source.CAMERA) and not call.may_forward(IVAN, Source.AUDIO)
    call.allow_screen(TEACHER, MASHA, True)
    assert call.may_forward(MASHA, Source.SCREEN)
    call.allow_screen(TEACHER, MASHA, False)
    assert not call.may_forward(MASHA, Source.SCREEN)


def test_a_removed_pupil_stays_out_and_a_teacher_cannot_be_removed() -> None:
    call = lesson()
    call.join("@boris:hs", "Борис", moderator=True, now=2.0)
    with pytest.raises(CallError, match="cannot_remove_moderator"):
        call.remove(TEACHER, "@boris:hs", now=3.0)
    call.remove(TEACHER, IVAN, now=4.0)
    assert IVAN not in call.participants
    with pytest.raises(CallError, match="removed"):
        call.join(IVAN, "Ivan", moderator=False, now=5.0)
    assert not call.may_forward(IVAN, Source.AUDIO)


def test_a_dropped_connection_comes_back_into_the_same_state() -> None:
    call = lesson()
    call.grant_floor(TEACHER, IVAN)
    call.raise_hand(MASHA, now=5.0)
    call.allow_screen(TEACHER, MASHA, True)
    call.leave(IVAN, now=6.0)
    call.leave(MASHA, now=6.0)
    assert not call.may_forward(IVAN, Source.AUDIO)  # nobody hears a gone connection
    assert call.hand_queue() == []
    call.join(IVAN, "Ivan", moderator=False, now=8.0)
    call.join(MASHA, "Masha", moderator=False, now=8.0)
    assert call.may_forward(IVAN, Source.AUDIO)
    assert [p.user_id for p in call.hand_queue()] == [MASHA]
    assert call.may_forward(MASHA, Source.SCREEN)


def test_a_second_connection_of_one_person_changes_nothing() -> None:
    call = lesson()
    call.grant_floor(TEACHER, IVAN)
    again = call.join(IVAN, "Ivan", moderator=False, now=9.0)
    assert again.has_floor and len([v for v in call.visits if v.user_id == IVAN]) == 1


def test_attendance_adds_up_every_stretch() -> None:
    call = lesson()
    call.leave(IVAN, now=61.0)  # joined at 1.0
    call.join(IVAN, "Иван", moderator=False, now=100.0)
    call.leave(IVAN, now=130.0)
    rows = {row["user_id"]: row for row in call.attendance(now=200.0)}
    assert rows[IVAN]["seconds"] == pytest.approx(90.0)
    assert rows[IVAN]["first_joined"] == 1.0 and rows[IVAN]["last_left"] == 130.0
    assert rows[MASHA]["seconds"] == pytest.approx(198.0) and rows[MASHA]["last_left"] is None
    assert rows[TEACHER]["seconds"] == pytest.approx(200.0)


def test_each_pupil_receives_the_teacher_the_floor_screens_and_the_last_speakers() -> None:
    pupils = [f"@p{i}:hs" for i in range(10)]
    call = lesson(*pupils, last_n=3)
    call.allow_cameras(TEACHER, True)
    call.grant_floor(TEACHER, pupils[0])
    call.allow_screen(TEACHER, pupils[1], True)
    for index, pupil in enumerate(pupils[2:7]):
        call.grant_floor(TEACHER, pupil)
        call.note_speaking(pupil, now=100.0 + index)
        call.revoke_floor(TEACHER, pupil)
    seen = call.video_for(pupils[9])
    cameras = {user for user, source in seen if source is Source.CAMERA}
    assert (pupils[1], Source.SCREEN) in seen
    # The teacher and the floor fill two of the three; the most recent speaker the last.
    assert cameras == {TEACHER, pupils[0], pupils[6]}
    assert (pupils[9], Source.CAMERA) not in call.video_for(pupils[9])  # never oneself
    call.note_speaking(pupils[8], now=200.0)  # without the floor: not heard, not counted
    assert call.participants[pupils[8]].spoke_at is None


actions = st.lists(
    st.tuples(
        st.sampled_from(["raise", "lower", "grant", "revoke", "mute", "cameras", "screen",
                         "leave", "join", "remove"]),
        st.sampled_from([TEACHER, IVAN, MASHA, KOLYA]),
        st.sampled_from([TEACHER, IVAN, MASHA, KOLYA]),
    ),
    max_size=40,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(steps=actions)
def test_no_pupil_is_ever_heard_unless_a_moderator_gave_the_floor(
    steps: list[tuple[str, str, str]],
) -> None:
    """Whatever pupils do, in any order, their audio is forwarded only after a grant."""
    call = lesson(IVAN, MASHA, KOLYA)
    granted: set[str] = set()
    for now, (action, actor, target) in enumerate(steps, start=10):
        try:
            if action == "raise":
                call.raise_hand(actor, now=now)
            elif action == "lower":
                call.lower_hand(actor, target)
            elif action == "grant":
                call.grant_floor(actor, target)
                granted.add(target)
            elif action == "revoke":
                call.revoke_floor(actor, target)
                granted.discard(target)
            elif action == "mute":
                call.mute_all(actor)
                granted &= {TEACHER}
            elif action == "cameras":
                call.allow_cameras(actor, not call.cameras_allowed)
            elif action == "screen":
                call.allow_screen(actor, target, True)
            elif action == "leave":
                call.leave(actor, now=now)
            elif action == "join":
                call.join(actor, actor, moderator=actor == TEACHER, now=now)
            elif action == "remove":
                call.remove(actor, target, now=now)
                granted.discard(target)
        except CallError:
            continue
        for pupil in (IVAN, MASHA, KOLYA):
            if call.may_forward(pupil, Source.AUDIO):
                assert pupil in granted


def test_power_levels_changing_mid_call_give_and_take_the_teachers_controls() -> None:
    call = lesson()
    call.raise_hand(IVAN, now=5.0)
    assert call.set_moderator(IVAN, True)  # made a moderator in Matrix
    assert not call.set_moderator(IVAN, True)  # nothing new: nothing to send
    assert call.participants[IVAN].hand_raised_at is None  # a teacher needs no floor
    assert call.may_forward(IVAN, Source.AUDIO)
    call.grant_floor(IVAN, MASHA)  # and may decide now
    call.allow_screen(TEACHER, IVAN, True)
    assert call.set_moderator(IVAN, False)  # demoted again
    assert not call.may_forward(IVAN, Source.AUDIO)
    assert not call.may_forward(IVAN, Source.SCREEN)
    with pytest.raises(CallError, match="not_moderator"):
        call.revoke_floor(IVAN, MASHA)
    assert call.may_forward(MASHA, Source.AUDIO)  # what they decided stands
    assert not call.set_moderator("@nobody:hs", True)


def test_someone_who_left_the_room_leaves_the_call_and_may_come_back() -> None:
    call = lesson()
    call.grant_floor(TEACHER, IVAN)
    assert call.left_room(IVAN, now=10.0)
    assert IVAN not in call.participants and not call.may_forward(IVAN, Source.AUDIO)
    assert not call.left_room(IVAN, now=11.0)
    call.join(IVAN, "Ivan", moderator=False, now=20.0)  # invited back: not "removed"
    assert not call.participants[IVAN].has_floor  # but nothing of before is kept
    rows = {row["user_id"]: row for row in call.attendance(now=30.0)}
    assert rows[IVAN]["visits"] == 2 and rows[IVAN]["seconds"] == pytest.approx(19.0)


def test_the_teacher_presents_a_document_and_only_the_presenter_turns_its_pages() -> None:
    call = lesson()
    with pytest.raises(CallError, match="not_allowed_to_present"):
        call.present(IVAN, "$slides")
    call.present(TEACHER, "$slides")
    assert call.public()["presentation"] == {
        "presenter": TEACHER, "event_id": "$slides", "page": 1,
    }  # fmt: skip
    call.turn_page(TEACHER, 3)
    with pytest.raises(CallError, match="not_presenter"):
        call.turn_page(IVAN, 1)
    assert call.public()["presentation"]["page"] == 3
    # A pupil the teacher lets share the screen may present too, and then turn pages;
    # the teacher can still steer or stop it.
    call.allow_screen(TEACHER, MASHA, True)
    call.present(MASHA, "$essay")
    call.turn_page(MASHA, 2)
    call.turn_page(TEACHER, 10_500)
    assert call.public()["presentation"] == {
        "presenter": MASHA,
        "event_id": "$essay",
        "page": 10_000,
    }
    call.stop_presenting(TEACHER)
    assert call.public()["presentation"] is None
    with pytest.raises(CallError, match="nothing_presented"):
        call.turn_page(TEACHER, 2)


def test_a_removed_or_demoted_presenter_stops_presenting() -> None:
    call = lesson()
    call.allow_screen(TEACHER, IVAN, True)
    call.present(IVAN, "$a")
    call.remove(TEACHER, IVAN, now=5.0)
    assert call.presentation is None
    call.join("@anna:hs", "Анна Павловна", moderator=True, now=6.0)
    call.present("@anna:hs", "$b")
    call.set_moderator("@anna:hs", False)
    assert call.presentation is None


BOT, PARENT = "@parta:hs", "@mama:hs"


def test_the_floor_is_open_where_nobody_but_the_bot_moderates() -> None:
    # A family room as provisioning makes it: the bot created it (room version 12) and
    # lists nobody with power; a parent and a child are plain members.
    family = {"users": {}, "kick": 50, "users_default": 0}
    assert floor_is_open(room(family, frozenset({BOT})), bot_user_id=BOT)
    assert floor_is_open(room({"users": {BOT: 100, PARENT: 0}}), bot_user_id=BOT)  # older rooms
    # A class: its teacher holds the kick level, present or not: the lesson stays moderated.
    assert not floor_is_open(room({"users": {TEACHER: 50}}, frozenset({BOT})), bot_user_id=BOT)
    assert not floor_is_open(room({"users": {}}, frozenset({TEACHER})), bot_user_id=BOT)  # her room
    assert not floor_is_open(room({"users": {BOT: 100}}), bot_user_id="")  # the bot not known
    assert not floor_is_open(room(None, frozenset({BOT})), bot_user_id=BOT)  # no levels: safe side
    assert not floor_is_open(room({"users_default": 50}), bot_user_id=BOT)  # all moderate anyway


def test_in_an_open_floor_everyone_speaks_and_shows_without_anyone_granting() -> None:
    call = CallState("!family:hs", open_floor=True)
    call.join(PARENT, "Мама", moderator=False, now=0.0)
    call.join(IVAN, "Ivan", moderator=False, now=1.0)
    for source in Source:
        assert call.may_forward(PARENT, source) and call.may_forward(IVAN, source)
    assert call.audio_for(PARENT) == {IVAN} and call.audio_for(IVAN) == {PARENT}
    view = call.public()
    assert view["open_floor"] and all(p["audio"] and p["camera"] for p in view["participants"])
    call.present(IVAN, "$slides")  # anyone may show a document there
    with pytest.raises(CallError, match="not_moderator"):
        call.grant_floor(PARENT, IVAN)  # nobody moderates: nobody decides for others
    call.open_floor = False  # a teacher given power in the room: the usual rules
    assert not call.may_forward(IVAN, Source.AUDIO)


def test_an_open_meeting_lets_everyone_speak_until_a_moderator_mutes_them() -> None:
    call = lesson(IVAN, MASHA)
    assert call.mode is CallMode.LESSON and call.public()["mode"] == "lesson"
    call.set_mode(TEACHER, CallMode.OPEN)
    assert call.public()["mode"] == "open"
    for pupil in (IVAN, MASHA):  # nobody gave them the floor
        assert call.may_forward(pupil, Source.AUDIO) and call.may_forward(pupil, Source.CAMERA)
        assert not call.may_forward(pupil, Source.SCREEN)  # screens stay the teacher's to allow
    assert call.audio_for(MASHA) == {TEACHER, IVAN}
    call.mute(TEACHER, IVAN)
    assert not call.may_forward(IVAN, Source.AUDIO) and call.may_forward(IVAN, Source.CAMERA)
    assert call.audio_for(MASHA) == {TEACHER}
    ivan = next(p for p in call.public()["participants"] if p["user_id"] == IVAN)
    assert ivan["muted"] and not ivan["audio"]
    # Nothing Ivan does lifts the mute: no message of his, no reconnection.
    for attempt in (
        lambda: call.unmute(IVAN, IVAN),
        lambda: call.grant_floor(IVAN, IVAN),
        lambda: call.mute(IVAN, MASHA),
    ):
        with pytest.raises(CallError, match="not_moderator"):
            attempt()
    with pytest.raises(CallError, match="only_moderator_switches_mode"):
        call.set_mode(IVAN, CallMode.LESSON)
    call.raise_hand(IVAN, now=5.0)  # he may ask
    call.leave(IVAN, now=6.0)
    call.join(IVAN, "Ivan", moderator=False, now=7.0)
    assert not call.may_forward(IVAN, Source.AUDIO)
    with pytest.raises(CallError, match="cannot_mute_moderator"):
        call.mute(TEACHER, TEACHER)
    call.unmute(TEACHER, IVAN)
    assert call.may_forward(IVAN, Source.AUDIO)
    # "Mute everyone" in a meeting mutes, and giving the floor lifts one's mute.
    call.mute_all(TEACHER)
    assert not call.may_forward(IVAN, Source.AUDIO) and not call.may_forward(MASHA, Source.AUDIO)
    assert call.may_forward(TEACHER, Source.AUDIO)
    call.grant_floor(TEACHER, MASHA)
    assert call.may_forward(MASHA, Source.AUDIO) and not call.participants[MASHA].muted


def test_back_to_a_lesson_only_the_moderators_and_the_floor_speak() -> None:
    call = lesson(IVAN, MASHA, KOLYA)
    call.grant_floor(TEACHER, KOLYA)  # explicitly given, before the meeting opened
    call.set_mode(TEACHER, CallMode.OPEN)
    call.mute(TEACHER, MASHA)
    call.set_mode(TEACHER, CallMode.LESSON)
    assert call.may_forward(TEACHER, Source.AUDIO)
    assert call.may_forward(KOLYA, Source.AUDIO)  # keeps the floor he was given
    assert not call.may_forward(IVAN, Source.AUDIO)  # spoke only because it was open
    assert not call.may_forward(IVAN, Source.CAMERA)  # cameras follow the lesson's rule
    call.set_mode(TEACHER, CallMode.OPEN)  # a mute outlives the switches
    assert call.may_forward(IVAN, Source.AUDIO) and not call.may_forward(MASHA, Source.AUDIO)
    # Mute all in a lesson takes floors, not voices: opening the meeting again gives them.
    call.set_mode(TEACHER, CallMode.LESSON)
    call.mute_all(TEACHER)
    call.set_mode(TEACHER, CallMode.OPEN)
    assert call.may_forward(IVAN, Source.AUDIO) and call.may_forward(KOLYA, Source.AUDIO)


def test_a_muted_participant_made_moderator_speaks() -> None:
    call = lesson()
    call.set_mode(TEACHER, CallMode.OPEN)
    call.mute(TEACHER, IVAN)
    assert call.set_moderator(IVAN, True)
    assert call.may_forward(IVAN, Source.AUDIO) and not call.participants[IVAN].muted


def test_mode_and_mute_messages_are_validated() -> None:
    assert m.page_message.validate_python({"type": "mode", "mode": "open"}) == m.Mode(
        type="mode", mode="open"
    )
    muted = m.page_message.validate_python({"type": "unmute", "target": IVAN})
    assert isinstance(muted, m.Mute) and muted.type == "unmute"
    for bad in (
        {"type": "mode", "mode": "broadcast"},
        {"type": "mode"},
        {"type": "mode", "mode": "open", "as": TEACHER},  # no other fields
        {"type": "mute", "target": "ivan"},  # not a user ID
        {"type": "mute"},
    ):
        with pytest.raises(ValidationError):
            m.page_message.validate_python(bad)


meeting_actions = st.lists(
    st.tuples(
        st.sampled_from(["raise", "grant", "revoke", "mute_all", "mute", "unmute", "open",
                         "lesson", "leave", "join", "remove", "promote", "demote"]),
        st.sampled_from([TEACHER, IVAN, MASHA, KOLYA]),
        st.sampled_from([TEACHER, IVAN, MASHA, KOLYA]),
    ),
    max_size=40,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(steps=meeting_actions)
def test_a_pupil_is_heard_exactly_when_the_floor_or_an_open_meeting_and_no_mute_allow(
    steps: list[tuple[str, str, str]],
) -> None:
    """A model of the rules, checked against the call after every step: pupils' messages
    (switching the mode, unmuting themselves) change nothing, and a mute holds until a
    moderator lifts it."""
    call = lesson(IVAN, MASHA, KOLYA)
    granted: set[str] = set()
    muted: set[str] = set()
    moderators = {TEACHER}
    mode = CallMode.LESSON
    for now, (action, actor, target) in enumerate(steps, start=10):
        try:
            if action == "raise":
                call.raise_hand(actor, now=now)
            elif action == "grant":
                call.grant_floor(actor, target)
                granted.add(target)
                muted.discard(target)
            elif action == "revoke":
                call.revoke_floor(actor, target)
                granted.discard(target)
            elif action == "mute_all":
                call.mute_all(actor)
                pupils = set(call.participants) - moderators
                granted -= pupils
                if mode is CallMode.OPEN:
                    muted |= pupils
            elif action == "mute":
                call.mute(actor, target)
                muted.add(target)
                granted.discard(target)
            elif action == "unmute":
                call.unmute(actor, target)
                muted.discard(target)
            elif action in ("open", "lesson"):
                call.set_mode(actor, CallMode(action))
                mode = CallMode(action)
            elif action == "leave":
                call.leave(actor, now=now)
            elif action == "join":
                call.join(actor, actor, moderator=actor in moderators, now=now)
            elif action == "remove":
                call.remove(actor, target, now=now)
                granted.discard(target)
                muted.discard(target)
            elif action in ("promote", "demote") and target != TEACHER:
                promoted = action == "promote"
                if call.set_moderator(target, promoted) and promoted:
                    moderators.add(target)
                    muted.discard(target)
                elif promoted is False and target in moderators:
                    moderators.discard(target)
                    granted.discard(target)
        except CallError:
            continue
        for person, participant in call.participants.items():
            heard = participant.connected and (
                person in moderators
                or (person not in muted and (person in granted or mode is CallMode.OPEN))
            )
            assert call.may_forward(person, Source.AUDIO) == heard, (person, action)
