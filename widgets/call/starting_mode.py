"""How a room's call starts: a lesson, or an open meeting in a class's parents chat.

The call knows its room only by its Matrix ID; which kind of room that is (a class chat,
a class's parents chat, a family room) is the provisioning service's knowledge, kept in
its database (`managed_rooms.kind`). So when a call opens afresh (no saved state to
resume) the call service asks it, through its internal API with the token the services
share, as the documents widget asks for the library. Provisioning decides the mode from
the kind (`provisioning.services.calls.starting_call_mode`); the call's moderators switch
it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from foundation.settings import Settings
from widgets.call.moderation import CallMode

TIMEOUT = httpx.Timeout(5.0)  # a join waits for this answer: a slow one starts a lesson


class ModeUnknown(Exception):
    """The provisioning service did not say how the call starts (down, or misconfigured)."""


class _Broadcast(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int = Field(ge=1)
    speakers: list[Annotated[str, Field(max_length=255)]] = Field(max_length=100)
    # Both optional, for a provisioning service older than the recording (issue 21); when
    # given, a title as long as the form allows and an ISO 8601 time with its zone.
    title: str = Field(default="", max_length=200, strict=True)
    ends_at: AwareDatetime | None = Field(default=None, strict=True)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    room_id: str = Field(max_length=255)
    kind: str | None = Field(default=None, max_length=64)
    mode: Literal["lesson", "open"]
    broadcast: _Broadcast | None = None


@dataclass(frozen=True)
class CallStart:
    """How a call opens: its mode, and the broadcast whose stage is open in the room
    (its title names its recordings; the stage closes at `ends_at`, None: not said)."""

    mode: CallMode
    broadcast_id: int | None = None
    speakers: frozenset[str] = frozenset()
    title: str = ""
    ends_at: datetime | None = None


@dataclass
class ProvisioningCallModes:
    """Asks the provisioning service how a room's call starts (`/internal/calls/room`)."""

    http: httpx.AsyncClient  # base_url = the provisioning service
    token: str  # the appservice token the services share

    @classmethod
    def from_settings(cls, settings: Settings) -> ProvisioningCallModes:
        return cls(
            httpx.AsyncClient(base_url=settings.provisioning_url, timeout=TIMEOUT),
            settings.as_token.get_secret_value(),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def starting(self, room_id: str) -> CallStart:
        """The mode the room's call starts in, and its live broadcast if any.

        Raises:
            ModeUnknown: no usable answer; the caller starts a lesson (the safe side:
                nobody speaks without the floor) and the moderator may open it.
        """
        try:
            response = await self.http.get(
                "/internal/calls/room",
                params={"room_id": room_id},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            raise ModeUnknown(f"the provisioning service did not answer: {exc!r}") from exc
        if response.status_code != 200:
            raise ModeUnknown(f"the provisioning service answered HTTP {response.status_code}")
        try:
            answer = _Answer.model_validate_json(response.content)
        except ValidationError as exc:
            raise ModeUnknown(f"the provisioning service's answer is not one: {exc}") from exc
        if answer.room_id != room_id:
            raise ModeUnknown("the provisioning service answered for another room")
        if answer.broadcast is None:
            return CallStart(CallMode(answer.mode))
        live = answer.broadcast
        return CallStart(
            CallMode.LESSON, live.id, frozenset(live.speakers), live.title, live.ends_at
        )
