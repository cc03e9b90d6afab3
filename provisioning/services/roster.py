"""Roster import: a school's people from a CSV file as spreadsheets export it.

Columns (a header row; Russian or English names, any order):
  класс / class              "5А" (required for pupils; for teachers, the class they teach)
  роль / role                ученик, учитель, классный руководитель, родитель, администратор
                             (or pupil, teacher, class_teacher, parent, school_admin)
  ФИО / full_name            the person's full name
  телефон / phone            optional
  почта / email              optional
  id в реестре / roster_id   optional: the region roster's ID of the person, unique in the
                             region; the single sign-on may name people by it
  родитель ученика / parent_of   for parents: the full name of their child in this school
  предмет / subject          optional, for teachers of a class

All or nothing: every bad row is reported with its number and reason, and then nothing is
changed. A good file is applied in one transaction. Importing the same file again changes
nothing; a later file where a pupil's class differs moves the pupil.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    ParentLink,
    Person,
    Role,
    RoleAssignment,
    School,
    SchoolClass,
)
from provisioning.i18n import N_
from provisioning.services import limits
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from provisioning.spreadsheet import unprotect_cell

MAX_ROWS = 20_000

_COLUMNS = {
    "class": ("класс", "class"),
    "role": ("роль", "role"),
    "full_name": ("фио", "full_name", "full name", "имя"),
    "phone": ("телефон", "phone"),
    "email": ("почта", "email", "e-mail", "электронная почта"),
    "roster_id": ("id в реестре", "roster_id", "roster id", "идентификатор"),
    "parent_of": ("родитель ученика", "parent_of", "parent of", "ребёнок", "ребенок"),
    "subject": ("предмет", "subject"),
}
_ROLES = {
    "ученик": "pupil", "ученица": "pupil", "pupil": "pupil", "student": "pupil",
    "учитель": "teacher", "teacher": "teacher",
    "классный руководитель": "class_teacher", "class_teacher": "class_teacher",
    "родитель": "parent", "parent": "parent",
    "администратор": "school_admin", "директор": "school_admin", "school_admin": "school_admin",
}  # fmt: skip
_CLASS = re.compile(r"^\s*(\d{1,2})\s*-?\s*([A-Za-zА-Яа-яЁё])\s*$")


_ROW = N_("row %(row)s")
Reason = tuple[str, dict[str, object]]  # a message template (marked with N_) and its values


@dataclass(frozen=True)
class Problem:
    """What is wrong with one row (or, with `row` None, with the whole file)."""

    row: int | None
    reasons: tuple[Reason, ...]

    def text(self, translate: Callable[[str], str] = str) -> str:
        said = "; ".join(translate(t) % p if p else translate(t) for t, p in self.reasons)
        if self.row is None:
            return said
        return f"{translate(_ROW) % {'row': self.row}}: {said}"


class RosterError(ValueError):
    """The file was rejected; `problems` says "row N: reason" for every bad row (English),
    `items` the same, translatable."""

    def __init__(self, items: list[Problem], missing_classes: list[MissingClass] | None = None):
        self.items = items
        self.problems = [item.text() for item in items]
        self.missing_classes = missing_classes or []  # what the file could create, if asked
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class MissingClass:
    """A class the file names that the school does not have: created only when asked."""

    label: str  # "7Я"
    rows: tuple[int, ...]
    similar: tuple[str, ...]  # the school's classes it may be a slip for
    create: bool  # the import was asked to create it


def _file_problem(template: str, **params: object) -> RosterError:
    return RosterError([Problem(None, ((template, params),))])


def _row_problem(row: int, template: str, **params: object) -> Problem:
    return Problem(row, ((template, params),))


@dataclass(frozen=True)
class RosterRow:
    number: int  # as a spreadsheet shows it: the header is row 1
    role: str
    full_name: str
    class_label: tuple[int, str] | None
    phone: str | None
    email: str | None
    parent_of: str | None
    subject: str | None
    roster_id: str | None = None


@dataclass
class ImportSummary:
    created: int = 0
    moved: int = 0
    unchanged: int = 0
    classes_created: list[str] = field(default_factory=list)
    person_ids: list[int] = field(default_factory=list)  # everyone created or moved

    @property
    def changed(self) -> bool:
        return bool(self.created or self.moved or self.classes_created)


def parse_class(label: str) -> tuple[int, str] | None:
    match = _CLASS.match(label)
    return (int(match.group(1)), match.group(2).upper()) if match else None


def parse_roster(data: bytes, known_pupils: Collection[str] = ()) -> list[RosterRow]:
    """Read and check the whole file; raise RosterError listing every bad row, in order.

    Args:
        known_pupils: pupils of the school already, whom a parent's row may name as their
            child without the child's own row.
    """
    read = _read(data, known_pupils)
    if read.reasons:
        raise RosterError(read.problems())
    if not read.rows:
        raise _file_problem(N_("the file has no people in it"))
    return read.rows


@dataclass
class _Read:
    """A file read row by row: every row as far as it could be understood, and its reasons."""

    candidates: list[RosterRow] = field(default_factory=list)  # fields that failed are empty
    reasons: dict[int, list[Reason]] = field(default_factory=dict)

    def refuse(self, row: int, reason: Reason) -> None:
        self.reasons.setdefault(row, []).append(reason)

    @property
    def rows(self) -> list[RosterRow]:
        return [c for c in self.candidates if c.number not in self.reasons]

    def problems(self) -> list[Problem]:
        return [Problem(row, tuple(self.reasons[row])) for row in sorted(self.reasons)]


def _read(data: bytes, known_pupils: Collection[str]) -> _Read:
    """Every problem of the file at once: a row's own, and those between rows."""
    try:
        text = data.decode("utf-8-sig")  # spreadsheets add a BOM; both are fine
    except UnicodeDecodeError as exc:
        raise _file_problem(N_("the file is not UTF-8 text: save it as «CSV UTF-8»")) from exc
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise _file_problem(N_("the file is empty: the first row must name the columns"))
    delimiter = ";" if lines[0].count(";") >= lines[0].count(",") else ","
    # newline="": a cell may hold a quoted line break, and a lone carriage return ends a
    # row as it does in a spreadsheet (old Mac exports), instead of stopping the reader.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise RosterError([_unreadable(1, exc)]) from exc
    index: dict[str, int] = {}
    for key, names in _COLUMNS.items():
        for position, name in enumerate(header):
            if name in names:
                index[key] = position
    missing = [_COLUMNS[k][0] for k in ("role", "full_name") if k not in index]
    if missing:
        raise RosterError(
            [_row_problem(1, N_("the columns %(columns)s are missing"), columns=", ".join(missing))]
        )

    read = _Read()
    unreadable: list[Problem] = []
    for number, cells in enumerate(_records(reader, unreadable), start=2):
        if number > MAX_ROWS + 1:
            raise _file_problem(
                N_("the file has more than %(rows)s rows; split it by class"), rows=MAX_ROWS
            )
        if not any(c.strip() for c in cells):
            continue

        def cell(key: str, cells: list[str] = cells) -> str:
            position = index.get(key)
            if position is None or position >= len(cells):
                return ""
            return unprotect_cell(cells[position].strip())  # a cell our template marked

        reasons: list[Reason] = []
        role = _ROLES.get(cell("role").lower())
        if role is None and not cell("role"):
            reasons.append((N_("the role is empty"), {}))
        elif role is None:
            reasons.append((N_("unknown role «%(role)s»"), {"role": limits.shown(cell("role"))}))
        name = _checked(limits.person_name, cell("full_name"), reasons)
        class_text = cell("class")
        class_label = parse_class(class_text) if class_text else None
        if class_text and class_label is None:
            reasons.append(
                (N_("«%(text)s» is not a class such as 5А"), {"text": limits.shown(class_text)})
            )
        if role == "pupil" and class_label is None and not class_text:
            reasons.append((N_("a pupil needs a class"), {}))
        phone = _checked(limits.phone_number, cell("phone"), reasons) if cell("phone") else None
        email = _checked(limits.email_address, cell("email"), reasons) if cell("email") else None
        roster_id = (
            _checked(limits.roster_id, cell("roster_id"), reasons) if cell("roster_id") else None
        )
        subject = (
            _checked(limits.subject_name, cell("subject"), reasons) if cell("subject") else None
        )
        parent_of = (
            _checked(limits.person_name, cell("parent_of"), reasons) if cell("parent_of") else None
        )
        if role == "parent" and not cell("parent_of"):
            reasons.append((N_("a parent needs the name of their child (родитель ученика)"), {}))
        for reason in reasons:
            read.refuse(number, reason)
        read.candidates.append(
            RosterRow(
                number,
                role or "",
                name,
                class_label,
                phone,
                email,
                parent_of or None,
                subject,
                roster_id or None,
            )
        )
    pupils = Counter(c.full_name for c in read.candidates if c.role == "pupil" and c.full_name)
    roster_ids = Counter(c.roster_id for c in read.candidates if c.roster_id)
    for row in read.candidates:
        if row.roster_id and roster_ids[row.roster_id] > 1:
            read.refuse(
                row.number,
                (N_("the roster ID %(roster_id)s appears twice"), {"roster_id": row.roster_id}),
            )
        if row.role == "pupil" and pupils[row.full_name] > 1:
            read.refuse(
                row.number, (N_("the pupil «%(name)s» appears twice"), {"name": row.full_name})
            )
        if (
            row.role == "parent"
            and row.parent_of
            and row.parent_of not in pupils
            and row.parent_of not in known_pupils
        ):
            read.refuse(
                row.number,
                (
                    N_("the child «%(name)s» is neither in this file nor a pupil of the school"),
                    {"name": row.parent_of},
                ),
            )
    for problem in unreadable:
        assert problem.row is not None
        for reason in problem.reasons:
            read.refuse(problem.row, reason)
    return read


def _records(reader: Iterator[list[str]], problems: list[Problem]) -> Iterator[list[str]]:
    """The file's rows after the header; a row the CSV reader cannot read becomes a problem
    of that row, and the rows after it are not read (the reader cannot find their start)."""
    number = 1
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(_unreadable(number, exc))
            return
        yield cells


def _unreadable(row: int, exc: csv.Error) -> Problem:
    if "field larger than field limit" in str(exc):
        return _row_problem(
            row,
            N_("a cell has more than %(limit)s characters; the rows after it were not read"),
            limit=csv.field_size_limit(),
        )
    return _row_problem(
        row,
        N_("the row cannot be read as CSV (%(error)s); the rows after it were not read"),
        error=str(exc),
    )


def _checked(check: Callable[[str], str], text: str, reasons: list[Reason]) -> str:
    """The cell as `check` cleans it, or "" with the refusal added to the row's reasons."""
    try:
        return check(text)
    except limits.FieldRefused as refused:
        reasons.append((refused.template, refused.params))
        return ""


_NO_SUCH_CLASS: Final = N_(
    "the school has no class %(label)s: correct the row, or create the class"
)
# Latin capitals a spreadsheet shows exactly like Cyrillic ones: «7A» beside «7А».
_CYRILLIC_TWIN: Final = dict(zip("ABCEHKMOPTXY", "АВСЕНКМОРТХУ", strict=True))


def class_label(label: tuple[int, str]) -> str:
    return f"{label[0]}{label[1]}"


def parse_class_list(text: str) -> set[tuple[int, str]] | None:
    """ "7Б, 8В" → {(7, "Б"), (8, "В")}; None if an item is not a class."""
    labels = {parse_class(item) for item in text.replace(";", ",").split(",") if item.strip()}
    return None if None in labels else {label for label in labels if label is not None}


@dataclass(frozen=True)
class RosterCheck:
    rows: list[RosterRow]
    missing_classes: list[MissingClass]  # all to be created (the caller asked for each)


def check_roster(
    session: Session,
    school: School,
    data: bytes,
    *,
    create_classes: Collection[tuple[int, str]] = (),
) -> RosterCheck:
    """Read the file and check it against the school: every problem at once, in row order.

    A class the school does not have is created only if `create_classes` names it;
    otherwise its rows are problems, and a class that looks like a slip for one the
    school has («7A» in Latin beside «7А», «7Я» beside «7А») is pointed out.

    Raises:
        RosterError: with every problem, and the classes the file could create.
    """
    found = _SchoolIndex(session, school)
    read = _read(data, known_pupils=found.pupils.keys())
    wanted = set(create_classes)
    missing: dict[tuple[int, str], list[int]] = {}
    similar: dict[tuple[int, str], tuple[str, ...]] = {}
    file_pupils = {c.full_name: c for c in read.candidates if c.role == "pupil"}
    for row in read.candidates:
        label = row.class_label
        if label is None or row.role in ("", "school_admin"):
            continue
        if row.role == "parent":
            _check_childs_class(read, row, label, file_pupils, found)
            continue
        if label in found.classes:
            continue
        twin = (label[0], _CYRILLIC_TWIN.get(label[1], label[1]))
        if twin != label and twin in found.classes:
            read.refuse(
                row.number,
                (
                    N_("«%(label)s» is written with a Latin letter; the school has %(twin)s"),
                    {"label": class_label(label), "twin": class_label(twin)},
                ),
            )
            continue
        if not 1 <= label[0] <= school.last_grade:
            read.refuse(
                row.number,
                (
                    N_("Grade %(grade)s is outside 1–%(last)s for this school"),
                    {"grade": label[0], "last": school.last_grade},
                ),
            )
            continue
        missing.setdefault(label, []).append(row.number)
        same_grade = tuple(
            class_label(c) for c in sorted(found.classes) if c[0] == label[0] and c != label
        )
        similar[label] = same_grade
        if label in wanted:
            continue
        read.refuse(
            row.number,
            (
                _NO_SUCH_CLASS,
                {"label": class_label(label)},
            ),
        )
        if same_grade:
            read.refuse(
                row.number,
                (
                    N_("is it a slip for %(classes)s, which the school has?"),
                    {"classes": ", ".join(same_grade)},
                ),
            )
    missing_classes = [
        MissingClass(class_label(label), tuple(rows), similar[label], label in wanted)
        for label, rows in sorted(missing.items())
    ]
    if read.reasons:
        raise RosterError(read.problems(), missing_classes)
    if not read.rows:
        raise _file_problem(N_("the file has no people in it"))
    return RosterCheck(read.rows, missing_classes)


def _check_childs_class(
    read: _Read,
    row: RosterRow,
    label: tuple[int, str],
    file_pupils: dict[str, RosterRow],
    found: _SchoolIndex,
) -> None:
    """A parent's row may name the child's class (to be sure of the child): it must match."""
    child = file_pupils.get(row.parent_of or "")
    if child is not None:
        actual = child.class_label
    elif row.parent_of in found.pupils:
        enrolment = found.pupils[row.parent_of][1]
        known = next((k for k, c in found.classes.items() if c.id == enrolment.class_id), None)
        actual = known
    else:
        return  # reported already: the child is nowhere
    if actual is not None and actual != label:
        read.refuse(
            row.number,
            (
                N_("the child «%(name)s» is in %(actual)s, not in %(label)s"),
                {"name": row.parent_of, "actual": class_label(actual), "label": class_label(label)},
            ),
        )


class _SchoolIndex:
    """The school's current people, found by name the way a roster names them."""

    def __init__(self, session: Session, school: School) -> None:
        self.session = session
        self.school = school
        class_ids = select(SchoolClass.id).where(SchoolClass.school_id == school.id)
        self.pupils: dict[str, tuple[Person, Enrolment]] = {
            person.display_name: (person, enrolment)
            for person, enrolment in session.execute(
                select(Person, Enrolment)
                .join(Enrolment, Enrolment.person_id == Person.id)
                .where(Enrolment.role == EnrolmentRole.PUPIL, Enrolment.class_id.in_(class_ids))
            ).all()
        }
        self.staff: dict[str, Person] = {
            person.display_name: person
            for person in session.scalars(
                select(Person)
                .join(RoleAssignment, RoleAssignment.person_id == Person.id)
                .where(RoleAssignment.school_id == school.id)
            ).all()
        }
        self.classes: dict[tuple[int, str], SchoolClass] = {
            (c.grade, c.letter): c
            for c in session.scalars(
                select(SchoolClass).where(
                    SchoolClass.school_id == school.id, SchoolClass.archived_at.is_(None)
                )
            ).all()
        }

    def parent_of(self, child: Person, name: str) -> Person | None:
        return self.session.scalar(
            select(Person)
            .join(ParentLink, ParentLink.parent_id == Person.id)
            .where(ParentLink.child_id == child.id, Person.display_name == name)
        )


def import_roster(
    session: Session,
    school: School,
    rows: list[RosterRow],
    *,
    server_name: str,
    actor: str,
    create_classes: Collection[tuple[int, str]] = (),
) -> ImportSummary:
    """Apply rows `check_roster` accepted to the school in the caller's transaction (commit
    or roll back); it creates only the missing classes `create_classes` names.

    Raises:
        RosterError: a row contradicts the school's data (the caller rolls back).
    """
    found = _SchoolIndex(session, school)
    ids = LocalpartAllocator(session, server_name)
    summary = ImportSummary()

    def school_class(label: tuple[int, str], row: RosterRow) -> SchoolClass:
        if label not in found.classes and label not in create_classes:
            # check_roster reported it already; this keeps a caller that skipped it honest
            raise RosterError([_row_problem(row.number, _NO_SUCH_CLASS, label=class_label(label))])
        if label not in found.classes:
            try:
                found.classes[label] = svc.add_class(session, school, *label, actor=actor)
            except svc.DomainError as exc:
                raise RosterError([Problem(row.number, ((exc.template, exc.params),))]) from exc
            summary.classes_created.append(class_label(label))
        return found.classes[label]

    def new_person(row: RosterRow) -> Person:
        summary.created += 1
        try:
            person = svc.add_person(
                session,
                row.full_name,
                ids.user_id(row.full_name),
                phone=row.phone,
                email=row.email,
                roster_id=row.roster_id,
            )
        except svc.DomainError as exc:
            raise RosterError([Problem(row.number, ((exc.template, exc.params),))]) from exc
        summary.person_ids.append(person.id)
        return person

    def known(person: Person, row: RosterRow) -> None:
        """A person the school has: a roster ID the file gives is taken (people imported
        before the column existed get theirs); one held by someone else stops the import."""
        if row.roster_id is None or person.roster_id == row.roster_id:
            return
        try:
            svc.ensure_roster_id_free(session, row.roster_id, person.id)
        except svc.DomainError as exc:
            raise RosterError([Problem(row.number, ((exc.template, exc.params),))]) from exc
        person.roster_id = row.roster_id

    for row in sorted(rows, key=lambda r: r.role != "pupil"):  # children before their parents
        if row.role == "pupil":
            assert row.class_label is not None
            target = school_class(row.class_label, row)
            if row.full_name in found.pupils:
                pupil, enrolment = found.pupils[row.full_name]
                known(pupil, row)
                if enrolment.class_id != target.id:
                    svc.move_pupil(session, pupil, target, actor=actor)
                    summary.moved += 1
                    summary.person_ids.append(pupil.id)
                else:
                    summary.unchanged += 1
            else:
                pupil = new_person(row)
                enrolment = svc.enrol(session, pupil, target, EnrolmentRole.PUPIL, actor=actor)
                found.pupils[row.full_name] = (pupil, enrolment)
        elif row.role == "parent":
            assert row.parent_of is not None
            child = found.pupils[row.parent_of][0]
            parent = found.parent_of(child, row.full_name)
            if parent is None:
                parent = new_person(row)
                svc.link_parent(session, parent, child, actor=actor)
            else:
                known(parent, row)
                summary.unchanged += 1
        else:
            person = found.staff.get(row.full_name)
            if person is None:
                person = new_person(row)
                found.staff[row.full_name] = person
            else:
                known(person, row)
                summary.unchanged += 1
            role = Role.SCHOOL_ADMIN if row.role == "school_admin" else Role.TEACHER
            svc.grant_school_role(session, person, school, role, actor=actor)
            if row.class_label is not None and row.role in ("teacher", "class_teacher"):
                _teach(session, person, school_class(row.class_label, row), row, actor)
        session.flush()
    return summary


def _teach(
    session: Session, person: Person, school_class: SchoolClass, row: RosterRow, actor: str
) -> None:
    if row.role == "class_teacher":
        role, subject = EnrolmentRole.CLASS_TEACHER, None
    else:
        role = EnrolmentRole.SUBJECT_TEACHER
        subject = svc.add_subject(session, school_class.school, row.subject or "Предмет")
    exists = session.scalar(
        select(Enrolment).where(
            Enrolment.person_id == person.id,
            Enrolment.class_id == school_class.id,
            Enrolment.role == role,
            Enrolment.subject_id == (subject.id if subject else None),
        )
    )
    if exists is None:
        svc.enrol(session, person, school_class, role, subject=subject, actor=actor)
