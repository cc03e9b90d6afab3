"""Helpers for tests that act as real people through matrix-nio."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from nio import AsyncClient, LoginResponse

from matrix.accounts import ensure_local_user
from matrix.client import MatrixClient, path
from parta.deployment import LocalDeployment


async def new_person(bot: MatrixClient, region: LocalDeployment, name: str) -> tuple[str, str]:
    """Create a fresh local account through the bridge; return (user ID, password)."""
    user_id = f"@{name}-{secrets.token_hex(3)}:{region.settings.server_name}"
    password = secrets.token_urlsafe(12)
    await ensure_local_user(bot, user_id, display_name=name.capitalize(), password=password)
    return user_id, password


@asynccontextmanager
async def logged_in(
    region: LocalDeployment, user_id: str, password: str
) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(region.settings.homeserver_url, user_id)
    try:
        response = await client.login(password, device_name="parta-tests")
        assert isinstance(response, LoginResponse), response
        yield client
    finally:
        await client.close()


async def openid_token(client: AsyncClient) -> dict[str, object]:
    """A Matrix OpenID token of the signed-in person, as a widget gets it from its client."""
    url = f"{client.homeserver}{path('user', client.user_id, 'openid', 'request_token')}"
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            url, json={}, headers={"Authorization": f"Bearer {client.access_token}"}
        )
    assert answer.status_code == 200, answer.text
    token: dict[str, object] = answer.json()
    return token
