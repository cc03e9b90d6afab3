"""The admin UI's routes; every state-changing request passes the CSRF check first."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from provisioning.web.deps import verify_csrf
from provisioning.web.pages import (
    appointments,
    audit,
    auth,
    broadcasts,
    gallery,
    home,
    invites,
    join_sign_on,
    library,
    meetings,
    not_me,
    password_reset,
    people,
    polls,
    requests,
    rooms,
    roster,
    school_year,
    schools,
    sign_on,
)

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)
for module in (
    auth, home, schools, broadcasts, meetings, appointments, audit, rooms, people, invites,
    requests, roster, library, gallery, polls, sign_on, join_sign_on, password_reset,
    not_me,
):  # fmt: skip
    router.include_router(module.router)
router.include_router(school_year.router)  # last: its routes never shadow another module's
