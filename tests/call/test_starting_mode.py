"""How a new call starts, asked of the real provisioning service; no answer is a lesson.

The parents chat that starts open is in `test_meeting_mode.py`, with a real class.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from parta.deployment import LocalDeployment
from tests.harness.ports import free_ports
from widgets.call.moderation import CallMode
from widgets.call.starting_mode import CallStart, ModeUnknown, ProvisioningCallModes, _Answer


async def test_a_room_parta_does_not_manage_starts_as_a_lesson(region: LocalDeployment) -> None:
    modes = ProvisioningCallModes.from_settings(region.settings)
    try:
        room_id = "!somebody-elses:" + region.settings.server_name
        assert await modes.starting(room_id) == CallStart(CallMode.LESSON)
    finally:
        await modes.close()


async def test_without_an_answer_the_service_is_told_why(region: LocalDeployment) -> None:
    (closed,) = free_ports(1)
    wrong_token = ProvisioningCallModes(
        httpx.AsyncClient(base_url=region.settings.provisioning_url), "not-the-token"
    )
    nobody = ProvisioningCallModes(httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed}"), "x")
    for modes, reason in ((wrong_token, "HTTP 403"), (nobody, "did not answer")):
        try:
            with pytest.raises(ModeUnknown, match=reason):
                await modes.starting("!room:" + region.settings.server_name)
        finally:
            await modes.close()


def test_a_broadcast_s_title_and_end_are_read_strictly_and_may_be_missing() -> None:
    """A provisioning service older than the recording sends neither; a newer one sends a
    title of at most 200 characters and an ISO 8601 end with its zone, nothing looser."""
    base = {"room_id": "!r:hs", "mode": "lesson"}
    older = _Answer.model_validate_json(
        json.dumps({**base, "broadcast": {"id": 3, "speakers": ["@s:hs"]}})
    )
    assert older.broadcast is not None
    assert (older.broadcast.title, older.broadcast.ends_at) == ("", None)
    live = {"id": 3, "speakers": [], "title": "Урок", "ends_at": "2027-09-01T10:00:00+03:00"}
    newer = _Answer.model_validate_json(json.dumps({**base, "broadcast": live}))
    assert newer.broadcast is not None and newer.broadcast.ends_at == datetime(
        2027, 9, 1, 7, tzinfo=UTC
    )
    for wrong in (
        {"ends_at": 1_800_000_000},  # a number is not ISO 8601
        {"ends_at": "2027-09-01T10:00:00"},  # no zone: whose ten o'clock?
        {"ends_at": "soon"},
        {"title": 7},
        {"title": "я" * 201},
    ):
        broadcast = {"id": 3, "speakers": [], **wrong}
        with pytest.raises(ValidationError):
            _Answer.model_validate_json(json.dumps({**base, "broadcast": broadcast}))
