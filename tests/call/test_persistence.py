"""A call's state on disk: what is kept, written whole or not at all, and for how long."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from foundation.files import write_atomically
from tests.call.conftest import until
from widgets.call.moderation import CallError, CallMode, CallState, Source
from widgets.call.persistence import CallStore, dump_state, load_state

TEACHER, IVAN, MASHA, KOLYA = "@olga:hs", "@ivan:hs", "@masha:hs", "@kolya:hs"


def lesson() -> CallState:
    call = CallState("!chat:hs")
    call.join(TEACHER, "Ольга Сергеевна", moderator=True, now=100.0)
    for index, pupil in enumerate((IVAN, MASHA, KOLYA, "@boris:hs")):
        call.join(pupil, pupil[1:3], moderator=False, now=101.0 + index)
    call.raise_hand(KOLYA, now=110.0)
    call.raise_hand(MASHA, now=111.0)  # after Kolya: second in the queue
    call.grant_floor(TEACHER, IVAN)
    call.allow_screen(TEACHER, MASHA, True)
    call.allow_cameras(TEACHER, True)
    call.remove(TEACHER, "@boris:hs", now=115.0)
    call.leave(IVAN, now=120.0)
    return call


def test_the_saved_call_is_the_call_with_everyone_disconnected() -> None:
    before = lesson()
    before.present(TEACHER, "$slides")
    before.turn_page(TEACHER, 4)
    saved = json.loads(json.dumps(dump_state(before, saved_at=130.0)))
    call = load_state(saved, last_n=4)
    assert call.public()["presentation"] == {"presenter": TEACHER, "event_id": "$slides", "page": 4}
    assert call.room_id == "!chat:hs" and call.last_n == 4 and call.cameras_allowed
    assert call.removed == {"@boris:hs"}
    assert not any(p.connected for p in call.participants.values())
    # Each person rejoins into what they had: the floor, the hand and its place, the screen.
    for user in (TEACHER, IVAN, MASHA, KOLYA):
        call.join(user, user[1:3], moderator=user == TEACHER, now=200.0)
    assert call.may_forward(IVAN, Source.AUDIO) and call.participants[IVAN].has_floor
    assert [p.user_id for p in call.hand_queue()] == [KOLYA, MASHA]
    assert call.may_forward(MASHA, Source.SCREEN) and not call.may_forward(KOLYA, Source.SCREEN)
    with pytest.raises(CallError, match="removed"):
        call.join("@boris:hs", "Борис", moderator=False, now=200.0)
    # Attendance: the stretches before the restart end when the file was last written.
    rows = {row["user_id"]: row for row in call.attendance(now=260.0)}
    assert rows[IVAN]["seconds"] == pytest.approx((120.0 - 101.0) + 60.0)
    assert rows[MASHA]["seconds"] == pytest.approx((130.0 - 102.0) + 60.0)
    assert rows[MASHA]["visits"] == 2


def test_an_open_meeting_and_its_mutes_are_saved_and_an_older_file_is_a_lesson() -> None:
    before = lesson()
    before.set_mode(TEACHER, CallMode.OPEN)
    before.mute(TEACHER, MASHA)
    saved = json.loads(json.dumps(dump_state(before, saved_at=130.0)))
    assert saved["mode"] == "open"
    call = load_state(saved, last_n=6)
    assert call.mode is CallMode.OPEN
    for user in (TEACHER, IVAN, MASHA, KOLYA):
        call.join(user, user[1:3], moderator=user == TEACHER, now=200.0)
    assert call.may_forward(KOLYA, Source.AUDIO)  # open to all, no floor needed
    assert not call.may_forward(MASHA, Source.AUDIO)  # still muted after the move
    assert call.participants[MASHA].muted
    # Back to a lesson, saved and loaded again: the floor rules once more.
    call.set_mode(TEACHER, CallMode.LESSON)
    again = load_state(json.loads(json.dumps(dump_state(call, saved_at=210.0))), last_n=6)
    assert again.mode is CallMode.LESSON
    # A file written before calls had modes and mutes: a lesson, nobody muted.
    for row in saved["participants"]:
        del row["muted"]
    del saved["mode"]
    old = load_state(saved, last_n=6)
    assert old.mode is CallMode.LESSON and not old.participants[MASHA].muted
    with pytest.raises(ValueError):
        load_state({**saved, "mode": "broadcast"}, last_n=6)


def test_a_broadcast_s_stage_moves_with_the_call_and_an_older_file_has_none() -> None:
    before = lesson()
    before.start_broadcast(12, [KOLYA])
    saved = json.loads(json.dumps(dump_state(before, saved_at=130.0)))
    call = load_state(saved, last_n=6)
    assert (call.broadcast_id, call.stage) == (12, frozenset({KOLYA}))
    for user in (TEACHER, KOLYA, MASHA):
        call.join(user, user[1:3], moderator=user == TEACHER, now=200.0)
    assert call.may_forward(KOLYA, Source.AUDIO) and not call.may_forward(MASHA, Source.AUDIO)
    call.end_broadcast()
    assert not call.may_forward(KOLYA, Source.AUDIO)  # off the stage: the floor rules again
    del saved["broadcast_id"], saved["stage"]
    assert load_state(saved, last_n=6).broadcast_id is None


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "calls" / "a.json"
    write_atomically(target, "old")
    with pytest.raises(TypeError):
        write_atomically(target, None)  # type: ignore[arg-type]  # fails mid-write
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]  # no temporary left
    write_atomically(target, "new")
    assert target.read_text() == "new"


async def test_changes_are_written_debounced_and_flushed_at_stop(tmp_path: Path) -> None:
    now = [1000.0]
    store = CallStore(tmp_path, max_age_s=600, debounce_s=0.2, clock=lambda: now[0])
    await store.start()
    call = lesson()
    for _ in range(20):  # a burst of decisions
        store.changed(call)
    await until(lambda: store.path_for(call.room_id).exists(), "the first write", 5)
    await asyncio.sleep(0.5)
    assert store.writes == 1
    call.revoke_floor(TEACHER, IVAN)
    store.changed(call)
    await store.stop()  # before the debounce ends: the stop writes it
    assert store.writes == 2
    again = CallStore(tmp_path, max_age_s=600, clock=lambda: now[0])
    loaded = again.load(call.room_id, last_n=6)
    assert loaded is not None and not loaded.participants[IVAN].has_floor


async def test_a_live_call_keeps_its_file_young(tmp_path: Path) -> None:
    now = [1000.0]
    store = CallStore(tmp_path, max_age_s=600, debounce_s=0.0, refresh_s=0.2, clock=lambda: now[0])
    await store.start()
    call = lesson()  # people are connected
    store.changed(call)
    await until(lambda: store.writes >= 1, "the first write", 5)
    now[0] = 1500.0
    await until(lambda: store.writes >= 2, "a refresh without a change", 5)
    await store.stop()
    saved = json.loads(store.path_for(call.room_id).read_text())
    assert saved["saved_at"] == 1500.0


def test_an_old_or_broken_state_is_dropped(tmp_path: Path) -> None:
    now = [1000.0]
    store = CallStore(tmp_path, max_age_s=600, clock=lambda: now[0])
    path = store.path_for("!chat:hs")
    write_atomically(path, json.dumps(dump_state(lesson(), saved_at=1000.0)))
    now[0] = 1000.0 + 601
    assert store.load("!chat:hs", last_n=6) is None
    assert not path.exists()  # an empty call's time is up: gone
    for broken in ("{", json.dumps({"format": 99}), json.dumps(dump_state(lesson(), saved_at=0))):
        write_atomically(path, broken.replace('"!chat:hs"', '"!other:hs"'))
        assert store.load("!chat:hs", last_n=6) is None
        assert not path.exists()
    assert store.load("!never:hs", last_n=6) is None
