"""Accounts made through the bridge are real: they log in with matrix-nio and sync."""

from __future__ import annotations

from nio import AsyncClient, LoginError, SyncResponse

from matrix.accounts import ensure_local_user
from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.matrix_users import logged_in, new_person


async def test_user_created_through_the_bridge_logs_in_and_syncs(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    user_id, password = await new_person(bot, region, "pupil")
    async with logged_in(region, user_id, password) as client:
        sync = await client.sync(timeout=0, full_state=True)
        assert isinstance(sync, SyncResponse), sync
        assert client.user_id == user_id


async def test_ensuring_again_keeps_the_password_and_updates_the_name(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    user_id, password = await new_person(bot, region, "teacher")
    created = await ensure_local_user(
        bot, user_id, display_name="Мария Ивановна", password="another-password-1"
    )
    assert created is False
    assert (await bot.admin_get_user(user_id) or {})["displayname"] == "Мария Ивановна"
    async with logged_in(region, user_id, password):
        pass  # the original password still works
    client = AsyncClient(region.settings.homeserver_url, user_id)
    try:
        assert isinstance(await client.login("another-password-1"), LoginError)
    finally:
        await client.close()


async def test_region_admin_printed_by_deploy_logs_in(region: LocalDeployment) -> None:
    s = region.settings
    async with logged_in(
        region, s.region_admin_user_id, s.region_admin_password.get_secret_value()
    ) as client:
        assert isinstance(await client.sync(timeout=0), SyncResponse)
