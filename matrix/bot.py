"""Parta's bot: the appservice sender, made a Synapse server admin once.

The bot creates every managed room and places people with Synapse's admin API, so it
needs server-admin rights. Synapse has no setting for that; the bridge bootstraps it:
a throw-away admin is registered with the shared secret, grants the bot admin rights,
and is deactivated (and erased) at once. After that the as_token alone is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from matrix.client import MatrixClient, path
from matrix.errors import Forbidden, NotFound

log = logging.getLogger(__name__)


async def _register_with_shared_secret(
    client: MatrixClient, shared_secret: str, localpart: str, password: str
) -> str:
    """Register an admin account with Synapse's shared-secret API; return its access token."""
    endpoint = path("register", base="/_synapse/admin/v1")
    nonce = (await client.request("GET", endpoint, authenticated=False))["nonce"]
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"admin"]))
    answer = await client.request(
        "POST",
        endpoint,
        body={
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": True,
            "mac": mac.hexdigest(),
        },
        authenticated=False,
    )
    return str(answer["access_token"])


async def ensure_bot_is_server_admin(
    client: MatrixClient, *, bot_user_id: str, bot_localpart: str, shared_secret: str
) -> bool:
    """Make sure the bot's account exists and is a server admin; True if granted now."""
    await client.register_appservice_user(bot_localpart)
    try:
        if await client.admin_is_server_admin(bot_user_id):
            await _deactivate_leftover_helpers(client, bot_localpart)
            return False
    except (Forbidden, NotFound):
        pass  # not an admin yet: Synapse refuses the admin API to non-admins
    helper_localpart = f"{bot_localpart}_setup_{secrets.token_hex(4)}"
    helper_id = f"@{helper_localpart}:{bot_user_id.split(':', 1)[1]}"
    token = await _register_with_shared_secret(
        client, shared_secret, helper_localpart, secrets.token_urlsafe(24)
    )
    async with MatrixClient(client.homeserver_url, token) as helper:
        await helper.request(
            "PUT",
            path("users", bot_user_id, "admin", base="/_synapse/admin/v1"),
            body={"admin": True},
        )
    await client.admin_deactivate(helper_id, erase=True)
    await _deactivate_leftover_helpers(client, bot_localpart)
    log.info("granted server-admin rights to the bot", extra={"bot": bot_user_id})
    return True


async def _deactivate_leftover_helpers(client: MatrixClient, bot_localpart: str) -> None:
    """Deactivate throw-away admins an interrupted bootstrap left behind."""
    prefix = f"@{bot_localpart}_setup_"
    answer = await client.request(
        "GET",
        path("users", base="/_synapse/admin/v2"),
        query={"name": f"{bot_localpart}_setup_", "deactivated": "false", "limit": "100"},
    )
    for user in answer.get("users", []):
        name = str(user.get("name", ""))
        if name.startswith(prefix) and not user.get("deactivated"):
            await client.admin_deactivate(name, erase=True)
            log.warning("deactivated a leftover bootstrap admin", extra={"user": name})
