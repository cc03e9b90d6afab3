"""Signing in to the admin UI with the region's single sign-on, through Synapse.

The button sends the browser to Synapse's SSO redirect for the region's provider, which
sends it back to one fixed address, this service's callback, with a `loginToken`; the
token is redeemed with the homeserver for the account it belongs to. The callback also
carries a random `state` that must match a cookie set when the sign-in started here, so a
link with someone else's login token (a forced sign-in into the sender's account) fails.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from matrix.errors import HomeserverUnavailable, LimitExceeded, MatrixError, UserDeactivated
from matrix.sso import sso_redirect_url
from provisioning.api.deps import MatrixDep, SessionDep, SettingsDep
from provisioning.i18n import N_
from provisioning.web.deps import WebError
from provisioning.web.pages.auth import NOT_IN_A_SCHOOL, safe_next, signed_in
from provisioning.web.render import render, translate
from provisioning.web.security import client_ip, secure_cookies

router = APIRouter()

CALLBACK_PATH = "/login/sso/callback"
STATE_COOKIE = "parta_sso_state"
STATE_MAX_AGE_S = 900  # the provider's sign-in page may take a while; not all day
_NOT_STARTED_HERE = N_("This sign-in did not start on this page or has expired. Sign in again.")


def callback_url(web_url: str, state: str) -> str:
    return f"{web_url}{CALLBACK_PATH}?state={state}"


@router.get("/login/sso")
def start(
    request: Request, settings: SettingsDep, next: Annotated[str, Query(max_length=2048)] = "/"
) -> Response:
    """Off to the region's provider, through the homeserver; back to the callback only."""
    if not settings.oidc_enabled:
        raise WebError(404, N_("This region has no single sign-on."))
    state = secrets.token_urlsafe(24)
    target = safe_next(next)
    response = RedirectResponse(
        sso_redirect_url(
            settings.element_homeserver_url,
            settings.oidc_idp_id,
            callback_url(settings.web_url, state),
        ),
        status_code=303,
    )
    response.set_cookie(
        STATE_COOKIE,
        f"{state}.{_encode(target)}",
        max_age=STATE_MAX_AGE_S,
        httponly=True,
        secure=secure_cookies(settings),
        samesite="lax",  # sent on the top-level redirect back from the homeserver
    )
    return response


def _encode(path: str) -> str:
    """Cookie-safe (no padding: an `=` would make the cookie a quoted string)."""
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode(text: str) -> str:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode()).decode()


def _started_here(request: Request, state: str) -> str | None:
    """The page to go to after signing in, if this browser started this sign-in."""
    expected, _, encoded_next = request.cookies.get(STATE_COOKIE, "").partition(".")
    if not state or not expected or not hmac.compare_digest(state.encode(), expected.encode()):
        return None
    try:
        return safe_next(_decode(encoded_next))
    except (ValueError, UnicodeDecodeError):
        return "/"


@router.get(CALLBACK_PATH)
async def finish(
    request: Request,
    session: SessionDep,
    matrix: MatrixDep,
    settings: SettingsDep,
    state: Annotated[str, Query(max_length=64)] = "",
    login_token: Annotated[str, Query(alias="loginToken", max_length=1024)] = "",
) -> Response:
    """Redeem the homeserver's login token for an admin UI session."""

    def again(status: int, message: str) -> Response:
        error = translate(request, message)
        response = render(request, "login.html", status=status, next="/", login="", error=error)
        response.delete_cookie(STATE_COOKIE)
        return response

    if not settings.oidc_enabled:
        raise WebError(404, N_("This region has no single sign-on."))
    next_page = _started_here(request, state)
    if next_page is None or not login_token:
        return again(400, _NOT_STARTED_HERE)
    try:
        user_id = await matrix.check_login_token(login_token, client_ip=client_ip(request))
    except UserDeactivated:
        return again(403, N_("This account is closed. Ask your school's administrator."))
    except LimitExceeded:
        return again(429, N_("Too many attempts. Wait a minute and try again."))
    except HomeserverUnavailable:
        return again(503, N_("The server does not answer right now. Try again in a minute."))
    except MatrixError:  # the token is unknown, used or expired
        return again(400, _NOT_STARTED_HERE)
    response = await signed_in(session, request, settings, user_id, next_page)
    if response is None:
        return again(403, NOT_IN_A_SCHOOL)
    response.delete_cookie(STATE_COOKIE)
    return response
