"""What a call page and the SFU say to each other over the WebSocket, validated at the edge.

Every message is a JSON object with a `type`. The page speaks first (`join`, with the
OpenID token its Matrix client gave it); the SFU answers with an `offer` (its
`ice_servers` carry short-lived TURN credentials for this person when the region has
TURN, `widgets.call.turn`), and from then on with `state` whenever the call changes,
`error` when a request was refused (or `codec_unsupported`, with `user_id` and
`source`, when this page cannot decode a stream's codec), `attendance` and
`attendance_posted` for the teacher, and `removed` when a teacher removed the page's
person (with `reason: "not_a_member"` when they left the room). Besides its requests,
the page says which of its streams it fills (`sending`), before its `answer` and on
every change.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

USER_ID = r"^@[^:\s]{1,255}:[A-Za-z0-9.:\[\]-]{1,255}$"
ROOM_ID = r"^![^\s/]{1,255}$"  # since room version 12 a room ID has no server part


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenIDToken(BaseModel):
    """As the Widget API's `get_openid` (or `/openid/request_token`) returns it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    access_token: str = Field(min_length=1, max_length=512)
    matrix_server_name: str = Field(min_length=1, max_length=255)
    expires_in: float = Field(default=0, ge=0, le=86_400)
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme's name, not a secret


class Join(_Message):
    type: Literal["join"]
    room_id: str = Field(pattern=ROOM_ID)
    openid: OpenIDToken
    # Opened from a broadcast's widget (`broadcast_id` in the page's address); the
    # service asks provisioning whether it is live in the room before it counts.
    broadcast_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class EdgeLink(_Message):
    """An edge's first message on its link to a broadcast's origin (`edge`, `tickets`)."""

    type: Literal["link"]
    room_id: str = Field(pattern=ROOM_ID)
    proof: str = Field(min_length=1, max_length=2048)


edge_link_message: TypeAdapter[EdgeLink] = TypeAdapter(EdgeLink)


class Answer(_Message):
    type: Literal["answer"]
    sdp: str = Field(min_length=1, max_length=100_000)


class Sending(_Message):
    """Which of its three streams the page fills now (a camera turned off, a screen not
    shared). Only those get a slot, and so a tile, on other pages. It cannot widen what is
    forwarded: `CallState.may_forward` still decides that."""

    type: Literal["sending"]
    audio: bool
    camera: bool
    screen: bool


class RaiseHand(_Message):
    type: Literal["raise_hand"]


class LowerHand(_Message):
    type: Literal["lower_hand"]
    target: str | None = Field(default=None, pattern=USER_ID)  # None: one's own


class Floor(_Message):
    """The teacher gives (`grant`) or takes back (`revoke`) someone's floor."""

    type: Literal["grant", "revoke"]
    target: str = Field(pattern=USER_ID)


class MuteAll(_Message):
    type: Literal["mute_all"]


class Mute(_Message):
    """A moderator mutes someone (`mute`) until a moderator lifts it (`unmute`)."""

    type: Literal["mute", "unmute"]
    target: str = Field(pattern=USER_ID)


class Mode(_Message):
    """A moderator makes the call a lesson (the floor is given) or an open meeting."""

    type: Literal["mode"]
    mode: Literal["lesson", "open"]


class Cameras(_Message):
    type: Literal["cameras"]
    allowed: bool


class Screen(_Message):
    type: Literal["screen"]
    target: str = Field(pattern=USER_ID)
    allowed: bool


class Remove(_Message):
    type: Literal["remove"]
    target: str = Field(pattern=USER_ID)


class Attendance(_Message):
    type: Literal["attendance"]


class PostAttendance(_Message):
    """The teacher asks the bot to post the attendance into the room. It is written in
    the deployment's language (`PARTA_LANGUAGE`), not the page's: the class reads it."""

    type: Literal["post_attendance"]


EVENT_ID = r"^\$[^\s/]{1,255}$"


class Present(_Message):
    """Show a document of the call's room (a file message's event ID) to everyone."""

    type: Literal["present"]
    event_id: str = Field(pattern=EVENT_ID)


class PresentPage(_Message):
    type: Literal["present_page"]
    page: int = Field(ge=1, le=10_000)


class StopPresenting(_Message):
    type: Literal["stop_presenting"]


PageMessage = Annotated[
    Answer
    | Sending
    | RaiseHand
    | LowerHand
    | Floor
    | MuteAll
    | Mute
    | Mode
    | Cameras
    | Screen
    | Remove
    | Attendance
    | PostAttendance
    | Present
    | PresentPage
    | StopPresenting,
    Field(discriminator="type"),
]
page_message: TypeAdapter[PageMessage] = TypeAdapter(PageMessage)
join_message: TypeAdapter[Join] = TypeAdapter(Join)


def error(reason: str) -> dict[str, Any]:
    """A refusal the page shows in its reader's language (it knows every `reason`)."""
    return {"type": "error", "reason": reason}
