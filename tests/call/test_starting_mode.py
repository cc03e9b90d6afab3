"""How a new call starts, asked of the real provisioning service; no answer is a lesson.

The parents chat that starts open is in `test_meeting_mode.py`, with a real class.
"""

from __future__ import annotations

import httpx
import pytest

from parta.deployment import LocalDeployment
from tests.harness.ports import free_ports
from widgets.call.moderation import CallMode
from widgets.call.starting_mode import CallStart, ModeUnknown, ProvisioningCallModes


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
