"""Who is this widget user? Verify a Matrix OpenID token at the user's own homeserver.

A widget asks the Matrix client for an OpenID token (the Widget API's `get_openid`; the
standalone page logs in and calls `/user/{userId}/openid/request_token` itself). The
token proves nothing by itself: the widget service asks the homeserver that issued it,
`GET /_matrix/federation/v1/openid/userinfo`, and accepts the answer only for a user of
that same server. So people of a federated region sign in to our widgets the same way.

Where the homeserver is follows the Matrix spec's server name resolution
(server-server API, "Resolving server names"): an IP literal or an explicit port is used
as it is; otherwise `/.well-known/matrix/server` may delegate, then an SRV record
(`_matrix-fed._tcp`, then the deprecated `_matrix._tcp`), then port 8448. Our own
homeserver is known by its local address, so checking our own people never leaves the
machine.

Who may be asked is bounded (issue 18: any name a caller wrote was resolved, loopback and
private addresses included). Only our own server and the federation allow-list's servers
are asked; a name whose addresses are loopback, private or link-local is refused unless
the operator named it in `federation_private_servers` (a region on the same private
network), and the request goes to the very address that was checked. A verified token is
remembered for its lifetime, so asking again with it costs its homeserver nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import httpx

DEFAULT_PORT = 8448
USERINFO = "/_matrix/federation/v1/openid/userinfo"
_SERVER_NAME = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?$")
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,512}$")
TOKEN_LIFETIME_MAX_S = 3600.0  # Synapse's OpenID tokens live an hour; a claim of more is cut
TOKEN_LIFETIME_UNSTATED_S = 300.0  # a token object without `expires_in`


class OpenIDError(Exception):
    """The token was not accepted; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Endpoint:
    """Where to reach a homeserver's federation API, and the TLS name to expect."""

    base_url: str
    tls_name: str | None = None  # None: plain HTTP to our own homeserver on loopback


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """("example.org", None), ("example.org", 8448), ("[::1]", 8448), ("1.2.3.4", None).

    Raises:
        OpenIDError("bad_server_name"): not a Matrix server name.
    """
    match = _SERVER_NAME.match(server_name)
    if match is None:
        raise OpenIDError("bad_server_name", f"{server_name!r} is not a Matrix server name")
    port = int(match.group(3)) if match.group(3) else None
    if port is not None and not 0 < port < 65536:
        raise OpenIDError("bad_server_name", f"{server_name!r} has no valid port")
    return match.group(1), port


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _url(host: str, port: int) -> str:
    return f"https://{host}:{port}"


@dataclass
class ServerResolver:
    """The spec's server name resolution, with the answers cached for an hour.

    `local` maps our own server names to their local base URL (plain HTTP on loopback).
    `verify` is what TLS trusts: the system's authorities in production.
    """

    local: dict[str, str] = field(default_factory=dict)
    federated: frozenset[str] = frozenset()  # the federation allow-list: may be asked
    private_ok: frozenset[str] = frozenset()  # of those, the ones on a private network
    verify: ssl.SSLContext | bool = True
    timeout_s: float = 10.0
    cache_s: float = 3600.0
    _cache: dict[str, tuple[float, Endpoint]] = field(default_factory=dict)

    async def resolve(self, server_name: str) -> Endpoint:
        """Where to ask `server_name`.

        Raises:
            OpenIDError("server_not_allowed"): neither ours nor on the allow-list.
        """
        if server_name in self.local:
            return Endpoint(self.local[server_name].rstrip("/"))
        if server_name not in self.federated:
            raise OpenIDError(
                "server_not_allowed",
                f"{server_name} is not this region's server nor one it federates with",
            )
        cached = self._cache.get(server_name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        endpoint = await self._resolve(server_name)
        self._cache[server_name] = (time.monotonic() + self.cache_s, endpoint)
        return endpoint

    async def _resolve(self, server_name: str) -> Endpoint:
        host, port = split_server_name(server_name)
        if _is_ip_literal(host) or port is not None:
            return Endpoint(_url(host, port or DEFAULT_PORT), host)
        delegated = await self._well_known(host, server_name)
        if delegated is not None:
            d_host, d_port = split_server_name(delegated)
            if _is_ip_literal(d_host) or d_port is not None:
                return Endpoint(_url(d_host, d_port or DEFAULT_PORT), d_host)
            return await self._srv(d_host) or Endpoint(_url(d_host, DEFAULT_PORT), d_host)
        return await self._srv(host) or Endpoint(_url(host, DEFAULT_PORT), host)

    async def address(self, host: str, port: int, server_name: str) -> str:
        """The address to connect to for `host`: one that was checked, so a second lookup
        (DNS rebinding) cannot swap in another.

        Raises:
            OpenIDError("private_address"): the host has a loopback, private, link-local or
                otherwise non-public address, and `server_name` is not in `private_ok`.
            OpenIDError("unreachable"): the host has no address.
        """
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host.strip("[]"), port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise OpenIDError("unreachable", f"{host} has no address: {exc}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
        if not addresses:
            raise OpenIDError("unreachable", f"{host} has no address")
        if server_name not in self.private_ok:
            for address in addresses:
                mapped = getattr(address, "ipv4_mapped", None) or address
                if not mapped.is_global:
                    raise OpenIDError(
                        "private_address",
                        f"{server_name} resolves to {address}, an address of this machine "
                        "or a private network; it is not asked",
                    )
        first = addresses[0]
        return f"[{first}]" if first.version == 6 else str(first)

    async def _well_known(self, host: str, server_name: str) -> str | None:
        try:
            address = await self.address(host, 443, server_name)
        except OpenIDError:
            return None  # no delegation read from there; the next steps check their own host
        try:
            async with httpx.AsyncClient(verify=self.verify, timeout=self.timeout_s) as http:
                # No redirects: each hop would be an address nobody checked.
                answer = await http.get(
                    f"https://{address}/.well-known/matrix/server",
                    headers={"Host": host},
                    extensions={"sni_hostname": host},
                )
            if answer.status_code != 200:
                return None
            delegated = answer.json().get("m.server")
        except (httpx.HTTPError, json.JSONDecodeError, AttributeError):
            return None  # no delegation: the spec goes on with SRV, then port 8448
        return delegated if isinstance(delegated, str) and _SERVER_NAME.match(delegated) else None

    async def _srv(self, host: str) -> Endpoint | None:
        resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = self.timeout_s
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            try:
                answer = await resolver.resolve(f"{service}.{host}", dns.rdatatype.SRV)
            except (dns.exception.DNSException, OSError):
                continue
            records = sorted(answer, key=lambda r: (r.priority, -r.weight))
            if records:
                target = str(records[0].target).rstrip(".")
                return Endpoint(_url(target, int(records[0].port)), host)
        return None


@dataclass
class OpenIDVerifier:
    """Turns an OpenID token into the user ID its homeserver vouches for (cached)."""

    resolver: ServerResolver
    timeout_s: float = 10.0
    _cache: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def verify(self, token: Any) -> str:
        """Return the user ID for an OpenID token object from the Widget API.

        `token` is `{access_token, matrix_server_name, expires_in?, token_type?}`.

        Raises:
            OpenIDError: the token is malformed, unknown or expired at its homeserver, the
                homeserver cannot be reached, or it vouched for a user of another server.
        """
        access_token, server_name, expires_in = _parse_token(token)
        key = (server_name, access_token)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        endpoint = await self.resolver.resolve(server_name)
        user_id = await self._userinfo(endpoint, access_token, server_name)
        if user_id.partition(":")[2] != server_name:
            # A homeserver speaks only for its own users (spec: OpenID userinfo).
            raise OpenIDError(
                "wrong_server", f"{server_name} vouched for {user_id}, who is not its user"
            )
        # Remembered for the token's life: a page that signs in again with it (a reload, a
        # second documents session) costs its homeserver nothing.
        lifetime = min(TOKEN_LIFETIME_MAX_S, expires_in) if expires_in > 0 else 0.0
        self._cache[key] = (time.monotonic() + (lifetime or TOKEN_LIFETIME_UNSTATED_S), user_id)
        if len(self._cache) > 10_000:
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        return user_id

    async def _userinfo(self, endpoint: Endpoint, access_token: str, server_name: str) -> str:
        url = httpx.URL(endpoint.base_url + USERINFO, params={"access_token": access_token})
        headers: dict[str, str] = {}
        extensions: dict[str, Any] = {}
        if endpoint.tls_name is not None:  # another server: only at an address we checked
            host, port = url.host, url.port or DEFAULT_PORT
            url = url.copy_with(
                host=(await self.resolver.address(host, port, server_name)).strip("[]")
            )
            # The certificate is the server's own name, whichever address we connect to;
            # found through SRV, so is the Host header (spec: resolving server names, 4).
            srv = endpoint.tls_name != host
            headers["Host"] = endpoint.tls_name if srv or port == 443 else f"{host}:{port}"
            extensions["sni_hostname"] = endpoint.tls_name.strip("[]")
        try:
            async with httpx.AsyncClient(
                verify=self.resolver.verify, timeout=self.timeout_s
            ) as http:
                answer = await http.get(url, headers=headers, extensions=extensions)
        except httpx.HTTPError as exc:
            raise OpenIDError(
                "unreachable", f"the homeserver at {endpoint.base_url} did not answer: {exc}"
            ) from exc
        if answer.status_code in (401, 403):
            raise OpenIDError("invalid_token", "the homeserver does not know this token")
        if answer.status_code != 200:
            raise OpenIDError(
                "unreachable",
                f"the homeserver at {endpoint.base_url} answered {answer.status_code}",
            )
        try:
            user_id = answer.json()["sub"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise OpenIDError("invalid_token", "the homeserver's answer has no user") from exc
        if not isinstance(user_id, str) or not user_id.startswith("@") or ":" not in user_id:
            raise OpenIDError("invalid_token", "the homeserver's answer has no user")
        return user_id


def _parse_token(token: Any) -> tuple[str, str, float]:
    if not isinstance(token, dict):
        raise OpenIDError("bad_token", "the OpenID token must be an object")
    access_token = token.get("access_token")
    server_name = token.get("matrix_server_name")
    expires_in = token.get("expires_in", 0)
    if not isinstance(access_token, str) or not _TOKEN.match(access_token):
        raise OpenIDError("bad_token", "the OpenID token has no valid access_token")
    if not isinstance(server_name, str):
        raise OpenIDError("bad_token", "the OpenID token names no matrix_server_name")
    split_server_name(server_name)
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        expires_in = 0
    return access_token, server_name, float(expires_in)


def token_grant(token: Any) -> str:
    """A stable name for one OpenID token (a digest, never the token): what a page was
    granted with it is counted by this.

    Raises:
        OpenIDError: the token is malformed.
    """
    access_token, server_name, _ = _parse_token(token)
    return hashlib.sha256(f"{server_name}\n{access_token}".encode()).hexdigest()
