"""The region's verified library: validated create/update/withdraw, search, JSON import.

Every change is checked by `LibraryItemIn` before it touches the database; an import is
all-or-nothing: one bad item and nothing is stored, with an error naming item and field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.audit import record_audit
from provisioning.db.base import utcnow
from provisioning.db.models import AuditEvent, LibraryItem
from provisioning.i18n import N_
from provisioning.services.schools import DomainError

# What the admin UI calls each field (the JSON import names the key itself).
FIELD_LABELS = {
    "title": N_("Title"),
    "subject": N_("Subject"),
    "grade_from": N_("From grade"),
    "grade_to": N_("To grade"),
    "description": N_("Description"),
    "kind": N_("Kind"),
    "url": N_("Link or file"),
    "file_name": N_("File name"),
    "mimetype": N_("File type"),
    "size": N_("Size"),
    "licence": N_("Licence"),
    "source": N_("Source"),
    "verified_by": N_("Verified by"),
}

# Pydantic's error types, said the way a school admin understands them.
_PROBLEMS = {
    "missing": N_("is missing"),
    "string_too_short": N_("is empty"),
    "string_too_long": N_("is too long"),
    "string_type": N_("must be text"),
    "literal_error": N_("must be «file» or «link»"),
}
_GRADE_PROBLEM = N_("must be a grade from 1 to 11")
_SIZE_PROBLEM = N_("must be a number of bytes")
_OTHER_PROBLEM = N_("is not valid")
_CUSTOM = frozenset({"grade_range", "link_https", "file_mxc", "file_name"})


class LibraryItemIn(BaseModel):
    """One item as an admin or a JSON import gives it.

    Custom checks raise `PydanticCustomError` whose message is an `N_` message ID, so
    each problem is tied to its field and can be shown in the reader's language.
    """

    model_config = ConfigDict(str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=300)
    subject: str = Field(min_length=1, max_length=255)
    grade_from: int = Field(ge=1, le=11)
    grade_to: int = Field(ge=1, le=11)
    description: str = Field(default="", max_length=4000)
    kind: Literal["file", "link"]
    url: str = Field(min_length=1, max_length=2000)
    file_name: str | None = Field(default=None, max_length=255, validate_default=True)
    mimetype: str | None = Field(default=None, max_length=255)
    size: int | None = Field(default=None, ge=0)
    licence: str = Field(min_length=1, max_length=255)
    source: str = Field(min_length=1, max_length=500)
    verified_by: str = Field(min_length=1, max_length=255)

    @field_validator("grade_to")
    @classmethod
    def _range(cls, value: int, info: ValidationInfo) -> int:
        start = info.data.get("grade_from")
        if isinstance(start, int) and value < start:
            raise PydanticCustomError("grade_range", N_("is below the grade it starts from"))
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind == "link" and not value.startswith("https://"):
            raise PydanticCustomError("link_https", N_("must be a link starting with https://"))
        if kind == "file" and not value.startswith("mxc://"):
            raise PydanticCustomError(
                "file_mxc", N_("must be the mxc:// address of an uploaded file")
            )
        return value

    @field_validator("file_name")
    @classmethod
    def _file_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kind") == "file" and not value:
            raise PydanticCustomError("file_name", N_("is missing for a file"))
        return value or None


class ItemProblem(NamedTuple):
    """One field's problem: the field's key and an `N_` message ID."""

    field: str
    message: str


class ItemInvalid(DomainError):
    """An item failed validation; `problems` says which fields and why.

    The message's `%(problem)s` is English; the admin UI rebuilds it with `describe`.
    """

    def __init__(self, template: str, problems: list[ItemProblem], **params: object) -> None:
        super().__init__(template, problem=describe(problems), **params)
        self.problems = problems


def problems_of(exc: ValidationError) -> list[ItemProblem]:
    """Every field's problem, as message IDs the admin UI translates."""
    found = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "item"
        kind = error["type"]
        if kind in _CUSTOM:
            message = error["msg"]  # the N_ message ID the validator raised
        elif kind in _PROBLEMS:
            message = _PROBLEMS[kind]
        elif field in ("grade_from", "grade_to"):
            message = _GRADE_PROBLEM
        elif field == "size":
            message = _SIZE_PROBLEM
        else:
            message = _OTHER_PROBLEM
        found.append(ItemProblem(field, message))
    return found


def describe(
    problems: list[ItemProblem], translate: Callable[[str], str] = str, *, labels: bool = False
) -> str:
    """The problems as one phrase, each message passed through `translate`.

    Args:
        labels: name each field by its form label (translated) instead of its JSON key.
    """
    parts = []
    for problem in problems:
        where = problem.field
        if labels and problem.field in FIELD_LABELS:
            where = translate(FIELD_LABELS[problem.field])
        parts.append(f"{where}: {translate(problem.message)}")
    return "; ".join(parts)


def validate(data: Mapping[str, object]) -> LibraryItemIn:
    """Check an item given as a form or a JSON object.

    Raises:
        ItemInvalid: naming every field with a problem.
    """
    try:
        return LibraryItemIn.model_validate(data)
    except ValidationError as exc:
        raise ItemInvalid(N_("The item is not valid: %(problem)s."), problems_of(exc)) from exc


def _fields(item: LibraryItemIn) -> dict[str, object]:
    fields = item.model_dump()
    if item.kind == "link":  # a link has no file: stale file facts would mislead
        fields.update(file_name=None, mimetype=None, size=None)
    fields.update(subject_key=_key(item.subject),
                  search_text=_key(f"{item.title}\n{item.description}"))  # fmt: skip
    return fields


def _key(text: str) -> str:
    """What search compares: case-folded in Python, as the databases' lower() is ASCII-only."""
    return " ".join(text.casefold().split())


def create(
    session: Session, item: LibraryItemIn, *, actor: str, person_id: int | None
) -> LibraryItem:
    """Add a checked item; the audit event commits with it."""
    row = LibraryItem(**_fields(item), added_by=person_id)
    session.add(row)
    session.flush()
    record_audit(session, actor, "library.add", f"library:{row.id}", title=row.title,
                 school_subject=row.subject, kind=row.kind)  # fmt: skip
    return row


def get(session: Session, item_id: int) -> LibraryItem:
    """Raises: DomainError if there is no such item."""
    row = session.get(LibraryItem, item_id)
    if row is None:
        raise DomainError(N_("There is no library item %(id)s."), id=item_id)
    return row


def update(session: Session, item_id: int, item: LibraryItemIn, *, actor: str) -> LibraryItem:
    """Replace an item's fields (a withdrawn item stays withdrawn)."""
    row = get(session, item_id)
    for key, value in _fields(item).items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    record_audit(session, actor, "library.edit", f"library:{row.id}", title=row.title)
    return row


def withdraw(session: Session, item_id: int, *, actor: str) -> LibraryItem:
    """Hide an item from search; the row stays so shared copies keep their provenance."""
    row = get(session, item_id)
    if row.withdrawn_at is None:
        row.withdrawn_at = utcnow()
        record_audit(session, actor, "library.withdraw", f"library:{row.id}", title=row.title)
    return row


def restore(session: Session, item_id: int, *, actor: str) -> LibraryItem:
    """Publish a withdrawn item again (withdrawn by mistake, or checked again)."""
    row = get(session, item_id)
    if row.withdrawn_at is not None:
        row.withdrawn_at = None
        record_audit(session, actor, "library.restore", f"library:{row.id}", title=row.title)
    return row


def recent_changes(session: Session, limit: int = 20) -> list[AuditEvent]:
    """The library's last changes, newest first: who added, edited, withdrew what."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.like("library.%"))
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(
    session: Session, *, subject: str = "", grade: int | None = None, text: str = "",
    include_withdrawn: bool = False,
) -> list[LibraryItem]:  # fmt: skip
    """Items by subject (any case), by a grade inside their range, by words of title or
    description; withdrawn ones only when asked."""
    query = select(LibraryItem)
    if not include_withdrawn:
        query = query.where(LibraryItem.withdrawn_at.is_(None))
    if subject.strip():
        query = query.where(LibraryItem.subject_key == _key(subject))
    if grade is not None:
        query = query.where(LibraryItem.grade_from <= grade, LibraryItem.grade_to >= grade)
    if text.strip():
        query = query.where(LibraryItem.search_text.like(_like(_key(text)), escape="\\"))
    order = (LibraryItem.subject_key, LibraryItem.search_text, LibraryItem.id)
    return list(session.scalars(query.order_by(*order)))


def subjects(session: Session) -> list[str]:
    """The subjects of the published items, sorted, for filters and suggestions."""
    found = session.scalars(
        select(func.min(LibraryItem.subject))  # one spelling per subject, whatever its case
        .where(LibraryItem.withdrawn_at.is_(None))
        .group_by(LibraryItem.subject_key)
    )
    return sorted(found, key=_key)


MAX_TITLE_IN_ERROR = 80


def import_json(session: Session, raw: bytes, *, actor: str, person_id: int | None) -> int:
    """Add every item of a JSON list, or none: the first bad one is named in the error.

    Returns:
        How many items were added.

    Raises:
        DomainError: the file is not a JSON list of objects; `ItemInvalid` for an item
            that fails validation (its number counts from 1, its title and fields named).
    """
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DomainError(N_("The file is not valid JSON: %(problem)s."), problem=str(exc)) from exc
    if not isinstance(data, list):
        raise DomainError(N_("The file must hold a JSON list of items."))
    if not data:
        raise DomainError(N_("The file holds no items."))
    checked: list[LibraryItemIn] = []
    for number, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            raise DomainError(N_("Item %(number)s is not an object."), number=number)
        try:
            checked.append(LibraryItemIn.model_validate(entry))
        except ValidationError as exc:
            raise ItemInvalid(
                N_("Item %(number)s (%(title)s) is not valid: %(problem)s. Nothing was imported."),
                problems_of(exc), number=number,
                title=str(entry.get("title", ""))[:MAX_TITLE_IN_ERROR],
            ) from exc  # fmt: skip
    for item in checked:
        create(session, item, actor=actor, person_id=person_id)
    return len(checked)


def public(row: LibraryItem) -> dict[str, object]:
    return {
        "id": row.id, "title": row.title, "subject": row.subject,
        "grade_from": row.grade_from, "grade_to": row.grade_to,
        "description": row.description, "kind": row.kind, "url": row.url,
        "file_name": row.file_name, "mimetype": row.mimetype, "size": row.size,
        "licence": row.licence, "source": row.source, "verified_by": row.verified_by,
        "withdrawn": row.withdrawn_at is not None,
    }  # fmt: skip
