"""The library connector without a network: what it accepts from a catalogue, how it maps
the catalogue's answers to errors, and the messages a shared item becomes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from widgets.documents.library import (
    LIBRARY_FIELD,
    LibraryRefused,
    LibraryUnavailable,
    NoSuchItem,
    ProvisioningLibrary,
    entry_from_json,
)

FILE = {
    "id": 7, "title": "Дроби", "subject": "Математика", "grade_from": 5, "grade_to": 6,
    "description": "", "kind": "file", "url": "mxc://region.test/AbCdEf123",
    "file_name": "Дроби.pdf", "mimetype": "application/pdf", "size": 1234,
    "licence": "CC BY 4.0", "source": "РЭШ", "verified_by": "Методист", "withdrawn": False,
}  # fmt: skip


def library(handler: Callable[[httpx.Request], httpx.Response]) -> ProvisioningLibrary:
    transport = httpx.MockTransport(handler)
    return ProvisioningLibrary(httpx.AsyncClient(transport=transport, base_url="http://p"), "tok")


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "link", "url": "javascript:alert(1)"},
        {"kind": "link", "url": "http://plain.example"},
        {"url": "https://not-an-mxc.example/x"},
        {"url": "mxc://region.test/../../etc"},
        {"kind": "folder"},
        {"id": "7"},
        {"title": ""},
    ],
)
def test_a_catalogue_item_that_could_do_harm_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        entry_from_json({**FILE, **change})


def test_a_file_item_is_shared_as_its_own_mxc_with_its_provenance() -> None:
    entry = entry_from_json(FILE)
    content = entry.message_content()
    assert content == {
        "msgtype": "m.file", "body": "Дроби.pdf", "filename": "Дроби.pdf",
        "url": "mxc://region.test/AbCdEf123",
        "info": {"mimetype": "application/pdf", "size": 1234},
        LIBRARY_FIELD: {
            "id": 7, "subject": "Математика", "grade_from": 5, "grade_to": 6,
            "licence": "CC BY 4.0", "source": "РЭШ", "verified_by": "Методист",
        },
    }  # fmt: skip
    video = entry_from_json({**FILE, "mimetype": "video/mp4", "file_name": "урок.mp4"})
    assert video.message_content()["msgtype"] == "m.video"
    notice = entry.notice_for("$file")
    assert notice["msgtype"] == "m.notice"
    assert notice["m.relates_to"] == {"m.in_reply_to": {"event_id": "$file"}}
    assert "Проверенная библиотека: РЭШ, CC BY 4.0" in notice["body"]
    assert entry.public()["url"] is None  # the page gets no mxc:// to misuse


async def test_the_catalogues_answers_become_typed_errors() -> None:
    seen: list[httpx.Request] = []

    def answer(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(status, json=body)

        return handler

    forbidden = {"errcode": "PARTA_LIBRARY_REFUSED", "error": "teachers and pupils"}
    cases: list[tuple[Callable[[httpx.Request], httpx.Response], type[Exception]]] = [
        (answer(403, forbidden), LibraryRefused),
        (answer(403, {"errcode": "M_FORBIDDEN", "error": "bad token"}), LibraryUnavailable),
        (answer(404, {"errcode": "M_NOT_FOUND", "error": "gone"}), NoSuchItem),
        (answer(500, {"errcode": "M_UNKNOWN", "error": "boom"}), LibraryUnavailable),
        (answer(200, {"items": "not a list", "subjects": []}), LibraryUnavailable),
        (answer(200, {"items": [{**FILE, "url": "javascript:x"}], "subjects": []}),
         LibraryUnavailable),
    ]  # fmt: skip
    for handler, error in cases:
        with pytest.raises(error):
            await library(handler).search("@t:region.test", subject="Математика", grade=5)
    assert seen[0].headers["authorization"] == "Bearer tok"
    assert dict(seen[0].url.params) == {
        "user_id": "@t:region.test", "subject": "Математика", "q": "", "grade": "5",
    }  # fmt: skip

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(LibraryUnavailable):
        await library(unreachable).item("@t:region.test", 7)
    with pytest.raises(LibraryUnavailable):
        await library(unreachable).may_use("@t:region.test")
    assert await library(answer(200, {"may_use": False})).may_use("@p:region.test") is False
    assert await library(answer(200, {"may_use": True})).may_use("@t:region.test") is True
    assert seen[-1].url.path == "/internal/library/access"
    with pytest.raises(LibraryUnavailable):
        await library(answer(403, {"errcode": "M_FORBIDDEN"})).may_use("@t:region.test")
    page = await library(answer(200, {"items": [FILE], "subjects": ["б", "А", "а"]})).search("@t:x")
    assert [i.id for i in page.items] == [7] and page.subjects == ("А", "а", "б")
