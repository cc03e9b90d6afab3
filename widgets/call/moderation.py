"""One call's state and who may send what: the teacher decides, the SFU enforces it.

Sans-I/O, like the school policy's rules: the signalling server turns a participant's
message into a method call here, sends everyone the new `public()` view, and asks
`may_forward` before each media stream goes anywhere. Nothing in this module trusts
the page: a pupil whose page "enables" the microphone is still not forwarded.

Who is a moderator comes from the Matrix room's power (`RoomState.is_moderator`): power
at least the room's `kick` level, which provisioning gives the class's teachers. So a call
works in any room, managed by Parta or not. In a room where nobody but the bot has that
power (a family room, a DM) the floor is open to all (`floor_is_open`).

A call has a mode (`CallMode`), which its moderators switch: a lesson, where the floor is
given, or an open meeting (a parent meeting), where everyone may speak and show their
camera unless a moderator muted them. A moderator's mute holds until a moderator lifts
it: nothing a participant sends, and no reconnection, undoes it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from matrix.room_state import RoomState

DEFAULT_LAST_N = 6


class Source(enum.StrEnum):
    """What a participant may send: each is a separate media stream in the SFU."""

    AUDIO = "audio"
    CAMERA = "camera"
    SCREEN = "screen"


class CallMode(enum.StrEnum):
    """How the call gives its voice: the moderators switch it (`CallState.set_mode`)."""

    LESSON = "lesson"  # only moderators and those given the floor speak
    OPEN = "open"  # everyone speaks and shows their camera, unless a moderator muted them


class CallError(Exception):
    """A participant asked for something the call does not allow; `reason` names it.

    The page shows the reason in the reader's language; the SFU changes nothing.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def floor_is_open(room: RoomState, *, bot_user_id: str) -> bool:
    """Nobody but Parta's bot has moderator power in the room, so nobody could ever give
    the floor there (a parent and child's family room, a DM the bot made): everyone speaks.

    Read from the room's power, not from who is in the call: a class whose teacher has
    not come yet stays moderated. A room without a power-levels event (which neither
    Parta nor a Matrix client makes) keeps its floor closed: the safe side.
    """
    if room.power_levels is None:
        return False
    if room.users_default >= room.kick_level:
        return False  # everyone moderates: every voice is heard anyway
    return not (room.users_with_level(room.kick_level) - {bot_user_id})


@dataclass
class Participant:
    user_id: str
    display_name: str
    moderator: bool
    joined_at: float
    connected: bool = True
    hand_raised_at: float | None = None
    has_floor: bool = False
    may_share_screen: bool = False
    # A moderator muted them: in an open meeting too, until a moderator lifts it (or gives
    # them the floor). Kept across reconnections, like the floor.
    muted: bool = False
    spoke_at: float | None = None  # the last time the SFU heard them (last-N video)


@dataclass(frozen=True)
class Visit:
    """One stretch of a participant in the call, for the teacher's attendance list."""

    user_id: str
    display_name: str
    joined_at: float
    left_at: float | None = None

    def seconds(self, now: float) -> float:
        return (self.left_at if self.left_at is not None else now) - self.joined_at


@dataclass(frozen=True)
class Presentation:
    """A document shown to everyone: a file message of the call's room, at one page.

    Every page opens the same file through the documents service with its own
    session, so each viewer's right to read it is checked for them.
    """

    presenter: str
    event_id: str
    page: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"presenter": self.presenter, "event_id": self.event_id, "page": self.page}


MAX_PAGE = 10_000


@dataclass
class CallState:
    """Everyone in one room's call, the teacher's decisions, and the attendance."""

    room_id: str
    last_n: int = DEFAULT_LAST_N
    cameras_allowed: bool = False  # pupils' cameras (moderators always may)
    # Nobody but the bot moderates the room (`floor_is_open`): everyone speaks, shows
    # their camera and shares their screen. Read from the room at each join and poll.
    open_floor: bool = False
    # Lesson or open meeting: chosen from the room's kind when the call starts (a class's
    # parents chat starts open), then by its moderators.
    mode: CallMode = CallMode.LESSON
    participants: dict[str, Participant] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)  # by a teacher, for the rest of this call
    visits: list[Visit] = field(default_factory=list)
    presentation: Presentation | None = None
    # A live broadcast in this room (issue 21): its speakers are on the stage and publish
    # camera, microphone and screen without being given the floor; everyone else is the
    # audience and only receives, unless a moderator gives them the floor (brings them on
    # the stage). The call stays a lesson: an audience of thousands never speaks at once.
    broadcast_id: int | None = None
    stage: frozenset[str] = frozenset()

    # --- coming and going -------------------------------------------------------------

    def join(self, user_id: str, display_name: str, *, moderator: bool, now: float) -> Participant:
        """Someone connects; someone who comes back (a dropped network) keeps their state.

        Raises:
            CallError("removed"): a teacher removed them from this call.
        """
        if user_id in self.removed:
            raise CallError("removed")
        participant = self.participants.get(user_id)
        if participant is None:
            participant = Participant(user_id, display_name, moderator, joined_at=now)
            self.participants[user_id] = participant
        elif participant.connected:
            return participant  # a second connection of the same person: nothing changes
        participant.connected = True
        participant.display_name = display_name
        participant.moderator = moderator  # power levels may have changed meanwhile
        self.visits.append(Visit(user_id, display_name, joined_at=now))
        return participant

    def leave(self, user_id: str, *, now: float) -> None:
        """The connection ended; hand, floor and permissions wait for their return."""
        participant = self.participants.get(user_id)
        if participant is None or not participant.connected:
            return
        participant.connected = False
        self._end_visit(user_id, now)

    def set_moderator(self, user_id: str, moderator: bool) -> bool:
        """The room's power levels changed: a teacher joined the class, or left it.

        A new moderator's hand is lowered (they need nobody's floor); a demoted one keeps
        no floor of their own, so they are muted like any pupil until given it.
        Returns whether anything changed.
        """
        participant = self.participants.get(user_id)
        if participant is None or participant.moderator == moderator:
            return False
        participant.moderator = moderator
        if moderator:
            participant.hand_raised_at = None
            participant.muted = False  # a moderator's voice is nobody else's to take
        else:
            participant.has_floor = False
            participant.may_share_screen = False
            if self.presentation is not None and self.presentation.presenter == user_id:
                self.presentation = None
        return True

    def left_room(self, user_id: str, *, now: float) -> bool:
        """They are no longer a member of the Matrix room (left, kicked, banned).

        Unlike `remove`, they may come back to the call once they are in the room again:
        the room decides, as it does at `join`. Returns whether they were in the call.
        """
        if user_id not in self.participants:
            return False
        self.leave(user_id, now=now)
        del self.participants[user_id]
        return True

    def _end_visit(self, user_id: str, now: float) -> None:
        for index in range(len(self.visits) - 1, -1, -1):
            visit = self.visits[index]
            if visit.user_id == user_id and visit.left_at is None:
                self.visits[index] = Visit(
                    visit.user_id, visit.display_name, visit.joined_at, left_at=now
                )
                return

    # --- a pupil's hand ---------------------------------------------------------------

    def raise_hand(self, user_id: str, *, now: float) -> None:
        participant = self._present(user_id)
        if participant.hand_raised_at is None and not participant.has_floor:
            participant.hand_raised_at = now

    def lower_hand(self, actor: str, target: str) -> None:
        """Anyone lowers their own hand; a moderator lowers anyone's."""
        if actor != target:
            self._moderator(actor)
        self._present(target).hand_raised_at = None

    def hand_queue(self) -> list[Participant]:
        """Raised hands in the order they were raised: the teacher's queue."""
        raised = [p for p in self.participants.values() if p.connected and p.hand_raised_at]
        return sorted(raised, key=lambda p: (p.hand_raised_at or 0.0, p.user_id))

    # --- the teacher's decisions ------------------------------------------------------

    def start_broadcast(self, broadcast_id: int, speakers: Iterable[str]) -> None:
        """The room's broadcast is live: its speakers take the stage, the rest listen."""
        self.broadcast_id, self.stage = broadcast_id, frozenset(speakers)
        self.mode = CallMode.LESSON

    def end_broadcast(self) -> None:
        """The broadcast is over: its speakers leave the stage (moderators stay so)."""
        self.broadcast_id, self.stage = None, frozenset()

    def set_mode(self, actor: str, mode: CallMode) -> None:
        """A moderator makes the call a lesson or an open meeting.

        Back in a lesson, only moderators and those given the floor speak: whoever spoke
        only because the meeting was open is silent again, with nothing else to undo.
        Mutes stay as they are, in both directions.

        Raises:
            CallError("only_moderator_switches_mode"): the page says so in words.
        """
        participant = self.participants.get(actor)
        if participant is None or not participant.moderator:
            raise CallError("only_moderator_switches_mode")
        if self.broadcast_id is not None and mode is CallMode.OPEN:
            raise CallError("broadcast_audience_listens")
        self.mode = mode

    def grant_floor(self, actor: str, target: str) -> None:
        """The teacher gives a pupil the floor: their microphone (and camera) is forwarded.

        It lifts a mute as well: giving someone the floor is letting them speak.
        """
        self._moderator(actor)
        participant = self._present(target)
        participant.has_floor = True
        participant.muted = False
        participant.hand_raised_at = None

    def revoke_floor(self, actor: str, target: str) -> None:
        self._moderator(actor)
        self._known(target).has_floor = False

    def mute_all(self, actor: str) -> None:
        """Everyone but the moderators loses the floor; raised hands stay in the queue.

        In an open meeting everyone but the moderators is muted as well (a lesson needs no
        mutes: without the floor nobody speaks there).
        """
        self._moderator(actor)
        for participant in self.participants.values():
            if not participant.moderator:
                participant.has_floor = False
                participant.muted = participant.muted or self.mode is CallMode.OPEN

    def mute(self, actor: str, target: str) -> None:
        """A moderator mutes someone, in any mode, until a moderator unmutes them.

        Raises:
            CallError("not_moderator"), CallError("not_in_call"),
            CallError("cannot_mute_moderator"): a moderator's voice is not another's to take.
        """
        self._moderator(actor)
        participant = self._known(target)
        if participant.moderator:
            raise CallError("cannot_mute_moderator")
        participant.muted = True
        participant.has_floor = False

    def unmute(self, actor: str, target: str) -> None:
        """A moderator lifts a mute: in an open meeting they speak again, in a lesson they
        still need the floor. Nobody lifts their own (they are no moderator)."""
        self._moderator(actor)
        self._known(target).muted = False

    def allow_cameras(self, actor: str, allowed: bool) -> None:
        self._moderator(actor)
        self.cameras_allowed = allowed

    def allow_screen(self, actor: str, target: str, allowed: bool) -> None:
        self._moderator(actor)
        self._known(target).may_share_screen = allowed

    def remove(self, actor: str, target: str, *, now: float) -> None:
        """A moderator removes a participant (not another moderator) for the rest of the call.

        Raises:
            CallError("not_moderator"), CallError("cannot_remove_moderator").
        """
        self._moderator(actor)
        participant = self._known(target)
        if participant.moderator:
            raise CallError("cannot_remove_moderator")
        self.leave(target, now=now)
        del self.participants[target]
        self.removed.add(target)
        if self.presentation is not None and self.presentation.presenter == target:
            self.presentation = None

    # --- showing a document -------------------------------------------------------------

    def present(self, actor: str, event_id: str) -> None:
        """Show a document to everyone, from its first page: a teacher, or whoever the
        teacher lets share their screen. It replaces what anyone was presenting."""
        participant = self._present(actor)
        if not (participant.moderator or participant.may_share_screen or self.open_floor):
            raise CallError("not_allowed_to_present")
        self.presentation = Presentation(actor, event_id, 1)

    def turn_page(self, actor: str, page: int) -> None:
        """The presenter (or a teacher) turns the page; everyone's page follows."""
        self._may_steer(actor)
        assert self.presentation is not None
        self.presentation = Presentation(
            self.presentation.presenter, self.presentation.event_id, max(1, min(page, MAX_PAGE))
        )

    def stop_presenting(self, actor: str) -> None:
        self._may_steer(actor)
        self.presentation = None

    def _may_steer(self, actor: str) -> None:
        participant = self._present(actor)
        if self.presentation is None:
            raise CallError("nothing_presented")
        if not participant.moderator and self.presentation.presenter != actor:
            raise CallError("not_presenter")

    # --- what the SFU forwards ---------------------------------------------------------

    def may_forward(self, user_id: str, source: Source) -> bool:
        """May this participant's stream of `source` go to anyone? Asked per stream."""
        participant = self.participants.get(user_id)
        if participant is None or not participant.connected:
            return False
        if participant.moderator:
            return True
        if user_id in self.stage:
            return not participant.muted if source is Source.AUDIO else True
        if self.open_floor and self.broadcast_id is None:
            return True
        meeting = self.mode is CallMode.OPEN
        if source is Source.AUDIO:
            return not participant.muted and (participant.has_floor or meeting)
        if source is Source.CAMERA:
            return participant.has_floor or self.cameras_allowed or meeting
        return participant.may_share_screen

    def note_speaking(self, user_id: str, *, now: float) -> None:
        """The SFU heard this participant (their forwarded audio was loud enough)."""
        participant = self.participants.get(user_id)
        if participant is not None and self.may_forward(user_id, Source.AUDIO):
            participant.spoke_at = now

    def video_for(self, subscriber: str) -> set[tuple[str, Source]]:
        """The video streams one participant receives, to keep a lesson within a pupil's
        bandwidth: the teachers' cameras, whoever holds the floor, every screen share,
        and the cameras of the last N who spoke. Others appear as names.
        """
        chosen: set[tuple[str, Source]] = set()
        speakers: list[Participant] = []
        for participant in self.participants.values():
            if participant.user_id == subscriber or not participant.connected:
                continue
            if self.may_forward(participant.user_id, Source.SCREEN):
                chosen.add((participant.user_id, Source.SCREEN))
            if not self.may_forward(participant.user_id, Source.CAMERA):
                continue
            if participant.moderator or participant.has_floor or participant.user_id in self.stage:
                chosen.add((participant.user_id, Source.CAMERA))
            else:
                speakers.append(participant)
        speakers.sort(key=lambda p: (-(p.spoke_at or 0.0), p.joined_at, p.user_id))
        room_left = max(0, self.last_n - sum(1 for _, s in chosen if s is Source.CAMERA))
        chosen.update((p.user_id, Source.CAMERA) for p in speakers[:room_left])
        return chosen

    def audio_for(self, subscriber: str) -> set[str]:
        """Whose audio a participant receives: everyone allowed to speak but themselves."""
        return {
            p.user_id
            for p in self.participants.values()
            if p.user_id != subscriber and self.may_forward(p.user_id, Source.AUDIO)
        }

    # --- what the pages show -----------------------------------------------------------

    def public(self) -> dict[str, Any]:
        """The state every page shows: people, hands in order, who holds the floor."""
        return {
            "room_id": self.room_id,
            "cameras_allowed": self.cameras_allowed,
            "open_floor": self.open_floor,
            "mode": self.mode.value,
            "broadcast_id": self.broadcast_id,
            "participants": [
                {
                    "user_id": p.user_id,
                    "display_name": p.display_name,
                    "moderator": p.moderator,
                    "on_stage": p.user_id in self.stage,
                    "has_floor": p.has_floor,
                    "muted": p.muted,
                    "hand_raised": p.hand_raised_at is not None,
                    "may_share_screen": p.may_share_screen or p.moderator or self.open_floor,
                    "audio": self.may_forward(p.user_id, Source.AUDIO),
                    "camera": self.may_forward(p.user_id, Source.CAMERA),
                }
                for p in sorted(self.participants.values(), key=lambda p: p.joined_at)
                if p.connected
            ],
            "hands": [p.user_id for p in self.hand_queue()],
            "presentation": self.presentation.as_dict() if self.presentation else None,
        }

    def attendance(self, *, now: float) -> list[dict[str, Any]]:
        """Who came, first arrival and last departure, the time spent in all, and how
        many stretches that took (`visits`: 1 means never dropped out and rejoined)."""
        people: dict[str, dict[str, Any]] = {}
        for visit in self.visits:
            row = people.setdefault(
                visit.user_id,
                {"user_id": visit.user_id, "display_name": visit.display_name,
                 "first_joined": visit.joined_at, "last_left": visit.left_at, "seconds": 0.0,
                 "visits": 0},
            )  # fmt: skip
            row["display_name"] = visit.display_name
            row["seconds"] += visit.seconds(now)
            row["last_left"] = visit.left_at
            row["visits"] += 1
        return sorted(people.values(), key=lambda row: (row["first_joined"], row["user_id"]))

    # --- checks --------------------------------------------------------------------------

    def _present(self, user_id: str) -> Participant:
        participant = self.participants.get(user_id)
        if participant is None or not participant.connected:
            raise CallError("not_in_call")
        return participant

    def _known(self, user_id: str) -> Participant:
        participant = self.participants.get(user_id)
        if participant is None:
            raise CallError("not_in_call")
        return participant

    def _moderator(self, user_id: str) -> None:
        participant = self.participants.get(user_id)
        if participant is None or not participant.moderator:
            raise CallError("not_moderator")
