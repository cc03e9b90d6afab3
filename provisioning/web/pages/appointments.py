"""Individual appointments in the admin UI, on one phone-sized page `/appointments`.

A teacher or the director offers slots (a date, from–to, and a length generating several
slots, or one slot) and cancels them; a parent sees the open slots of their children's
teachers and director, books one and cancels their booking. Every rule is the service's
(`provisioning.appointments.service`), asked on the server for each request; a booking or
cancellation asks the broadcasts' clock, which runs the appointments' part, to tick.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.api.deps import PathId, SessionDep, SettingsDep
from provisioning.appointments import service
from provisioning.broadcasts.clock import BroadcastClock
from provisioning.db.models import AppointmentBooking, AppointmentSlot, School
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.services.schools import DomainError
from provisioning.web.deps import Viewer, WebError
from provisioning.web.render import render, translate

router = APIRouter()

Day = Annotated[str, Form(alias="date", max_length=16)]
Clock = Annotated[str, Form(max_length=8)]
Length = Annotated[str, Form(max_length=8)]


def _tick_soon(request: Request) -> None:
    clock: BroadcastClock | None = getattr(request.app.state, "broadcasts", None)
    if clock is not None:
        clock.request()


def offer_schools(session: Session, viewer: Access) -> list[School]:
    """The schools where the viewer may offer slots."""
    ids = viewer.school_admin_of | viewer.teacher_of_schools
    return list(session.scalars(select(School).where(School.id.in_(ids)).order_by(School.name)))


def parent_view(session: Session, viewer: Access) -> dict[str, Any]:
    """What the dashboard and this page show a parent: open slots and their bookings."""
    return {
        "open_slots": service.open_slots(session, viewer),
        "my_bookings": service.bookings_of(session, viewer.person_id),
    }


def _page(
    request: Request,
    session: Session,
    viewer: Access,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    hosted = service.hosted_by(session, viewer.person_id)
    holders = {s.id: service.holder(session, s) for s in hosted}
    return render(
        request,
        "appointments.html",
        status=status,
        schools=offer_schools(session, viewer),
        hosted=hosted,
        holders=holders,
        form=form or {"length": "15"},
        error=error,
        max_slots=service.MAX_SLOTS,
        **parent_view(session, viewer),
    )


def _problem(request: Request, exc: DomainError) -> tuple[str, int]:
    if isinstance(exc, service.AppointmentForbidden):
        status = 403
    elif isinstance(exc, service.SlotTaken):
        status = 409
    else:
        status = 422
    return translate(request, exc.template, **exc.params), status


def _back() -> RedirectResponse:
    return RedirectResponse("/appointments", status_code=303)


@router.get("/appointments")
def appointments(request: Request, viewer: Viewer, session: SessionDep) -> Response:
    return _page(request, session, viewer)


def _read(zone: ZoneInfo, fields: dict[str, str]) -> service.OfferForm:
    try:
        on = date.fromisoformat(fields["date"])
        starts = datetime.combine(on, time.fromisoformat(fields["time_from"]), zone)
        ends = datetime.combine(on, time.fromisoformat(fields["time_to"]), zone)
        minutes = int(fields["length"]) if fields["length"] not in ("", "0") else None
    except ValueError as exc:
        raise service.AppointmentInvalid(
            N_("Give the date, the times from and to, and the length of a slot in minutes.")
        ) from exc
    return service.OfferForm(starts, ends, minutes)


@router.post("/appointments/slots")
def offer_slots(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    school_id: Annotated[int, Form(ge=1, le=2**31)],
    day: Day = "",
    time_from: Clock = "",
    time_to: Clock = "",
    length: Length = "",
) -> Response:
    fields = {"date": day, "time_from": time_from, "time_to": time_to, "length": length}
    try:
        form = _read(ZoneInfo(settings.timezone), fields)
        service.offer(session, school_id, form, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        message, status = _problem(request, exc)
        return _page(request, session, viewer, form=fields, error=message, status=status)
    return _back()


def _slot(session: Session, slot_id: int) -> AppointmentSlot:
    slot = session.get(AppointmentSlot, slot_id)
    if slot is None:
        raise WebError(404, N_("There is no such appointment slot."))
    return slot


@router.post("/appointments/slots/{slot_id}/book")
def book_slot(request: Request, slot_id: PathId, viewer: Viewer, session: SessionDep) -> Response:
    slot = _slot(session, slot_id)
    try:
        service.book(session, slot, None, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        if isinstance(exc, service.AppointmentForbidden):
            raise WebError(404, N_("There is no such appointment slot.")) from None
        message, status = _problem(request, exc)
        return _page(request, session, viewer, error=message, status=status)
    _tick_soon(request)
    return _back()


@router.post("/appointments/slots/{slot_id}/cancel")
def cancel_slot(request: Request, slot_id: PathId, viewer: Viewer, session: SessionDep) -> Response:
    slot = _slot(session, slot_id)
    try:
        service.cancel_slot(session, slot, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        if isinstance(exc, service.AppointmentForbidden):
            raise WebError(404, N_("There is no such appointment slot.")) from None
        message, status = _problem(request, exc)
        return _page(request, session, viewer, error=message, status=status)
    _tick_soon(request)
    return _back()


@router.post("/appointments/bookings/{booking_id}/cancel")
def cancel_booking(
    request: Request, booking_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    booking = session.get(AppointmentBooking, booking_id)
    if booking is None or booking.parent_id != viewer.person_id:
        raise WebError(404, N_("There is no such booking of yours."))
    try:
        service.cancel_booking(session, booking, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        message, status = _problem(request, exc)
        return _page(request, session, viewer, error=message, status=status)
    _tick_soon(request)
    return _back()
