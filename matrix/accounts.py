"""Local Matrix accounts, ensured through Synapse's admin API (safe to call again)."""

from __future__ import annotations

from matrix.client import MatrixClient


async def ensure_local_user(
    client: MatrixClient, user_id: str, *, display_name: str, password: str | None = None
) -> bool:
    """Create the account if it does not exist; True when it was created now.

    An existing account keeps its password (its owner may have changed it); only its
    display name is brought in line. `password=None` creates an account that cannot log
    in until a password is set, which is how imported rosters start.
    """
    existing = await client.admin_get_user(user_id)
    if existing is None:
        fields: dict[str, object] = {"displayname": display_name}
        if password is not None:
            fields["password"] = password
        await client.admin_put_user(user_id, fields)
        return True
    if existing.get("displayname") != display_name:
        await client.admin_put_user(user_id, {"displayname": display_name})
    return False
