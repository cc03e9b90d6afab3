"""CSV files that a spreadsheet opens as data, never as formulas.

A cell that begins with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
spreadsheets skip before looking again) is a formula to Excel and LibreOffice: a name a
parent typed, `=HYPERLINK("http://…")`, would run on the administrator's computer when
they open the audit log (OWASP's "CSV injection"). Every CSV the admin UI hands out is
written here, and such a cell is prefixed with `'`, which spreadsheets read as "this is
text". `unprotect_cell` takes the prefix off again when such a file is uploaded back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Final

from starlette.responses import Response

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
TEXT_MARK: Final = "'"
BYTE_ORDER_MARK: Final = "\ufeff"  # spreadsheets then read the file as UTF-8


def _evaluated(text: str) -> bool:
    """Whether a spreadsheet evaluates `text`, or it would read as a cell we marked."""
    return text.startswith(FORMULA_STARTS) or (
        text.startswith(TEXT_MARK) and _evaluated(text.lstrip(TEXT_MARK))
    )


def protect_cell(value: object) -> str:
    """The cell as text a spreadsheet shows and never evaluates."""
    text = "" if value is None else str(value)
    return TEXT_MARK + text if _evaluated(text) else text


def unprotect_cell(text: str) -> str:
    """A cell of an uploaded file as it was before `protect_cell` marked it."""
    return text[1:] if text.startswith(TEXT_MARK) and _evaluated(text[1:]) else text


def csv_document(rows: Iterable[Sequence[object]], *, delimiter: str = ",") -> str:
    """The rows as a CSV document with a byte-order mark, every cell protected."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    for row in rows:
        writer.writerow([protect_cell(value) for value in row])
    return BYTE_ORDER_MARK + out.getvalue()


def csv_attachment(document: str, filename: str) -> Response:
    """A download of `document` (from `csv_document`) saved as `filename`."""
    return Response(
        document,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
