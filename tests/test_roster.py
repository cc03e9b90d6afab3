"""Roster CSV parsing: what spreadsheets export is read; every bad row is named."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.models import EnrolmentRole, Person, Region, School
from provisioning.services import schools as svc
from provisioning.services.roster import (
    RosterCheck,
    RosterError,
    check_roster,
    import_roster,
    parse_class_list,
    parse_roster,
)

GOOD = (
    "класс;роль;ФИО;телефон;почта;родитель ученика\n"
    "5А;ученик;Иван Петров;;;\n"
    "5А;родитель;Анна Петрова;+7 900 123-45-67;anna@example.org;Иван Петров\n"
    "5А;классный руководитель;Ольга Сергеевна Смирнова;;;\n"
)


@pytest.mark.parametrize(
    "data",
    [
        GOOD.encode(),
        b"\xef\xbb\xbf" + GOOD.encode(),  # Excel's «CSV UTF-8» starts with a BOM
        GOOD.replace(";", ",").encode(),
        GOOD.replace("\n", "\r\n").encode(),
    ],
    ids=["semicolons", "bom", "commas", "crlf"],
)
def test_spreadsheet_exports_are_read(data: bytes) -> None:
    rows = parse_roster(data)
    assert [(r.number, r.role, r.full_name) for r in rows] == [
        (2, "pupil", "Иван Петров"),
        (3, "parent", "Анна Петрова"),
        (4, "class_teacher", "Ольга Сергеевна Смирнова"),
    ]
    assert rows[0].class_label == (5, "А")
    assert rows[1].parent_of == "Иван Петров"


def test_every_bad_row_is_reported_with_its_number() -> None:
    bad = (
        "класс;роль;ФИО;телефон;почта;родитель ученика\n"
        "5А;ученик;Иван Петров;;;\n"
        ";ученик;Без Класса;;;\n"
        "5А;волшебник;Гарри;;;\n"
        "5;ученик;Мария;;;\n"
        "5А;родитель;Анна;;не-почта;Никто Неизвестный\n"
        "5А;ученик;Иван Петров;;;\n"
    )
    with pytest.raises(RosterError) as raised:
        parse_roster(bad.encode())
    problems = raised.value.problems
    # Every problem at once, in row order: a row with one problem is checked for the rest
    # too (row 6 used to show its missing child only once the e-mail was corrected).
    assert problems == [
        "row 2: the pupil «Иван Петров» appears twice",
        "row 3: a pupil needs a class",
        "row 4: unknown role «волшебник»",
        "row 5: «5» is not a class such as 5А",
        "row 6: «не-почта» is not an e-mail address; "
        "the child «Никто Неизвестный» is neither in this file nor a pupil of the school",
        "row 7: the pupil «Иван Петров» appears twice",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        ("класс;ФИО\n5А;Иван\n".encode(), "the columns роль are missing"),
        ("роль;ФИО\n".encode(), "the file has no people in it"),
        ("роль;ФИО\nученик;Иван\n".encode("cp1251"), "not UTF-8"),
    ],
)
def test_unusable_files_are_explained(data: bytes, message: str) -> None:
    with pytest.raises(RosterError, match=message):
        parse_roster(data)


LONE_CR = "класс;роль;ФИО\n5А;ученик;Иван\rПетров\n5А;ученик;Мария Орлова\n"
LONG_CELL = "класс;роль;ФИО\n5А;ученик;Мария Орлова\n5А;ученик;" + "Я" * 131_073 + "\n"


def test_a_lone_carriage_return_ends_a_row_as_in_a_spreadsheet() -> None:
    with pytest.raises(RosterError) as raised:
        parse_roster(LONE_CR.encode())
    assert raised.value.problems == [
        "row 3: the role is empty; the name is empty or too short: write a first and a last "
        "name; «Петров» is not a class such as 5А"
    ]
    old_mac = "класс;роль;ФИО\r5А;ученик;Иван Петров\r5А;ученик;Мария Орлова\r"
    assert [r.full_name for r in parse_roster(old_mac.encode())] == ["Иван Петров", "Мария Орлова"]


def test_a_cell_over_the_csv_readers_limit_is_a_problem_of_its_row() -> None:
    with pytest.raises(RosterError) as raised:
        parse_roster(LONG_CELL.encode())
    assert raised.value.problems == [
        "row 3: a cell has more than 131072 characters; the rows after it were not read"
    ]
    with pytest.raises(RosterError, match="row 1: a cell has more than 131072 characters"):
        parse_roster(("роль;" + "Я" * 131_073 + "\n").encode())


def test_a_quoted_line_break_in_a_name_is_refused_by_the_limits() -> None:
    with pytest.raises(RosterError) as raised:
        parse_roster('класс;роль;ФИО\n5А;ученик;"Иван\nПетров"\n'.encode())
    assert raised.value.problems == [
        "row 2: the name contains a control character (such as NUL or a line break)"
    ]


@pytest.fixture
def school(migrated_session: Session) -> School:
    """A school with 7А, and Иван Петров a pupil of it."""
    region = Region(server_name="hs", name="Регион")
    migrated_session.add(region)
    migrated_session.flush()
    made = svc.create_school(migrated_session, region, "Школа", academic_year=2026)
    seventh = svc.add_class(migrated_session, made, 7, "А")
    pupil = svc.add_person(migrated_session, "Иван Петров", "@ivan.petrov:hs")
    svc.enrol(migrated_session, pupil, seventh, EnrolmentRole.PUPIL)
    migrated_session.commit()
    return made


def check(session: Session, school: School, text: str, create: str = "") -> RosterCheck:
    wanted = parse_class_list(create)
    assert wanted is not None
    return check_roster(session, school, text.encode(), create_classes=wanted)


def test_a_class_is_created_only_when_asked_and_a_slip_is_pointed_out(
    migrated_session: Session, school: School
) -> None:
    roster = (
        "класс;роль;ФИО\n7Я;ученик;Мария Орлова\n7A;ученик;Пётр Зайцев\n8В;учитель;Ольга Смирнова\n"
    )
    with pytest.raises(RosterError) as raised:
        check(migrated_session, school, roster)
    assert raised.value.problems == [
        "row 2: the school has no class 7Я: correct the row, or create the class; "
        "is it a slip for 7А, which the school has?",
        "row 3: «7A» is written with a Latin letter; the school has 7А",
        "row 4: the school has no class 8В: correct the row, or create the class",
    ]
    assert [(c.label, c.rows, c.similar, c.create) for c in raised.value.missing_classes] == [
        ("7Я", (2,), ("7А",), False),
        ("8В", (4,), (), False),
    ]
    with pytest.raises(RosterError) as again:
        check(migrated_session, school, roster, create="7Я, 8В")
    assert again.value.problems == ["row 3: «7A» is written with a Latin letter; the school has 7А"]
    checked = check(migrated_session, school, roster.replace("7A;", "7А;"), create="7Я,8В")
    summary = import_roster(
        migrated_session,
        school,
        checked.rows,
        server_name="hs",
        actor="test",
        create_classes={(7, "Я"), (8, "В")},
    )
    assert summary.classes_created == ["7Я", "8В"]
    migrated_session.rollback()


def test_a_parent_is_added_to_a_pupil_the_school_has_without_the_pupils_row(
    migrated_session: Session, school: School
) -> None:
    roster = "класс;роль;ФИО;родитель ученика\n7А;родитель;Анна Петрова;Иван Петров\n"
    checked = check(migrated_session, school, roster)
    summary = import_roster(migrated_session, school, checked.rows, server_name="hs", actor="t")
    assert (summary.created, summary.classes_created) == (1, [])
    with pytest.raises(RosterError) as raised:
        check(migrated_session, school, roster.replace("7А;родитель", "8Б;родитель"))
    assert raised.value.problems == ["row 2: the child «Иван Петров» is in 7А, not in 8Б"]
    migrated_session.rollback()


def test_roster_ids_are_read_checked_and_kept_unique(
    migrated_session: Session, school: School
) -> None:
    """The column fills people.roster_id, the single sign-on's claim (issue 22): a bad or
    doubled ID is a row problem, and a known person gets the ID a later file gives."""
    bad = (
        "класс;роль;ФИО;id в реестре\n"
        "7А;ученик;Мария Орлова;RU-77 0001\n"
        "7А;ученик;Пётр Зайцев;RU-77-0002\n"
        "7А;ученик;Олег Зайцев;RU-77-0002\n"
    )
    with pytest.raises(RosterError) as raised:
        check(migrated_session, school, bad)
    assert raised.value.problems[0].startswith("row 2: «RU-77 0001» is not a roster ID")
    assert raised.value.problems[1:] == [
        "row 3: the roster ID RU-77-0002 appears twice",
        "row 4: the roster ID RU-77-0002 appears twice",
    ]
    good = (
        "класс;роль;ФИО;roster_id\n"
        "7А;ученик;Мария Орлова;RU-77-0001\n"
        "7А;ученик;Иван Петров;RU-77-0003\n"  # the school's pupil, imported without one
    )
    checked = check(migrated_session, school, good)
    import_roster(migrated_session, school, checked.rows, server_name="hs", actor="test")
    held = dict(
        migrated_session.execute(
            select(Person.display_name, Person.roster_id).where(Person.roster_id.is_not(None))
        ).all()
    )
    assert held == {"Мария Орлова": "RU-77-0001", "Иван Петров": "RU-77-0003"}
    taken = check(
        migrated_session, school, "класс;роль;ФИО;roster_id\n7А;ученик;Ян Ли;RU-77-0001\n"
    )
    with pytest.raises(RosterError) as refused:
        import_roster(migrated_session, school, taken.rows, server_name="hs", actor="test")
    assert refused.value.problems == ["row 2: the roster ID RU-77-0001 is already Мария Орлова's"]
    migrated_session.rollback()
