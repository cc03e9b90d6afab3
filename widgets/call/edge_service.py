"""An edge process's viewers: a page sent here by a broadcast's origin joins with its
ticket, and watches over the edge's link to the origin (`edge.EdgeRoom`).

The ticket stands for the origin's checks (OpenID, membership), so the edge does not ask
the homeserver at the join. It does ask, every `access_poll_s`, who is still in the
broadcast's room, as the origin does for its own pages: whoever left the audience chat
stops watching. A page that closes, or an edge whose link says the broadcast is over,
sends the page back to the origin, which decides afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from foundation.lifecycle import cancel_and_wait
from matrix.client import MatrixClient
from matrix.errors import HomeserverUnavailable, MatrixError
from widgets.call import messages as m
from widgets.call.edge import Channel, ChannelClosed, EdgeRoom
from widgets.call.room_access import NoAccess, read_room_members
from widgets.call.sockets import (
    POLICY_VIOLATION,
    SERVICE_RESTART,
    TRY_AGAIN_LATER,
    close_quietly,
    first_message,
    refuse,
    send_quietly,
)
from widgets.call.tickets import TicketError, TicketSigner
from widgets.call.turn import TurnIssuer

log = logging.getLogger(__name__)

LINK_MAX_BYTES = 128 * 1024  # the origin's offer and states: as a page's messages
LINK_OPEN_TIMEOUT_S = 10.0
LINK_READY_WAIT_S = 15.0  # a viewer waits this long for the link's first offer
EMPTY_EDGE_KEPT_S = 30.0  # a broadcast nobody watches here keeps its link this long


class EdgeJoin(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["join"]
    room_id: str = Field(pattern=m.ROOM_ID)
    ticket: str = Field(min_length=1, max_length=2048)


class _ViewerAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["answer"]
    sdp: str = Field(min_length=1, max_length=100_000)


class _Video(BaseModel):
    """The viewer turns the picture off (sound only, to save data) or back on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["video"]
    on: bool


class _Hand(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["raise_hand", "lower_hand"]
    target: None = None  # one's own: a viewer lowers nobody else's hand


class _Other(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str = Field(max_length=64)


_viewer_message: TypeAdapter[_ViewerAnswer | _Video | _Hand | _Other] = TypeAdapter(
    Annotated[_ViewerAnswer | _Video | _Hand | _Other, Field(union_mode="left_to_right")]
)
_QUIET = {"sending"}  # what every page says, and an edge has no use for: no error for it


class WebSocketChannel:
    """A link's signalling over a `websockets` connection (either end)."""

    def __init__(self, connection: ClientConnection | ServerConnection) -> None:
        self._connection = connection

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self._connection.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise ChannelClosed(str(exc)) from exc

    async def receive(self) -> dict[str, Any]:
        try:
            raw = await self._connection.recv()
        except ConnectionClosed as exc:
            raise ChannelClosed(str(exc)) from exc
        try:
            message = json.loads(raw)
        except ValueError as exc:
            raise ChannelClosed("not JSON") from exc
        if not isinstance(message, dict):
            raise ChannelClosed("not an object")
        return message


@dataclass
class EdgeService:
    signer: TicketSigner
    edge_id: str  # how the origins name this edge: the address pages reach it at
    origin_url: str  # where any room's origin is reached (ws://…), routed by the room
    matrix: MatrixClient
    bot_user_id: str
    capacity: int = 300
    turn: TurnIssuer | None = None
    access_poll_s: float = 15.0
    clock: Callable[[], float] = time.time
    rooms: dict[str, EdgeRoom] = field(default_factory=dict)
    _sockets: dict[tuple[str, str], WebSocket] = field(default_factory=dict)
    _emptied_at: dict[str, float] = field(default_factory=dict)
    _watcher: asyncio.Task[None] | None = None

    @property
    def viewers(self) -> int:
        return sum(len(room.viewers) for room in self.rooms.values())

    async def start(self) -> None:
        if self._watcher is None and self.access_poll_s > 0:
            self._watcher = asyncio.create_task(self._watch(), name="edge-room-watch")

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        await cancel_and_wait(watcher)
        rooms, self.rooms = list(self.rooms.values()), {}
        for socket in list(self._sockets.values()):
            await close_quietly(socket, SERVICE_RESTART, "moved")
        await asyncio.gather(*(room.close() for room in rooms), return_exceptions=True)

    # --- a viewer's page ---------------------------------------------------------------------

    async def session(self, socket: WebSocket) -> None:
        await socket.accept()
        try:
            joined = await self._join(socket)
            if joined is not None:
                await self._watching(socket, *joined)
        except WebSocketDisconnect:
            pass

    async def _join(self, socket: WebSocket) -> tuple[EdgeRoom, str] | None:
        text = await first_message(socket)
        if text is None:
            return None
        try:
            join = EdgeJoin.model_validate_json(text)
            ticket = self.signer.open_viewer(join.ticket, self.clock())
        except (ValidationError, TicketError):
            await refuse(socket, "bad_join")  # the page goes back to the origin
            return None
        if ticket.room_id != join.room_id:
            await refuse(socket, "bad_join")
            return None
        if self.viewers >= self.capacity and (join.room_id, ticket.user_id) not in self._sockets:
            await close_quietly(socket, TRY_AGAIN_LATER, "edge_full")
            return None
        room = self._room(join.room_id, ticket.broadcast_id)
        try:
            await asyncio.wait_for(room.ready.wait(), LINK_READY_WAIT_S)
        except TimeoutError:
            await close_quietly(socket, TRY_AGAIN_LATER, "origin_unavailable")
            return None
        user_id = ticket.user_id
        older = self._sockets.get((join.room_id, user_id))
        self._sockets[(join.room_id, user_id)] = socket
        if older is not None:
            await send_quietly(older, {"type": "replaced"})
            await close_quietly(older, POLICY_VIOLATION, "replaced")

        async def send(message: dict[str, Any]) -> None:
            await send_quietly(socket, message)

        offer = await room.connect(user_id, ticket.display_name, send)
        ice_servers = [self.turn.issue(user_id).ice_server()] if self.turn else []
        await socket.send_json(
            {"type": "offer", "sdp": offer.sdp, "you": user_id, "ice_servers": ice_servers}
        )
        log.info("%s watches the broadcast in %s from this edge", user_id, join.room_id)
        return room, user_id

    async def _watching(self, socket: WebSocket, room: EdgeRoom, user_id: str) -> None:
        viewer = room.viewers[user_id]
        try:
            while True:
                raw = await socket.receive_text()
                try:
                    message = _viewer_message.validate_json(raw)
                except ValidationError:
                    await socket.send_json(m.error("bad_message"))
                    continue
                if isinstance(message, _ViewerAnswer):
                    await room.accept_answer(user_id, message.sdp)
                elif isinstance(message, _Video):
                    room.set_video(user_id, message.on)
                    await socket.send_json({"type": "video", "on": message.on})
                elif isinstance(message, _Hand):
                    await room.hand(user_id, message.type == "raise_hand")
                    await room.send_state(user_id)
                elif message.type not in _QUIET:
                    # Hands, floors, mutes: the audience of a broadcast only watches here.
                    await socket.send_json(m.error("broadcast_audience_listens"))
        except WebSocketDisconnect:
            pass
        finally:
            if self._sockets.get((room.room_id, user_id)) is socket:
                del self._sockets[(room.room_id, user_id)]
            await room.disconnect(user_id, viewer)
            self._forget_empty()

    # --- one link per broadcast ----------------------------------------------------------------

    def _room(self, room_id: str, broadcast_id: int) -> EdgeRoom:
        room = self.rooms.get(room_id)
        if room is not None and (room.broadcast_id == broadcast_id and not room.ended.is_set()):
            self._emptied_at.pop(room_id, None)
            return room
        if room is not None:
            asyncio.create_task(self._end(room))  # noqa: RUF006 - _end closes it all
        room = EdgeRoom(room_id, broadcast_id, lambda: self._link(room_id))
        room.on_change = self._report

        async def on_stage(user_id: str) -> None:
            """Given the floor: the page rejoins the origin, where it may speak."""
            socket = self._sockets.pop((room_id, user_id), None)
            await room.disconnect(user_id)
            if socket is not None:
                await close_quietly(socket, SERVICE_RESTART, "on_stage")

        room.on_stage = on_stage
        self.rooms[room_id] = room
        room.start()
        asyncio.create_task(self._follow(room))  # noqa: RUF006 - ends with the room
        return room

    @contextlib.asynccontextmanager
    async def _link(self, room_id: str) -> AsyncIterator[Channel]:
        url = f"{self.origin_url}/call/edge/link?room_id={quote(room_id, safe='!~*()' + chr(39))}"
        try:
            connection = await connect(
                url, max_size=LINK_MAX_BYTES, open_timeout=LINK_OPEN_TIMEOUT_S
            )
        except InvalidHandshake as exc:
            raise ChannelClosed(f"the origin refused the link: {exc}") from exc
        try:
            channel = WebSocketChannel(connection)
            proof = self.signer.link(room_id, self.edge_id, self.clock())
            await channel.send({"type": "link", "room_id": room_id, "proof": proof})
            yield channel
        finally:
            await connection.close()

    def _report(self) -> None:
        viewers = self.viewers
        for room in list(self.rooms.values()):
            asyncio.create_task(room.report_load(viewers))  # noqa: RUF006 - a short send

    async def _follow(self, room: EdgeRoom) -> None:
        """When the origin says the broadcast is over, send this room's pages back to it."""
        await room.ended.wait()
        if self.rooms.get(room.room_id) is room:
            del self.rooms[room.room_id]
        await self._end(room)

    async def _end(self, room: EdgeRoom) -> None:
        for user_id in list(room.viewers):
            socket = self._sockets.pop((room.room_id, user_id), None)
            if socket is not None:
                await close_quietly(socket, SERVICE_RESTART, "moved")
        await room.close()

    def _forget_empty(self) -> None:
        now = time.monotonic()
        for room_id, room in list(self.rooms.items()):
            if room.viewers:
                self._emptied_at.pop(room_id, None)
                continue
            since = self._emptied_at.setdefault(room_id, now)
            if now - since > EMPTY_EDGE_KEPT_S:
                del self.rooms[room_id]
                self._emptied_at.pop(room_id, None)
                asyncio.create_task(room.close())  # noqa: RUF006 - closes the link

    # --- who is still in the audience chat -----------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.access_poll_s)
            self._forget_empty()
            for room_id in [r for r, room in self.rooms.items() if room.viewers]:
                await self.refresh_access(room_id)

    async def refresh_access(self, room_id: str) -> None:
        """Whoever left (or was removed from) the broadcast's room stops watching it."""
        try:
            async with asyncio.timeout(10.0):
                members = await read_room_members(
                    self.matrix, room_id, bot_user_id=self.bot_user_id
                )
        except (NoAccess, TimeoutError, HomeserverUnavailable, MatrixError) as exc:
            log.warning("the room of broadcast %s did not answer: %s", room_id, exc)
            return
        room = self.rooms.get(room_id)
        if room is None:
            return
        for user_id in [u for u in room.viewers if u not in members.joined]:
            socket = self._sockets.pop((room_id, user_id), None)
            await room.disconnect(user_id)
            if socket is not None:
                await send_quietly(socket, {"type": "removed", "reason": "not_a_member"})
                await close_quietly(socket, POLICY_VIOLATION, "not_a_member")
            log.info("%s left the room of broadcast %s: stops watching", user_id, room_id)
