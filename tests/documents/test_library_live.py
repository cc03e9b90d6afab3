"""The verified library through the documents API, against the real Synapse and the
running provisioning service (its internal library API, its staff check, its database).

A teacher finds items by subject and grade and shares them; a pupil of the class sees
the shared file as an ordinary Matrix file with the same `mxc://` and its provenance.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nio import RoomCreateResponse, RoomGetEventResponse

from foundation.web import install_error_handlers
from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.call.conftest import serving
from tests.call.test_auth_live import verifier_for
from tests.documents.conftest import School
from tests.documents.library_items import add_items, item, make_parent, make_staff, upload_as_bot
from tests.documents.slides import make_presentation
from tests.documents.test_documents_live import Api, listed
from tests.harness.ports import free_ports
from widgets.documents.convert import Converter
from widgets.documents.files import PDF_FIELD
from widgets.documents.homeserver import Homeserver
from widgets.documents.library import LIBRARY_FIELD, ProvisioningLibrary
from widgets.documents.previews import PreviewStore
from widgets.documents.routes import documents_router
from widgets.documents.service import DocumentsService
from widgets.documents.sessions import Sessions

pytestmark = pytest.mark.timeout(300)
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
PDF = Path(__file__).parent / "lesson.pdf"


@pytest.fixture
async def api(region: LocalDeployment, bot: MatrixClient, school: School) -> AsyncIterator[Api]:
    """The documents API with the region's own library, its teacher and pupil known."""
    make_staff(region, school)
    s = region.settings
    async with httpx.AsyncClient(base_url=s.homeserver_url, timeout=60) as media_http:
        service = DocumentsService(
            homeserver=Homeserver(bot, media_http),
            verifier=verifier_for(region),
            sessions=Sessions(),
            server_name=s.server_name,
            max_upload_bytes=2 * 1024 * 1024,
            converter=None,
            library=ProvisioningLibrary.from_settings(s),
        )
        app = FastAPI()
        install_error_handlers(app)
        app.include_router(documents_router(service))
        try:
            async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=120) as http:
                yield Api(http, service)
        finally:
            assert service.library is not None
            await service.library.stop()


async def search(api: Api, who: dict[str, str], **query: str) -> httpx.Response:
    return await api.http.get("/documents/api/library", params=query, headers=who)


async def share(api: Api, who: dict[str, str], item_id: int, room: str) -> httpx.Response:
    return await api.http.post(
        f"/documents/api/library/{item_id}/share", json={"room_id": room}, headers=who
    )


async def event(client: Any, room: str, event_id: str) -> dict[str, Any]:
    answer = await client.room_get_event(room, event_id)
    assert isinstance(answer, RoomGetEventResponse), answer
    source: dict[str, Any] = answer.event.source
    return source


# A Cyrillic subject too: SQLite's lower() folds ASCII only, so a comparison left to
# the database would find nothing for "Математика" picked from the subjects list.
@pytest.mark.parametrize("subject", ["Math", "Математика"])
async def test_a_teacher_finds_only_the_items_of_a_subject_and_grade(
    api: Api, school: School, region: LocalDeployment, subject: str
) -> None:
    tag = secrets.token_hex(3)
    subject = f"{subject} {tag}"  # this test's own subject: other tests' items stay out
    fractions, online, algebra, russian, old = add_items(
        region,
        item("Fractions", subject, (5, 6)),
        item("Fractions online", subject, (4, 5)),
        item("Algebra", subject, (7, 9)),
        item("Spelling", f"Русский язык {tag}", (5, 5)),
        item("Old fractions", subject, (5, 6), withdrawn=True),
    )
    teacher = await api.sign_in(school.clients["teacher"])

    found = await search(api, teacher, subject=subject, grade="5")
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert sorted(i["id"] for i in items) == sorted([fractions, online])
    (first,) = [i for i in items if i["id"] == fractions]
    assert first["subject"] == subject and (first["grade_from"], first["grade_to"]) == (5, 6)
    assert (first["licence"], first["source"], first["verified_by"]) == (
        "CC BY 4.0", "РЭШ", "Методист Иванова",
    )  # fmt: skip
    assert {subject, f"Русский язык {tag}"} <= set(found.json()["subjects"])

    grade_7 = await search(api, teacher, subject=subject, grade="7")
    assert [i["id"] for i in grade_7.json()["items"]] == [algebra]
    by_text = await search(api, teacher, subject=subject, q="online")
    assert [i["id"] for i in by_text.json()["items"]] == [online]
    everything = {i["id"] for i in (await search(api, teacher)).json()["items"]}
    assert {fractions, online, algebra, russian} <= everything
    assert old not in everything
    # The withdrawn item cannot be shared either, by a teacher who kept its ID.
    refused = await share(api, teacher, old, school.chat)
    assert refused.status_code == 404 and refused.json()["errcode"] == "PARTA_LIBRARY_NO_ITEM"
    assert (await search(api, teacher, grade="12")).status_code == 400


async def test_a_shared_file_reaches_the_class_as_the_same_matrix_file(
    api: Api, school: School, region: LocalDeployment
) -> None:
    data = PDF.read_bytes()
    mxc = await upload_as_bot(region, "Дроби.pdf", data, "application/pdf")
    tag = secrets.token_hex(3)
    (item_id,) = add_items(
        region,
        item(
            "Дроби: задачи", f"Math {tag}", (5, 6), kind="file", url=mxc,
            file_name="Дроби.pdf", mimetype="application/pdf", size=len(data),
        ),
    )  # fmt: skip
    teacher = await api.sign_in(school.clients["teacher"])
    rooms = await api.http.get("/documents/api/rooms", headers=teacher)
    assert rooms.status_code == 200 and rooms.json()["library"] is True

    shared = await share(api, teacher, item_id, school.chat)
    assert shared.status_code == 201, shared.text
    event_id = shared.json()["event_id"]

    pupil = school.clients["pupil"]
    sent = await event(pupil, school.chat, event_id)
    content = sent["content"]
    assert sent["sender"] == school.users["teacher"]
    assert content["msgtype"] == "m.file" and content["url"] == mxc  # no second upload
    assert content["body"] == "Дроби.pdf"
    assert content["info"] == {"mimetype": "application/pdf", "size": len(data)}
    assert content[LIBRARY_FIELD] == {
        "id": item_id, "subject": f"Math {tag}", "grade_from": 5, "grade_to": 6,
        "licence": "CC BY 4.0", "source": "РЭШ", "verified_by": "Методист Иванова",
    }  # fmt: skip
    download = await pupil.download(mxc)
    assert getattr(download, "body", None) == data
    # The provenance line follows as a reply, and the file is in the chat's file list.
    messages = await pupil.room_messages(school.chat, limit=20)
    notices = [
        e.source["content"]
        for e in getattr(messages, "chunk", [])
        if e.source["content"].get("msgtype") == "m.notice"
    ]
    (notice,) = [n for n in notices if n["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id]
    assert "Проверенная библиотека: РЭШ, CC BY 4.0" in notice["body"]
    pupil_api = await api.sign_in(pupil)
    assert event_id in {f["event_id"] for f in await listed(api, pupil_api, school.chat)}

    # "Save to my documents": the same file in the teacher's own room.
    mine = (await api.http.get("/documents/api/rooms", headers=teacher)).json()["mine"]
    saved = await share(api, teacher, item_id, mine)
    assert saved.status_code == 201, saved.text
    (kept,) = await listed(api, teacher, mine)
    assert (kept["name"], kept["event_id"]) == ("Дроби.pdf", saved.json()["event_id"])


async def test_a_shared_presentation_gets_its_preview_once(
    api: Api, school: School, region: LocalDeployment, tmp_path: Path
) -> None:
    api.service.converter = Converter.from_system()
    assert api.service.converter is not None, "LibreOffice is part of ./deploy.sh test"
    kept = tmp_path / "library-previews.json"
    api.service.library_previews = PreviewStore(kept)
    deck = make_presentation(tmp_path / "Дроби.pptx", slides=3).read_bytes()
    mxc = await upload_as_bot(region, "Дроби.pptx", deck, PPTX)
    (item_id,) = add_items(
        region,
        item(
            "Дроби: слайды", f"Math {secrets.token_hex(3)}", (5, 6), kind="file", url=mxc,
            file_name="Дроби.pptx", mimetype=PPTX, size=len(deck),
        ),
    )  # fmt: skip
    teacher = await api.sign_in(school.clients["teacher"])
    first = await share(api, teacher, item_id, school.chat)
    assert first.status_code == 201, first.text
    pupil = school.clients["pupil"]
    content = (await event(pupil, school.chat, first.json()["event_id"]))["content"]
    assert content["url"] == mxc  # the library's own file, not a copy
    pdf_url = content[PDF_FIELD]["url"]
    assert pdf_url.startswith("mxc://") and pdf_url != mxc
    # The pupil's page offers the preview, and it is the presentation as a PDF.
    pupil_api = await api.sign_in(pupil)
    (shown,) = [f for f in await listed(api, pupil_api, school.chat) if f["name"] == "Дроби.pptx"]
    assert shown["preview"] == "pdf"
    pdf = await api.http.get(shown["pdf_url"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # A second share reuses the PDF: one conversion per library file.
    second = await share(api, teacher, item_id, school.channel)
    assert second.status_code == 201, second.text
    again = (await event(pupil, school.channel, second.json()["event_id"]))["content"]
    assert again[PDF_FIELD] == {"url": pdf_url}
    # After a restart (a new store on the same file) the preview is still known: a share
    # made with no converter at all still carries it.
    api.service.library_previews = PreviewStore(kept)
    api.service.converter = None
    third = await share(api, teacher, item_id, school.chat)
    assert third.status_code == 201, third.text
    later = (await event(pupil, school.chat, third.json()["event_id"]))["content"]
    assert later[PDF_FIELD] == {"url": pdf_url}


async def test_a_shared_link_is_a_text_message_with_its_provenance(
    api: Api, school: School, region: LocalDeployment
) -> None:
    tag = secrets.token_hex(3)
    url = "https://resh.edu.ru/subject/lesson/7714/?a=1&b=<2>"
    (item_id,) = add_items(region, item("Дроби <онлайн>", f"Math {tag}", (5, 5), url=url))
    teacher = await api.sign_in(school.clients["teacher"])
    shared = await share(api, teacher, item_id, school.channel)
    assert shared.status_code == 201, shared.text

    content = (await event(school.clients["pupil"], school.channel, shared.json()["event_id"]))[
        "content"
    ]
    assert content["msgtype"] == "m.text"
    assert content["body"].splitlines() == [
        "Дроби <онлайн>", url, "Проверенная библиотека: РЭШ, CC BY 4.0",
    ]  # fmt: skip
    assert content["format"] == "org.matrix.custom.html"
    html = content["formatted_body"]
    assert '<a href="https://resh.edu.ru/subject/lesson/7714/?a=1&amp;b=&lt;2&gt;">' in html
    assert "Дроби &lt;онлайн&gt;" in html and "<онлайн>" not in html
    assert "Проверенная библиотека: РЭШ, CC BY 4.0" in html
    assert content[LIBRARY_FIELD]["id"] == item_id


async def test_pupils_browse_and_parents_are_refused(
    api: Api, school: School, region: LocalDeployment
) -> None:
    """The library is for teachers and pupils: a pupil finds what is published (and posts
    only where the room lets them); a parent, or someone provisioning does not know, not."""
    tag = secrets.token_hex(3)
    (item_id, _) = add_items(
        region, item("Дроби", f"Math {tag}", (5, 6)),
        item("Старые дроби", f"Math {tag}", (5, 6), withdrawn=True),
    )  # fmt: skip
    pupil = await api.sign_in(school.clients["pupil"])
    found = await search(api, pupil, subject=f"Math {tag}")
    assert found.status_code == 200, found.text
    assert [entry["id"] for entry in found.json()["items"]] == [item_id]
    rooms = await api.http.get("/documents/api/rooms", headers=pupil)
    assert rooms.status_code == 200 and rooms.json()["library"] is True
    channel = await share(api, pupil, item_id, school.channel)  # teachers post there
    assert channel.status_code == 403 and channel.json()["errcode"] != "PARTA_LIBRARY_REFUSED"

    make_parent(region, school.users["outsider"], of=school.users["pupil"])
    parent = await api.sign_in(school.clients["outsider"])
    refused = await search(api, parent, subject=f"Math {tag}")
    assert refused.status_code == 403, refused.text
    assert refused.json() == {
        "errcode": "PARTA_LIBRARY_REFUSED",
        "error": "The verified library is for teachers and pupils; parents see what teachers "
        "send to the class chats.",
    }
    assert (await share(api, parent, item_id, school.chat)).status_code == 403
    rooms = await api.http.get("/documents/api/rooms", headers=parent)
    assert rooms.status_code == 200 and rooms.json()["library"] is False


async def test_other_rooms_are_refused(api: Api, school: School, region: LocalDeployment) -> None:
    tag = secrets.token_hex(3)
    (item_id,) = add_items(region, item("Дроби", f"Math {tag}", (5, 6)))
    theirs = await school.clients["outsider"].room_create(name="Кружок")  # no teacher there
    assert isinstance(theirs, RoomCreateResponse), theirs
    teacher = await api.sign_in(school.clients["teacher"])
    elsewhere = await share(api, teacher, item_id, theirs.room_id)
    assert elsewhere.status_code == 403, elsewhere.text
    assert elsewhere.json()["errcode"] == "M_FORBIDDEN"
    missing = await share(api, teacher, 2_000_000_000, school.chat)
    assert missing.status_code == 404


async def test_the_page_hears_that_the_library_does_not_answer(
    api: Api, school: School, region: LocalDeployment
) -> None:
    (port,) = free_ports(1)  # nothing listens there
    assert api.service.library is not None
    await api.service.library.stop()
    api.service.library = ProvisioningLibrary(
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5), "x"
    )
    teacher = await api.sign_in(school.clients["teacher"])
    answer = await search(api, teacher, grade="5")
    assert answer.status_code == 503, answer.text
    assert answer.json()["errcode"] == "PARTA_LIBRARY_UNAVAILABLE"
    # The files still work; the page just shows no library tab.
    rooms = await api.http.get("/documents/api/rooms", headers=teacher)
    assert rooms.status_code == 200 and rooms.json()["library"] is False
