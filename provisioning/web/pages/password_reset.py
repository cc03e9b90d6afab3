""" "Forgot password?": a new password for the account that signs in with a phone number,
after a code sent by SMS to that number.

The same code rules as registration (countdown, expiry, tries, daily limits). Whether a
number has an account is not told: a code is "sent" either way (issued and counted, and
only sent when an account has the number), so the form cannot be used to find out who is
registered. The new password is set through Synapse's admin API, which logs out every
session of the account; the admin UI's own sessions of that person end too.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from matrix.accounts import reset_password
from matrix.errors import MatrixError
from provisioning.api.deps import MatrixDep, SessionDep
from provisioning.audit import record_audit
from provisioning.db.models import Person, WebSession
from provisioning.i18n import N_
from provisioning.services import limits, passwords
from provisioning.services.passwords import FormProblem
from provisioning.services.phone_codes import Purpose
from provisioning.web.deps import MaybeViewer
from provisioning.web.phone_check import (
    CodeState,
    account_with_phone,
    check_code,
    code_state,
    flash_calls,
    issue_without_sending,
    masked,
    send_code,
    shown_number,
    wanted_channel,
)
from provisioning.web.render import render, translate

log = logging.getLogger(__name__)
router = APIRouter()

FORM = "/password/forgot"


def _page(
    request: Request,
    session: Session,
    *,
    phone_text: str = "",
    phone: str | None = None,
    problems: dict[str, FormProblem] | None = None,
    code: CodeState | None = None,
    status: int = 200,
) -> Response:
    if code is None:
        code = code_state(session, phone, Purpose.PASSWORD_RESET, flash_calls=flash_calls(request))
    shown: dict[str, Any] = {
        k: translate(request, t, **p) for k, (t, p) in (problems or {}).items()
    }
    return render(
        request,
        "forgot_password.html",
        status=status,
        form={"phone": phone_text},
        problems=shown,
        code=code,
        code_sent_to=shown_number(phone) if phone and code.sent else "",
        password_rules=translate(request, passwords.RULES),
    )


def _mobile(text: str) -> tuple[str | None, dict[str, FormProblem]]:
    try:
        return limits.mobile_number(text), {}
    except limits.FieldRefused as refused:
        return None, {"phone": (refused.template, refused.params)}


@router.get(FORM)
def forgot_page(request: Request, session: SessionDep, viewer: MaybeViewer) -> Response:
    return _page(request, session)


@router.post(f"{FORM}/code")
async def send_reset_code(
    request: Request,
    session: SessionDep,
    matrix: MatrixDep,
    phone: Annotated[str, Form(max_length=256)] = "",
    channel: Annotated[str, Form(max_length=16)] = "",  # "sms": no flash call this time
) -> Response:
    number, problems = _mobile(phone)
    how = wanted_channel(request, channel)
    if number is None:
        return _page(request, session, phone_text=phone, problems=problems, status=400)
    owner = await account_with_phone(matrix, number)
    if owner is None:
        # Counted like a real code (countdown, daily limits), but not sent: nobody has it.
        state, refused = await issue_without_sending(
            request, session, number, Purpose.PASSWORD_RESET, how
        )
        log.info("password reset asked for %s, which no account has", masked(number))
    else:
        state, refused = await send_code(request, session, number, Purpose.PASSWORD_RESET, how)
    return _page(
        request,
        session,
        phone_text=phone,
        phone=number,
        code=state,
        problems={"sms": refused} if refused else {},
        status=429 if refused else 200,
    )


def _end_admin_sessions(session: Session, user_id: str, phone: str) -> None:
    person = session.scalar(select(Person).where(Person.matrix_user_id == user_id))
    if person is not None:
        session.execute(delete(WebSession).where(WebSession.person_id == person.id))
    record_audit(session, user_id, "account.password_reset", user_id, by="sms", phone=masked(phone))
    session.commit()


@router.post(FORM)
async def reset(
    request: Request,
    session: SessionDep,
    matrix: MatrixDep,
    phone: Annotated[str, Form(max_length=256)] = "",
    code: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    password_again: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    number, problems = _mobile(phone)
    owner = await account_with_phone(matrix, number) if number else None
    personal = tuple(v for v in (phone, number or "", owner or "") if v)
    refused_password = passwords.password_problem(password, personal=personal)
    if refused_password is not None:
        problems["password"] = refused_password
    elif password != password_again:
        problems["password_again"] = (N_("The two passwords differ."), {})
    if number and not code.strip():
        problems["code"] = (
            N_("Enter the code from the SMS. No SMS yet? Press «Send a code by SMS»."),
            {},
        )
    if number and not problems:
        wrong = await check_code(request, session, number, Purpose.PASSWORD_RESET, code)
        if wrong is not None:
            problems["code"] = wrong
        elif owner is None:  # right code for a number without an account: cannot happen
            problems["phone"] = (N_("No account signs in with this number. Ask your school."), {})
    if problems or number is None or owner is None:
        return _page(
            request, session, phone_text=phone, phone=number, problems=problems, status=400
        )
    try:
        await reset_password(matrix, owner, password)
    except MatrixError:
        log.warning("could not set a new password for %s", owner, exc_info=True)
        problems = {
            "sms": (N_("The password could not be changed right now. Try again in a minute."), {})
        }
        return _page(
            request, session, phone_text=phone, phone=number, problems=problems, status=503
        )
    await run_in_threadpool(_end_admin_sessions, session, owner, number)
    return RedirectResponse("/login?reset=1", status_code=303)
