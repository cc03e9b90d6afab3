"""The documents API against the real Synapse, as a teacher, pupils and an outsider.

Files go in and out through the service, and the same files are seen from a Matrix
client (matrix-nio) as ordinary `m.file` messages: the service adds no storage of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from nio import AsyncClient, RoomMessagesResponse
from pypdf import PdfReader

from foundation.web import install_error_handlers
from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.call.conftest import serving
from tests.call.test_auth_live import verifier_for
from tests.documents.conftest import School
from tests.documents.slides import make_presentation
from tests.matrix_users import logged_in, new_person, openid_token
from widgets.documents.convert import Converter
from widgets.documents.homeserver import Homeserver
from widgets.documents.local_media import LocalMedia
from widgets.documents.routes import documents_router
from widgets.documents.service import DocumentsService
from widgets.documents.sessions import Sessions

pytestmark = pytest.mark.timeout(300)
LIMIT = 2 * 1024 * 1024
PDF = Path(__file__).parent / "lesson.pdf"


@dataclass
class Api:
    http: httpx.AsyncClient
    service: DocumentsService

    async def sign_in(self, client: AsyncClient) -> dict[str, str]:
        answer = await self.http.post(
            "/documents/api/session", json={"openid": await openid_token(client)}
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}


@pytest.fixture
async def api(region: LocalDeployment, bot: MatrixClient) -> AsyncIterator[Api]:
    s = region.settings
    async with httpx.AsyncClient(base_url=s.homeserver_url, timeout=60) as media_http:
        service = DocumentsService(
            homeserver=Homeserver(bot, media_http),
            verifier=verifier_for(region),
            sessions=Sessions(),
            server_name=s.server_name,
            max_upload_bytes=LIMIT,
            converter=Converter.from_system(),
            local_media=LocalMedia(s.media_store_dir, s.server_name, bot),
        )
        app = FastAPI()
        install_error_handlers(app)
        app.include_router(documents_router(service))
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=120) as http:
            yield Api(http, service)


async def upload(
    api: Api, who: dict[str, str], room: str, name: str, data: bytes, mimetype: str
) -> httpx.Response:
    return await api.http.post(
        f"/documents/api/rooms/{room}/files",
        params={"name": name},
        content=data,
        headers={**who, "Content-Type": mimetype},
    )


async def listed(api: Api, who: dict[str, str], room: str, **query: str) -> list[dict[str, Any]]:
    answer = await api.http.get(f"/documents/api/rooms/{room}/files", params=query, headers=who)
    assert answer.status_code == 200, answer.text
    files: list[dict[str, Any]] = answer.json()["files"]
    return files


async def test_a_teachers_pdf_reaches_a_pupil_as_the_same_matrix_file(
    api: Api, school: School
) -> None:
    teacher = await api.sign_in(school.clients["teacher"])
    pupil = await api.sign_in(school.clients["pupil"])
    data = PDF.read_bytes()
    answer = await upload(api, teacher, school.channel, "Дроби.pdf", data, "application/pdf")
    assert answer.status_code == 201, answer.text
    sent = answer.json()
    assert (sent["name"], sent["kind"], sent["size"], sent["preview"]) == (
        "Дроби.pdf", "pdf", len(data), "pdf",
    )  # fmt: skip

    # The pupil lists the channel and downloads the same bytes through the service…
    (seen,) = await listed(api, pupil, school.channel)
    assert seen["event_id"] == sent["event_id"]
    got = await api.http.get(seen["content_url"])
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "application/pdf"
    # …and, in a Matrix client, an ordinary m.file message whose mxc:// gives them too.
    messages = await school.clients["pupil"].room_messages(school.channel, limit=20)
    assert isinstance(messages, RoomMessagesResponse)
    (event,) = [e for e in messages.chunk if e.source.get("event_id") == sent["event_id"]]
    content = event.source["content"]
    assert content["msgtype"] == "m.file" and content["body"] == "Дроби.pdf"
    download = await school.clients["pupil"].download(content["url"])
    assert getattr(download, "body", None) == data

    # A pupil of another class gets nothing: no list, no file, even with a pupil's link.
    outsider = await api.sign_in(school.clients["outsider"])
    refused = await api.http.get(f"/documents/api/rooms/{school.channel}/files", headers=outsider)
    assert refused.status_code == 403, refused.text
    direct = await api.http.get(
        f"/documents/api/rooms/{school.channel}/files/{sent['event_id']}", headers=outsider
    )
    assert direct.status_code == 403
    borrowed = seen["content_url"].replace(
        school.users["pupil"].replace("@", "%40").replace(":", "%3A"),
        school.users["outsider"].replace("@", "%40").replace(":", "%3A"),
    )
    assert borrowed != seen["content_url"]
    assert (await api.http.get(borrowed)).status_code == 401
    assert (await api.http.get(f"/documents/api/rooms/{school.channel}/files")).status_code == 401


@pytest.mark.parametrize("where", ["disk", "synapse"])
async def test_ranges_are_served_from_the_whole_file(api: Api, school: School, where: str) -> None:
    """Our own uploads are read from Synapse's media store, exactly the range asked for;
    without it (another server's file, a store the service cannot read), the service
    streams the file from Synapse and cuts the range out."""
    if where == "synapse":
        api.service.local_media = None
    teacher = await api.sign_in(school.clients["teacher"])
    data = bytes(range(256)) * 40
    sent = (await upload(api, teacher, school.chat, "data.bin", data, "application/x-test")).json()
    if where == "disk":
        mxc = (await api.service.file(school.users["teacher"], school.chat, sent["event_id"])).url
        assert api.service.local_media is not None
        found = await api.service.local_media.find(mxc)
        assert found is not None and found.path.read_bytes() == data
    url = sent["content_url"]
    whole = await api.http.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-length"] == str(len(data))
    middle = await api.http.get(url, headers={"Range": "bytes=1000-1099"})
    assert middle.status_code == 206
    assert middle.content == data[1000:1100]
    assert middle.headers["content-range"] == f"bytes 1000-1099/{len(data)}"
    tail = await api.http.get(url, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == data[-7:]
    rest = await api.http.get(url, headers={"Range": "bytes=10000-"})
    assert rest.status_code == 206 and rest.content == data[10000:]
    beyond = await api.http.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"


async def test_a_quarantined_file_is_not_read_from_disk(
    api: Api, school: School, bot: MatrixClient
) -> None:
    """A file an administrator quarantined in Synapse stays on disk, but nobody gets it."""
    teacher = await api.sign_in(school.clients["teacher"])
    sent = (await upload(api, teacher, school.chat, "bad.bin", b"x" * 500, "text/plain")).json()
    mxc = (await api.service.file(school.users["teacher"], school.chat, sent["event_id"])).url
    server, media_id = mxc.removeprefix("mxc://").split("/")
    await bot.request("POST", f"/_synapse/admin/v1/media/quarantine/{server}/{media_id}", body={})
    assert api.service.local_media is not None
    assert api.service.local_media.file_path(mxc) is not None
    assert await api.service.local_media.find(mxc) is None
    refused = await api.http.get(sent["content_url"])
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"] == "There is no such file here."


def test_only_our_own_media_ids_map_to_files(tmp_path: Path) -> None:
    local = LocalMedia(tmp_path, "region.test", bot=None)  # type: ignore[arg-type]
    mine = local.file_path("mxc://region.test/abcdefGHIJKLmnopqrstuvwx")
    assert mine == tmp_path / "local_content" / "ab" / "cd" / "efGHIJKLmnopqrstuvwx"
    assert local.file_path("mxc://other.test/abcdefGHIJKLmnopqrstuvwx") is None
    for bad in ("../../../etc/passwd", "ab/cd/ef", "abc", "abcdef..", ""):
        assert local.file_path(f"mxc://region.test/{bad}") is None


async def test_a_presentation_gets_a_pdf_preview_and_a_damaged_one_a_reason(
    api: Api, school: School, tmp_path: Path
) -> None:
    teacher = await api.sign_in(school.clients["teacher"])
    pptx = make_presentation(tmp_path / "lesson.pptx", slides=4).read_bytes()
    office = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    good = await upload(api, teacher, school.channel, "Урок 1.pptx", pptx, office)
    assert good.status_code == 201, good.text
    preview = await api.http.get(good.json()["pdf_url"])
    assert preview.status_code == 200
    pdf_path = tmp_path / "preview.pdf"
    pdf_path.write_bytes(preview.content)
    assert len(PdfReader(pdf_path).pages) == 4
    original = await api.http.get(good.json()["content_url"])
    assert original.content == pptx

    broken = await upload(api, teacher, school.channel, "Сломан.pptx", b"not a deck", office)
    assert broken.status_code == 201, broken.text
    assert broken.json()["preview_error"] == "damaged" and broken.json()["pdf_url"] is None
    kept = await api.http.get(broken.json()["content_url"])
    assert kept.content == b"not a deck"  # still downloadable
    names = [f["name"] for f in await listed(api, teacher, school.channel, kind="office")]
    assert sorted(names) == ["Сломан.pptx", "Урок 1.pptx"]


async def test_bad_uploads_get_a_reason_and_store_nothing(
    api: Api, school: School, bot: MatrixClient
) -> None:
    teacher = await api.sign_in(school.clients["teacher"])
    pupil = await api.sign_in(school.clients["pupil"])
    before = await listed(api, teacher, school.chat)
    used = await api.service.homeserver.media_used(school.users["teacher"])
    cases = [
        (teacher, school.chat, "пусто.txt", b"", 400, "PARTA_EMPTY_FILE"),
        (teacher, school.chat, "big.bin", b"x" * (LIMIT + 1), 413, "PARTA_TOO_LARGE"),
        (teacher, school.chat, "../../etc/passwd", b"x", 400, "PARTA_BAD_NAME"),
        (teacher, school.chat, "a\\b.txt", b"x", 400, "PARTA_BAD_NAME"),
        (teacher, school.chat, "   ", b"x", 400, "PARTA_BAD_NAME"),
        (pupil, school.channel, "мой.txt", b"x", 403, "PARTA_READ_ONLY"),
        (pupil, school.channel, "большой.bin", b"x" * (LIMIT - 1), 403, "PARTA_READ_ONLY"),
        (pupil, school.other, "чужой.txt", b"x", 403, "M_FORBIDDEN"),
    ]
    for who, room, name, data, status, errcode in cases:
        answer = await upload(api, who, room, name, data, "text/plain")
        assert (answer.status_code, answer.json()["errcode"]) == (status, errcode), name
        assert answer.json()["error"], name
    assert await listed(api, teacher, school.chat) == before
    assert await api.service.homeserver.media_used(school.users["teacher"]) == used
    assert await api.service.homeserver.media_used(school.users["pupil"]) == 0


async def test_a_file_over_the_persons_quota_is_refused_before_it_is_stored(
    api: Api, school: School
) -> None:
    teacher = await api.sign_in(school.clients["teacher"])
    used = await api.service.homeserver.media_used(school.users["teacher"])
    api.service.quota_bytes = used + 10
    over = await upload(api, teacher, school.chat, "лишний.txt", b"x" * 11, "text/plain")
    assert over.status_code == 413 and over.json()["errcode"] == "PARTA_QUOTA"
    assert "Delete files you no longer need" in over.json()["error"]
    assert await api.service.homeserver.media_used(school.users["teacher"]) == used
    fits = await upload(api, teacher, school.chat, "ровно.txt", b"x" * 10, "text/plain")
    assert fits.status_code == 201, fits.text
    assert await api.service.homeserver.media_used(school.users["teacher"]) == used + 10


async def test_share_rename_and_delete(api: Api, school: School) -> None:
    teacher = await api.sign_in(school.clients["teacher"])
    pupil = await api.sign_in(school.clients["pupil"])
    sent = (
        await upload(api, teacher, school.channel, "План.pdf", PDF.read_bytes(), "application/pdf")
    ).json()
    base = f"/documents/api/rooms/{school.channel}/files/{sent['event_id']}"

    shared = await api.http.post(f"{base}/share", json={"room_id": school.chat}, headers=teacher)
    assert shared.status_code == 201, shared.text
    chat_event = await school.clients["pupil"].room_get_event(
        school.chat, shared.json()["event_id"]
    )
    original = await school.clients["pupil"].room_get_event(school.channel, sent["event_id"])
    assert chat_event.event.source["sender"] == school.users["teacher"]
    assert (  # the same media, not a second upload
        chat_event.event.source["content"]["url"] == original.event.source["content"]["url"]
    )
    # A pupil may not share into the read-only channel, nor rename the teacher's file.
    mine = f"/documents/api/rooms/{school.chat}/files/{shared.json()['event_id']}"
    back = await api.http.post(f"{mine}/share", json={"room_id": school.channel}, headers=pupil)
    assert back.status_code == 403
    assert (await api.http.patch(base, json={"name": "x.pdf"}, headers=pupil)).status_code == 403

    renamed = await api.http.patch(base, json={"name": "План урока.pdf"}, headers=teacher)
    assert renamed.status_code == 200 and renamed.json()["name"] == "План урока.pdf"
    assert [f["name"] for f in await listed(api, pupil, school.channel, q="урока")] == [
        "План урока.pdf"
    ]
    bad = await api.http.patch(base, json={"name": "a/b.pdf"}, headers=teacher)
    assert bad.status_code == 400 and bad.json()["errcode"] == "PARTA_BAD_NAME"

    assert (await api.http.delete(base, headers=pupil)).status_code == 403
    assert (await api.http.delete(base, headers=teacher)).status_code == 204
    assert sent["event_id"] not in {f["event_id"] for f in await listed(api, pupil, school.channel)}


async def test_the_widget_service_serves_the_documents_api(
    region: LocalDeployment, bot: MatrixClient, widgets_url: str
) -> None:
    user, password = await new_person(bot, region, "reader")
    async with httpx.AsyncClient(base_url=widgets_url, timeout=60) as http:
        forged = {"access_token": "made-up", "matrix_server_name": region.settings.server_name}
        refused = await http.post("/documents/api/session", json={"openid": forged})
        assert refused.status_code == 401 and refused.json()["errcode"] == "M_UNKNOWN_TOKEN"
        async with logged_in(region, user, password) as client:
            token = await openid_token(client)
        answer = await http.post("/documents/api/session", json={"openid": token})
        assert answer.status_code == 200 and answer.json()["user_id"] == user
        disk = (await http.get("/healthz")).json()["media_disk"]
        assert disk["alarm"] is (
            disk["free_percent"] < region.settings.documents_disk_alarm_percent
        )


async def test_my_documents_room_is_made_once_and_only_i_am_in_it(
    api: Api, school: School, bot: MatrixClient
) -> None:
    pupil = await api.sign_in(school.clients["pupil"])
    first = await api.http.get("/documents/api/rooms", headers=pupil)
    assert first.status_code == 200, first.text
    mine = first.json()["mine"]
    listed_rooms = {r["room_id"]: r for r in first.json()["rooms"]}
    assert listed_rooms[mine] == {"room_id": mine, "name": "Мои документы", "mine": True}
    assert {school.channel, school.chat} <= set(listed_rooms)
    assert school.other not in listed_rooms
    members = await bot.request("GET", f"/_synapse/admin/v1/rooms/{mine}/members")
    assert members["members"] == [school.users["pupil"]]
    # A pupil may keep files in their own room, though they may not post in the channel.
    sent = await upload(api, pupil, mine, "Сочинение.txt", "Текст".encode(), "text/plain")
    assert sent.status_code == 201, sent.text
    # Asking again finds the same room, also after the pupil left it.
    await school.clients["pupil"].room_leave(mine)
    again = await api.http.get("/documents/api/rooms", headers=pupil)
    assert again.json()["mine"] == mine
    assert [f["name"] for f in await listed(api, pupil, mine)] == ["Сочинение.txt"]


@pytest.mark.parametrize("ticket", ["²", "²³.x", "1" * 5000 + ".x", "٣.x", "", "9" * 20])
async def test_a_malformed_file_link_is_refused_with_a_reason(
    api: Api, school: School, ticket: str
) -> None:
    teacher = await api.sign_in(school.clients["teacher"])
    answer = await upload(
        api, teacher, school.chat, "Ссылка.pdf", PDF.read_bytes(), "application/pdf"
    )
    assert answer.status_code == 201, answer.text
    good = answer.json()["content_url"]
    for kind in ("content", "pdf"):
        url = good.replace("/content?", f"/{kind}?").split("&t=")[0]
        refused = await api.http.get(f"{url}&t={quote(ticket)}")
        assert refused.status_code == 401, refused.text
        assert refused.json()["errcode"] == "M_UNKNOWN_TOKEN"
        assert "link" in refused.json()["error"]
