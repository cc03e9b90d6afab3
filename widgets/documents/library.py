"""The verified library a teacher shares from: the connector interface and our own catalogue.

A library is a catalogue of checked teaching materials, searched by subject, grade and
text, each item either a file already in Synapse's media repository (`mxc://`) or an
`https://` link, with its licence, source and who verified it. The documents service
talks to it through `Library` only, so a state catalogue can be plugged in later beside
or instead of `ProvisioningLibrary`, the region's own catalogue kept by the provisioning
service. Its content is for teachers and pupils (administrators included; parents see what
teachers send to the chats); the catalogue decides who may use it, not this service.

Sharing an item is plain Matrix (`message_content`): a file item becomes a file message
with the same `mxc://` (nothing is uploaded again), a link item a text message; both
carry `org.parta.library`, the item's provenance, so clients and our page can show it.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from foundation.settings import Settings
from widgets.documents.files import msgtype_for

log = logging.getLogger(__name__)

LIBRARY_FIELD = "org.parta.library"
TIMEOUT = httpx.Timeout(10.0, connect=3.0)  # a search is one indexed query; never wait long
_MXC = re.compile(r"^mxc://[A-Za-z0-9.:\[\]-]+/[A-Za-z0-9_-]+$")

ItemKind = Literal["file", "link"]


class LibraryError(Exception):
    """A library refused or failed; the message is for the log, not for the person."""


class LibraryRefused(LibraryError):
    """The person is not a teacher, a pupil or an administrator: the library is not for them."""


class NoSuchItem(LibraryError):
    """No such item, or it was withdrawn."""


class LibraryUnavailable(LibraryError):
    """The catalogue did not answer, or answered something that is not a catalogue."""


@dataclass(frozen=True)
class LibraryEntry:
    """One verified material. `url` is `mxc://` for a file, `https://` for a link."""

    id: int
    title: str
    subject: str
    grade_from: int
    grade_to: int
    description: str
    kind: ItemKind
    url: str
    file_name: str | None
    mimetype: str | None
    size: int | None
    licence: str
    source: str
    verified_by: str
    withdrawn: bool = False

    def public(self) -> dict[str, Any]:
        """The item for the page (a file's `mxc://` stays here: the page cannot use it)."""
        return {
            "id": self.id, "title": self.title, "subject": self.subject,
            "grade_from": self.grade_from, "grade_to": self.grade_to,
            "description": self.description, "kind": self.kind,
            "url": self.url if self.kind == "link" else None,
            "file_name": self.file_name, "mimetype": self.mimetype, "size": self.size,
            "licence": self.licence, "source": self.source, "verified_by": self.verified_by,
        }  # fmt: skip

    def provenance(self) -> dict[str, Any]:
        """The `org.parta.library` field of a shared item's messages."""
        return {
            "id": self.id, "subject": self.subject,
            "grade_from": self.grade_from, "grade_to": self.grade_to,
            "licence": self.licence, "source": self.source, "verified_by": self.verified_by,
        }  # fmt: skip

    def provenance_line(self) -> str:
        return f"Проверенная библиотека: {self.source}, {self.licence}"

    def message_content(self) -> dict[str, Any]:
        """The Matrix message that shares this item.

        A link is an `m.text` message: title, link and the provenance line. A file is a
        file message with the item's own `mxc://` (body = the file's name, so every
        client shows it as the file it is and the documents page lists it); its visible
        provenance line follows in `notice_for`, as a file message has no other place
        for one (a body other than `filename` turns into a caption, MSC2530).
        """
        if self.kind == "link":
            line = self.provenance_line()
            return {
                "msgtype": "m.text",
                "body": f"{self.title}\n{self.url}\n{line}",
                "format": "org.matrix.custom.html",
                "formatted_body": (
                    f'<a href="{html.escape(self.url)}">{html.escape(self.title)}</a>'
                    f"<br>{html.escape(self.url)}<br><em>{html.escape(line)}</em>"
                ),
                LIBRARY_FIELD: self.provenance(),
            }
        name = self.file_name or self.title
        mimetype = self.mimetype or "application/octet-stream"
        info: dict[str, Any] = {"mimetype": mimetype}
        if self.size is not None:
            info["size"] = self.size
        return {
            "msgtype": msgtype_for(mimetype),
            "body": name,
            "filename": name,
            "url": self.url,
            "info": info,
            LIBRARY_FIELD: self.provenance(),
        }

    def notice_for(self, file_event_id: str) -> dict[str, Any]:
        """The provenance line that follows a shared file: an `m.notice` replying to it."""
        line = self.provenance_line()
        return {
            "msgtype": "m.notice",
            "body": f"{self.title}\n{line}",
            "format": "org.matrix.custom.html",
            "formatted_body": f"<b>{html.escape(self.title)}</b><br><em>{html.escape(line)}</em>",
            "m.relates_to": {"m.in_reply_to": {"event_id": file_event_id}},
            LIBRARY_FIELD: self.provenance(),
        }


@dataclass(frozen=True)
class LibraryPage:
    """A search's answer: the matching items and every subject the catalogue has."""

    items: tuple[LibraryEntry, ...]
    subjects: tuple[str, ...]


class Library(Protocol):
    """A catalogue of verified materials, as the documents service uses it."""

    async def search(
        self, user_id: str, *, subject: str = "", grade: int | None = None, text: str = ""
    ) -> LibraryPage:
        """Items for the person, withdrawn ones left out.

        Args:
            user_id: the signed-in person, a Matrix user ID of this region.
            subject: one subject, case-insensitive; "" for all.
            grade: 1–11, items whose grade range holds it; None for all.
            text: words in the title or description; "" for all.

        Raises:
            LibraryRefused: the person may not use the library.
            LibraryUnavailable: the catalogue did not answer properly.
        """
        ...

    async def item(self, user_id: str, item_id: int) -> LibraryEntry:
        """One item, to share it.

        Raises:
            LibraryRefused: the person may not use the library.
            NoSuchItem: no such item, or it was withdrawn.
            LibraryUnavailable: the catalogue did not answer properly.
        """
        ...

    async def may_use(self, user_id: str) -> bool:
        """Whether the person may use the library, so the page shows it to them.

        Raises:
            LibraryUnavailable: the catalogue did not answer properly.
        """
        ...

    async def start(self) -> None:
        """Open what the library needs before its first search (it is a `Service`)."""
        ...

    async def stop(self) -> None:
        """Close what the library opened."""
        ...


@dataclass
class ProvisioningLibrary:
    """The region's catalogue, through the provisioning service's internal API."""

    http: httpx.AsyncClient  # base_url = the provisioning service
    token: str  # the appservice token the services share

    @classmethod
    def from_settings(cls, settings: Settings) -> ProvisioningLibrary:
        return cls(
            httpx.AsyncClient(base_url=settings.provisioning_url, timeout=TIMEOUT),
            settings.as_token.get_secret_value(),
        )

    async def start(self) -> None:
        """Nothing to open: httpx connects on the first request."""

    async def stop(self) -> None:
        await self.http.aclose()

    async def search(
        self, user_id: str, *, subject: str = "", grade: int | None = None, text: str = ""
    ) -> LibraryPage:
        params = {"user_id": user_id, "subject": subject, "q": text}
        if grade is not None:
            params["grade"] = str(grade)
        answer = await self._get("/internal/library", params)
        try:
            items = answer["items"]
            subjects = answer["subjects"]
            if not isinstance(items, list) or not isinstance(subjects, list):
                raise TypeError("items and subjects must be lists")
            return LibraryPage(
                items=tuple(entry_from_json(item) for item in items),
                subjects=tuple(sorted({str(s) for s in subjects}, key=lambda s: (s.casefold(), s))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LibraryUnavailable(f"the catalogue answered no catalogue: {exc}") from exc

    async def item(self, user_id: str, item_id: int) -> LibraryEntry:
        answer = await self._get(f"/internal/library/{int(item_id)}", {"user_id": user_id})
        try:
            return entry_from_json(answer)
        except (KeyError, TypeError, ValueError) as exc:
            raise LibraryUnavailable(f"the catalogue answered no item: {exc}") from exc

    async def may_use(self, user_id: str) -> bool:
        answer = await self._get("/internal/library/access", {"user_id": user_id})
        may_use = answer.get("may_use")
        if not isinstance(may_use, bool):
            raise LibraryUnavailable("the catalogue did not say who may use it")
        return may_use

    async def _get(self, url: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            response = await self.http.get(
                url, params=params, headers={"Authorization": f"Bearer {self.token}"}
            )
        except httpx.HTTPError as exc:
            raise LibraryUnavailable(f"the provisioning service did not answer: {exc!r}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = str(body.get("error") or f"HTTP {response.status_code}")
        if response.status_code == 403 and body.get("errcode") == "PARTA_LIBRARY_REFUSED":
            raise LibraryRefused(message)
        if response.status_code == 403:
            # Our token refused: the services' settings disagree (as_token); say so.
            raise LibraryUnavailable(f"the provisioning service refused our token: {message}")
        if response.status_code == 404:
            raise NoSuchItem(message)
        if response.status_code != 200:
            raise LibraryUnavailable(f"the provisioning service answered: {message}")
        return body


def entry_from_json(data: object) -> LibraryEntry:
    """An item as a catalogue sends it, checked; ValueError/TypeError/KeyError if not one.

    Checked here too, not only where items are made: a link goes into HTML and a file's
    URI into a message, so nothing but `https://` links and our `mxc://` shape passes.
    """
    if not isinstance(data, Mapping):
        raise TypeError("an item must be an object")
    kind = data["kind"]
    url = _text(data, "url")
    if kind == "link":
        if not url.startswith("https://"):
            raise ValueError("a link item's url must start with https://")
    elif kind == "file":
        if not _MXC.match(url):
            raise ValueError("a file item's url must be an mxc:// URI")
    else:
        raise ValueError(f"unknown item kind {kind!r}")
    grade_from, grade_to = _int(data, "grade_from"), _int(data, "grade_to")
    size = data.get("size")
    return LibraryEntry(
        id=_int(data, "id"),
        title=_text(data, "title"),
        subject=_text(data, "subject"),
        grade_from=grade_from,
        grade_to=grade_to,
        description=str(data.get("description") or ""),
        kind=kind,
        url=url,
        file_name=_optional_text(data, "file_name"),
        mimetype=_optional_text(data, "mimetype"),
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        licence=_text(data, "licence"),
        source=_text(data, "source"),
        verified_by=_text(data, "verified_by"),
        withdrawn=bool(data.get("withdrawn", False)),
    )


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key} must be an integer")
    return value
