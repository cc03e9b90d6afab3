"""The homeserver client Parta's bot uses: appservice token, identity assertion, retries.

matrix-nio's sans-I/O `Api` builds the standard client-server requests (paths, bodies);
this layer owns the transport so that it can add what nio's `AsyncClient` lacks for an
appservice: the `Authorization` header with the as_token, `?user_id=` identity assertion,
Synapse's admin API, retries that honour `retry_after_ms`, and typed exceptions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from nio import Api

from matrix.errors import (
    HomeserverUnavailable,
    HomeserverUnreachable,
    LimitExceeded,
    NotFound,
    UserInUse,
    error_from_response,
)

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
_IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """How long one call may keep trying before it gives up."""

    attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 15.0
    deadline: float = 300.0  # seconds for one call, all attempts included


def path(*parts: str, base: str = "/_matrix/client/v3") -> str:
    """Join percent-encoded path segments (room IDs and user IDs contain '!', '@', ':')."""
    return base + "".join("/" + quote(part, safe="") for part in parts)


class MatrixClient:
    """Calls a homeserver as the appservice bot, or as a user the appservice asserts."""

    def __init__(
        self,
        homeserver_url: str,
        access_token: str,
        *,
        timeout: float = 120.0,  # a loaded homeserver joining into big rooms is slow, not down
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.homeserver_url = homeserver_url.rstrip("/")
        self._token = access_token
        self._retry = retry or RetryPolicy()
        self.requests_sent = 0  # every HTTP attempt, for benchmarks and "no-op" checks
        self._http = httpx.AsyncClient(
            base_url=self.homeserver_url,
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
            headers={"User-Agent": "Parta-bridge"},
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def open_stream(
        self,
        url_path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Start an authenticated GET whose body the caller streams and closes (a file).

        Not retried: a file's bytes may already be on their way to a browser.

        Raises:
            MatrixError: the homeserver refused (`M_NOT_FOUND`, …); the response is closed.
            HomeserverUnavailable: it did not answer.
        """
        request = self._http.build_request(
            "GET", url_path, params=dict(query or {}),
            headers={"Authorization": f"Bearer {self._token}", **(headers or {})},
            timeout=httpx.Timeout(60.0, read=300.0),
        )  # fmt: skip
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise HomeserverUnavailable(0, "PARTA_HOMESERVER_UNAVAILABLE", str(exc)) from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise error_from_response(response.status_code, json_answer(response))
        return response

    def with_token(self, access_token: str) -> TokenClient:
        """A client calling as someone else (a token from `accounts.login_as`), over this
        client's connections."""
        return TokenClient(self._http, access_token)

    async def __aenter__(self) -> MatrixClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        url_path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        as_user: str | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
        content: bytes | None = None,
        content_type: str | None = None,
        read_timeout: float | None = None,
    ) -> JsonDict:
        """Send one request and return its JSON answer.

        Args:
            as_user: a user ID of the appservice's namespace (or any local user, for
                Synapse admins) to act as, by identity assertion (`?user_id=`).
            idempotent: whether a 5xx or a lost answer may be retried; defaults to True
                for GET/PUT/DELETE. A POST with a natural key (an alias) may pass True.
            content, content_type: a raw body (a file) to send instead of JSON `body`.
            read_timeout: seconds to wait on each read or write of this call, instead of
                the client's own (a large upload takes longer than an API call).

        Raises:
            MatrixError: the homeserver's error, typed by `errcode`; `LimitExceeded` when
                the homeserver still rate-limits the call once the retry budget is spent.
            HomeserverUnavailable: no usable answer within the retry policy's deadline.
        """
        params = dict(query or {})
        if as_user is not None:
            params["user_id"] = as_user
        headers = (
            {"Authorization": f"Bearer {self._token}"} if authenticated and self._token else {}
        )
        if content_type is not None:
            headers["Content-Type"] = content_type
        timeouts = httpx.Timeout(read_timeout, connect=5.0) if read_timeout is not None else None
        retry_unsafe = method in _IDEMPOTENT_METHODS if idempotent is None else idempotent
        policy = self._retry
        started = time.monotonic()
        last_problem = "no attempt made"
        rate_limited: LimitExceeded | None = None
        for attempt in range(1, policy.attempts + 1):
            delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
            self.requests_sent += 1
            try:
                response = await self._http.request(
                    method,
                    url_path,
                    json=dict(body) if body is not None else None,
                    content=content,
                    params=params,
                    headers=headers,
                    timeout=timeouts if timeouts is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.ConnectError as exc:  # the request never left: always safe to retry
                last_problem = f"cannot connect: {exc}"
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                if not retry_unsafe:
                    raise HomeserverUnavailable(
                        0, "PARTA_HOMESERVER_UNAVAILABLE", last_problem
                    ) from exc
            else:
                if response.status_code < 400:
                    return json_answer(response)
                error = error_from_response(response.status_code, json_answer(response))
                if isinstance(error, LimitExceeded):
                    rate_limited = error
                    retry_ms = error.body.get("retry_after_ms")
                    delay = retry_ms / 1000 if isinstance(retry_ms, int | float) else delay
                    last_problem = str(error)
                elif response.status_code >= 500 and retry_unsafe:
                    last_problem = str(error)
                else:
                    raise error
            remaining = policy.deadline - (time.monotonic() - started)
            if attempt == policy.attempts or delay > remaining:
                break
            log.info(
                "retrying %s %s in %.2fs (%s)",
                method,
                url_path,
                delay,
                last_problem,
                extra={"attempt": attempt},
            )
            await asyncio.sleep(delay)
        if rate_limited is not None and last_problem == str(rate_limited):
            raise rate_limited  # still limited when the budget ran out: say so, typed
        unavailable = (
            HomeserverUnreachable
            if last_problem.startswith("cannot connect")
            else HomeserverUnavailable
        )
        raise unavailable(
            0,
            "PARTA_HOMESERVER_UNAVAILABLE",
            f"{method} {url_path} failed after retries: {last_problem}",
        )

    async def call_api(
        self, api_request: tuple[str, ...], *, as_user: str | None = None
    ) -> JsonDict:
        """Send a request built by matrix-nio's `Api` (which puts the token in the query)."""
        method, nio_path, *rest = api_request
        parts = urlsplit(nio_path)
        query = {k: v for k, v in parse_qsl(parts.query) if k != "access_token"}
        body = json.loads(rest[0]) if rest and rest[0] else None
        return await self.request(method, parts.path, body=body, query=query, as_user=as_user)

    # --- Plain health and identity ----------------------------------------------------

    async def health(self) -> None:
        """Raise HomeserverUnavailable unless Synapse's `/health` answers OK."""
        try:
            response = await self._http.get("/health", timeout=5.0)
        except httpx.TransportError as exc:
            raise HomeserverUnavailable(0, "PARTA_HOMESERVER_UNAVAILABLE", str(exc)) from exc
        if response.status_code != 200:
            raise HomeserverUnavailable(
                response.status_code, "PARTA_HOMESERVER_UNAVAILABLE", response.text[:200]
            )

    async def whoami(self, *, as_user: str | None = None) -> str:
        answer = await self.call_api(Api.whoami(""), as_user=as_user)
        return str(answer["user_id"])

    async def whoami_for(self, access_token: str) -> str:
        """Whose access token this is, asked of the homeserver with that token (one try).

        Raises:
            UnknownToken, MissingToken: the token is not (or no longer) valid.
        """
        try:
            response = await self._http.get(
                "/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {access_token}"},
            )
        except httpx.TransportError as exc:
            raise HomeserverUnavailable(0, "PARTA_HOMESERVER_UNAVAILABLE", str(exc)) from exc
        self.requests_sent += 1
        return str(checked_answer(response)["user_id"])

    async def check_password(
        self, user: str | Mapping[str, str], password: str, *, client_ip: str | None
    ) -> str:
        """Check a person's password with the homeserver's login API; return their user ID.

        `user` is a user ID or a whole login identifier (`accounts.phone_identifier`).
        The login's access token is logged out at once: the admin UI keeps its own session
        and leaves no device behind in the person's account. `client_ip` is passed on as
        X-Forwarded-For, so that in production (Synapse behind a proxy) the homeserver's
        per-address login limits apply to the person, not to the provisioning service.

        Raises:
            Forbidden: the user name or password is wrong.
            UserDeactivated: the account is deactivated.
            LimitExceeded: the homeserver throttles logins for this account or address.
        """
        headers = {"X-Forwarded-For": client_ip} if client_ip else {}
        identifier = {"type": "m.id.user", "user": user} if isinstance(user, str) else dict(user)
        body = {
            "type": "m.login.password",
            "identifier": identifier,
            "password": password,
            "initial_device_display_name": "Parta admin UI (password check)",
        }
        return await self._login_and_leave(body, headers)

    async def _login_and_leave(self, body: JsonDict, headers: dict[str, str]) -> str:
        """Log in with `body`, log that session out again; the user ID it was for."""
        try:
            response = await self._http.post("/_matrix/client/v3/login", json=body, headers=headers)
        except httpx.TransportError as exc:
            raise HomeserverUnavailable(0, "PARTA_HOMESERVER_UNAVAILABLE", str(exc)) from exc
        self.requests_sent += 1
        answer = checked_answer(response)
        token = str(answer.get("access_token", ""))
        if token:
            try:
                await self._http.post(
                    "/_matrix/client/v3/logout", headers={"Authorization": f"Bearer {token}"}
                )
                self.requests_sent += 1
            except httpx.TransportError:
                log.warning("could not log out the login check's session", exc_info=True)
        return str(answer["user_id"])

    async def check_login_token(self, login_token: str, *, client_ip: str | None) -> str:
        """Redeem a single sign-on's `loginToken` (m.login.token); return whose it is.

        As `check_password`: the login's access token is logged out at once, and the
        person's address goes on as X-Forwarded-For.

        Raises:
            Forbidden: the token is unknown, used or expired.
            UserDeactivated: the account is deactivated.
            LimitExceeded: the homeserver throttles logins from this address.
        """
        headers = {"X-Forwarded-For": client_ip} if client_ip else {}
        body = {
            "type": "m.login.token",
            "token": login_token,
            "initial_device_display_name": "Parta admin UI (single sign-on)",
        }
        return await self._login_and_leave(body, headers)

    # --- Appservice -------------------------------------------------------------------

    async def appservice_ping(self, appservice_id: str, transaction_id: str) -> int:
        """Ask the homeserver to ping our appservice; return the round trip in ms."""
        answer = await self.request(
            "POST",
            path("appservice", appservice_id, "ping", base="/_matrix/client/v1"),
            body={"transaction_id": transaction_id},
            idempotent=True,
        )
        return int(answer.get("duration_ms", 0))

    async def register_appservice_user(self, localpart: str) -> bool:
        """Register a user of the appservice's namespace; False if it already existed."""
        try:
            await self.request(
                "POST",
                path("register"),
                body={
                    "type": "m.login.application_service",
                    "username": localpart,
                    "inhibit_login": True,
                },
                idempotent=True,
            )
        except UserInUse:
            return False
        return True

    # --- Synapse admin API --------------------------------------------------------------

    async def admin_get_user(self, user_id: str) -> JsonDict | None:
        try:
            return await self.request("GET", path("users", user_id, base="/_synapse/admin/v2"))
        except NotFound:
            return None

    async def admin_put_user(self, user_id: str, fields: Mapping[str, Any]) -> JsonDict:
        """Create or update a local account (password, displayname, admin, deactivated)."""
        url = path("users", user_id, base="/_synapse/admin/v2")
        try:
            return await self.request("PUT", url, body=fields)
        except UserInUse:
            # Two creations raced (a registration and the reconciler creating the same
            # account): Synapse refuses the second with "User ID already taken". Now the
            # account exists, so the same request updates it.
            return await self.request("PUT", url, body=fields)

    async def admin_is_server_admin(self, user_id: str) -> bool:
        answer = await self.request(
            "GET", path("users", user_id, "admin", base="/_synapse/admin/v1")
        )
        return bool(answer.get("admin"))

    async def admin_deactivate(self, user_id: str, *, erase: bool) -> None:
        await self.request(
            "POST",
            path("deactivate", user_id, base="/_synapse/admin/v1"),
            body={"erase": erase},
            idempotent=True,
        )


@dataclass(frozen=True)
class TokenClient:
    """Calls a homeserver with someone's own access token (a person's, from an admin
    login): once, without retries, so that the caller decides what a failure means."""

    http: httpx.AsyncClient  # base_url = the homeserver
    access_token: str

    async def request(
        self,
        method: str,
        url_path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        idempotent: bool | None = None,  # accepted for `matrix.rooms.Requester`; no retries
    ) -> JsonDict:
        """Send one request and return its JSON answer; `MatrixError` typed on a refusal."""
        headers = {"Authorization": f"Bearer {self.access_token}"}
        response = await self.http.request(
            method,
            url_path,
            json=dict(body) if body is not None else None,
            params=dict(query or {}),
            headers=headers,
        )
        return checked_answer(response)


def checked_answer(response: httpx.Response) -> JsonDict:
    """A response's JSON object; a refusal raised as its typed `MatrixError` instead."""
    answer = json_answer(response)
    if response.status_code >= 400:
        raise error_from_response(response.status_code, answer)
    return answer


def json_answer(response: httpx.Response) -> JsonDict:
    """A response's JSON object; a non-JSON body becomes an `M_UNKNOWN` error answer."""
    try:
        value = response.json()
    except ValueError:
        return {"errcode": "M_UNKNOWN", "error": response.text[:200]}
    return value if isinstance(value, dict) else {"value": value}
