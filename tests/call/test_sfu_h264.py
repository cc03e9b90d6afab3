"""H.264 through the SFU: pages that offer only H.264, and calls that mix it with VP8.

The SFU forwards and never transcodes (`widgets.call.sfu`'s docstring has the rule):
H.264-only pages publish and receive H.264; a VP8 stream an H.264-only page cannot
decode gets no slot there and the page is told `codec_unsupported`; and once such a page
is in the call, a publisher who connects (again) is asked for H.264, which all decode.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiortc import RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription

from tests.call.conftest import until
from tests.call.test_sfu import Client, slot_of
from widgets.call.moderation import CallState, Source
from widgets.call.sfu import CallRoom

TEACHER, IVAN, MASHA = "@olga:hs", "@ivan:hs", "@masha:hs"


def h264_only() -> list[Any]:
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]


@dataclass
class H264Client(Client):
    """A page whose browser offers only H.264 (`setCodecPreferences` on every video m-line)."""

    async def answer(self, offer: RTCSessionDescription) -> str:
        # aiortc takes an answer's codecs from transceivers that exist before the offer is
        # applied: make one per m-line, in the offer's order, restricted to H.264.
        for kind in re.findall(r"^m=(audio|video) ", offer.sdp, flags=re.MULTILINE):
            transceiver = self.pc.addTransceiver(kind)
            if kind == "video":
                transceiver.setCodecPreferences(h264_only())
        return await super().answer(offer)


def camera_of(client: Client) -> RTCRtpTransceiver:
    return client.pc.getTransceivers()[1]  # microphone, camera, screen: the SFU's order


def count_keyframe_requests(client: Client) -> Callable[[], int]:
    """How often the client's camera was asked for a keyframe (a PLI or FIR reached it)."""
    sender = camera_of(client).sender
    original = sender._send_keyframe
    asked = [0]

    def counting() -> None:
        asked[0] += 1
        original()

    sender._send_keyframe = counting  # type: ignore[method-assign]
    return lambda: asked[0]


def codec_notices(client: Client) -> list[tuple[str, str]]:
    return [
        (m["user_id"], m["source"])
        for m in client.states
        if m.get("type") == "error" and m.get("reason") == "codec_unsupported"
    ]


@pytest.fixture
async def room() -> AsyncIterator[CallRoom]:
    state = CallState("!chat:hs", last_n=2)
    for user in (TEACHER, IVAN, MASHA):
        state.join(user, user[1:3], moderator=user == TEACHER, now=time.monotonic())
    room = CallRoom(state, audio_slots=3)
    try:
        yield room
    finally:
        await room.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    try:
        yield made
    finally:
        await asyncio.gather(*(c.close() for c in made))


async def test_an_h264_only_pupil_decodes_an_h264_only_teacher(
    room: CallRoom, clients: list[Client]
) -> None:
    teacher, ivan = H264Client(TEACHER), H264Client(IVAN)
    clients += [teacher, ivan]
    await teacher.join(room)
    asked = count_keyframe_requests(teacher)
    await ivan.join(room)
    camera = slot_of(room, IVAN, (TEACHER, Source.CAMERA))
    assert camera is not None
    # Ivan's page can decode nothing but H.264: these frames are the teacher's H.264.
    await until(lambda: ivan.frames.get(camera, 0) >= 15, "the teacher's H.264 video")
    assert room.peers[TEACHER].published_codecs[Source.CAMERA] == "video/h264"
    assert room.peers[IVAN].decodes("video/h264") and not room.peers[IVAN].decodes("video/vp8")
    # Ivan's page loses a picture and asks for a keyframe (an RTCP PLI on its slot, as a
    # browser does): the SFU passes it on to the teacher's H.264 camera.
    receiver = next(t for t in ivan.pc.getTransceivers() if t.mid == camera).receiver
    slot = next(s for mid, s in room.peers[IVAN].video_slots if mid == camera)
    before = asked()

    async def lost_a_picture() -> bool:
        await receiver._send_rtcp_pli(slot.sender._ssrc)  # aiortc's own PLI, from the page
        await asyncio.sleep(0.3)  # the SFU asks a publisher at most every 0.5 s
        return asked() > before

    await until(lost_a_picture, "the page's PLI at the teacher's camera", within_s=10)
    frames = ivan.frames[camera]
    await until(lambda: ivan.frames[camera] >= frames + 10, "pictures after the keyframe")
    assert codec_notices(ivan) == []


async def test_a_mixed_call_tells_the_page_then_uses_the_codec_all_decode(
    room: CallRoom, clients: list[Client]
) -> None:
    teacher = Client(TEACHER)  # a browser with both codecs: VP8, as the SFU prefers
    clients.append(teacher)
    await teacher.join(room)
    await until(
        lambda: room.peers[TEACHER].published_codecs.get(Source.CAMERA) == "video/vp8",
        "the teacher's VP8 camera at the SFU",
    )

    ivan = H264Client(IVAN)
    clients.append(ivan)
    await ivan.join(room)
    # No transcoding: the VP8 camera gets no slot at Ivan's, and his page is told why;
    # the teacher's voice reaches him all the same.
    assert slot_of(room, IVAN, (TEACHER, Source.CAMERA)) is None
    assert codec_notices(ivan) == [(TEACHER, "camera")]
    voice = slot_of(room, IVAN, (TEACHER, Source.AUDIO))
    assert voice is not None
    await until(lambda: ivan.packets_on(voice), "the teacher's voice at Ivan's")

    # The teacher's page reconnects (or joins later): with Ivan in the call, the SFU asks
    # it for H.264 first, which Ivan and Masha's both-codecs page decode.
    masha = Client(MASHA)
    clients.append(masha)
    await masha.join(room)
    again = Client(TEACHER)
    clients.append(again)
    await again.join(room)
    await until(
        lambda: room.peers[TEACHER].published_codecs.get(Source.CAMERA) == "video/h264",
        "the teacher's camera in H.264",
    )
    for page, user in ((ivan, IVAN), (masha, MASHA)):
        camera = slot_of(room, user, (TEACHER, Source.CAMERA))
        assert camera is not None, user
        await until(lambda: page.frames.get(camera, 0) >= 10, f"the teacher's video at {user}")  # noqa: B023
    assert codec_notices(ivan) == [(TEACHER, "camera")]  # told once, not again
    assert codec_notices(masha) == []
