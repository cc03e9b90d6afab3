"""The call service end to end without a browser: real Synapse, real WebSocket, aiortc pages.

The widget service runs in this process (uvicorn on a free port), against the test
region's Synapse: people prove who they are with OpenID tokens Synapse issued, and the
room's membership and power levels decide who joins and who moderates.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.call.conftest import WAIT_S, Lesson, until
from tests.call.test_sfu import Client


async def receive(socket: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of this type (skipping others), within the time bound."""
    async with asyncio.timeout(WAIT_S):
        while True:
            message: dict[str, Any] = json.loads(await socket.recv())
            if message.get("type") == kind:
                return message


async def refused(url: str, hello: object) -> tuple[str, int | None]:
    async with connect(url) as socket:
        await socket.send(json.dumps(hello))
        message = await receive(socket, "error")
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(WAIT_S):
                await socket.recv()
        return message["reason"], socket.close_code


async def test_no_token_no_call(widgets: str, lesson: Lesson) -> None:
    assert await refused(widgets, {"type": "join", "room_id": lesson.room_id}) == (
        "bad_join", 1008,
    )  # fmt: skip
    forged = {**lesson.tokens["pupil"], "access_token": "made-up"}
    hello = {"type": "join", "room_id": lesson.room_id, "openid": forged}
    assert (await refused(widgets, hello))[0] == "invalid_token"
    outsider = {"type": "join", "room_id": lesson.room_id, "openid": lesson.tokens["outsider"]}
    assert (await refused(widgets, outsider))[0] == "not_a_member"


async def join(url: str, lesson: Lesson, key: str) -> tuple[ClientConnection, Client]:
    socket = await connect(url)
    await socket.send(
        json.dumps({"type": "join", "room_id": lesson.room_id, "openid": lesson.tokens[key]})
    )
    offer = await receive(socket, "offer")
    assert offer["you"] == lesson.users[key]
    page = Client(lesson.users[key])
    sdp = await page.answer(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
    await socket.send(json.dumps({"type": "answer", "sdp": sdp}))
    return socket, page


def person(state: dict[str, Any], user_id: str) -> dict[str, Any]:
    return next(p for p in state["participants"] if p["user_id"] == user_id)


async def test_a_lesson_over_the_socket_with_the_teacher_in_control(
    widgets: str, lesson: Lesson
) -> None:
    teacher_id, pupil_id = lesson.users["teacher"], lesson.users["pupil"]
    teacher, teacher_page = await join(widgets, lesson, "teacher")
    pupil, pupil_page = await join(widgets, lesson, "pupil")
    try:
        # The pupil's page shows which slot carries the teacher's camera, and it plays.
        async with asyncio.timeout(WAIT_S):
            while True:
                state = await receive(pupil, "state")
                slots = {v["user_id"] + "/" + v["source"]: mid for mid, v in state["slots"].items()}
                if f"{teacher_id}/camera" in slots:
                    break
        camera = slots[f"{teacher_id}/camera"]
        await until(lambda: pupil_page.frames.get(camera, 0) >= 10, "the teacher's video")
        assert person(state, teacher_id)["moderator"] and not person(state, pupil_id)["moderator"]

        # The pupil cannot give themselves the floor; raising a hand reaches the teacher.
        await pupil.send(json.dumps({"type": "grant", "target": pupil_id}))
        assert (await receive(pupil, "error"))["reason"] == "not_moderator"
        await pupil.send(json.dumps({"type": "raise_hand"}))
        async with asyncio.timeout(WAIT_S):
            while (await receive(teacher, "state"))["hands"] != [pupil_id]:
                pass
        await teacher.send(json.dumps({"type": "grant", "target": pupil_id}))
        async with asyncio.timeout(WAIT_S):
            while not person(state := await receive(teacher, "state"), pupil_id)["audio"]:
                pass
        assert state["hands"] == []
        voice = next(
            mid for mid, v in state["slots"].items()
            if v == {"user_id": pupil_id, "source": "audio"}
        )  # fmt: skip
        await until(lambda: teacher_page.packets_on(voice), "the pupil's voice at the teacher's")

        await pupil.send(json.dumps({"type": "attendance"}))
        assert (await receive(pupil, "error"))["reason"] == "not_moderator"
        await teacher.send(json.dumps({"type": "attendance"}))
        people = (await receive(teacher, "attendance"))["people"]
        assert {row["user_id"] for row in people} == {teacher_id, pupil_id}
        await pupil.send(json.dumps({"type": "no such thing"}))
        assert (await receive(pupil, "error"))["reason"] == "bad_message"

        # Removed by the teacher: the pupil's page is told and closed, and stays out.
        await teacher.send(json.dumps({"type": "remove", "target": pupil_id}))
        assert (await receive(pupil, "removed"))["type"] == "removed"
        hello = {"type": "join", "room_id": lesson.room_id, "openid": lesson.tokens["pupil"]}
        assert (await refused(widgets, hello))[0] == "removed"
    finally:
        for socket in (teacher, pupil):
            await socket.close()
        await asyncio.gather(teacher_page.close(), pupil_page.close())
