"""Calls between Parta's own services, authenticated by the appservice token they share."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from foundation.web import ApiError, bearer_token
from provisioning.api.deps import PathId, SessionDep, SettingsDep, reconcile_soon
from provisioning.db.base import as_utc, utcnow
from provisioning.db.models import Broadcast, LibraryItem, Person
from provisioning.services import calls, library, sign_on
from provisioning.services.access import load_access

router = APIRouter(prefix="/internal", include_in_schema=False)


@router.post("/reconcile", status_code=202)
def reconcile(request: Request, settings: SettingsDep) -> dict[str, bool]:
    """The bridge saw a decision taken in a Matrix client (a knock answered): run soon."""
    _check_service(request, settings)
    reconcile_soon(request)
    return {"requested": True}


def _check_service(request: Request, settings: SettingsDep) -> None:
    token = bearer_token(request) or ""
    expected = settings.as_token.get_secret_value()
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(403, "M_FORBIDDEN", "Only Parta's own services call this")


def _may_browse(session: SessionDep, user_id: str) -> bool:
    person = session.scalar(select(Person).where(Person.matrix_user_id == user_id))
    return person is not None and load_access(session, person).may_browse_library


def _check_may_browse(session: SessionDep, user_id: str) -> None:
    # Its own errcode: a refused service token (M_FORBIDDEN) is a misconfiguration the
    # caller must report as such, not as "this person may not use the library".
    if not _may_browse(session, user_id):
        raise ApiError(403, "PARTA_LIBRARY_REFUSED", "The library is for teachers and pupils.")


@router.get("/library/access")
def library_access(
    request: Request, settings: SettingsDep, session: SessionDep, user_id: str
) -> dict[str, bool]:
    """Whether the person may use the library (the widget shows its tab only then)."""
    _check_service(request, settings)
    return {"may_use": _may_browse(session, user_id)}


@router.get("/library")
def library_search(
    request: Request, settings: SettingsDep, session: SessionDep, user_id: str,
    subject: str = "", grade: int | None = None, q: str = "",
) -> dict[str, object]:  # fmt: skip
    """The widget service's library connector: items for a teacher or pupil of this region."""
    _check_service(request, settings)
    _check_may_browse(session, user_id)
    rows = library.search(session, subject=subject, grade=grade, text=q)
    return {"items": [library.public(row) for row in rows], "subjects": library.subjects(session)}


@router.get("/library/{item_id}")
def library_item(
    item_id: PathId, request: Request, settings: SettingsDep, session: SessionDep, user_id: str
) -> dict[str, object]:
    _check_service(request, settings)
    _check_may_browse(session, user_id)
    row = session.get(LibraryItem, item_id)
    if row is None or row.withdrawn_at is not None:
        raise ApiError(404, "M_NOT_FOUND", "There is no such library item.")
    return library.public(row)


MatrixRoomId = Annotated[str, Query(min_length=2, max_length=255, pattern=r"^![^\s/]+$")]


@router.get("/calls/room")
def call_room(
    request: Request, settings: SettingsDep, session: SessionDep, room_id: MatrixRoomId
) -> dict[str, Any]:
    """How the call of a room starts, which the widget service asks when a call opens:
    `mode` "open" in a class's parents chat (a parent meeting), "lesson" elsewhere; `kind`
    is the managed room's kind, or None for a room Parta does not manage. While a
    broadcast's stage is open in the room, `broadcast` names it, its speakers, its title
    (its recordings' caption) and its end (ISO 8601, UTC), when the stage closes."""
    _check_service(request, settings)
    room = calls.managed_room_by_id(session, room_id)
    kind = room.kind if room is not None else None
    live = calls.live_broadcast(session, room_id, utcnow())
    return {
        "room_id": room_id,
        "kind": kind.value if kind is not None else None,
        "mode": calls.starting_call_mode(kind),
        "broadcast": None if live is None else _live_broadcast(live),
    }


def _live_broadcast(live: Broadcast) -> dict[str, Any]:
    return {
        "id": live.id,
        "speakers": list(live.speakers),
        "title": live.title,
        "ends_at": as_utc(live.ends_at).isoformat(),
    }


class SignOnLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim: Literal["phone_number", "email", "roster_id"]
    value: str = Field(min_length=1, max_length=sign_on.MAX_CLAIM_CHARS)


@router.post("/sign-on/account")
def sign_on_account(
    request: Request, settings: SettingsDep, session: SessionDep, body: SignOnLookup
) -> dict[str, str | None]:
    """Synapse's sign-on mapping module asks which account holds a verified phone number
    or e-mail (school_policy/sign_on.py). Only from this machine, never through the reverse
    proxy: it would tell anyone with the token whose number is whose."""
    _check_loopback(request)
    _check_service(request, settings)
    return {"user_id": sign_on.account_for_claim(session, body.claim, body.value)}


def _check_loopback(request: Request) -> None:
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ApiError(403, "M_FORBIDDEN", "Only services on this machine call this")
