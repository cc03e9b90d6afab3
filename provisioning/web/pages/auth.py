"""Signing in with the Matrix account's password, signing out, choosing the language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.settings import Settings
from matrix.accounts import phone_identifier
from matrix.errors import (
    Forbidden,
    HomeserverUnavailable,
    LimitExceeded,
    MatrixError,
    UserDeactivated,
)
from provisioning.api.deps import MatrixDep, SessionDep, SettingsDep
from provisioning.db.models import Person
from provisioning.i18n import LOCALES, N_
from provisioning.services import limits
from provisioning.web.deps import MaybeViewer
from provisioning.web.render import render, translate
from provisioning.web.security import (
    LANG_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX,
    LoginThrottle,
    client_ip,
    close_session,
    open_session,
    secure_cookies,
)

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only a path of this site: never `//other.site` or `https://…` (open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def user_id_for(login: str, server_name: str) -> str:
    """People type "ivan.petrov" or "@ivan.petrov:server"; both mean the same account."""
    login = login.strip()
    if login.startswith("@"):
        return login
    return f"@{login.lower()}:{server_name}"


def login_identifier(login: str, server_name: str) -> str | dict[str, str]:
    """A user name, or the phone number people registered with ("+7 900 …", "8 900 …"),
    which the homeserver knows as the account's `msisdn` (as Element's phone sign-in)."""
    if limits.looks_like_phone(login):
        try:
            return phone_identifier(limits.mobile_number(login))
        except limits.FieldRefused:
            pass
    return user_id_for(login, server_name)


@router.get("/login")
def login_page(request: Request, viewer: MaybeViewer, next: str = "/", reset: str = "") -> Response:
    if viewer is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(
        request, "login.html", next=safe_next(next), login="", error=None, reset=bool(reset)
    )


NOT_IN_A_SCHOOL = N_(
    "Your account works for chats, but it is not part of a school in Parta. "
    "Ask your school's administrator for an invitation."
)


def _open_session_for(session: Session, user_id: str, request: Request) -> str | None:
    person = session.scalar(select(Person).where(Person.matrix_user_id == user_id))
    if person is None:
        return None
    token = open_session(session, person.id, request)
    session.commit()
    return token


async def signed_in(
    session: Session, request: Request, settings: Settings, user_id: str, next_page: str
) -> Response | None:
    """A redirect to `next_page` carrying a new admin UI session for the account `user_id`
    proved to be, whether by password or by the region's sign-on; None when Parta holds
    nobody with that account (`NOT_IN_A_SCHOOL` says what to do)."""
    token = await run_in_threadpool(_open_session_for, session, user_id, request)
    if token is None:
        return None
    response = RedirectResponse(safe_next(next_page), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_MAX.total_seconds()),
        httponly=True,
        secure=secure_cookies(settings),
        samesite="lax",
    )
    return response


@router.post("/login")
async def login(
    request: Request,
    session: SessionDep,
    matrix: MatrixDep,
    settings: SettingsDep,
    login: Annotated[str, Form(max_length=255)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    throttle: LoginThrottle = request.app.state.login_throttle
    address = client_ip(request)

    def again(status: int, message: str, **params: object) -> Response:
        error = translate(request, message, **params)
        return render(
            request, "login.html", status=status, next=safe_next(next), login=login, error=error
        )

    if not settings.password_login:
        # The homeserver refuses passwords too; this says what to do instead.
        return again(403, N_("Passwords are switched off in this region: use the sign-in button."))
    if not login.strip() or not password:
        return again(400, N_("Enter your user name and password."))
    identifier = login_identifier(login, settings.server_name)
    # One count per account however its number is written ("8 900…", "+7 900…").
    account = identifier if isinstance(identifier, str) else identifier["address"]
    wait = throttle.retry_after(account, address)
    if wait:
        return again(
            429,
            N_("Too many failed attempts. Try again in %(minutes)s min."),
            minutes=max(1, round(wait / 60)),
        )
    try:
        user_id = await matrix.check_password(identifier, password, client_ip=address)
    except (Forbidden, UserDeactivated) as exc:
        throttle.failed(account, address)
        if isinstance(exc, UserDeactivated):
            return again(403, N_("This account is closed. Ask your school's administrator."))
        return again(401, N_("Wrong user name or password."))
    except LimitExceeded:
        throttle.failed(account, address)
        return again(429, N_("Too many attempts. Wait a minute and try again."))
    except HomeserverUnavailable:
        return again(503, N_("The server does not answer right now. Try again in a minute."))
    except MatrixError:
        throttle.failed(account, address)
        return again(401, N_("Wrong user name or password."))
    throttle.succeeded(account)
    response = await signed_in(session, request, settings, user_id, next)
    if response is None:
        return again(403, NOT_IN_A_SCHOOL)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    close_session(session, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/lang/{locale}")
def choose_language(locale: str, settings: SettingsDep, next: str = "/") -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if locale in LOCALES:
        response.set_cookie(
            LANG_COOKIE, locale, max_age=365 * 86400, secure=secure_cookies(settings),
            samesite="lax",
        )  # fmt: skip
    return response
