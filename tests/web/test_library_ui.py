"""The verified library page in a real browser: a region admin curates, a teacher only reads."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from playwright.sync_api import BrowserContext, FilePayload, Page, expect
from sqlalchemy import func, select

from parta.deployment import LocalDeployment
from provisioning.db.models import AuditEvent, EnrolmentRole, LibraryItem, SchoolClass
from provisioning.services import library
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from provisioning.services.library import LibraryItemIn
from provisioning.web.pages.library import clean_file_name
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import (  # noqa: F401 (teacher is a fixture)
    PASSWORD,
    TeacherSetup,
    _set_password,
    db_session,
    region_admin_page,
    run_async,
    sign_in,
    teacher,
)

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _item(region: LocalDeployment, title: str) -> LibraryItem:
    with db_session(region) as session:
        row = session.scalar(select(LibraryItem).where(LibraryItem.title == title))
        assert row is not None, f"no library item «{title}»"
        session.expunge(row)
        return row


def _count(region: LocalDeployment, tag: str) -> int:
    with db_session(region) as session:
        return session.scalar(select(func.count()).where(LibraryItem.subject.contains(tag))) or 0


def _fill(page: Page, *, title: str, subject: str, grades: tuple[int, int]) -> None:
    form = page.locator("#add form")
    form.locator("input[name=title]").fill(title)
    form.locator("input[name=subject]").fill(subject)
    form.locator("select[name=grade_from]").select_option(str(grades[0]))
    form.locator("select[name=grade_to]").select_option(str(grades[1]))
    form.locator("textarea[name=description]").fill("Для урока и для дома")
    form.locator("input[name=licence]").fill("CC BY 4.0")
    form.locator("input[name=source]").fill("Российская электронная школа")
    form.locator("input[name=verified_by]").fill("Методист Иванова")


def _json(name: str, items: list[dict[str, object]]) -> FilePayload:
    raw = json.dumps(items, ensure_ascii=False).encode()
    return FilePayload(name=name, mimeType="application/json", buffer=raw)


def _download(region: LocalDeployment, mxc: str) -> bytes:
    s = region.settings
    server, _, media_id = mxc.removeprefix("mxc://").partition("/")
    answer = httpx.get(
        f"{s.homeserver_url}/_matrix/client/v1/media/download/{server}/{media_id}",
        headers={"Authorization": f"Bearer {s.as_token.get_secret_value()}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.content


def test_a_region_admin_curates_the_library(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    tag = secrets.token_hex(3)
    maths, physics = f"Математика {tag}", f"Физика {tag}"
    page = region_admin_page(region, context)
    page.click("nav.main-nav >> text=Библиотека")
    expect(page.locator("h1")).to_have_text("Проверенная библиотека")

    # A link.
    _fill(page, title=f"Дроби {tag}", subject=maths, grades=(5, 6))
    page.locator("#add input[name=url]").fill("https://resh.edu.ru/subject/lesson/7724/")
    page.click("text=Добавить в библиотеку")
    link = _item(region, f"Дроби {tag}")
    row = page.locator(f"#item-{link.id}")
    expect(row).to_contain_text(maths)
    expect(row.locator(".grades")).to_have_text("5–6")
    expect(row).to_contain_text("CC BY 4.0")
    expect(row).to_contain_text("Методист Иванова")
    assert (link.kind, link.url, link.grade_from, link.grade_to) == (
        "link", "https://resh.edu.ru/subject/lesson/7724/", 5, 6,
    )  # fmt: skip

    # Bad input: the form comes back with the problem and what was typed; nothing stored.
    _fill(page, title=f"Небезопасная {tag}", subject=maths, grades=(7, 7))
    page.locator("#add input[name=url]").fill("http://example.org/worksheet")
    with page.expect_response(lambda r: r.url == f"{base}/library") as sent:
        page.click("text=Добавить в библиотеку")
    assert sent.value.status == 400
    expect(page.locator("#item-error")).to_contain_text(
        "Ссылка или файл: должна быть ссылка, начинающаяся с https://"
    )
    expect(page.locator("#add input[name=title]")).to_have_value(f"Небезопасная {tag}")
    expect(page.locator("#add input[name=url]")).to_have_value("http://example.org/worksheet")
    expect(page.locator("#add select[name=grade_from]")).to_have_value("7")
    # Grades the wrong way round are refused by the server as well.
    page.locator("#add select[name=grade_from]").select_option("9")
    page.locator("#add input[name=url]").fill("https://example.org/worksheet")
    page.click("text=Добавить в библиотеку")
    expect(page.locator("#item-error")).to_contain_text("Классы: по: меньше начального класса")
    assert _count(region, tag) == 1

    # A file: uploaded to Synapse's media repository, stored by its mxc:// URI.
    _fill(page, title=f"Закон Ома {tag}", subject=physics, grades=(8, 9))
    page.check("#add input[name=kind][value=file]")
    page.set_input_files("#add input[name=file]", files=[
        FilePayload(name="Закон Ома.pdf", mimeType="application/pdf", buffer=PDF),
    ])  # fmt: skip
    page.click("text=Добавить в библиотеку")
    file = _item(region, f"Закон Ома {tag}")
    expect(page.locator(f"#item-{file.id} .kind")).to_contain_text("Закон Ома.pdf")
    assert file.kind == "file" and file.url.startswith("mxc://")
    assert (file.file_name, file.mimetype, file.size) == ("Закон Ома.pdf", "application/pdf",
                                                          len(PDF))  # fmt: skip
    assert _download(region, file.url) == PDF

    # An empty file is refused with a clear message.
    _fill(page, title=f"Пустой {tag}", subject=physics, grades=(8, 8))
    page.check("#add input[name=kind][value=file]")
    page.set_input_files("#add input[name=file]", files=[
        FilePayload(name="empty.pdf", mimeType="application/pdf", buffer=b""),
    ])  # fmt: skip
    page.click("text=Добавить в библиотеку")
    expect(page.locator("#item-error")).to_have_text("Файл пустой: выберите другой.")
    assert _count(region, tag) == 2

    # Filters: subject (any case through the URL), grade, words.
    page.goto(f"{base}/library?subject={physics.upper()}")
    expect(page.locator("table.library tbody tr")).to_have_count(1)
    page.goto(f"{base}/library")
    page.locator("#library-filters select[name=grade]").select_option("6")
    page.locator("#library-filters input[name=q]").fill(tag)
    page.click("#library-filters button")
    expect(page.locator("table.library tbody tr")).to_have_count(1)
    expect(page.locator("table.library tbody")).to_contain_text(f"Дроби {tag}")

    # Edit: the file item keeps its file when none is chosen.
    page.goto(f"{base}/library#item-{file.id}")
    page.locator(f"#item-{file.id} >> text=Изменить").click()
    expect(page.locator("h1")).to_have_text(f"Изменение: Закон Ома {tag}")
    page.fill("input[name=title]", f"Закон Ома для участка цепи {tag}")
    page.locator("select[name=grade_from]").select_option("7")
    page.click("text=Сохранить")
    expect(page.locator(f"#item-{file.id} .title")).to_have_text(
        f"Закон Ома для участка цепи {tag}"
    )
    edited = _item(region, f"Закон Ома для участка цепи {tag}")
    assert (edited.id, edited.url, edited.grade_from) == (file.id, file.url, 7)

    # Withdraw: greyed with «show withdrawn», gone from the plain list.
    page.locator(f"#item-{link.id} >> text=Снять с публикации").click()
    expect(page.locator(f"#item-{link.id}")).to_have_class("withdrawn")
    expect(page.locator(f"#item-{link.id}")).to_contain_text("снят с публикации")
    expect(page.locator("#library-filters input[name=withdrawn]")).to_be_checked()
    screenshot(page, "ru-library")
    page.goto(f"{base}/library")
    expect(page.locator(f"#item-{link.id}")).to_have_count(0)
    assert _item(region, f"Дроби {tag}").withdrawn_at is not None
    # Withdrawn by mistake: published again, and back in the plain list.
    page.goto(f"{base}/library?withdrawn=yes")
    page.locator(f"#item-{link.id} >> text=Опубликовать снова").click()
    expect(page.locator(f"#item-{link.id}")).not_to_have_class("withdrawn")
    assert _item(region, f"Дроби {tag}").withdrawn_at is None
    page.locator(f"#item-{link.id} >> text=Снять с публикации").click()
    expect(page.locator(f"#item-{link.id}")).to_have_class("withdrawn")

    # Import of two items.
    good = [
        {"title": f"Таблица Менделеева {tag}", "subject": f"Химия {tag}", "grade_from": 8,
         "grade_to": 11, "kind": "link", "url": "https://example.org/mendeleev",
         "licence": "CC0", "source": "Минпросвещения", "verified_by": "Петров"},
        {"title": f"Карта мира {tag}", "subject": f"География {tag}", "grade_from": 5,
         "grade_to": 7, "kind": "link", "url": "https://example.org/map",
         "licence": "CC BY-SA 4.0", "source": "Росреестр", "verified_by": "Петров"},
    ]  # fmt: skip
    page.set_input_files("#import input[name=file]", files=[_json("items.json", good)])
    page.click("#import button")
    expect(page.locator("#imported")).to_have_text("Импортировано 2 материала.")
    assert _count(region, tag) == 4

    # A bad import names the item, its title and the field, and stores nothing.
    bad = [dict(good[0], title=f"Первый {tag}"),
           dict(good[1], title=f"Второй {tag}", grade_to=3),
           dict(good[1], title=f"Третий {tag}")]  # fmt: skip
    page.set_input_files("#import input[name=file]", files=[_json("bad.json", bad)])
    with page.expect_response(lambda r: r.url == f"{base}/library/import") as sent:
        page.click("#import button")
    assert sent.value.status == 400
    expect(page.locator("#import-error")).to_have_text(
        f"Материал 2 (Второй {tag}) заполнен неверно: grade_to: меньше начального класса. "
        "Ничего не импортировано."
    )
    page.set_input_files("#import input[name=file]", files=[
        FilePayload(name="broken.json", mimeType="application/json", buffer=b"[{]"),
    ])  # fmt: skip
    page.click("#import button")
    expect(page.locator("#import-error")).to_contain_text("Файл не является правильным JSON")
    assert _count(region, tag) == 4

    with db_session(region) as session:
        ids = [link.id, file.id]
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.subject.in_([f"library:{i}" for i in ids]))
            .order_by(AuditEvent.id)
        ).all()
    assert actions == [
        "library.add", "library.add", "library.edit", "library.withdraw", "library.restore",
        "library.withdraw",
    ]  # fmt: skip
    # The page keeps the library's own log: newest first, in words.
    page.goto(f"{base}/library")
    expect(page.locator("#changes tbody tr").first).to_contain_text(
        f"Добавлено в библиотеку: Карта мира {tag}"
    )
    changes = page.locator("#changes")
    expect(changes).to_contain_text(f"Снято с публикации в библиотеке: Дроби {tag}")
    expect(changes).to_contain_text(f"Снова опубликовано в библиотеке: Дроби {tag}")

    page.click("text=English")  # from the page the failed import rendered
    expect(page.locator("h1")).to_have_text("Verified library")
    expect(page.locator("nav.main-nav")).to_contain_text("Library")
    expect(page.locator("#import h2")).to_have_text("Import from JSON")


def test_a_teacher_reads_the_library_and_cannot_change_it(
    region: LocalDeployment,
    context: BrowserContext,
    teacher: TeacherSetup,  # noqa: F811
) -> None:
    base = region.settings.provisioning_url
    page = context.new_page()
    sign_in(page, base, teacher.user_id, PASSWORD)
    expect(page.locator("h2", has_text="Ваши классы")).to_be_visible()
    page.click("nav.main-nav >> text=Библиотека")
    assert page.url == f"{base}/library"
    expect(page.locator("h1")).to_have_text("Проверенная библиотека")
    assert page.locator("#add, #import, form[action$='/withdraw']").count() == 0

    with db_session(region) as session:
        row = library.create(session, library.validate({
            "title": f"Для учителей {secrets.token_hex(2)}", "subject": "Математика",
            "grade_from": 1, "grade_to": 4, "kind": "link", "url": "https://example.org/y",
            "licence": "CC0", "source": "РЭШ", "verified_by": "Петров",
        }), actor="@test:parta", person_id=None)  # fmt: skip
        session.commit()
        some = row.id
    page.reload()
    expect(page.locator(f"#item-{some}")).to_be_visible()  # the teacher sees the list
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    title = f"Учительский {secrets.token_hex(2)}"
    fields: dict[str, str | float | bool] = {"csrf_token": token, "title": title,
        "subject": "Математика", "grade_from": "5", "grade_to": "5", "kind": "link",
        "url": "https://example.org/x", "licence": "CC0", "source": "Я", "verified_by": "Я",
    }  # fmt: skip
    added = page.request.post(f"{base}/library", form=fields)
    assert added.status == 403
    assert "администратор региона" in added.text()
    imported = page.request.post(f"{base}/library/import", multipart={
        "csrf_token": token,
        "file": FilePayload(name="x.json", mimeType="application/json", buffer=b"[]"),
    })  # fmt: skip
    assert imported.status == 403
    for path in (f"/library/{some}", f"/library/{some}/withdraw", f"/library/{some}/restore"):
        assert page.request.post(f"{base}{path}", form=fields).status == 403, path
    edit = page.goto(f"{base}/library/{some}/edit")
    assert edit is not None and edit.status == 403
    with db_session(region) as session:
        assert session.scalar(select(LibraryItem).where(LibraryItem.title == title)) is None


def test_pupils_browse_the_library_and_parents_are_told_it_is_not_for_them(
    region: LocalDeployment,
    context: BrowserContext,
    teacher: TeacherSetup,  # noqa: F811
) -> None:
    """The library's content is for teachers and pupils (the reference texts say so): a
    pupil finds what is published, never what was withdrawn; a parent is refused in words."""
    tag = secrets.token_hex(3)
    published, withdrawn = f"Опубликовано {tag}", f"Снято {tag}"
    with db_session(region) as session:
        school_class = session.get(SchoolClass, teacher.own_class)
        assert school_class is not None
        people = {}
        for key, name in (("pupil", f"Ученик {tag}"), ("parent", f"Родитель {tag}")):
            user_id = LocalpartAllocator(session, region.settings.server_name).user_id(name)
            people[key] = (svc.add_person(session, name, matrix_user_id=user_id), name)
        svc.enrol(session, people["pupil"][0], school_class, EnrolmentRole.PUPIL)
        svc.link_parent(session, people["parent"][0], people["pupil"][0])
        for title in (published, withdrawn):
            row = library.create(session, LibraryItemIn(
                title=title, subject=f"Физика {tag}", grade_from=7, grade_to=9, kind="link",
                url="https://example.org/physics", licence="CC BY 4.0", source="РЭШ",
                verified_by="Методист",
            ), actor="system", person_id=None)  # fmt: skip
            if title == withdrawn:
                library.withdraw(session, row.id, actor="system")
        session.commit()
        accounts = {key: (str(p.matrix_user_id), name) for key, (p, name) in people.items()}
    base = region.settings.provisioning_url
    for key, (user_id, name) in accounts.items():
        run_async(_set_password(region, user_id, name))
        context.clear_cookies()
        page = context.new_page()
        sign_in(page, base, user_id, PASSWORD)
        expect(page.locator("nav.main-nav")).to_be_attached()
        if key == "pupil":
            page.click("nav.main-nav >> text=Библиотека")
            expect(page.locator("h1")).to_have_text("Проверенная библиотека")
            page.goto(f"{base}/library?q={tag}&withdrawn=yes")
            expect(page.locator("table.library")).to_contain_text(published)
            assert withdrawn not in page.locator("table.library").inner_text()
            assert page.locator("input[name=withdrawn]").count() == 0
            assert page.locator("form[action='/library'][method=post]").count() == 0
        else:
            assert page.locator("nav.main-nav >> text=Библиотека").count() == 0
            response = page.goto(f"{base}/library")
            assert response is not None and response.status == 403, user_id
            expect(page.locator(".error")).to_have_text(
                "Библиотека — для учителей и учеников. Родители видят то, что учителя "
                "присылают в чаты класса."
            )
        page.close()


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("C:\\fakepath\\Дроби.pdf", "Дроби.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..", "file"),
        ("a\x00b\nc.pdf", "abc.pdf"),
        ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ],
)
def test_file_names_lose_their_folders(sent: str, kept: str) -> None:
    assert clean_file_name(sent) == kept
