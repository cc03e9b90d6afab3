"""«Sign in with <provider>» on an invitation's registration page.

The button starts provisioning's own sign-in with the region's provider
(`provider_sign_on`); the provider sends the browser back to one fixed callback, never to
an address taken from a request, and the callback sends it on to the invitation the
sign-in started from (kept in the signed cookie). The registration form then comes
filled from the provider's account; `pages/invites.py` reads the same cookie to take a
phone number the provider verified in place of the SMS code, and links the provider's
person to the new account (`matrix.sso.link_subject`).
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from matrix.errors import MatrixError
from matrix.sso import account_of_subject
from provisioning.api.deps import MatrixDep, SessionDep, SettingsDep
from provisioning.i18n import N_
from provisioning.services import invites as svc
from provisioning.web import provider_sign_on as provider
from provisioning.web.deps import WebError
from provisioning.web.security import secure_cookies

log = logging.getLogger(__name__)
router = APIRouter()

STARTED_COOKIE = "parta_join_sso"
CLAIMS_COOKIE = "parta_join_claims"
STARTED_TTL_S = 900  # the provider's sign-in page may take a while; not all day
CLAIMS_TTL_S = 1800  # time to read the form, ask for a code, choose a password
_NO_SIGN_ON = N_("This region has no single sign-on.")
_START_AGAIN = N_(
    "The sign-in with the region's account did not finish or has expired. "
    "Open your invitation link again and press the button once more."
)
_PROVIDER_DOWN = N_(
    "The region's sign-in service does not answer right now. Try again in a few minutes, "
    "or fill in the form yourself."
)
_ALREADY_LINKED = N_(
    "Your region account already opens a Parta account. Sign in with the region's "
    "button in Element or on the sign-in page; you need no new account."
)


def _http() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=provider.TIMEOUT_S, follow_redirects=False)


@router.get("/join/{token}/sign-on")
async def start(token: str, session: SessionDep, settings: SettingsDep) -> Response:
    """Off to the region's provider for the person invited by `token`."""
    if not settings.oidc_enabled:
        raise WebError(404, _NO_SIGN_ON)
    try:
        await run_in_threadpool(svc.find_usable, session, token)
    except svc.InviteUnusable as exc:
        raise WebError(410, exc.template) from exc
    try:
        async with _http() as http:
            endpoints = await provider.discover(http, settings.oidc_issuer)
    except provider.ProviderError as exc:
        log.warning("the region's provider is unavailable for registration: %s", exc)
        raise WebError(503, _PROVIDER_DOWN) from exc
    url, started = provider.start(settings, endpoints, token, STARTED_TTL_S)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        STARTED_COOKIE,
        provider.dump(settings, started),
        max_age=STARTED_TTL_S,
        httponly=True,
        secure=secure_cookies(settings),
        samesite="lax",  # sent on the top-level redirect back from the provider
    )
    return response


@router.get(provider.CALLBACK_PATH)
async def finish(
    request: Request,
    session: SessionDep,
    matrix: MatrixDep,
    settings: SettingsDep,
    state: Annotated[str, Query(max_length=128)] = "",
    code: Annotated[str, Query(max_length=2048)] = "",
) -> Response:
    """Back from the provider: check, read the claims, go on to the invitation's form."""
    if not settings.oidc_enabled:
        raise WebError(404, _NO_SIGN_ON)
    started = provider.read_started(settings, request.cookies.get(STARTED_COOKIE))
    if (
        started is None
        or not state
        or not code  # the person cancelled at the provider, or it refused (`error=`)
        or not hmac.compare_digest(state.encode(), started.state.encode())
    ):
        raise WebError(400, _START_AGAIN)
    try:
        async with _http() as http:
            endpoints = await provider.discover(http, settings.oidc_issuer)
            claims = await provider.finish(http, settings, endpoints, started, code, CLAIMS_TTL_S)
    except provider.ProviderError as exc:
        # Only what went wrong, never the code, the tokens or the claims.
        log.warning("a registration's sign-in with the region's provider failed: %s", exc)
        raise WebError(400, _START_AGAIN) from exc
    try:
        linked = await account_of_subject(matrix, settings.oidc_idp_id, claims.subject)
    except MatrixError as exc:
        raise WebError(
            503, N_("The server does not answer right now. Try again in a minute.")
        ) from exc
    if linked is not None:
        raise WebError(409, _ALREADY_LINKED)
    response = RedirectResponse(f"/join/{quote(started.invite_token, safe='')}", status_code=303)
    response.set_cookie(
        CLAIMS_COOKIE,
        provider.dump(settings, claims),
        max_age=CLAIMS_TTL_S,
        httponly=True,
        secure=secure_cookies(settings),
        samesite="lax",
    )
    response.delete_cookie(STARTED_COOKIE)
    return response


def vouched(request: Request, token: str) -> provider.VouchedClaims | None:
    """The provider's claims this browser brought back for the invitation `token`."""
    settings = request.app.state.settings
    if not settings.oidc_enabled:
        return None
    return provider.read_claims(settings, request.cookies.get(CLAIMS_COOKIE), token)


def form_context(request: Request, token: str) -> dict[str, object]:
    """What join.html's sign-on block shows: the button, or what came from the provider."""
    settings = request.app.state.settings
    claims = vouched(request, token)
    return {
        "sign_on_label": settings.oidc_label if settings.oidc_enabled else "",
        "sign_on_url": f"/join/{quote(token, safe='')}/sign-on",
        "vouched": claims,
        "vouched_phone": claims.phone if claims and claims.phone_verified else "",
    }


def prefilled(form: dict[str, object], claims: provider.VouchedClaims | None) -> dict[str, object]:
    """The form as the provider fills it, where the person has not typed anything yet."""
    if claims is None:
        return form
    given = {"display_name": claims.name, "phone": claims.phone, "email": claims.email}
    return {**form, **{k: v for k, v in given.items() if v and not form.get(k)}}


def forget(response: Response) -> Response:
    """The claims were used (the account is made): they open nothing more."""
    response.delete_cookie(CLAIMS_COOKIE)
    return response
