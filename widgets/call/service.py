"""The call service: one WebSocket per page, verified, joined to its room's call.

A page connects and sends `join` with its OpenID token and room. The service asks the
person's homeserver who they are (`widgets.openid`), asks the region's homeserver whether
they are in the room and whether they moderate it (`room_access`), and only then adds
them to the call. No token, no call. From then on the page's requests go through
`CallState`, which refuses what the person may not do; every change is sent to all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bridge.matrix.client import MatrixClient
from bridge.matrix.errors import HomeserverUnavailable, MatrixError
from widgets.call import messages as m
from widgets.call.moderation import DEFAULT_LAST_N, CallError, CallState
from widgets.call.room_access import NoAccess, check_room_access
from widgets.call.sfu import DEFAULT_AUDIO_SLOTS, CallRoom
from widgets.openid import OpenIDError, OpenIDVerifier

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 15.0  # a page that does not say who it is within this is closed
EMPTY_CALL_KEPT_S = 600.0  # an empty call's state waits this long for people to return
POLICY_VIOLATION = 1008  # WebSocket close code (RFC 6455) for a refused join


@dataclass
class CallService:
    verifier: OpenIDVerifier
    matrix: MatrixClient
    last_n: int = DEFAULT_LAST_N
    audio_slots: int = DEFAULT_AUDIO_SLOTS
    clock: Callable[[], float] = time.time
    rooms: dict[str, CallRoom] = field(default_factory=dict)
    _emptied_at: dict[str, float] = field(default_factory=dict)
    _sockets: dict[tuple[str, str], WebSocket] = field(default_factory=dict)

    async def close(self) -> None:
        rooms, self.rooms = list(self.rooms.values()), {}
        await asyncio.gather(*(room.close() for room in rooms), return_exceptions=True)

    async def session(self, socket: WebSocket) -> None:
        """Serve one page from its `join` to its last message."""
        await socket.accept()
        try:
            joined = await self._join(socket)
        except WebSocketDisconnect:
            return
        if joined is None:
            return
        room, user_id = joined
        peer = room.peers[user_id]
        try:
            await self._serve(socket, room, user_id)
        except WebSocketDisconnect:
            pass
        finally:
            if self._sockets.get((room.state.room_id, user_id)) is socket:
                del self._sockets[(room.state.room_id, user_id)]
                room.state.leave(user_id, now=self.clock())
            await room.disconnect(user_id, peer)
            await room.broadcast()
            self._forget_empty_calls()

    async def _join(self, socket: WebSocket) -> tuple[CallRoom, str] | None:
        try:
            raw = await asyncio.wait_for(socket.receive_json(), JOIN_TIMEOUT_S)
            join = m.join_message.validate_python(raw)
        except (TimeoutError, ValidationError, ValueError, KeyError):
            await _refuse(socket, "bad_join")
            return None
        try:
            user_id = await self.verifier.verify(join.openid.model_dump())
            access = await check_room_access(self.matrix, join.room_id, user_id)
        except OpenIDError as exc:
            log.info("call join refused: %s", exc)
            await _refuse(socket, exc.reason)
            return None
        except NoAccess as exc:
            await _refuse(socket, exc.reason)
            return None
        except (HomeserverUnavailable, MatrixError) as exc:
            log.warning("call join: the homeserver did not answer: %s", exc)
            await _refuse(socket, "homeserver_unavailable")
            return None
        room = self.rooms.get(join.room_id)
        if room is None:
            room = CallRoom(CallState(join.room_id, last_n=self.last_n), self.audio_slots)
            self.rooms[join.room_id] = room
        self._emptied_at.pop(join.room_id, None)
        try:
            room.state.join(
                user_id, access.display_name, moderator=access.moderator, now=self.clock()
            )
        except CallError as exc:
            await _refuse(socket, exc.reason)
            return None

        async def send(message: dict[str, Any]) -> None:
            if socket.application_state is WebSocketState.CONNECTED:
                # A page gone mid-send: its own session cleans up after it.
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await socket.send_json(message)

        older = self._sockets.get((join.room_id, user_id))
        self._sockets[(join.room_id, user_id)] = socket
        if older is not None:
            # The same person again (a reload, a second device): the newest page wins.
            await _close(older, "replaced")
        offer = await room.connect(user_id, send)
        await socket.send_json({"type": "offer", "sdp": offer.sdp, "you": user_id})
        log.info("%s joined the call of %s", user_id, join.room_id)
        return room, user_id

    async def _serve(self, socket: WebSocket, room: CallRoom, user_id: str) -> None:
        await room.broadcast()
        while True:
            raw = await socket.receive_json()
            try:
                message = m.page_message.validate_python(raw)
            except ValidationError:
                await socket.send_json(m.error("bad_message"))
                continue
            try:
                reply = await self._apply(room, user_id, message)
            except CallError as exc:
                await socket.send_json(m.error(exc.reason))
                continue
            if reply is not None:
                await socket.send_json(reply)

    async def _apply(
        self, room: CallRoom, actor: str, message: m.PageMessage
    ) -> dict[str, Any] | None:
        state, now = room.state, self.clock()
        match message:
            case m.Answer(sdp=sdp):
                await room.accept_answer(actor, sdp)
            case m.RaiseHand():
                state.raise_hand(actor, now=now)
            case m.LowerHand(target=target):
                state.lower_hand(actor, target or actor)
            case m.Floor(type="grant", target=target):
                state.grant_floor(actor, target)
            case m.Floor(target=target):
                state.revoke_floor(actor, target)
            case m.MuteAll():
                state.mute_all(actor)
            case m.Cameras(allowed=allowed):
                state.allow_cameras(actor, allowed)
            case m.Screen(target=target, allowed=allowed):
                state.allow_screen(actor, target, allowed)
            case m.Remove(target=target):
                state.remove(actor, target, now=now)
                gone = self._sockets.pop((state.room_id, target), None)
                await room.disconnect(target)
                if gone is not None:
                    await _close(gone, "removed")
            case m.Attendance():
                if not state.participants[actor].moderator:
                    raise CallError("not_moderator")
                return {"type": "attendance", "people": state.attendance(now=now)}
        room.reassign()
        await room.broadcast()
        return None

    def _forget_empty_calls(self) -> None:
        """An empty call keeps its hands and floors a while for a teacher's return."""
        now = self.clock()
        for room_id, room in list(self.rooms.items()):
            if any(p.connected for p in room.state.participants.values()):
                self._emptied_at.pop(room_id, None)
                continue
            since = self._emptied_at.setdefault(room_id, now)
            if now - since > EMPTY_CALL_KEPT_S:
                del self.rooms[room_id]
                del self._emptied_at[room_id]


async def _refuse(socket: WebSocket, reason: str) -> None:
    await socket.send_json(m.error(reason))
    await socket.close(code=POLICY_VIOLATION, reason=reason)


async def _close(socket: WebSocket, reason: str) -> None:
    """Tell a page why its call ended here ("removed", "replaced"), then close it."""
    if socket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.send_json({"type": reason})
            await socket.close(code=POLICY_VIOLATION, reason=reason)
