"""Roster CSV parsing: what spreadsheets export is read; every bad row is named."""

from __future__ import annotations

import pytest

from provisioning.services.roster import RosterError, parse_roster

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
    assert problems == [
        "row 3: a pupil needs a class",
        "row 4: unknown role «волшебник»",
        "row 5: «5» is not a class such as 5А",
        "row 6: «не-почта» is not an e-mail address",
        "row 2: the pupil «Иван Петров» appears twice",
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
