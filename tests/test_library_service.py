"""The region's verified library: validation per field, search, withdrawal, JSON import."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.db.models import AuditEvent, LibraryItem
from provisioning.i18n import translations
from provisioning.services import library
from provisioning.services.schools import DomainError

ADMIN = "@region-admin:parta.test"


def item(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "title": "Дроби на пиццах",
        "subject": "Математика",
        "grade_from": 5,
        "grade_to": 6,
        "description": "Рабочий лист про обыкновенные дроби",
        "kind": "link",
        "url": "https://resh.edu.ru/subject/lesson/7724/",
        "licence": "CC BY 4.0",
        "source": "РЭШ",
        "verified_by": "Методист Иванова",
    }
    data.update(changes)
    return data


def add(session: Session, **changes: object) -> LibraryItem:
    row = library.create(session, library.validate(item(**changes)), actor=ADMIN, person_id=None)
    session.commit()
    return row


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"grade_from": 7, "grade_to": 5}, "grade_to", "is below the grade it starts from"),
        ({"grade_to": 12}, "grade_to", "must be a grade from 1 to 11"),
        ({"grade_from": "пятый"}, "grade_from", "must be a grade from 1 to 11"),
        ({"url": "http://example.org/a.pdf"}, "url", "must be a link starting with https://"),
        ({"url": "javascript:alert(1)"}, "url", "must be a link starting with https://"),
        (
            {"kind": "file", "url": "https://example.org/a.pdf", "file_name": "a.pdf"},
            "url",
            "must be the mxc:// address of an uploaded file",
        ),
        ({"kind": "file", "url": "mxc://parta.test/abc"}, "file_name", "is missing for a file"),
        ({"kind": "video"}, "kind", "must be «file» or «link»"),
        ({"title": "   "}, "title", "is empty"),
        ({"licence": None}, "licence", "must be text"),
        ({"size": -1}, "size", "must be a number of bytes"),
    ],
)
def test_every_invalid_field_is_named(changes: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(library.ItemInvalid) as raised:
        library.validate(item(**changes))
    assert (field, message) in raised.value.problems
    assert f"{field}: {message}" in str(raised.value)


def test_a_missing_field_is_named_and_problems_read_in_russian() -> None:
    data = item()
    del data["verified_by"]
    with pytest.raises(library.ItemInvalid) as raised:
        library.validate(data)
    assert raised.value.problems == [library.ItemProblem("verified_by", "is missing")]
    ru = translations("ru").gettext
    assert library.describe(raised.value.problems, ru, labels=True) == "Кем проверено: отсутствует"


def test_a_good_file_and_a_good_link_pass() -> None:
    file = library.validate(item(kind="file", url="mxc://parta.test/abc", file_name="a.pdf",
                                 mimetype="application/pdf", size=3 * 1024**3))  # fmt: skip
    assert file.size == 3 * 1024**3  # files may exceed 2 GiB
    link = library.validate(item(title="  Дроби  "))
    assert link.title == "Дроби"


def test_a_file_over_two_gib_is_stored(migrated_session: Session) -> None:
    row = add(migrated_session, kind="file", url="mxc://parta.test/big", file_name="big.mp4",
              mimetype="video/mp4", size=5 * 1024**3)  # fmt: skip
    migrated_session.expire_all()
    assert migrated_session.get(LibraryItem, row.id).size == 5 * 1024**3  # type: ignore[union-attr]


def test_search_by_subject_grade_and_words(migrated_session: Session) -> None:
    s = migrated_session
    fractions = add(s)
    physics = add(s, title="Закон Ома", subject="Физика", grade_from=8, grade_to=9,
                  description="Опыты с батарейкой")  # fmt: skip
    poems = add(s, title="Стихи Пушкина", subject="Литература", grade_from=1, grade_to=11,
                description="Сборник 100% проверенных текстов")  # fmt: skip

    def titles(**criteria: object) -> list[str]:
        return [row.title for row in library.search(s, **criteria)]  # type: ignore[arg-type]

    assert titles(subject="математика") == [fractions.title]
    assert titles(subject="  ФИЗИКА ") == [physics.title]
    assert titles(subject="Химия") == []
    assert titles(grade=5) == [poems.title, fractions.title]  # sorted by subject
    assert titles(grade=6) == [poems.title, fractions.title]
    assert titles(grade=7) == [poems.title]
    assert titles(grade=9) == [poems.title, physics.title]
    assert titles(text="ома") == [physics.title]
    assert titles(text="БАТАРЕЙК") == [physics.title]  # the description counts too
    assert titles(text="100%") == [poems.title]
    assert titles(text="%") == [poems.title]  # a wildcard typed is only a character
    assert titles(subject="физика", grade=5) == []
    assert library.subjects(s) == ["Литература", "Математика", "Физика"]


def test_a_withdrawn_item_is_hidden_from_search(migrated_session: Session) -> None:
    s = migrated_session
    row = add(s)
    library.withdraw(s, row.id, actor=ADMIN)
    library.withdraw(s, row.id, actor=ADMIN)  # twice: one event, same moment
    s.commit()
    assert library.search(s) == []
    assert library.search(s, subject="Математика", include_withdrawn=True) == [row]
    assert library.subjects(s) == []
    assert s.scalar(select(func.count()).where(AuditEvent.action == "library.withdraw")) == 1


def test_a_restored_item_is_found_again(migrated_session: Session) -> None:
    s = migrated_session
    row = add(s)
    library.withdraw(s, row.id, actor=ADMIN)
    library.restore(s, row.id, actor=ADMIN)
    library.restore(s, row.id, actor=ADMIN)  # twice: one event
    s.commit()
    assert library.search(s, subject="Математика") == [row]
    assert s.scalar(select(func.count()).where(AuditEvent.action == "library.restore")) == 1


def test_an_update_replaces_the_fields_and_a_link_loses_file_facts(
    migrated_session: Session,
) -> None:
    s = migrated_session
    row = add(s, kind="file", url="mxc://parta.test/abc", file_name="a.pdf", size=10)
    library.update(s, row.id, library.validate(item(title="Новое название")), actor=ADMIN)
    s.commit()
    s.expire_all()
    again = library.get(s, row.id)
    assert (again.title, again.kind, again.file_name, again.size) == (
        "Новое название", "link", None, None,
    )  # fmt: skip
    with pytest.raises(DomainError, match="no library item 999"):
        library.get(s, 999)


def test_changes_are_audited(migrated_session: Session) -> None:
    s = migrated_session
    row = add(s)
    library.update(s, row.id, library.validate(item(title="Другое")), actor=ADMIN)
    library.withdraw(s, row.id, actor=ADMIN)
    s.commit()
    events = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(e.actor, e.action, e.subject) for e in events] == [
        (ADMIN, "library.add", f"library:{row.id}"),
        (ADMIN, "library.edit", f"library:{row.id}"),
        (ADMIN, "library.withdraw", f"library:{row.id}"),
    ]
    assert events[0].details["title"] == "Дроби на пиццах"
    assert events[1].details["title"] == "Другое"


def test_an_import_stores_every_item(migrated_session: Session) -> None:
    s = migrated_session
    raw = json.dumps([item(), item(title="Закон Ома", subject="Физика")]).encode()
    assert library.import_json(s, raw, actor=ADMIN, person_id=None) == 2
    s.commit()
    assert sorted(row.title for row in library.search(s)) == ["Дроби на пиццах", "Закон Ома"]
    actions = s.scalars(select(AuditEvent.action)).all()
    assert actions == ["library.add", "library.add"]


def test_one_bad_item_in_the_middle_imports_nothing(migrated_session: Session) -> None:
    s = migrated_session
    raw = json.dumps(
        [item(), item(title="Плохая ссылка", url="ftp://example.org/x"), item(title="Третий")]
    ).encode()
    with pytest.raises(library.ItemInvalid) as raised:
        library.import_json(s, raw, actor=ADMIN, person_id=None)
    s.rollback()
    message = str(raised.value)
    assert message.startswith("Item 2 (Плохая ссылка) is not valid: url: must be a link")
    assert message.endswith("Nothing was imported.")
    assert raised.value.params["number"] == 2
    assert s.scalar(select(func.count()).select_from(LibraryItem)) == 0
    assert s.scalar(select(func.count()).select_from(AuditEvent)) == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[{]", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"title": "one"}', "must hold a JSON list"),
        (b"[]", "holds no items"),
        (b'[{"title": "ok"}, 3]', "Item 1 \\(ok\\) is not valid"),
        (json.dumps([item(), 3]).encode(), "Item 2 is not an object"),
    ],
)
def test_unusable_files_are_explained(migrated_session: Session, raw: bytes, message: str) -> None:
    with pytest.raises(DomainError, match=message):
        library.import_json(migrated_session, raw, actor=ADMIN, person_id=None)
    migrated_session.rollback()
    assert migrated_session.scalar(select(func.count()).select_from(LibraryItem)) == 0


def test_the_widget_service_shape_is_kept(migrated_session: Session) -> None:
    row = add(migrated_session)
    assert library.public(row) == {
        "id": row.id, "title": "Дроби на пиццах", "subject": "Математика", "grade_from": 5,
        "grade_to": 6, "description": "Рабочий лист про обыкновенные дроби", "kind": "link",
        "url": "https://resh.edu.ru/subject/lesson/7724/", "file_name": None, "mimetype": None,
        "size": None, "licence": "CC BY 4.0", "source": "РЭШ",
        "verified_by": "Методист Иванова", "withdrawn": False,
    }  # fmt: skip
