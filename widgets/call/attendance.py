"""The attendance of a call as a Matrix notice, for the teacher to keep in the room.

Pure: `attendance_notice` turns `CallState.attendance()` rows into the content of an
`m.notice` (a plain `body` for every client, and an HTML table in `formatted_body`).
The call service posts it into the room as the bot when a teacher asks.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

Language = Literal["ru", "en"]

_TEXT: dict[Language, dict[str, str]] = {
    "ru": {
        "title": "Посещаемость звонка",
        "name": "Имя",
        "joined": "Пришёл(ла)",
        "total": "Всего",
        "rejoined": "Переподключений",
        "nobody": "В звонке никого не было.",
        "hours": "{h} ч {m:02d} мин",
        "minutes": "{m} мин",
        "date": "%d.%m.%Y",
    },
    "en": {
        "title": "Call attendance",
        "name": "Name",
        "joined": "Joined at",
        "total": "Total time",
        "rejoined": "Times rejoined",
        "nobody": "Nobody was in the call.",
        "hours": "{h} h {m:02d} min",
        "minutes": "{m} min",
        "date": "%Y-%m-%d",
    },
}


def duration(seconds: float, lang: Language) -> str:
    """Whole minutes, with hours once there are any: "42 мин", "1 h 05 min"."""
    hours, minutes = divmod(max(0, round(seconds / 60)), 60)
    text = _TEXT[lang]
    return text["hours"].format(h=hours, m=minutes) if hours else text["minutes"].format(m=minutes)


def attendance_notice(
    rows: Iterable[Mapping[str, Any]], *, lang: Language, zone: ZoneInfo, now: float
) -> dict[str, Any]:
    """The `m.room.message` content: one line (and one table row) per person who came.

    Each row needs `display_name`, `first_joined` (Unix time), `seconds` and `visits`
    (stretches in the call; the first is not a rejoin).
    """
    text = _TEXT[lang]
    heading = f"{text['title']}, {datetime.fromtimestamp(now, zone).strftime(text['date'])}"
    lines: list[str] = []
    cells: list[tuple[str, str, str, str]] = []
    for row in rows:
        joined = datetime.fromtimestamp(float(row["first_joined"]), zone).strftime("%H:%M")
        total = duration(float(row["seconds"]), lang)
        rejoined = str(max(0, int(row["visits"]) - 1))
        name = str(row["display_name"])
        cells.append((name, joined, total, rejoined))
        lines.append(f"{name} · {joined} · {total} · {text['rejoined'].lower()}: {rejoined}")
    if not cells:
        body = f"{heading}\n{text['nobody']}"
        return {
            "msgtype": "m.notice",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": f"<p><strong>{html.escape(heading)}</strong></p>"
            f"<p>{html.escape(text['nobody'])}</p>",
        }
    header = "".join(
        f"<th>{html.escape(text[key])}</th>" for key in ("name", "joined", "total", "rejoined")
    )
    table_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in cells
    )
    return {
        "msgtype": "m.notice",
        "body": "\n".join([heading, *lines]),
        "format": "org.matrix.custom.html",
        "formatted_body": f"<p><strong>{html.escape(heading)}</strong></p>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{table_rows}</tbody></table>",
    }
