"""The REST API as tests drive it: create a row, run the reconciler now."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness.waiting import eventually


async def created(api: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to `url`, which must answer 201; what it made."""
    answer = await api.post(url, json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def sync_now(api: httpx.AsyncClient, *, within: float = 120) -> None:
    """Run the reconciler now, as a region administrator (`api` carries the token); a run
    the service started itself may hold it for a moment (409), so ask again."""

    async def ran() -> bool:
        answer = await api.post("/api/v1/sync")
        assert answer.status_code in (200, 409), answer.text
        return answer.status_code == 200

    await eventually(ran, "the reconciler to run", within=within)
