"""The bridge's Matrix client: typed errors, identity assertion, retries."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pytest
from nio import Api

from matrix import media
from matrix.bot import _register_with_shared_secret, ensure_bot_is_server_admin
from matrix.client import MatrixClient, RetryPolicy
from matrix.errors import (
    Exclusive,
    Forbidden,
    HomeserverUnavailable,
    LimitExceeded,
    MatrixError,
    NotFound,
    UnknownToken,
    UserInUse,
    error_from_response,
)
from parta.deployment import LocalDeployment
from tests.harness.ports import free_ports
from tests.matrix_users import logged_in, new_person


async def test_the_bot_is_a_server_admin_and_asserts_identities(
    bot: MatrixClient, region: LocalDeployment
) -> None:
    s = region.settings
    assert await bot.whoami() == s.bot_user_id
    assert await bot.admin_is_server_admin(s.bot_user_id)
    # The region admin is an ordinary account, not a homeserver admin.
    assert not await bot.admin_is_server_admin(s.region_admin_user_id)
    helper = f"{s.bot_localpart}-helper"
    await bot.register_appservice_user(helper)
    helper_id = f"@{helper}:{s.server_name}"
    assert await bot.whoami(as_user=helper_id) == helper_id
    # Identity assertion is limited to the appservice's namespace.
    person_id, _ = await new_person(bot, region, "pupil")
    with pytest.raises(Forbidden):
        await bot.whoami(as_user=person_id)


async def test_errors_are_typed_by_errcode(bot: MatrixClient, region: LocalDeployment) -> None:
    with pytest.raises(Exclusive):  # a person's name in Parta's reserved namespace
        await bot.request(
            "POST",
            "/_matrix/client/v3/register",
            body={"type": "m.login.application_service", "username": "someone-else"},
        )
    with pytest.raises(UserInUse):
        await bot.request(
            "POST",
            "/_matrix/client/v3/register",
            body={"type": "m.login.application_service", "username": region.settings.bot_localpart},
        )
    with pytest.raises((Forbidden, NotFound)):
        await bot.call_api(Api.room_get_state("", "!doesnotexist"))
    async with MatrixClient(region.settings.homeserver_url, "not-a-token") as stranger:
        with pytest.raises(UnknownToken):
            await stranger.whoami()


async def test_rate_limits_are_waited_out_as_the_homeserver_asks(
    bot: MatrixClient, region: LocalDeployment
) -> None:
    """Synapse's failed-login limit answers 429 with retry_after_ms; the client waits it out."""
    user_id, _ = await new_person(bot, region, "pupil")
    wrong = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": "wrong-password",
    }
    impatient = RetryPolicy(attempts=1)
    async with MatrixClient(region.settings.homeserver_url, "", retry=impatient) as client:
        limited: LimitExceeded | None = None
        for _ in range(10):
            try:
                await client.request("POST", "/_matrix/client/v3/login", body=wrong)
            except LimitExceeded as exc:
                limited = exc
                break
            except Forbidden:
                continue
        assert limited is not None, "Synapse never rate-limited the failed logins"
    wait_ms = limited.body["retry_after_ms"]
    patient = RetryPolicy(attempts=4, deadline=3 * wait_ms / 1000 + 10)
    async with MatrixClient(region.settings.homeserver_url, "", retry=patient) as client:
        started = time.monotonic()
        with pytest.raises(Forbidden):  # after waiting, the wrong password is judged again
            await client.request("POST", "/_matrix/client/v3/login", body=wrong)
        assert time.monotonic() - started >= wait_ms / 1000 * 0.9


async def test_an_unreachable_homeserver_fails_within_the_deadline() -> None:
    (port,) = free_ports(1)
    policy = RetryPolicy(attempts=10, base_delay=0.05, deadline=1.0)
    async with MatrixClient(f"http://127.0.0.1:{port}", "token", retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(HomeserverUnavailable, match="cannot connect"):
            await client.whoami()
        assert time.monotonic() - started < 3


def _flaky(failures: list[int]) -> httpx.MockTransport:
    """An in-memory transport answering the given 5xx statuses first, then success."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if failures:
            return httpx.Response(failures.pop(0), json={"errcode": "M_UNKNOWN", "error": "busy"})
        return httpx.Response(200, json={"user_id": "@parta:localhost"})

    return httpx.MockTransport(handle)


async def test_server_errors_are_retried_only_where_that_is_safe() -> None:
    policy = RetryPolicy(base_delay=0.01)
    async with MatrixClient(
        "http://hs.invalid", "t", retry=policy, transport=_flaky([502, 503])
    ) as client:
        assert await client.whoami() == "@parta:localhost"  # GET: retried twice
    async with MatrixClient("http://hs.invalid", "t", retry=policy, transport=_flaky([502])) as c:
        with pytest.raises(MatrixError) as raised:  # a plain POST could act twice: not retried
            await c.request("POST", "/_matrix/client/v3/createRoom", body={})
        assert raised.value.status == 502


def test_unknown_errcodes_keep_their_code() -> None:
    error = error_from_response(400, {"errcode": "M_SOMETHING_NEW", "error": "new"})
    assert type(error) is MatrixError
    assert (error.errcode, error.error) == ("M_SOMETHING_NEW", "new")


async def test_secrets_never_appear_in_request_urls(region: LocalDeployment) -> None:
    token = secrets.token_hex(8)
    urls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        assert request.headers["authorization"] == f"Bearer {token}"
        return httpx.Response(200, json={"user_id": "@parta:localhost"})

    async with MatrixClient("http://hs.invalid", token, transport=httpx.MockTransport(handle)) as c:
        await c.whoami()
    assert urls and all(token not in url for url in urls)


async def test_a_bootstrap_admin_left_by_a_crash_is_deactivated(
    bot: MatrixClient, region: LocalDeployment
) -> None:
    """The bridge died between making its helper admin and removing it: next start cleans up."""
    s = region.settings
    leftover = f"{s.bot_localpart}_setup_crashed{secrets.token_hex(2)}"
    await _register_with_shared_secret(
        bot, s.registration_shared_secret.get_secret_value(), leftover, secrets.token_hex(12)
    )
    leftover_id = f"@{leftover}:{s.server_name}"
    assert (await bot.admin_get_user(leftover_id) or {})["admin"] is True
    granted = await ensure_bot_is_server_admin(
        bot,
        bot_user_id=s.bot_user_id,
        bot_localpart=s.bot_localpart,
        shared_secret=s.registration_shared_secret.get_secret_value(),
    )
    assert granted is False  # the bot already was an admin
    assert (await bot.admin_get_user(leftover_id) or {})["deactivated"] is True


async def test_two_creations_of_one_account_at_once_both_succeed(
    bot: MatrixClient, region: LocalDeployment
) -> None:
    """A registration (with a password: slow, bcrypt) and the reconciler (display name only)
    create the same new account at once: neither may fail, and the password holds."""
    users = [f"@racer-{secrets.token_hex(3)}:{region.settings.server_name}" for _ in range(5)]
    password = secrets.token_urlsafe(12)
    await asyncio.gather(
        *(bot.admin_put_user(u, {"password": password, "displayname": "Р"}) for u in users),
        *(bot.admin_put_user(u, {"displayname": "Р"}) for u in users),
    )
    for user in users:
        async with logged_in(region, user, password):
            pass


async def test_a_file_uploaded_to_the_media_repository_downloads_unchanged(
    bot: MatrixClient, region: LocalDeployment
) -> None:
    data = b"%PDF-1.4\n" + secrets.token_bytes(2048)
    uri = await media.upload(bot, "Дроби 5 класс.pdf", "application/pdf", data)
    server, _, media_id = uri.removeprefix("mxc://").partition("/")
    assert uri.startswith("mxc://") and server == region.settings.server_name and media_id
    # Authenticated media (MSC3916): downloads go through the client API with a token.
    s = region.settings
    async with httpx.AsyncClient(base_url=s.homeserver_url) as http:
        answer = await http.get(
            f"/_matrix/client/v1/media/download/{server}/{media_id}",
            headers={"Authorization": f"Bearer {s.as_token.get_secret_value()}"},
        )
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-type"].startswith("application/pdf")
    with pytest.raises(MatrixError) as refused:  # errors are typed, as for every call
        async with MatrixClient(region.settings.homeserver_url, "not-a-token") as stranger:
            await media.upload(stranger, "x.pdf", "application/pdf", b"x")
    assert refused.value.errcode == "M_UNKNOWN_TOKEN"
