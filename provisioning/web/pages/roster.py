"""The roster import page: template, preview with every row's problems, apply, progress.

The preview applies the file inside a transaction that is rolled back, so it reports what
would change (and every problem, in the reader's language) without changing anything.
The checked file waits in `var/uploads/` under a random name until it is applied or a
day passes; applying checks it again, in one transaction, and records a `RosterImport`
whose progress page follows the reconciler placing each person on Matrix.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.settings import Settings
from provisioning.api.deps import PathId, SessionDep, SettingsDep, reconcile_soon
from provisioning.db.models import ManagedRoom, Person, RoomKind, RosterImport, School
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.services.roster import (
    ImportSummary,
    RosterCheck,
    RosterError,
    check_roster,
    import_roster,
    parse_class_list,
)
from provisioning.spreadsheet import csv_attachment, csv_document
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import school_for
from provisioning.web.render import render, translate

router = APIRouter()

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
UPLOAD_LIFETIME_S = 86_400
PREVIEW_ROWS = 300
TEMPLATE_ROWS = (
    ("класс", "роль", "ФИО", "телефон", "почта", "родитель ученика", "предмет"),
    ("5А", "классный руководитель", "Ольга Сергеевна Иванова", "+7 900 000-00-01", "", "", ""),
    ("5А", "учитель", "Павел Ильич Смирнов", "", "pavel@example.org", "", "Математика"),
    ("5А", "ученик", "Иван Петров", "", "", "", ""),
    ("5А", "родитель", "Анна Петрова", "+7 900 000-00-02", "", "Иван Петров", ""),
)


def _uploads(settings: Settings) -> Path:
    folder = settings.var_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):  # sweep files never applied
        if time.time() - old.stat().st_mtime > UPLOAD_LIFETIME_S:
            old.unlink(missing_ok=True)
    return folder


def _upload_path(settings: Settings, school_id: int, token: str) -> Path:
    if not token.isalnum() or len(token) > 64:
        raise WebError(404, N_("This file is no longer waiting; upload it again."))
    return _uploads(settings) / f"{school_id}-{token}.csv"


@router.get("/schools/{school_id}/import")
def import_page(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school = school_for(session, viewer, school_id, manage=True)
    return render(request, "import.html", school=school, problems=[], preview=None)


@router.get("/schools/{school_id}/import/template.csv")
def template(school_id: PathId, viewer: Viewer, session: SessionDep) -> Response:
    school_for(session, viewer, school_id, manage=True)
    return csv_attachment(csv_document(TEMPLATE_ROWS, delimiter=";"), "parta-roster.csv")


def _dry_run(
    session: Session,
    school: School,
    data: bytes,
    settings: Settings,
    actor: str,
    create_classes: set[tuple[int, str]],
) -> tuple[RosterCheck, ImportSummary]:
    """Check and apply in a transaction that is always rolled back."""
    try:
        checked = check_roster(session, school, data, create_classes=create_classes)
        summary = import_roster(
            session, school, checked.rows, server_name=settings.server_name, actor=actor,
            create_classes=create_classes,
        )  # fmt: skip
        return checked, summary
    finally:
        session.rollback()


def _checked_page(
    request: Request,
    session: Session,
    school: School,
    settings: Settings,
    actor: str,
    *,
    token: str,
    filename: str,
    create_classes: set[tuple[int, str]],
) -> Response:
    """The preview of the waiting file, or every problem of it with the classes it could
    create (tick boxes: a class is created only when the person says so)."""
    data = _upload_path(settings, school.id, token).read_bytes()
    try:
        checked, summary = _dry_run(session, school, data, settings, actor, create_classes)
    except RosterError as exc:
        problems = [item.text(lambda t: translate(request, t)) for item in exc.items]
        return render(request, "import.html", status=400, school=school, problems=problems,
                      preview=None, filename=filename, token=token,
                      missing_classes=exc.missing_classes)  # fmt: skip
    rows = checked.rows
    return render(
        request, "import.html", school=school, problems=[], token=token,
        filename=filename, preview=summary, missing_classes=checked.missing_classes,
        create_classes=",".join(c.label for c in checked.missing_classes),
        rows=rows[:PREVIEW_ROWS], more_rows=max(0, len(rows) - PREVIEW_ROWS),
    )  # fmt: skip


@router.post("/schools/{school_id}/import")
async def preview(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
) -> Response:
    school = school_for(session, viewer, school_id, manage=True)
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        problems = [translate(request, N_("The file is over 5 MB; split it by class."))]
        return render(request, "import.html", status=413, school=school, problems=problems,
                      preview=None)  # fmt: skip
    # The file waits (a day at most) even with problems: the classes it names may be
    # chosen for creation on the page, and it is checked again without a second upload.
    token = secrets.token_hex(16)
    _upload_path(settings, school.id, token).write_bytes(data)
    return _checked_page(
        request, session, school, settings, viewer.user_id, token=token,
        filename=(file.filename or "roster.csv")[:255], create_classes=set(),
    )  # fmt: skip


def _waiting_file(settings: Settings, school: School, token: str) -> None:
    if not _upload_path(settings, school.id, token).exists():
        raise WebError(404, N_("This file is no longer waiting; upload it again."))


def _chosen_classes(labels: list[str]) -> set[tuple[int, str]]:
    chosen = parse_class_list(",".join(labels))
    if chosen is None:
        raise WebError(400, N_("Choose classes from the list."))
    return chosen


@router.post("/schools/{school_id}/import/check")
def check_again(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=64)],
    filename: Annotated[str, Form(max_length=255)] = "roster.csv",
    create: Annotated[list[str] | None, Form()] = None,  # each checked by parse_class_list
) -> Response:
    """The waiting file checked again, creating the classes ticked on the page."""
    school = school_for(session, viewer, school_id, manage=True)
    _waiting_file(settings, school, token)
    return _checked_page(
        request, session, school, settings, viewer.user_id, token=token, filename=filename,
        create_classes=_chosen_classes(create or []),
    )  # fmt: skip


@router.post("/schools/{school_id}/import/apply")
def apply(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=64)],
    filename: Annotated[str, Form(max_length=255)] = "roster.csv",
    create_classes: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    school = school_for(session, viewer, school_id, manage=True)
    _waiting_file(settings, school, token)
    path = _upload_path(settings, school.id, token)
    wanted = _chosen_classes([create_classes])
    try:
        checked = check_roster(session, school, path.read_bytes(), create_classes=wanted)
        summary = import_roster(
            session, school, checked.rows, server_name=settings.server_name,
            actor=viewer.user_id, create_classes=wanted,
        )  # fmt: skip
    except RosterError as exc:  # the school changed since the preview
        session.rollback()
        problems = [item.text(lambda t: translate(request, t)) for item in exc.items]
        return render(request, "import.html", status=400, school=school, problems=problems,
                      preview=None, token=token, filename=filename,
                      missing_classes=exc.missing_classes)  # fmt: skip
    record = RosterImport(
        school_id=school.id, actor=viewer.user_id, filename=filename,
        summary={"created": summary.created, "moved": summary.moved,
                 "unchanged": summary.unchanged, "classes_created": summary.classes_created},
        person_ids=summary.person_ids,
    )  # fmt: skip
    session.add(record)
    session.commit()
    path.unlink(missing_ok=True)
    reconcile_soon(request)
    return RedirectResponse(f"/schools/{school.id}/import/{record.id}", status_code=303)


def _progress(session: Session, record: RosterImport) -> tuple[int, int]:
    """(placed, total): people of the import who are members of the school's space now."""
    total = len(record.person_ids)
    if not total:
        return 0, 0
    user_ids = set(
        session.scalars(select(Person.matrix_user_id).where(Person.id.in_(record.person_ids))).all()
    )
    space = session.scalar(
        select(ManagedRoom).where(
            ManagedRoom.school_id == record.school_id, ManagedRoom.kind == RoomKind.SCHOOL_SPACE
        )
    )
    members = set((space.applied or {}).get("members", [])) | set(
        (space.applied or {}).get("invited", [])
    ) if space is not None else set()  # fmt: skip
    return len(user_ids & members), total


def _import_for(session: Session, school_id: int, import_id: int) -> RosterImport:
    record = session.get(RosterImport, import_id)
    if record is None or record.school_id != school_id:
        raise WebError(404, N_("There is no such import."))
    return record


@router.get("/schools/{school_id}/import/{import_id}")
def result(
    request: Request, school_id: PathId, import_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    return _import_page(request, school_id, import_id, viewer, session, "import_result.html")


@router.get("/schools/{school_id}/import/{import_id}/progress")
def progress(
    request: Request, school_id: PathId, import_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    """The progress bar alone: htmx polls it until everyone is placed."""
    return _import_page(request, school_id, import_id, viewer, session, "_import_progress.html")


def _import_page(
    request: Request,
    school_id: int,
    import_id: int,
    viewer: Access,
    session: Session,
    template: str,
) -> Response:
    school = school_for(session, viewer, school_id, manage=True)
    record = _import_for(session, school.id, import_id)
    placed, total = _progress(session, record)
    return render(request, template, school=school, record=record, placed=placed, total=total)
