"""A call's moderation state on disk, so a lesson survives a restart of the widget service.

Each room's `CallState` (its mode, who holds the floor and who is muted, the hand queue
with its order, screen and camera permissions, who was removed, the attendance visits)
is kept as one JSON file under the service's state directory (`Settings.call_state_dir`),
named by a hash of the room ID. Media is not kept: after a restart every page reconnects
(the page retries with backoff) and gets a new peer connection, and `CallState.join` puts
each person back into the state they had.

Writes are atomic (a temporary file in the same directory, flushed, then `os.replace`)
and debounced: a burst of decisions becomes one write per room per `debounce_s`. While a
call has people in it, its file is rewritten every `refresh_s` even without changes, so
the file's age says how long the call has been empty (or the service down). A state is
loaded lazily, the first time its room's call is joined after a start, and dropped when
it is older than `max_age_s`: the same rule as an empty call kept in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foundation.files import write_atomically
from foundation.lifecycle import cancel_and_wait
from widgets.call.moderation import CallMode, CallState, Participant, Presentation, Visit

log = logging.getLogger(__name__)

FORMAT = 1
MAX_FILE_BYTES = 4 * 1024 * 1024  # a class of 40 over a long day is far below this
DEFAULT_DEBOUNCE_S = 0.5
DEFAULT_REFRESH_S = 60.0


def room_file_stem(room_id: str) -> str:
    """A room's files under the state directory: named by a hash, never by the ID itself."""
    return hashlib.sha256(room_id.encode()).hexdigest()[:40]


def dump_state(state: CallState, *, saved_at: float) -> dict[str, Any]:
    """What of a call is worth keeping: decisions and attendance, not connections.

    `spoke_at` is left out: it is the SFU's monotonic clock, meaningless in another process.
    """
    return {
        "format": FORMAT,
        "room_id": state.room_id,
        "saved_at": saved_at,
        "cameras_allowed": state.cameras_allowed,
        "mode": state.mode.value,
        "broadcast_id": state.broadcast_id,
        "stage": sorted(state.stage),
        "removed": sorted(state.removed),
        "presentation": state.presentation.as_dict() if state.presentation else None,
        "participants": [
            {
                "user_id": p.user_id,
                "display_name": p.display_name,
                "moderator": p.moderator,
                "joined_at": p.joined_at,
                "hand_raised_at": p.hand_raised_at,
                "has_floor": p.has_floor,
                "may_share_screen": p.may_share_screen,
                "muted": p.muted,
            }
            for p in state.participants.values()
        ],
        "visits": [
            {
                "user_id": v.user_id,
                "display_name": v.display_name,
                "joined_at": v.joined_at,
                "left_at": v.left_at,
            }
            for v in state.visits
        ],
    }


def load_state(data: dict[str, Any], *, last_n: int) -> CallState:
    """The call as it was saved, with nobody connected: each person rejoins into it.

    A visit still open when the file was written (the service stopped without seeing the
    page go) ends at `saved_at`, the last moment the service knew the call. A file
    written before calls had modes (and mutes) is a lesson with nobody muted.

    Raises:
        ValueError: not a call state of this format.
    """
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown call state format {data.get('format')!r}")
    saved_at = float(data["saved_at"])
    state = CallState(str(data["room_id"]), last_n=last_n)
    state.cameras_allowed = bool(data["cameras_allowed"])
    state.mode = CallMode(data.get("mode", CallMode.LESSON.value))  # ValueError if unknown
    broadcast_id = data.get("broadcast_id")
    if broadcast_id is not None:  # files of calls before broadcasts have none
        state.start_broadcast(int(broadcast_id), (str(u) for u in data.get("stage", ())))
        state.mode = CallMode(data.get("mode", CallMode.LESSON.value))
    state.removed = {str(user) for user in data["removed"]}
    shown = data.get("presentation")
    if isinstance(shown, dict):
        state.presentation = Presentation(
            str(shown["presenter"]), str(shown["event_id"]), int(shown["page"])
        )
    for row in data["participants"]:
        hand = row["hand_raised_at"]
        participant = Participant(
            user_id=str(row["user_id"]),
            display_name=str(row["display_name"]),
            moderator=bool(row["moderator"]),
            joined_at=float(row["joined_at"]),
            connected=False,
            hand_raised_at=float(hand) if hand is not None else None,
            has_floor=bool(row["has_floor"]),
            may_share_screen=bool(row["may_share_screen"]),
            muted=bool(row.get("muted", False)),
        )
        state.participants[participant.user_id] = participant
    for row in data["visits"]:
        left = row["left_at"]
        state.visits.append(
            Visit(
                user_id=str(row["user_id"]),
                display_name=str(row["display_name"]),
                joined_at=float(row["joined_at"]),
                left_at=float(left) if left is not None else max(saved_at, row["joined_at"]),
            )
        )
    return state


class CallStore:
    """Keeps each room's `CallState` on disk; `start()` its writer, `stop()` flushes it."""

    def __init__(
        self,
        directory: Path,
        *,
        max_age_s: float,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        refresh_s: float = DEFAULT_REFRESH_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.max_age_s = max_age_s
        self.debounce_s = debounce_s
        self.refresh_s = refresh_s
        self.clock = clock
        self.writes = 0
        self._dirty: dict[str, CallState] = {}
        self._live: dict[str, CallState] = {}  # calls with people in them: refreshed
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()  # one write at a time: a newer state lands last
        self._task: asyncio.Task[None] | None = None

    def path_for(self, room_id: str) -> Path:
        return self.directory / f"{room_file_stem(room_id)}.json"

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._task is None:
            self._task = asyncio.create_task(self._writer(), name="call-state-writer")

    async def stop(self) -> None:
        """Stop the writer and write what is pending, so a clean stop loses nothing."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self.flush()

    # --- reading ----------------------------------------------------------------------

    def load(self, room_id: str, *, last_n: int) -> CallState | None:
        """The room's saved call, if there is one young enough; a stale one is deleted."""
        path = self.path_for(room_id)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("room_id") != room_id:
                raise ValueError("written for another room")
            age = self.clock() - float(data["saved_at"])
            if age > self.max_age_s:
                log.info("the saved call of %s is %.0f s old: starting afresh", room_id, age)
                self.forget(room_id)
                return None
            state = load_state(data, last_n=last_n)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("the saved call of %s is unreadable (%s): starting afresh", room_id, exc)
            self.forget(room_id)
            return None
        log.info("the call of %s resumes its saved state", room_id)
        return state

    # --- writing ----------------------------------------------------------------------

    def changed(self, state: CallState) -> None:
        """The call changed: write it soon (debounced)."""
        self._dirty[state.room_id] = state
        if any(p.connected for p in state.participants.values()):
            self._live[state.room_id] = state
        else:
            self._live.pop(state.room_id, None)
        self._wake.set()

    def forget(self, room_id: str) -> None:
        """The call is over (empty too long): its file goes."""
        self._dirty.pop(room_id, None)
        self._live.pop(room_id, None)
        with contextlib.suppress(FileNotFoundError):
            self.path_for(room_id).unlink()

    async def let_go(self, state: CallState) -> None:
        """Write the call now and never again: another widget process takes it over.

        Raises:
            OSError: the state could not be written (the other process starts it afresh).
        """
        self._dirty.pop(state.room_id, None)
        self._live.pop(state.room_id, None)
        async with self._writing:  # after a flush under way, which may hold an older state
            text = json.dumps(dump_state(state, saved_at=self.clock()), ensure_ascii=False)
            await asyncio.to_thread(write_atomically, self.path_for(state.room_id), text)
            self.writes += 1

    async def flush(self) -> None:
        """Write every pending state now."""
        async with self._writing:
            await self._flush()

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        now = self.clock()
        for room_id, state in dirty.items():
            text = json.dumps(dump_state(state, saved_at=now), ensure_ascii=False)
            try:
                await asyncio.to_thread(write_atomically, self.path_for(room_id), text)
            except OSError as exc:
                log.error("could not save the call of %s: %s", room_id, exc)
                self._dirty.setdefault(room_id, state)  # try again with the next write
                continue
            self.writes += 1

    async def _writer(self) -> None:
        while True:
            # Not `wait_for`: on Python 3.11 it can swallow the cancel that `stop()` sends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh_s):
                    await self._wake.wait()
            self._wake.clear()
            for room_id, state in self._live.items():
                self._dirty.setdefault(room_id, state)  # keep a live call's file young
            await asyncio.sleep(self.debounce_s)  # changes in this while: one write
            await self.flush()
