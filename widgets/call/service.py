"""The call service: one WebSocket per page, verified, joined to its room's call.

A page connects and sends `join` with its OpenID token and room. The service asks the
person's homeserver who they are (`matrix.openid`), asks the region's homeserver whether
they are in the room and whether they moderate it (`room_access`), and only then adds
them to the call. No token, no call. From then on the page's requests go through
`CallState`, which refuses what the person may not do; every change is sent to all.

Two things outlive a page's socket. Each call's state is saved (`persistence.CallStore`),
so after a restart of this service people reconnect into the lesson they left. And while
a call has people in it, the room is asked every `access_poll_s` who is still a member
and who moderates (`room_access.read_room_members`): a teacher promoted or demoted in
Matrix gains or loses the teacher's controls without rejoining, whoever left the room
leaves its call, and a room where nobody but the bot moderates has its floor open to all.

A call that opens afresh asks the provisioning service how it starts (`starting_mode`):
an open meeting in a class's parents chat, a lesson elsewhere; its moderators switch the
mode afterwards (`mode`), and it is saved with the rest of the call.

With several widget processes a call runs in the one holding its lock (`ownership`),
which nginx chose by hashing the room ID in the socket's URL: a join for another room
than the URL's is refused, as it would run where nginx does not send the room's others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from foundation.lifecycle import cancel_and_wait
from matrix.client import MatrixClient
from matrix.errors import Forbidden, HomeserverUnavailable, MatrixError
from matrix.openid import OpenIDError, OpenIDVerifier, token_grant
from matrix.rooms import send_message
from widgets.call import messages as m
from widgets.call.attendance import Language, attendance_notice
from widgets.call.broadcast_recording import BroadcastRecordings, StageBroadcast
from widgets.call.edge import ChannelClosed, EdgeDirectory, Hand, is_edge_peer, serve_edge
from widgets.call.moderation import DEFAULT_LAST_N, CallError, CallMode, CallState, Source
from widgets.call.ownership import CallLocks
from widgets.call.persistence import CallStore
from widgets.call.room_access import (
    NoAccess,
    RoomMembers,
    check_room_access,
    read_room_members,
)
from widgets.call.sfu import DEFAULT_AUDIO_SLOTS, CallRoom
from widgets.call.sockets import (
    POLICY_VIOLATION,
    SERVICE_RESTART,
    TRY_AGAIN_LATER,
    first_message,
    refuse,
)
from widgets.call.starting_mode import CallStart, ModeUnknown, ProvisioningCallModes
from widgets.call.tickets import TICKET_TTL_S, TicketError, TicketSigner, ViewerTicket
from widgets.call.turn import TurnIssuer

log = logging.getLogger(__name__)

# Any message, the server's frame limit (`ws_max_size`): an SDP answer is some 10 KiB.
# Uvicorn's default of 16 MiB let forty unjoined sockets grow the service by 1.2 GB (#18).
MESSAGE_MAX_BYTES = 128 * 1024
SOCKETS_PER_TOKEN = 3  # calls one OpenID token may be in at once (a page in three rooms)
EMPTY_CALL_KEPT_S = 600.0  # an empty call's state waits this long for people to return
ACCESS_POLL_S = 15.0  # how often a live call's room is asked who is in it and who moderates
ACCESS_POLL_TIMEOUT_S = 10.0  # one room's answer; a slower homeserver waits for the next poll
# A call another process holds: how long a join waits for it to be given back, and how often
# a process looks whether one of its calls is asked for.
HANDOVER_WAIT_S = 10.0
HANDOVER_POLL_S = 0.5
_UNCHANGED = (m.Answer, m.Sending, m.Attendance, m.PostAttendance)  # requests that change no state


@dataclass
class CallService:
    verifier: OpenIDVerifier
    matrix: MatrixClient
    bot_user_id: str  # whose power in a room leaves its floor open (a family room's)
    last_n: int = DEFAULT_LAST_N
    audio_slots: int = DEFAULT_AUDIO_SLOTS
    turn: TurnIssuer | None = None  # TURN credentials go only to verified pages, in `offer`
    clock: Callable[[], float] = time.time
    store: CallStore | None = None  # None: calls live in memory only
    access_poll_s: float = ACCESS_POLL_S
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # attendance times
    language: Language = "ru"  # the attendance notice's, the school's (`PARTA_LANGUAGE`)
    # With several widget processes: which calls this one runs. None: the only process.
    locks: CallLocks | None = None
    # Who says how a new call starts (open in a parents chat). None: every call a lesson.
    modes: ProvisioningCallModes | None = None
    handover_poll_s: float = HANDOVER_POLL_S
    # Where a live broadcast's audience watches (`edge`): None, all of it here. The
    # signer writes the viewers' tickets and checks the edges' links.
    edges: EdgeDirectory | None = None
    signer: TicketSigner | None = None
    # Records each broadcast's stage and posts the recordings at its end. None: not recorded.
    recordings: BroadcastRecordings | None = None
    rooms: dict[str, CallRoom] = field(default_factory=dict)
    _emptied_at: dict[str, float] = field(default_factory=dict)
    _sockets: dict[tuple[str, str], WebSocket] = field(default_factory=dict)
    _grants: dict[WebSocket, str] = field(default_factory=dict)  # socket -> its OpenID token
    _watcher: asyncio.Task[None] | None = None
    _handovers: asyncio.Task[None] | None = None
    _opening: dict[str, asyncio.Task[CallRoom | None]] = field(default_factory=dict)
    _links: dict[str, set[WebSocket]] = field(default_factory=dict)  # room -> edges' sockets
    # Viewers on edges with their hand up, in each room's call: user ID -> their edge.
    _remote: dict[str, dict[str, str]] = field(default_factory=dict)
    _stage_ends: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # by room ID

    async def start(self) -> None:
        """Start saving calls and watching their rooms (and, with several processes, the
        requests for them); `stop()` stops all."""
        if self.store is not None:
            await self.store.start()
        if self._watcher is None and self.access_poll_s > 0:
            self._watcher = asyncio.create_task(self._watch_rooms(), name="call-room-watch")
        if self._handovers is None and self.locks is not None:
            self._handovers = asyncio.create_task(self._watch_requests(), name="call-handover")

    async def stop(self) -> None:
        """End every call (its participants' state waits on disk) and stop the store."""
        watcher, self._watcher = self._watcher, None
        await cancel_and_wait(watcher)
        handovers, self._handovers = self._handovers, None
        await cancel_and_wait(handovers)
        rooms, self.rooms = list(self.rooms.values()), {}
        for room in rooms:
            self._stage_closed(room.state.room_id)
        now = self.clock()
        for room in rooms:
            # Whoever is still here is cut off by the stop: their stretch ends now, and
            # their hand, floor and permissions wait on disk for their reconnection.
            for participant in list(room.state.participants.values()):
                room.state.leave(participant.user_id, now=now)
            self._changed(room)
        await asyncio.gather(*(room.close() for room in rooms), return_exceptions=True)
        if self.store is not None:
            await self.store.stop()
        if self.locks is not None:
            self.locks.release_all()  # saved first: whoever takes a call over reads it whole
        if self.modes is not None:
            await self.modes.close()

    async def session(self, socket: WebSocket) -> None:
        """Serve one page from its `join` to its last message."""
        await socket.accept()
        try:
            joined = await self._join(socket)
            if joined is not None:
                await self._in_call(socket, *joined)
        except WebSocketDisconnect:
            pass
        finally:
            self._grants.pop(socket, None)  # no longer counted against its OpenID token

    async def _in_call(self, socket: WebSocket, room: CallRoom, user_id: str) -> None:
        """From a successful join to the socket's end; then the person leaves the call."""
        peer = room.peers[user_id]
        try:
            await self._serve(socket, room, user_id)
        except WebSocketDisconnect:
            pass
        finally:
            if self._sockets.get((room.state.room_id, user_id)) is socket:
                del self._sockets[(room.state.room_id, user_id)]
                room.state.leave(user_id, now=self.clock())
                self._changed(room)
            await room.disconnect(user_id, peer)
            await room.broadcast()
            self._forget_empty_calls()

    async def _join(self, socket: WebSocket) -> tuple[CallRoom, str] | None:
        text = await first_message(socket)
        if text is None:
            return None
        try:
            join = m.join_message.validate_python(json.loads(text))
            routed = _routed_room(socket)
        except (ValidationError, ValueError):
            await refuse(socket, "bad_join")
            return None
        if routed != join.room_id and (routed is not None or self.locks is not None):
            # nginx sent this socket where its URL's room runs, not where the join's does.
            await refuse(socket, "bad_join")
            return None
        try:
            token = join.openid.model_dump()
            user_id = await self.verifier.verify(token)
            grant = token_grant(token)
            if (join.room_id, user_id) not in self._sockets and (
                sum(1 for held in self._grants.values() if held == grant) >= SOCKETS_PER_TOKEN
            ):
                # A page that rejoins its room replaces its old socket and is not counted.
                await refuse(socket, "too_many_sockets")
                return None
            self._grants[socket] = grant
            access = await check_room_access(
                self.matrix, join.room_id, user_id, bot_user_id=self.bot_user_id
            )
        except OpenIDError as exc:
            log.info("call join refused: %s", exc)
            await refuse(socket, exc.reason)
            return None
        except NoAccess as exc:
            await refuse(socket, exc.reason)
            return None
        except (HomeserverUnavailable, MatrixError) as exc:
            log.warning("call join: the homeserver did not answer: %s", exc)
            await refuse(socket, "homeserver_unavailable")
            return None
        room = await self._call_of(join.room_id)
        if room is None:
            # Another process holds the call and has not given it back: the page retries.
            await socket.close(code=TRY_AGAIN_LATER, reason="call_busy")
            return None
        self._emptied_at.pop(join.room_id, None)
        if join.broadcast_id is not None and join.broadcast_id != room.state.broadcast_id:
            # A page opened from a broadcast's widget: a call already running in the room
            # becomes its stage, if provisioning says the broadcast is live there now.
            start = await self._starting(join.room_id)
            if start.broadcast_id == join.broadcast_id:
                room.state.start_broadcast(start.broadcast_id, start.speakers)
                self._stage_opened(room, start)
        if await self._sent_to_edge(socket, room, user_id, access.display_name, access.moderator):
            return None
        self._remote.get(join.room_id, {}).pop(user_id, None)  # here now, not on an edge
        room.state.open_floor = access.open_floor
        try:
            room.state.join(
                user_id, access.display_name, moderator=access.moderator, now=self.clock()
            )
        except CallError as exc:
            await refuse(socket, exc.reason)
            return None
        self._changed(room)

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
        if self.rooms.get(join.room_id) is not room:
            # Given to another process while this page joined: it follows the call there.
            self._sockets.pop((join.room_id, user_id), None)
            await room.disconnect(user_id)
            await socket.close(code=SERVICE_RESTART, reason="moved")
            return None
        ice_servers = [self.turn.issue(user_id).ice_server()] if self.turn else []
        await socket.send_json(
            {"type": "offer", "sdp": offer.sdp, "you": user_id, "ice_servers": ice_servers}
        )
        log.info("%s joined the call of %s", user_id, join.room_id)
        return room, user_id

    async def _sent_to_edge(
        self, socket: WebSocket, room: CallRoom, user_id: str, name: str, moderator: bool
    ) -> bool:
        """A live broadcast's audience watches from an edge: the page goes there with a
        ticket. The stage, the moderators and whoever was given the floor stay here, and
        so does everyone while no edge has room."""
        state = room.state
        if self.edges is None or self.signer is None or state.broadcast_id is None:
            return False
        known = state.participants.get(user_id)
        if moderator or user_id in state.stage or (known is not None and known.has_floor):
            return False
        url = self.edges.choose()
        if url is None:
            log.warning("every edge is full: %s watches %s from its origin", user_id,
                        state.room_id)  # fmt: skip
            return False
        ticket = ViewerTicket(
            state.room_id, user_id, name, state.broadcast_id, time.time() + TICKET_TTL_S
        )
        await socket.send_json({"type": "edge", "url": url, "ticket": self.signer.viewer(ticket)})
        await socket.close(code=1000, reason="edge")
        return True

    async def edge_link(self, socket: WebSocket) -> None:
        """An edge links to a live broadcast's call here, to relay it to its viewers."""
        await socket.accept()
        try:
            text = await first_message(socket)
        except WebSocketDisconnect:
            return
        if text is None:
            return
        if self.signer is None:
            await refuse(socket, "bad_join")
            return
        try:
            link = m.edge_link_message.validate_json(text)
            edge_id = self.signer.open_link(link.proof, link.room_id, time.time())
            routed = _routed_room(socket)
        except (ValidationError, ValueError, TicketError):
            await refuse(socket, "bad_join")
            return
        if routed != link.room_id and (routed is not None or self.locks is not None):
            await refuse(socket, "bad_join")
            return
        room = await self._call_of(link.room_id)
        if room is None:
            await socket.close(code=TRY_AGAIN_LATER, reason="call_busy")
            return
        if room.state.broadcast_id is None:
            await refuse(socket, "no_broadcast")
            return
        links = self._links.setdefault(link.room_id, set())
        links.add(socket)

        async def on_hand(edge: str, hand: Hand) -> None:
            await self._audience_hand(room, edge, hand)

        try:
            await serve_edge(
                room,
                edge_id,
                _SocketChannel(socket),
                self.edges.report if self.edges else None,
                on_hand,
            )
        finally:
            links.discard(socket)
            await _close(socket, "unlinked")
            # Its viewers' hands go down with the link; the edge raises them again.
            remote = self._remote.get(link.room_id, {})
            for user_id in [u for u, edge in remote.items() if edge == edge_id]:
                await self._audience_hand(room, edge_id, Hand(user_id, "", raised=False))

    async def _audience_hand(self, room: CallRoom, edge_id: str, hand: Hand) -> None:
        """A viewer on an edge raises their hand: they join the call's queue (and its
        attendance) as a participant without a connection here; given the floor, their
        page comes here to speak. Lowered, or gone from the edge, they leave the queue."""
        state, now = room.state, self.clock()
        remote = self._remote.setdefault(state.room_id, {})
        known = state.participants.get(hand.user_id)
        if hand.raised:
            if known is not None and known.connected and hand.user_id not in remote:
                return  # connected here themselves
            try:
                state.join(hand.user_id, hand.display_name, moderator=False, now=now)
                state.raise_hand(hand.user_id, now=now)
            except CallError:
                return  # removed from this call by a moderator
            remote[hand.user_id] = edge_id
        else:
            if remote.get(hand.user_id) != edge_id:
                return
            del remote[hand.user_id]
            if known is not None and known.has_floor:
                return  # on their way here, to speak
            state.left_room(hand.user_id, now=now)
        room.reassign()
        self._changed(room)
        await room.broadcast()

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
            if not isinstance(message, _UNCHANGED):
                self._changed(room)
            if reply is not None:
                await socket.send_json(reply)

    async def _apply(
        self, room: CallRoom, actor: str, message: m.PageMessage
    ) -> dict[str, Any] | None:
        state, now = room.state, self.clock()
        match message:
            case m.Answer(sdp=sdp):
                await room.accept_answer(actor, sdp)
            case m.Sending(audio=audio, camera=camera, screen=screen):
                sending = {Source.AUDIO: audio, Source.CAMERA: camera, Source.SCREEN: screen}
                room.set_sending(actor, frozenset(s for s, on in sending.items() if on))
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
            case m.Mute(type="mute", target=target):
                state.mute(actor, target)
            case m.Mute(target=target):
                state.unmute(actor, target)
            case m.Mode(mode=mode):
                state.set_mode(actor, CallMode(mode))
                log.info("%s made call %s %s", actor, state.room_id, mode)
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
                _require_moderator(state, actor)
                return {"type": "attendance", "people": state.attendance(now=now)}
            case m.Present(event_id=event_id):
                state.present(actor, event_id)
            case m.PresentPage(page=page):
                state.turn_page(actor, page)
            case m.StopPresenting():
                state.stop_presenting(actor)
            case m.PostAttendance():
                _require_moderator(state, actor)
                event_id = await self.post_attendance(state)
                return {"type": "attendance_posted", "event_id": event_id}
        room.reassign()
        await room.broadcast()
        return None

    async def post_attendance(self, state: CallState) -> str:
        """Post the call's attendance into its room as an `m.notice` from the bot, in the
        deployment's language (everyone in the room reads it, not only the teacher).

        Raises:
            CallError("bot_not_in_room"): the bot is not a member of the room (a room
                Parta does not manage); the teacher can invite it, or copy the list.
            CallError("homeserver_unavailable"): the homeserver did not take the message.
        """
        now = self.clock()
        content = attendance_notice(
            state.attendance(now=now), lang=self.language, zone=self.zone, now=now
        )
        transaction = f"parta-attendance-{secrets.token_hex(12)}"
        try:
            event_id = await send_message(
                self.matrix, state.room_id, content, transaction_id=transaction
            )
        except Forbidden as exc:
            log.info("attendance of %s not posted: %s", state.room_id, exc)
            raise CallError("bot_not_in_room") from exc
        except (HomeserverUnavailable, MatrixError) as exc:
            log.warning("attendance of %s not posted: %s", state.room_id, exc)
            raise CallError("homeserver_unavailable") from exc
        log.info("attendance of %s posted into the room", state.room_id)
        return event_id

    # --- which process runs a call (several widget processes) -----------------------------

    async def _call_of(self, room_id: str) -> CallRoom | None:
        """This process's call of the room, opened from its saved state if need be.

        None when another process holds the call and did not give it back in time.
        """
        room = self.rooms.get(room_id)
        if room is not None:
            return room
        # Pages joining at once share one attempt: a second lock of this process's own
        # would fail against the first, and a second new call would split the room's.
        attempt = self._opening.get(room_id)
        if attempt is None:
            attempt = asyncio.create_task(self._open(room_id), name="call-open")
            self._opening[room_id] = attempt
            attempt.add_done_callback(lambda _: self._opening.pop(room_id, None))
        return await asyncio.shield(attempt)

    async def _open(self, room_id: str) -> CallRoom | None:
        if not await self._take(room_id):
            return None
        room = self.rooms.get(room_id)
        start: CallStart | None = None
        if room is None:
            # The first join since this process took the call: it may have been saved,
            # with its mode; else it is new, and starts as its room's kind says.
            saved = self.store.load(room_id, last_n=self.last_n) if self.store else None
            if saved is None:
                start = await self._starting(room_id)
                saved = CallState(room_id, last_n=self.last_n, mode=start.mode)
                if start.broadcast_id is not None:
                    saved.start_broadcast(start.broadcast_id, start.speakers)
            elif saved.broadcast_id is not None:
                # A broadcast's call saved earlier: its stage stays only while it is live.
                start = await self._starting(room_id)
                if start.broadcast_id != saved.broadcast_id:
                    saved.end_broadcast()
            room = CallRoom(saved, self.audio_slots)
            self.rooms[room_id] = room
            if start is not None and saved.broadcast_id is not None:
                self._stage_opened(room, start)
        return room

    async def _starting(self, room_id: str) -> CallStart:
        """Open in a class's parents chat, a lesson elsewhere, a stage while the room's
        broadcast is live: provisioning knows the room.

        Without its answer the call starts as a lesson, the safe side (nobody speaks
        unless given the floor); the moderator can open it from the page.
        """
        if self.modes is None:
            return CallStart(CallMode.LESSON)
        try:
            start = await self.modes.starting(room_id)
        except ModeUnknown as exc:
            log.warning("the call of %s starts as a lesson: %s", room_id, exc)
            return CallStart(CallMode.LESSON)
        log.info("the call of %s starts in %s mode (broadcast %s)", room_id, start.mode,
                 start.broadcast_id)  # fmt: skip
        return start

    async def _take(self, room_id: str) -> bool:
        """Hold the call's lock, asking its holder to give it back if another process has it."""
        locks = self.locks
        if locks is None:
            return True
        if not locks.try_take(room_id):
            log.info("the call of %s runs in another process: asking for it", room_id)
            locks.ask_back(room_id)
            deadline = time.monotonic() + HANDOVER_WAIT_S
            while not locks.try_take(room_id):
                if time.monotonic() > deadline:
                    log.warning("the call of %s was not given back in time", room_id)
                    return False
                await asyncio.sleep(0.1)
        locks.answered(room_id)  # a request left from before is answered as well
        return True

    async def _watch_requests(self) -> None:
        assert self.locks is not None
        while True:
            await asyncio.sleep(self.handover_poll_s)
            for room_id in [r for r in self.rooms if self.locks.asked_back(r)]:
                await self.give_back(room_id)

    async def give_back(self, room_id: str) -> None:
        """nginx sends this call's newcomers to another process now (this one took it over
        while that one was down): save it, let it go, and send its pages there."""
        room = self.rooms.pop(room_id, None)
        self._emptied_at.pop(room_id, None)
        if room is None:
            return
        self._stage_closed(room_id)
        now = self.clock()
        sockets = [self._sockets.pop((room_id, user), None) for user in room.state.participants]
        for user_id in list(room.state.participants):
            room.state.leave(user_id, now=now)
        if self.store is not None:
            try:
                await self.store.let_go(room.state)
            except OSError as exc:  # let go all the same: a call split in two is worse
                log.error("could not save the call of %s to give it back: %s", room_id, exc)
        if self.locks is not None:
            self.locks.release(room_id)
        sockets.extend(self._links.pop(room_id, ()))  # the edges link again, to where it went
        for socket in sockets:
            if socket is not None and socket.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await socket.close(code=SERVICE_RESTART, reason="moved")
        await room.close()
        log.info("the call of %s went back to the process nginx sends it to", room_id)

    # --- the room's say, during the call -------------------------------------------------

    async def _watch_rooms(self) -> None:
        while True:
            await asyncio.sleep(self.access_poll_s)
            live = [
                room_id
                for room_id, room in self.rooms.items()
                if any(p.connected for p in room.state.participants.values())
            ]
            await asyncio.gather(*(self.refresh_access(room_id) for room_id in live))

    async def refresh_access(self, room_id: str) -> None:
        """Ask the room who is in it and who moderates, and bring its call in line.

        A homeserver that does not answer changes nothing: the next poll asks again.
        """
        try:
            async with asyncio.timeout(ACCESS_POLL_TIMEOUT_S):
                members = await read_room_members(
                    self.matrix, room_id, bot_user_id=self.bot_user_id
                )
        except NoAccess as exc:
            log.warning("the room of call %s: %s", room_id, exc.reason)
            return
        except (TimeoutError, HomeserverUnavailable, MatrixError) as exc:
            log.warning("the room of call %s did not answer: %s", room_id, exc)
            return
        room = self.rooms.get(room_id)
        if room is not None:
            await self._follow_room(room, members)

    async def _follow_room(self, room: CallRoom, members: RoomMembers) -> None:
        state, now = room.state, self.clock()
        changed = state.open_floor != members.open_floor
        state.open_floor = members.open_floor
        for user_id in list(state.participants):
            if user_id not in members.joined:
                # Left, kicked or banned from the room: out of its call as well.
                state.left_room(user_id, now=now)
                gone = self._sockets.pop((state.room_id, user_id), None)
                await room.disconnect(user_id)
                if gone is not None:
                    await _close(gone, "removed", reason="not_a_member")
                log.info("%s left the room of call %s", user_id, state.room_id)
                changed = True
            elif state.set_moderator(user_id, user_id in members.moderators):
                log.info("%s moderates call %s: %s", user_id, state.room_id,
                         user_id in members.moderators)  # fmt: skip
                changed = True
        if changed:
            room.reassign()
            await room.broadcast()
            self._changed(room)

    # --- a broadcast's stage: its end, and its recording ---------------------------------

    def _stage_opened(self, room: CallRoom, start: CallStart) -> None:
        """A broadcast's stage opened in this call: record it, and close it at its end
        (provisioning's `ends_at`; nothing else would until the call reopens)."""
        room_id, broadcast_id = room.state.room_id, start.broadcast_id
        if broadcast_id is None:
            return
        if self.recordings is not None:
            broadcast = StageBroadcast(room_id, broadcast_id, start.title, self.language)
            self.recordings.open(room, broadcast)
        timer = self._stage_ends.pop(room_id, None)
        if timer is not None:
            timer.cancel()
        if start.ends_at is not None:
            delay = max(0.0, start.ends_at.timestamp() - self.clock())
            self._stage_ends[room_id] = asyncio.create_task(
                self._close_stage_at(room, broadcast_id, delay), name="call-stage-end"
            )

    async def _close_stage_at(self, room: CallRoom, broadcast_id: int, delay: float) -> None:
        await asyncio.sleep(delay)
        room_id = room.state.room_id
        self._stage_ends.pop(room_id, None)
        if self.rooms.get(room_id) is not room or room.state.broadcast_id != broadcast_id:
            return  # the call moved on (another broadcast, given back, forgotten)
        room.state.end_broadcast()
        log.info("the stage of broadcast %s in %s closed at its end", broadcast_id, room_id)
        if self.recordings is not None:
            self.recordings.close(room_id)
        room.reassign()
        self._changed(room)
        await room.broadcast()
        # The edges' viewers come back here: the call is an ordinary call again.
        for link in list(self._links.pop(room_id, ())):
            await _close(link, "unlinked", reason="no_broadcast")

    def _stage_closed(self, room_id: str) -> None:
        """The call ends here (forgotten, given back, the service stopping): so does the
        recording of its stage, which is posted now."""
        timer = self._stage_ends.pop(room_id, None)
        if timer is not None:
            timer.cancel()
        if self.recordings is not None:
            self.recordings.close(room_id)

    def _changed(self, room: CallRoom) -> None:
        if self.locks is not None and not self.locks.holds(room.state.room_id):
            return  # given to another process: its file is that process's to write now
        if self.store is not None:
            self.store.changed(room.state)

    def _forget_empty_calls(self) -> None:
        """An empty call keeps its hands and floors a while for a teacher's return."""
        now = self.clock()
        for room_id, room in list(self.rooms.items()):
            if any(p.connected for p in room.state.participants.values()) or any(
                is_edge_peer(peer) for peer in room.peers
            ):  # people here, or watching through an edge
                self._emptied_at.pop(room_id, None)
                continue
            since = self._emptied_at.setdefault(room_id, now)
            if now - since > EMPTY_CALL_KEPT_S:
                del self.rooms[room_id]
                del self._emptied_at[room_id]
                self._stage_closed(room_id)
                if self.store is not None:
                    self.store.forget(room_id)
                if self.locks is not None:
                    self.locks.release(room_id)


def _routed_room(socket: WebSocket) -> str | None:
    """The room the socket's URL names (`/call/ws?room_id=...`), which nginx hashed.

    Raises:
        ValueError: the room is spelled otherwise than the page spells it
            (`encodeURIComponent`): nginx hashes the raw text, so another spelling of the
            same room could reach another process and split its call.
    """
    raw_query: bytes = socket.scope.get("query_string", b"")
    for pair in raw_query.decode("latin-1").split("&"):
        name, _, raw = pair.partition("=")
        if name == "room_id":
            room_id = unquote(raw, errors="strict")
            if quote(room_id, safe="!~*'()") != raw:
                raise ValueError("room_id not in its canonical spelling")
            return room_id
    return None


class _SocketChannel:
    """An edge's link, as the origin sees it: JSON objects over the edge's WebSocket."""

    def __init__(self, socket: WebSocket) -> None:
        self._socket = socket

    async def send(self, message: dict[str, Any]) -> None:
        if self._socket.application_state is not WebSocketState.CONNECTED:
            raise ChannelClosed("the edge went away")
        try:
            await self._socket.send_json(message)
        except (RuntimeError, WebSocketDisconnect) as exc:
            raise ChannelClosed("the edge went away") from exc

    async def receive(self) -> dict[str, Any]:
        try:
            message = await self._socket.receive_json()
        except (RuntimeError, WebSocketDisconnect, ValueError) as exc:
            raise ChannelClosed("the edge went away") from exc
        if not isinstance(message, dict):
            raise ChannelClosed("not an object")
        return message


def _require_moderator(state: CallState, actor: str) -> None:
    """Asked per request: power levels may have changed since the person joined."""
    participant = state.participants.get(actor)
    if participant is None or not participant.moderator:
        raise CallError("not_moderator")


async def _close(socket: WebSocket, kind: str, *, reason: str | None = None) -> None:
    """Tell a page why its call ended here ("removed", "replaced"), then close it.

    `reason` says more when a teacher was not the cause ("not_a_member": left the room).
    """
    if socket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.send_json({"type": kind, **({"reason": reason} if reason else {})})
            await socket.close(code=POLICY_VIOLATION, reason=reason or kind)
