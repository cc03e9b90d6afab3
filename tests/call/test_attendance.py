"""The attendance notice the bot posts: a plain body and an HTML table, in two languages."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from widgets.call.attendance import attendance_notice, duration

MOSCOW = ZoneInfo("Europe/Moscow")
NINE = datetime(2026, 12, 2, 9, 0, tzinfo=MOSCOW).timestamp()

ROWS = [
    {"display_name": "Ольга Сергеевна", "first_joined": NINE, "seconds": 2700.0, "visits": 1},
    {"display_name": "Иван <b>", "first_joined": NINE + 65, "seconds": 3930.0, "visits": 3},
]


def test_durations_read_as_people_say_them() -> None:
    assert duration(29, "ru") == "0 мин" and duration(2700, "ru") == "45 мин"
    assert duration(3930, "ru") == "1 ч 06 мин" and duration(3930, "en") == "1 h 06 min"


def test_the_notice_lists_each_person_with_joined_at_total_time_and_rejoins() -> None:
    notice = attendance_notice(ROWS, lang="ru", zone=MOSCOW, now=NINE + 3600)
    assert notice["msgtype"] == "m.notice" and notice["format"] == "org.matrix.custom.html"
    assert notice["body"].splitlines() == [
        "Посещаемость звонка, 02.12.2026",
        "Ольга Сергеевна · 09:00 · 45 мин · переподключений: 0",
        "Иван <b> · 09:01 · 1 ч 06 мин · переподключений: 2",
    ]
    html = notice["formatted_body"]
    assert "<th>Имя</th><th>Пришёл(ла)</th><th>Всего</th><th>Переподключений</th>" in html
    assert "<td>Иван &lt;b&gt;</td><td>09:01</td><td>1 ч 06 мин</td><td>2</td>" in html
    assert "<b>" not in html  # a name is text, never markup


def test_in_english_and_for_an_empty_call() -> None:
    notice = attendance_notice(ROWS[:1], lang="en", zone=MOSCOW, now=NINE)
    assert notice["body"].startswith("Call attendance, 2026-12-02\nОльга Сергеевна · 09:00")
    assert "<th>Times rejoined</th>" in notice["formatted_body"]
    empty = attendance_notice([], lang="en", zone=MOSCOW, now=NINE)
    assert empty["body"].endswith("Nobody was in the call.")
