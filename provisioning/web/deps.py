"""What admin UI routes declare: the viewer (signed in or not), CSRF checks, page errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from provisioning.api.deps import SessionDep
from provisioning.db.models import Person
from provisioning.i18n import N_
from provisioning.services.access import Access, load_access
from provisioning.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    csrf_valid,
    find_session,
)


class WebError(Exception):
    """A page-level error: shown as a page in the reader's language with this status.

    `message` is an English message ID marked with `N_`, translated when rendered.
    """

    def __init__(self, status: int, message: str, **params: object) -> None:
        super().__init__(message % params if params else message)
        self.status = status
        self.message = message
        self.params = params


class LoginRequired(Exception):
    """The page needs a signed-in person: go to the login page, then come back."""


def _maybe_viewer(request: Request, session: SessionDep) -> Access | None:
    record = find_session(session, request.cookies.get(SESSION_COOKIE))
    if record is None:
        return None
    person = session.get(Person, record.person_id)
    if person is None:
        return None
    viewer = load_access(session, person)
    request.state.viewer = viewer
    return viewer


def _viewer(viewer: Annotated[Access | None, Depends(_maybe_viewer)]) -> Access:
    if viewer is None:
        raise LoginRequired()
    return viewer


MaybeViewer = Annotated[Access | None, Depends(_maybe_viewer)]
Viewer = Annotated[Access, Depends(_viewer)]


async def verify_csrf(request: Request) -> None:
    """Refuse a state-changing request whose form (or htmx header) lacks a valid token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else ""
    secret = request.app.state.settings.web_secret.get_secret_value().encode()
    if not csrf_valid(
        secret, request.cookies.get(CSRF_COOKIE), request.cookies.get(SESSION_COOKIE), sent
    ):
        raise WebError(
            403,
            N_(
                "This form has expired or did not come from this site. "
                "Go back, reload the page and send it again."
            ),
        )
