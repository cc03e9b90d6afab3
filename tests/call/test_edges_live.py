"""A scheduled broadcast watched through an origin and two edges: three widget services
(processes 1–3 of one region) against the real Synapse and the real provisioning service.

The class teacher of 5А speaks (a speaker of the broadcast); four pupils of 5А join the
call the way the page does, with their OpenID tokens, and are sent to the edges with
tickets; they publish a microphone and a camera from the start, and nothing of theirs
reaches anyone. Forged tickets and links are refused.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from aiortc import RTCSessionDescription
from playwright.async_api import Browser, expect
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, ManagedRoom, School, SchoolClass
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.call.conftest import WAIT_S, until
from tests.call.test_call_page import (
    Lesson,
    audio_packets,
    open_widget,
    screenshot_frame,
    video_frames,
)
from tests.call.test_call_page import browser as browser  # the fixture, re-exported
from tests.call.test_sfu import Client
from tests.harness.broadcasts import PASSWORD, make_school, picture, set_passwords
from tests.harness.ports import free_ports
from tests.harness.region import region_session
from tests.matrix_users import logged_in, openid_token
from widgets.app import create_app
from widgets.call.moderation import Source
from widgets.call.tickets import TicketSigner, ViewerTicket, key_from

PUPILS = 4


@dataclass
class Region3:
    """The broadcast's room, its speaker and audience, and three widget processes."""

    room_id: str
    broadcast_id: int
    speaker: dict[str, Any]  # an OpenID token with `user_id`
    pupils: list[dict[str, Any]]
    origin: str  # ws://… of process 1
    edges: list[str]  # the edges' addresses, as the origin gives them to pages
    signer: TicketSigner


def _add_pupils(region: LocalDeployment, school_id: int, count: int) -> list[str]:
    with region_session(region) as session:
        school = session.get(School, school_id)
        assert school is not None
        five_a = session.scalar(
            select(SchoolClass).where(SchoolClass.school_id == school_id, SchoolClass.grade == 5)
        )
        assert five_a is not None
        allocate = LocalpartAllocator(session, region.settings.server_name)
        ids = []
        for number in range(count):
            name = f"Зритель {number} {secrets.token_hex(2)}"
            person = svc.add_person(session, name, matrix_user_id=allocate.user_id(name))
            svc.enrol(session, person, five_a, EnrolmentRole.PUPIL)
            ids.append(str(person.matrix_user_id))
        session.commit()
        return ids


@asynccontextmanager
async def serving_on(app: Any, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws_max_size=131072
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    await until(lambda: server.started or task.done(), "a widget process to start")
    assert not task.done(), "a widget process did not start"
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


@pytest.fixture(scope="module")
async def tree(region: LocalDeployment) -> AsyncIterator[Region3]:
    settings = region.settings
    school = await asyncio.to_thread(make_school, region)
    pupils = await asyncio.to_thread(_add_pupils, region, school.school_id, PUPILS)
    await asyncio.to_thread(
        httpx.post,
        f"{settings.provisioning_url}/internal/reconcile",
        headers={"Authorization": f"Bearer {settings.as_token.get_secret_value()}"},
        timeout=10,
    )

    def in_chat() -> bool:
        with region_session(region) as session:
            chat = session.scalar(
                select(ManagedRoom).where(ManagedRoom.room_id == school.chat_room_id)
            )
            return bool(chat and set(pupils) <= set(chat.applied.get("members", [])))

    await until(in_chat, "the pupils in 5А's chat", 180)
    await set_passwords(region, school.director, school.teacher, *pupils)
    tokens = {}
    for user_id in (school.teacher, *pupils):
        async with logged_in(region, user_id, PASSWORD) as client:
            tokens[user_id] = {**await openid_token(client), "user_id": user_id}
    async with logged_in(region, school.director, PASSWORD) as director:
        starts = datetime.now(UTC) + timedelta(minutes=10)
        async with httpx.AsyncClient(
            base_url=settings.provisioning_url,
            headers={"Authorization": f"Bearer {director.access_token}"},
            timeout=60,
        ) as api:
            answer = await api.post(
                f"/api/v1/schools/{school.school_id}/broadcasts",
                data={
                    "title": "Региональная конференция",
                    "description": "Через край и два узла",
                    "speakers": [school.teacher],
                    "audience_room": school.chat_alias,
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + timedelta(hours=1)).isoformat(),
                },
                files={"cover": ("cover.jpg", picture(1200, 675), "image/jpeg")},
            )
            assert answer.status_code == 201, answer.text
            broadcast_id = int(answer.json()["id"])
    ports = free_ports(3)
    urls = [f"ws://127.0.0.1:{port}" for port in ports]
    edges = [f"{url}/call/edge/{n}/ws" for n, url in enumerate(urls, start=1)]
    three = settings.model_copy(update={"call_edges": edges, "call_origin_url": urls[0]})
    async with AsyncExitStack() as stack:
        for process, port in enumerate(ports, start=1):
            app = create_app(three, process=process, processes=3)
            await stack.enter_async_context(serving_on(app, port))
        yield Region3(
            school.chat_room_id,
            broadcast_id,
            tokens[school.teacher],
            [tokens[p] for p in pupils],
            urls[0],
            edges[1:],
            TicketSigner(key_from(settings.as_token.get_secret_value())),
        )


def _room_query(room_id: str) -> str:
    return f"room_id={quote(room_id, safe='!~*()' + chr(39))}"


class Page:
    """What the call page does over its socket, with an aiortc client for its media."""

    def __init__(self, token: dict[str, Any]) -> None:
        self.token = token
        self.user_id = str(token["user_id"])
        self.client = Client(self.user_id)
        self.socket: ClientConnection | None = None
        self.edge: dict[str, str] | None = None
        self.errors: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def join_origin(self, origin: str, room_id: str, broadcast_id: int) -> None:
        openid = {k: v for k, v in self.token.items() if k != "user_id"}
        socket = await connect(f"{origin}/call/ws?{_room_query(room_id)}")
        await socket.send(
            json.dumps(
                {"type": "join", "room_id": room_id, "openid": openid, "broadcast_id": broadcast_id}
            )
        )
        first = json.loads(await asyncio.wait_for(socket.recv(), WAIT_S))
        if first["type"] == "edge":
            self.edge = {"url": first["url"], "ticket": first["ticket"]}
            await socket.close()
            return
        await self._connected(socket, first)

    async def join_edge(self, room_id: str) -> None:
        assert self.edge is not None
        socket = await connect(f"{self.edge['url']}?{_room_query(room_id)}")
        await socket.send(
            json.dumps({"type": "join", "room_id": room_id, "ticket": self.edge["ticket"]})
        )
        first = json.loads(await asyncio.wait_for(socket.recv(), WAIT_S))
        await self._connected(socket, first)

    async def _connected(self, socket: ClientConnection, offer: dict[str, Any]) -> None:
        assert offer["type"] == "offer", offer
        self.socket = socket
        sdp = await self.client.answer(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await socket.send(json.dumps({"type": "answer", "sdp": sdp}))
        self._reader = asyncio.create_task(self._read(socket))

    async def _read(self, socket: ClientConnection) -> None:
        async for raw in socket:
            message = json.loads(raw)
            if message.get("type") == "error":
                self.errors.append(message["reason"])
            else:
                await self.client.on_message(message)

    def shown(self, user_id: str, source: Source) -> str | None:
        states = [s for s in self.client.states if s.get("type") == "state"]
        if not states:
            return None
        wanted = {"user_id": user_id, "source": source.value}
        return next((m for m, v in states[-1]["slots"].items() if v == wanted), None)

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            self._reader.cancel()
        await self.client.close()


def _frames(page: Page, mid: str) -> bool:
    return page.client.frames.get(mid, 0) >= 5


async def test_the_audience_watches_through_two_edges_and_nobody_hears_it(
    tree: Region3,
) -> None:
    speaker = Page(tree.speaker)
    viewers = [Page(token) for token in tree.pupils]
    try:
        await speaker.join_origin(tree.origin, tree.room_id, tree.broadcast_id)
        assert speaker.edge is None  # the stage stays at the origin
        for viewer in viewers:
            await viewer.join_origin(tree.origin, tree.room_id, tree.broadcast_id)
            assert viewer.edge is not None, "a viewer of a live broadcast goes to an edge"
        # Assigned by load: two viewers on each edge.
        used = [v.edge["url"] for v in viewers if v.edge]
        assert sorted(used) == sorted(tree.edges * 2)
        for viewer in viewers:
            await viewer.join_edge(tree.room_id)
        for viewer in viewers:
            await until(
                lambda v=viewer: v.shown(speaker.user_id, Source.CAMERA),
                "the speaker's camera named on a viewer's page",
            )
            voice = viewer.shown(speaker.user_id, Source.AUDIO)
            camera = viewer.shown(speaker.user_id, Source.CAMERA)
            assert voice is not None and camera is not None
            await until(partial(viewer.client.packets_on, voice), "the speaker's voice")
            await until(partial(_frames, viewer, camera), "the speaker's pictures")
        # The viewers published from the start, and asked for more: refused, unheard.
        for viewer in viewers:
            assert viewer.socket is not None
            await viewer.socket.send(json.dumps({"type": "mode", "mode": "open"}))
        await until(
            lambda: all("broadcast_audience_listens" in v.errors for v in viewers),
            "the edge refusing the audience's requests",
        )
        await asyncio.sleep(1.0)
        shown = {
            v["user_id"]
            for state in speaker.client.states
            if state.get("type") == "state"
            for v in state["slots"].values()
        }
        assert not shown & {v.user_id for v in viewers}
        async with httpx.AsyncClient(timeout=10) as http:
            counts = [
                (await http.get(url.replace("ws://", "http://") + "/healthz")).json()
                for url in (tree.origin, *[e.rsplit("/call/", 1)[0] for e in tree.edges])
            ]
        assert [c["edge_viewers"] for c in counts] == [0, 2, 2]
    finally:
        await asyncio.gather(speaker.close(), *(v.close() for v in viewers))


async def test_forged_tickets_and_links_are_refused(tree: Region3) -> None:
    forged = TicketSigner(b"x" * 32).viewer(
        ViewerTicket(tree.room_id, "@someone:localhost", "Кто-то", tree.broadcast_id, 9e9)
    )
    other_room = tree.signer.viewer(
        ViewerTicket("!another:localhost", "@someone:localhost", "Кто-то", tree.broadcast_id, 9e9)
    )
    expired = tree.signer.viewer(
        ViewerTicket(tree.room_id, "@someone:localhost", "Кто-то", tree.broadcast_id, 1.0)
    )
    for ticket in (forged, other_room, expired):
        async with connect(f"{tree.edges[0]}?{_room_query(tree.room_id)}") as socket:
            join = {"type": "join", "room_id": tree.room_id, "ticket": ticket}
            await socket.send(json.dumps(join))
            answer = json.loads(await asyncio.wait_for(socket.recv(), WAIT_S))
            assert answer == {"type": "error", "reason": "bad_join"}
    link = f"{tree.origin}/call/edge/link?{_room_query(tree.room_id)}"
    for proof in ("nonsense", TicketSigner(b"y" * 32).link(tree.room_id, "/call/edge/2/ws", 0)):
        async with connect(link) as socket:
            await socket.send(json.dumps({"type": "link", "room_id": tree.room_id, "proof": proof}))
            answer = json.loads(await asyncio.wait_for(socket.recv(), WAIT_S))
            assert answer == {"type": "error", "reason": "bad_join"}


async def test_a_viewer_in_chromium_watches_from_an_edge_and_cannot_speak(
    tree: Region3, browser: Browser, widget_host: str
) -> None:
    """The call page, in the widget host as a Matrix client frames it: sent to an edge, it
    shows the speaker, says the viewer watches, and its forced microphone reaches nobody."""
    speaker = Page(tree.speaker)
    pupil = tree.pupils[0]
    origin_http = tree.origin.replace("ws://", "http://")
    lesson = Lesson(tree.room_id, {"pupil": pupil["user_id"]}, {}, {"pupil": pupil})
    page = None
    try:
        await speaker.join_origin(tree.origin, tree.room_id, tree.broadcast_id)
        page, frame = await open_widget(browser, widget_host, origin_http, lesson, "pupil")
        socket_url = await frame.evaluate("call.socket.url")
        assert "/call/edge/" in socket_url and socket_url.split("/call/")[0] != tree.origin
        await until(
            lambda: _more(video_frames(frame, speaker.user_id), 10),
            "the speaker's pictures decoded in Chromium",
        )
        await until(lambda: audio_packets(frame, speaker.user_id), "the speaker's voice")
        await expect(frame.locator("#mic-note")).to_have_text(
            "Вы зритель трансляции: вы видите и слышите выступающих. Вопросы можно задать в чате.",
            timeout=WAIT_S * 1000,
        )
        await expect(frame.locator("#mic")).to_be_disabled()
        # The page forces its microphone on and mutes everyone: refused in words, and
        # the speaker's page is given no stream of the viewer's.
        await frame.evaluate("call.local.audio && (call.local.audio.enabled = true)")
        await frame.evaluate("send({type: 'mute_all'})")
        await expect(frame.locator("#status")).to_contain_text(
            "Во время трансляции слушатели не говорят", timeout=WAIT_S * 1000
        )
        await screenshot_frame(page, "broadcast-viewer-on-edge")
        # Sound only, by choice (a phone on mobile data): the pictures stop, the voice
        # goes on; the picture comes back on request.
        await frame.locator("#sound-only").click()
        await expect(frame.locator("#net-note")).to_contain_text(
            "Видео выключено", timeout=WAIT_S * 1000
        )
        await asyncio.sleep(1.5)  # what was in flight lands
        pictures = await video_frames(frame, speaker.user_id)
        voice = await audio_packets(frame, speaker.user_id)
        await asyncio.sleep(2.0)
        assert await video_frames(frame, speaker.user_id) == pictures
        assert await audio_packets(frame, speaker.user_id) > voice
        await frame.locator("#video-again").click()
        await expect(frame.locator("#net-note")).to_be_hidden(timeout=WAIT_S * 1000)
        await until(
            lambda: _more(video_frames(frame, speaker.user_id), pictures + 10),
            "the pictures again",
        )
        await asyncio.sleep(1.0)
        shown = {
            v["user_id"]
            for state in speaker.client.states
            if state.get("type") == "state"
            for v in state["slots"].values()
        }
        assert pupil["user_id"] not in shown

        # The viewer raises a hand from the edge: the moderator (the class teacher, the
        # speaker here) sees it in the queue and gives the floor; the page comes over to
        # the origin and the viewer is heard there.
        await frame.locator("#hand").click()
        await expect(frame.locator("#mic-note")).to_contain_text(
            "Вы подняли руку", timeout=WAIT_S * 1000
        )

        def hand_up() -> bool:
            states = [s for s in speaker.client.states if s.get("type") == "state"]
            return bool(states) and pupil["user_id"] in states[-1]["hands"]

        await until(hand_up, "the viewer's hand in the moderator's queue")
        assert speaker.socket is not None
        await speaker.socket.send(json.dumps({"type": "grant", "target": pupil["user_id"]}))
        await until(
            lambda: _at_origin(frame, tree.origin), "the page rejoining the origin to speak"
        )
        await expect(frame.locator("#mic")).to_be_enabled(timeout=WAIT_S * 1000)
        await until(
            lambda: speaker.shown(pupil["user_id"], Source.AUDIO), "the viewer's voice routed"
        )
        question = speaker.shown(pupil["user_id"], Source.AUDIO)
        assert question is not None
        await until(partial(speaker.client.packets_on, question), "the question heard")
    finally:
        if page is not None:
            await page.context.close()
        await speaker.close()


async def _at_origin(frame: Any, origin: str) -> bool:
    url = await frame.evaluate("call.socket && call.socket.readyState === 1 && call.socket.url")
    return bool(url) and str(url).startswith(f"{origin}/call/ws")


async def _more(count: Any, than: int) -> bool:
    return bool(await count > than)
