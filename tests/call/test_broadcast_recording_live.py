"""A broadcast's recording the whole way: a live broadcast in a class chat of the test
region, its speaker publishing from a real aiortc page through the widget service, the
stage closing at the broadcast's end, and the bot's `m.video` in the chat, downloaded
from the real Synapse and decoded with PyAV."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from sqlalchemy import select, update

from matrix.client import MatrixClient, path
from matrix.media import open_file
from parta.deployment import LocalDeployment
from provisioning.db.models import Broadcast, BroadcastState, ManagedRoom
from tests.call.conftest import serving, until
from tests.call.peer_process import PeerProcess
from tests.call.test_recording import H264, Clock, Publisher, record
from tests.harness.broadcasts import PASSWORD, BroadcastSchool, make_school, set_passwords
from tests.harness.ports import free_ports
from tests.harness.region import region_session
from tests.matrix_users import logged_in, openid_token
from widgets.app import create_app
from widgets.call.broadcast_recording import (
    UPLOAD_ATTEMPTS,
    FinishedRecording,
    RecordingPoster,
    StageBroadcast,
)
from widgets.call.moderation import Source
from widgets.call.recording import Recording
from widgets.call.service import EMPTY_CALL_KEPT_S, CallService

STAGE_S = 12.0  # how long the broadcast still runs when the speaker arrives


def _live_broadcast(
    region: LocalDeployment, room_id: str, speaker: str, school_id: int,
    lasts: timedelta = timedelta(seconds=STAGE_S + 8),
) -> int:  # fmt: skip
    """A broadcast in the room that started a minute ago and ends after `lasts`."""
    now = datetime.now(UTC)
    with region_session(region) as session:
        room = session.scalar(select(ManagedRoom).where(ManagedRoom.room_id == room_id))
        assert room is not None
        broadcast = Broadcast(
            school_id=school_id, title="Открытый урок", speakers=[speaker],
            audience_alias=room.alias, starts_at=now - timedelta(minutes=1),
            ends_at=now + lasts, cover_mxc="mxc://test/cover",
            cover_width=1200, cover_height=675, cover_bytes=1, cover_mimetype="image/jpeg",
            created_by=speaker,
        )  # fmt: skip
        session.add(broadcast)
        session.commit()
        return broadcast.id


async def _videos(bot: MatrixClient, room_id: str) -> list[dict[str, Any]]:
    answer = await bot.request(
        "GET", path("rooms", room_id, "messages"), query={"dir": "b", "limit": "50"}
    )
    return [
        event
        for event in answer.get("chunk") or []
        if event.get("type") == "m.room.message"
        and event.get("content", {}).get("msgtype") == "m.video"
    ]


@pytest.fixture(scope="module")
async def school(region: LocalDeployment) -> BroadcastSchool:
    made = await asyncio.to_thread(make_school, region)
    await set_passwords(region, made.teacher)
    return made


async def test_a_speaker_s_recording_is_posted_into_the_audience_chat_at_the_end(
    region: LocalDeployment, bot: MatrixClient, school: BroadcastSchool, tmp_path: Path
) -> None:
    room_id = school.chat_room_id
    async with logged_in(region, school.teacher, PASSWORD) as client:
        token = await openid_token(client)
    broadcast_id = await asyncio.to_thread(
        _live_broadcast, region, room_id, school.teacher, school.school_id
    )
    app = create_app(region.settings)
    recordings_dir = region.settings.call_state_dir / "recordings" / "process-1"
    speaker = await PeerProcess("speaker").start()
    try:
        async with serving(app) as url:
            calls: CallService = app.state.calls
            joined = await speaker.join(
                url.replace("http://", "ws://") + "/call/ws", room_id, token,
                publish=("camera", "microphone"),
            )  # fmt: skip
            assert joined["event"] == "joined", joined
            room = calls.rooms[room_id]
            assert room.state.broadcast_id == broadcast_id
            assert recordings_dir.stat().st_mode & 0o777 == 0o700
            # The stage closes at the broadcast's end, without anyone reopening the call.
            await until(lambda: room.state.broadcast_id is None, "the stage to close",
                        within_s=STAGE_S + 30)  # fmt: skip
            sent = (await speaker.stats())["frames_sent"]
            state = await speaker.state_where(
                lambda s: s.get("broadcast_id") is None, "the pages told the stage closed"
            )
            assert state["broadcast_id"] is None

            async def posted() -> list[dict[str, Any]]:
                return await _videos(bot, room_id)

            await until(posted, "the recording in the chat", within_s=120)
            (video,) = await posted()
            await until(lambda: not any(recordings_dir.rglob("*.*")), "the temp file deleted")
    finally:
        await speaker.command("quit")
        await speaker.wait_for(lambda e: e["event"] == "exited", "the speaker to quit")
    content = video["content"]
    assert video["sender"] == region.settings.bot_user_id
    assert content["body"].startswith("Запись трансляции «Открытый урок» — ")
    info = content["info"]
    assert info["mimetype"] == "video/webm" and (info["w"], info["h"]) == (320, 240)
    file = tmp_path / "recording.webm"
    response = await open_file(bot, content["url"])
    try:
        file.write_bytes(await response.aread())
    finally:
        await response.aclose()
    assert file.stat().st_size == info["size"]
    with av.open(str(file)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        assert container.streams.audio, "the speaker's microphone is in the file"
    # All the speaker sent while on stage, but for the wait for the first keyframe.
    assert 0.8 * sent - 30 <= frames <= sent, (frames, sent)
    assert abs(info["duration"] / 1000 - frames / 30) < 3, (info["duration"], frames)


def _h264_recording(directory: Path, school: BroadcastSchool) -> FinishedRecording:
    """Two seconds of a 640×480 H.264 camera with its microphone, as the SFU gets them."""
    directory.mkdir()
    clock = Clock()
    recording = Recording(directory / "part.mp4", "H264", clock=clock)
    record(recording, Publisher(H264), clock, 2.0)
    assert recording.close() is not None
    broadcast = StageBroadcast(school.chat_room_id, 1, "Open day", "en")
    return FinishedRecording(broadcast, recording.path, school.teacher, "Olga", Source.CAMERA,
                             2, recording.frames_written)  # fmt: skip


async def test_an_h264_recording_is_posted_as_mp4_and_a_failed_upload_is_tried_again(
    region: LocalDeployment, bot: MatrixClient, school: BroadcastSchool, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    token = region.settings.as_token.get_secret_value()
    (closed,) = free_ports(1)
    down = RecordingPoster(
        bot, httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed}"), token, retry_s=0.01
    )
    failing = _h264_recording(tmp_path / "down", school)
    with caplog.at_level(logging.WARNING, "widgets.call.broadcast_recording"):
        assert await down.post(failing) is None
    await down.close()
    attempts = [r.getMessage() for r in caplog.records]
    assert len(attempts) == UPLOAD_ATTEMPTS and "ConnectError" in attempts[-1], attempts
    assert not any(token in line for line in attempts)
    assert not failing.path.exists()

    poster = RecordingPoster.from_settings(bot, region.settings)
    posted = _h264_recording(tmp_path / "up", school)
    try:
        event_id = await poster.post(posted)
    finally:
        await poster.close()
    assert event_id and not posted.path.exists()
    event = await bot.request("GET", path("rooms", school.chat_room_id, "event", event_id))
    content = event["content"]
    assert content["body"] == "Recording of the broadcast “Open day” — Olga, part 2"
    assert content["filename"] == "Recording of the broadcast “Open day” — Olga, part 2.mp4"
    info = content["info"]
    assert (info["mimetype"], info["w"], info["h"]) == ("video/mp4", 640, 480)
    assert 1500 <= info["duration"] <= 2500, info


async def test_a_stage_s_recording_is_posted_when_the_service_stops_or_forgets_the_call(
    region: LocalDeployment, bot: MatrixClient, school: BroadcastSchool
) -> None:
    """A broadcast that runs on: the widget service stops mid-broadcast (the recording so
    far is posted on the way out); a new process resumes the saved call, still a stage,
    and records until the empty call is forgotten."""
    room_id = school.chat_room_id
    async with logged_in(region, school.teacher, PASSWORD) as client:
        token = await openid_token(client)
    broadcast_id = await asyncio.to_thread(
        _live_broadcast, region, room_id, school.teacher, school.school_id, timedelta(hours=1)
    )
    before = {e["event_id"] for e in await _videos(bot, room_id)}

    async def new_videos() -> list[dict[str, Any]]:
        return [e for e in await _videos(bot, room_id) if e["event_id"] not in before]

    recordings = region.settings.call_state_dir / "recordings"
    speaker = await PeerProcess("speaker").start()
    try:
        for ending in ("stop", "forget"):
            await _record_then(ending, region, speaker, token, room_id, broadcast_id)
            if ending == "forget":
                await until(new_videos, "the forgotten call's recording in the chat")
            # `stop`: leaving `serving` stopped the service, which waits for its uploads.
            assert len(await new_videos()) == 1 + (ending == "forget"), ending
            await until(lambda: not any(recordings.rglob("*.*")), "the temp files deleted")
    finally:
        await speaker.command("quit")
        await speaker.wait_for(lambda e: e["event"] == "exited", "the speaker to quit")
        with region_session(region) as session:
            session.execute(
                update(Broadcast).where(Broadcast.id == broadcast_id).values(
                    state=BroadcastState.CANCELLED, ends_at=datetime.now(UTC)
                )
            )  # fmt: skip
            session.commit()


async def _record_then(
    ending: str, region: LocalDeployment, speaker: PeerProcess, token: dict[str, object],
    room_id: str, broadcast_id: int,
) -> None:  # fmt: skip
    """A widget service records the speaker a second, then stops or forgets the call.

    The page comes from the broadcast's widget (`broadcast_id`): the room's call, saved
    by an earlier test, becomes the stage."""
    app = create_app(region.settings)
    async with serving(app) as url:
        calls: CallService = app.state.calls
        joined = await speaker.join(
            url.replace("http://", "ws://") + "/call/ws", room_id, token,
            publish=("camera", "microphone"), broadcast_id=broadcast_id,
        )  # fmt: skip
        assert joined["event"] == "joined", joined
        room = calls.rooms[room_id]
        assert room.state.broadcast_id == broadcast_id
        assert calls.recordings is not None
        recorder = calls.recordings.recorders[room_id]
        await until(lambda: any(p.recording.frames_written > 30 for p in recorder._parts.values()),
                    "a second of the speaker recorded")  # fmt: skip
        if ending != "forget":
            return
        await speaker.command("drop_socket")
        (user_id,) = room.state.stage
        await until(lambda: not room.state.participants[user_id].connected, "the speaker gone")
        later = calls.clock() + EMPTY_CALL_KEPT_S + 1
        calls.clock = lambda: later
        calls._forget_empty_calls()  # what the next leave in the service does
        assert room_id not in calls.rooms and room_id not in calls.recordings.recorders
