"""Local Matrix accounts, ensured through Synapse's admin API (safe to call again)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import httpx

from matrix.client import JsonDict, MatrixClient, TokenClient, path
from matrix.errors import MatrixError, NotFound


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


async def local_user_ids(client: MatrixClient) -> set[str]:
    """Every (non-guest) account on the homeserver, read with the admin API in pages of 500."""
    users: set[str] = set()
    page_from: str | None = "0"
    for _ in range(10_000):  # bounded: 5 million accounts
        if page_from is None:
            break
        answer = await client.request(
            "GET",
            path("users", base="/_synapse/admin/v2"),
            query={"from": page_from, "limit": "500", "guests": "false"},
        )
        users.update(str(u["name"]) for u in answer.get("users", []))
        next_page = answer.get("next_token")
        page_from = str(next_page) if next_page is not None else None
    return users


async def login_as(client: MatrixClient, user_id: str, *, valid_until_ms: int) -> str:
    """An access token of a local user's own, from Synapse's admin "login as user".

    The token expires at `valid_until_ms` (ms since the epoch) and leaves no device in the
    user's account list, so that acting for a person needs no password of theirs.
    """
    answer = await client.request(
        "POST",
        path("users", user_id, "login", base="/_synapse/admin/v1"),
        body={"valid_until_ms": valid_until_ms},
    )
    return str(answer["access_token"])


@contextlib.asynccontextmanager
async def acting_as(
    client: MatrixClient, user_id: str, *, lifetime_s: float = 300.0
) -> AsyncIterator[TokenClient]:
    """A client with a local person's own short-lived token, logged out afterwards.

    For one action a person takes through Parta's UI that must be theirs in Matrix (a
    poll they start): the appservice's identity assertion (`?user_id=`) only covers its
    own namespace, and this leaves no token behind once the action is done.
    """
    token = await login_as(client, user_id, valid_until_ms=int((time.time() + lifetime_s) * 1000))
    person = client.with_token(token)
    try:
        yield person
    finally:
        with contextlib.suppress(MatrixError, httpx.HTTPError):  # it expires by itself anyway
            await person.request("POST", path("logout"), body={})


# --- Phone numbers (the `msisdn` third-party ID) ----------------------------------------


def msisdn(phone_e164: str) -> str:
    """Synapse's form of a phone number: E.164 without the "+" (as `m.id.phone` logins
    make it from a country and a number)."""
    return phone_e164.removeprefix("+")


def phone_threepid(phone_e164: str) -> JsonDict:
    """The `threepids` entry of the admin API's user PUT for a checked phone number."""
    return {"medium": "msisdn", "address": msisdn(phone_e164)}


def phone_identifier(phone_e164: str) -> JsonDict:
    """A `/login` identifier for a phone number (what Element sends as `m.id.phone` is
    turned into this by the homeserver)."""
    return {"type": "m.id.thirdparty", "medium": "msisdn", "address": msisdn(phone_e164)}


async def user_id_for_phone(client: MatrixClient, phone_e164: str) -> str | None:
    """The local account that signs in with this phone number, if any."""
    try:
        answer = await client.request(
            "GET",
            path("threepid", "msisdn", "users", msisdn(phone_e164), base="/_synapse/admin/v1"),
        )
    except NotFound:
        return None
    return str(answer["user_id"]) if answer.get("user_id") else None


async def reset_password(client: MatrixClient, user_id: str, new_password: str) -> None:
    """Set a new password and log out every session of the account (a reset means the
    old password may be known to someone else)."""
    await client.request(
        "POST",
        path("reset_password", user_id, base="/_synapse/admin/v1"),
        body={"new_password": new_password, "logout_devices": True},
        idempotent=True,
    )
