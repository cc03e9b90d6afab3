"""Provisioning's own OpenID Connect client of the region's provider, for registration.

Synapse signs people in with the provider; registration needs the provider too, before
any account exists, to fill and vouch for the form (issue 22, "linking at registration").
This is the authorization-code flow with PKCE (S256), a `state` and a `nonce`: the
browser goes to the provider, comes back to one fixed callback of this service, and the
code is exchanged here, server to server, with the client secret. The ID token's
signature, issuer, audience, expiry and nonce are checked; the claims are read from the
userinfo endpoint, as Synapse reads them, and must be about the same `sub`.

What was started and what was learnt travel in cookies signed with the service's web
secret (`SignedCookie`), so a page of this service cannot be handed claims it never got.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final, cast
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from foundation.settings import Settings
from provisioning.services import limits

CALLBACK_PATH: Final = "/join/sign-on/callback"
SCOPES: Final = "openid profile phone email"
TIMEOUT_S: Final = 10.0
MAX_ANSWER_BYTES: Final = 64 * 1024  # discovery, token, keys and userinfo are a few KiB
MAX_COOKIE_CHARS: Final = 3000  # browsers keep 4 KiB a cookie
# Signatures with the provider's public keys only: never "none", never a shared secret.
ID_TOKEN_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")


class ProviderError(Exception):
    """The provider did not answer, or answered something that cannot be trusted."""


@dataclass(frozen=True)
class Endpoints:
    issuer: str
    authorization: str
    token: str
    userinfo: str
    jwks: str


@dataclass(frozen=True)
class Started:
    """A sign-in this browser started: kept in its cookie until the provider sends it back."""

    state: str
    nonce: str
    verifier: str
    invite_token: str
    expires: float


@dataclass(frozen=True)
class VouchedClaims:
    """What the provider said about the person, for one invitation's form."""

    subject: str
    invite_token: str
    name: str
    phone: str  # E.164, or "" (none, or not a mobile number)
    phone_verified: bool
    email: str
    email_verified: bool
    expires: float


class SignedCookie:
    """A JSON object in a cookie, with an HMAC of the web secret and a purpose, so that
    a value for one purpose is never read as another's and nobody can write one."""

    def __init__(self, secret: str, purpose: str) -> None:
        self._key = hashlib.sha256(f"{purpose}\0{secret}".encode()).digest()

    def dump(self, value: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def load(self, text: str | None) -> dict[str, Any] | None:
        if not text or len(text) > MAX_COOKIE_CHARS:
            return None
        body, _, mac = text.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(value, dict) or not value.get("expires", 0) > time.time():
            return None
        return value

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()


def started_cookie(settings: Settings) -> SignedCookie:
    return SignedCookie(settings.web_secret.get_secret_value(), "join-sign-on-started")


def claims_cookie(settings: Settings) -> SignedCookie:
    return SignedCookie(settings.web_secret.get_secret_value(), "join-sign-on-claims")


def read_started(settings: Settings, text: str | None) -> Started | None:
    value = started_cookie(settings).load(text)
    try:
        return Started(**value) if value else None
    except TypeError:
        return None


def read_claims(settings: Settings, text: str | None, invite_token: str) -> VouchedClaims | None:
    """The claims in this browser's cookie, if they were got for this very invitation."""
    value = claims_cookie(settings).load(text)
    try:
        claims = VouchedClaims(**value) if value else None
    except TypeError:
        return None
    if claims is None or not hmac.compare_digest(claims.invite_token, invite_token):
        return None
    return claims


def dump(settings: Settings, value: Started | VouchedClaims) -> str:
    cookie = started_cookie(settings) if isinstance(value, Started) else claims_cookie(settings)
    return cookie.dump(asdict(value))


async def _get_json(http: httpx.AsyncClient, url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        async with http.stream("GET", url, **kwargs) as answer:
            return await _json_of(answer)
    except httpx.HTTPError as exc:
        raise ProviderError(f"the provider did not answer ({type(exc).__name__})") from exc


async def _json_of(answer: httpx.Response) -> dict[str, Any]:
    body = b""
    async for chunk in answer.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise ProviderError(f"the provider's answer is over {MAX_ANSWER_BYTES} bytes")
    if answer.status_code != 200:
        raise ProviderError(f"the provider answered {answer.status_code}")
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ProviderError("the provider's answer is not JSON") from exc
    if not isinstance(value, dict):
        raise ProviderError("the provider's answer is not a JSON object")
    return value


async def discover(http: httpx.AsyncClient, issuer: str) -> Endpoints:
    """The provider's endpoints from its discovery document, which must name `issuer`."""
    issuer = issuer.strip().rstrip("/")
    found = await _get_json(http, f"{issuer}/.well-known/openid-configuration")
    if str(found.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderError("the discovery document names another issuer")
    try:
        return Endpoints(
            issuer=str(found["issuer"]),
            authorization=str(found["authorization_endpoint"]),
            token=str(found["token_endpoint"]),
            userinfo=str(found["userinfo_endpoint"]),
            jwks=str(found["jwks_uri"]),
        )
    except KeyError as exc:
        raise ProviderError(f"the discovery document has no {exc.args[0]}") from exc


def start(
    settings: Settings, endpoints: Endpoints, invite_token: str, ttl_s: int
) -> tuple[str, Started]:
    """The provider's authorization URL, and what the browser's cookie must keep."""
    started = Started(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),  # 64 characters: RFC 7636 wants 43 to 128
        invite_token=invite_token,
        expires=time.time() + ttl_s,
    )
    query = {
        "response_type": "code",
        "client_id": settings.oidc_client_id,
        "redirect_uri": settings.web_url + CALLBACK_PATH,
        "scope": SCOPES,
        "state": started.state,
        "nonce": started.nonce,
        "code_challenge": create_s256_code_challenge(started.verifier),
        "code_challenge_method": "S256",
    }
    separator = "&" if "?" in endpoints.authorization else "?"
    return f"{endpoints.authorization}{separator}{urlencode(query)}", started


async def finish(
    http: httpx.AsyncClient,
    settings: Settings,
    endpoints: Endpoints,
    started: Started,
    code: str,
    ttl_s: int,
) -> VouchedClaims:
    """Exchange the code; check the ID token; read the person's claims.

    Raises:
        ProviderError: any step failed or the answers disagree; nothing is trusted then.
    """
    try:
        async with http.stream(
            "POST",
            endpoints.token,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": settings.web_url + CALLBACK_PATH,
                "code_verifier": started.verifier,
            },
            auth=(settings.oidc_client_id, settings.oidc_client_secret.get_secret_value()),
        ) as answer:
            token = await _json_of(answer)
    except httpx.HTTPError as exc:
        raise ProviderError(f"the provider did not answer ({type(exc).__name__})") from exc
    access_token, id_token = token.get("access_token"), token.get("id_token")
    if not isinstance(access_token, str) or not isinstance(id_token, str):
        raise ProviderError("the token answer has no access token or ID token")
    keys = await _get_json(http, endpoints.jwks)
    claims = id_token_claims(
        id_token,
        keys,
        issuer=endpoints.issuer,
        client_id=settings.oidc_client_id,
        nonce=started.nonce,
    )
    userinfo = await _get_json(
        http, endpoints.userinfo, headers={"Authorization": f"Bearer {access_token}"}
    )
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or userinfo.get("sub") != subject:
        raise ProviderError("the userinfo is about someone other than the ID token")
    if len(subject) > 255:
        raise ProviderError("the provider's subject is over 255 characters")
    return _vouched(subject, userinfo, started.invite_token, ttl_s)


def id_token_claims(
    id_token: str, keys: dict[str, Any], *, issuer: str, client_id: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims, once its signature (one of the provider's `keys`), issuer,
    audience, subject, times and nonce hold.

    Raises:
        ProviderError: any of them does not.
    """
    try:
        key_set = KeySet.import_key_set(cast(KeySetSerialization, keys))
        decoded = jwt.decode(id_token, key_set, algorithms=ID_TOKEN_ALGORITHMS)
        jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(decoded.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise ProviderError(f"the ID token does not hold ({type(exc).__name__})") from exc
    return decoded.claims


def _verified(userinfo: dict[str, Any], claim: str) -> bool:
    flag = userinfo.get(f"{claim}_verified")
    return flag is True or flag == "true"


def _vouched(
    subject: str, userinfo: dict[str, Any], invite_token: str, ttl_s: int
) -> VouchedClaims:
    """Only values the registration form would take; anything else is left for the person
    to type (a landline is no mobile number; a 500-character name is no name)."""

    def checked(check: Callable[[str], str], value: object) -> str:
        if not isinstance(value, str):
            return ""
        try:
            return check(value)
        except limits.FieldRefused:
            return ""

    name = userinfo.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [userinfo.get(k) for k in ("given_name", "family_name")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    phone = checked(limits.mobile_number, userinfo.get("phone_number"))
    email = checked(limits.email_address, userinfo.get("email"))
    return VouchedClaims(
        subject=subject,
        invite_token=invite_token,
        name=checked(limits.person_name, name),
        phone=phone,
        phone_verified=bool(phone) and _verified(userinfo, "phone_number"),
        email=email,
        email_verified=bool(email) and _verified(userinfo, "email"),
        expires=time.time() + ttl_s,
    )
