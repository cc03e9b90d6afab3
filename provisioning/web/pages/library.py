"""The region's verified library: region administrators curate it, staff browse it.

A region administrator adds materials (a file, uploaded to the homeserver's media
repository through the bot, or an https link), edits them, withdraws them and imports many
at once from JSON. Teachers and school administrators see the same list read-only: they
share items into rooms from the documents widget. Pupils and parents get 403. Every change
is authorised here, on the server; the template only hides the forms.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Literal

from babel.numbers import format_decimal
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from foundation.settings import Settings
from matrix import media
from matrix.errors import HomeserverUnavailable, MatrixError
from provisioning.api.deps import MatrixDep, PathId, SessionDep, SettingsDep
from provisioning.db.models import LibraryItem
from provisioning.i18n import N_
from provisioning.services import library
from provisioning.services.access import Access
from provisioning.services.schools import DomainError
from provisioning.web.deps import Viewer, WebError
from provisioning.web.render import render, translate

router = APIRouter()

MIB = 1024 * 1024
MAX_IMPORT_BYTES = 5 * MIB
GRADES = range(1, 12)
FIELDS = ("title", "subject", "grade_from", "grade_to", "description", "licence", "source",
          "verified_by", "kind", "url")  # fmt: skip
_MIMETYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


@dataclass(frozen=True)
class Filters:
    subject: str = ""
    grade: int | None = None
    text: str = ""
    withdrawn: bool = False


class FormProblem(Exception):
    """The form cannot be stored: re-render it with this (translated) message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _may_view(viewer: Access) -> None:
    if not viewer.may_browse_library:
        raise WebError(
            403,
            N_("The library is for teachers and pupils. Parents see what teachers send to the "
               "class chats."),
        )  # fmt: skip


def _may_curate(viewer: Access) -> None:
    """Only the region's administrators vouch for what the library holds."""
    if not viewer.region_admin:
        raise WebError(403, N_("Only a region administrator changes the library."))


def _grade(value: str) -> int | None:
    return int(value) if value.isdigit() and int(value) in GRADES else None


def _message(request: Request, exc: DomainError, *, labels: bool) -> str:
    """A service's error in the reader's language, each field's problem translated too."""
    params = dict(exc.params)
    if isinstance(exc, library.ItemInvalid):
        params["problem"] = library.describe(
            exc.problems, lambda text: translate(request, text), labels=labels
        )
    return translate(request, exc.template, **params)


def size_text(request: Request, size: int | None) -> str:
    if size is None:
        return ""
    locale = request.state.locale
    if size < MIB:
        kib = format_decimal(max(size / 1024, 0.1), format="#,##0.#", locale=locale)
        return translate(request, N_("%(size)s KB"), size=kib)
    return translate(request, N_("%(size)s MB"),
                     size=format_decimal(size / MIB, format="#,##0.#", locale=locale))  # fmt: skip


def clean_file_name(name: str) -> str:
    """The last part of a browser's file name: no folders, no control characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    if base in ("", ".", ".."):
        return "file"
    if len(base) > 255:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 254 - len(ext)] + dot + ext) if dot and len(ext) < 20 else base[:255]
    return base


def _page(
    request: Request,
    session: Session,
    viewer: Access,
    filters: Filters,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    import_error: str | None = None,
    imported: int | None = None,
    status: int = 200,
) -> Response:
    items = library.search(session, subject=filters.subject, grade=filters.grade,
                           text=filters.text,
                           include_withdrawn=filters.withdrawn and viewer.is_staff)  # fmt: skip
    return render(
        request, "library.html", status=status, items=items, filters=filters,
        subjects=library.subjects(session), grades=GRADES, may_curate=viewer.region_admin,
        form=form or {"kind": "link", "grade_from": "1", "grade_to": "11"}, error=error,
        import_error=import_error, imported=imported, size_text=lambda n: size_text(request, n),
        changes=library.recent_changes(session) if viewer.region_admin else [],
    )  # fmt: skip


def _edit_page(
    request: Request,
    session: Session,
    row: LibraryItem,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    if form is None:
        form = {key: str(getattr(row, key) or "") for key in FIELDS}
        if row.kind == "file":  # the link field is for links; the file stays unless replaced
            form["url"] = ""
    return render(
        request, "library_item.html", status=status, item=row, form=form, error=error,
        subjects=library.subjects(session), grades=GRADES,
        size_text=lambda n: size_text(request, n),
    )  # fmt: skip


@router.get("/library")
def library_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    subject: Annotated[str, Query(max_length=255)] = "",
    grade: Annotated[str, Query(max_length=2)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    withdrawn: Annotated[str, Query(max_length=3)] = "",
    imported: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    _may_view(viewer)
    filters = Filters(subject.strip(), _grade(grade), q.strip(), withdrawn == "yes")
    return _page(request, session, viewer, filters, imported=imported)


async def _checked_item(
    request: Request,
    fields: dict[str, str],
    upload: UploadFile | None,
    *,
    matrix: MatrixDep,
    settings: Settings,
    current: LibraryItem | None = None,
) -> library.LibraryItemIn:
    """Check the form, then (only if it is good) upload its file; return the item to store.

    Raises:
        FormProblem: what to correct, in the reader's language.
    """
    data: dict[str, object] = dict(fields)
    chosen = upload is not None and bool(upload.filename)
    if fields["kind"] == "file":
        if not chosen and current is not None and current.kind == "file":
            data.update(url=current.url, file_name=current.file_name,
                        mimetype=current.mimetype, size=current.size)  # fmt: skip
        elif not chosen:
            raise FormProblem(translate(request, N_("Choose the file to upload.")))
        else:  # checked below with a stand-in address; the real one comes from the upload
            data.update(url="mxc://parta.invalid/pending", file_name="pending")
    try:
        item = library.validate(data)
    except DomainError as exc:
        raise FormProblem(_message(request, exc, labels=True)) from exc
    if item.kind != "file" or not chosen or upload is None:
        return item

    limit = settings.max_upload_size_mb * MIB
    if upload.size is not None and upload.size > limit:
        raise FormProblem(_too_big(request, settings), 413)
    content = await upload.read(limit + 1)
    if len(content) > limit:
        raise FormProblem(_too_big(request, settings), 413)
    if not content:
        raise FormProblem(translate(request, N_("The file is empty: choose another one.")))
    name = clean_file_name(upload.filename or "")
    mimetype = upload.content_type or ""
    if not _MIMETYPE.match(mimetype) or mimetype == "application/octet-stream":
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    try:
        uri = await media.upload(matrix, name, mimetype, content)
    except (MatrixError, HomeserverUnavailable) as exc:
        problem = translate(
            request, N_("The homeserver did not take the file (%(problem)s). Try again later."),
            problem=str(exc),
        )  # fmt: skip
        raise FormProblem(problem, 502) from exc
    return item.model_copy(
        update={"url": uri, "file_name": name, "mimetype": mimetype, "size": len(content)}
    )


def _too_big(request: Request, settings: Settings) -> str:
    return translate(
        request,
        N_("The file is larger than %(limit)s MB, the most this region accepts; nothing was "
           "uploaded. Give a link to it instead."),
        limit=settings.max_upload_size_mb,
    )  # fmt: skip


ItemForm = Annotated[str, Form(max_length=4000)]


def item_fields(
    title: ItemForm = "",
    subject: ItemForm = "",
    grade_from: ItemForm = "",
    grade_to: ItemForm = "",
    description: ItemForm = "",
    licence: ItemForm = "",
    source: ItemForm = "",
    verified_by: ItemForm = "",
    kind: ItemForm = "link",
    url: ItemForm = "",
) -> dict[str, str]:
    """The add and edit forms' fields, as typed (re-shown as they are after an error)."""
    return {"title": title, "subject": subject, "grade_from": grade_from,
            "grade_to": grade_to, "description": description, "licence": licence,
            "source": source, "verified_by": verified_by, "kind": kind, "url": url}  # fmt: skip


ItemFields = Annotated[dict[str, str], Depends(item_fields)]


@router.post("/library")
async def add_item(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    matrix: MatrixDep,
    fields: ItemFields,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    _may_curate(viewer)
    try:
        item = await _checked_item(request, fields, file, matrix=matrix, settings=settings)
    except FormProblem as problem:
        return _page(request, session, viewer, Filters(), form=fields, error=problem.message,
                     status=problem.status)  # fmt: skip
    row = library.create(session, item, actor=viewer.user_id, person_id=viewer.person_id)
    session.commit()
    return RedirectResponse(f"/library#item-{row.id}", status_code=303)


def _item(session: Session, item_id: int) -> LibraryItem:
    try:
        return library.get(session, item_id)
    except DomainError as exc:
        raise WebError(404, exc.template, **exc.params) from exc


@router.get("/library/{item_id:int}/edit")
def edit_page(request: Request, item_id: PathId, viewer: Viewer, session: SessionDep) -> Response:
    _may_curate(viewer)
    return _edit_page(request, session, _item(session, item_id))


@router.post("/library/{item_id:int}")
async def edit_item(
    request: Request,
    item_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    matrix: MatrixDep,
    fields: ItemFields,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    _may_curate(viewer)
    row = _item(session, item_id)
    try:
        item = await _checked_item(
            request, fields, file, matrix=matrix, settings=settings, current=row
        )
    except FormProblem as problem:
        return _edit_page(request, session, row, form=fields, error=problem.message,
                          status=problem.status)  # fmt: skip
    library.update(session, row.id, item, actor=viewer.user_id)
    session.commit()
    return RedirectResponse(f"/library#item-{row.id}", status_code=303)


@router.get("/library/import")
@router.get("/library/{item_id:int}")
def back_to_the_form(request: Request, item_id: int | None = None) -> Response:
    """Where a form re-rendered after an error was sent: switching language lands here."""
    target = f"/library/{item_id}/edit" if item_id is not None else "/library#import"
    return RedirectResponse(target, status_code=303)


@router.post("/library/{item_id:int}/{change}")
def publish_or_withdraw(
    item_id: PathId, change: Literal["withdraw", "restore"], viewer: Viewer, session: SessionDep
) -> Response:
    """Withdraw an item from the library, or publish a withdrawn one again."""
    _may_curate(viewer)
    row = _item(session, item_id)
    if change == "withdraw":
        library.withdraw(session, row.id, actor=viewer.user_id)
    else:
        library.restore(session, row.id, actor=viewer.user_id)
    session.commit()
    shown = "?withdrawn=yes" if change == "withdraw" else ""
    return RedirectResponse(f"/library{shown}#item-{row.id}", status_code=303)


@router.post("/library/import")
async def import_items(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
) -> Response:
    _may_curate(viewer)
    raw = await file.read(MAX_IMPORT_BYTES + 1)
    if len(raw) > MAX_IMPORT_BYTES:
        problem = translate(request, N_("The file is over 5 MB; split it in parts."))
        return _page(request, session, viewer, Filters(), import_error=problem, status=413)
    try:
        count = library.import_json(session, raw, actor=viewer.user_id,
                                    person_id=viewer.person_id)  # fmt: skip
    except DomainError as exc:
        session.rollback()
        message = _message(request, exc, labels=False)
        return _page(request, session, viewer, Filters(), import_error=message, status=400)
    session.commit()
    return RedirectResponse(f"/library?imported={count}", status_code=303)
