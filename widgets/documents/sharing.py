"""Sharing from the region's verified library (`library.Library`) into a person's chats.

A teacher or pupil searches the library and posts an item as themselves: a file with the
item's own `mxc://` (nothing is uploaded again) and its provenance line, a link as one
text message. An office file gets its PDF preview once, on its first share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from foundation.web import ApiError
from matrix.errors import MatrixError
from widgets.documents.convert import ConversionError, Converter, is_convertible
from widgets.documents.errors import matrix_errors
from widgets.documents.files import PDF_FIELD, pdf_name
from widgets.documents.homeserver import Homeserver
from widgets.documents.library import (
    Library,
    LibraryEntry,
    LibraryRefused,
    LibraryUnavailable,
    NoSuchItem,
)
from widgets.documents.previews import PreviewStore
from widgets.documents.streams import DISK_CHUNK, read_file

log = logging.getLogger(__name__)


class Parts(Protocol):
    """What sharing uses of the documents service, read at each use: a running service's
    converter, library and previews' store may be replaced (the tests do)."""

    homeserver: Homeserver
    converter: Converter | None
    library: Library | None
    library_previews: PreviewStore

    async def check_may_post(self, user_id: str, room_id: str) -> None: ...


@dataclass
class LibrarySharing:
    """Search the library and share its items, as the person asking."""

    parts: Parts
    _preview_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def may_use(self, user_id: str) -> bool:
        """Whether the page offers the library; a catalogue that does not answer hides it
        (the files still work), and the next page load asks again."""
        if self.parts.library is None:
            return False
        try:
            return await self.parts.library.may_use(user_id)
        except LibraryUnavailable as exc:
            log.warning("the library did not answer for %s: %s", user_id, exc)
            return False

    async def search(
        self, user_id: str, *, subject: str, grade: int | None, text: str
    ) -> dict[str, Any]:
        library = self._library()
        with library_errors():
            page = await library.search(user_id, subject=subject, grade=grade, text=text)
        return {
            "items": [item.public() for item in page.items if not item.withdrawn],
            "subjects": list(page.subjects),
        }

    async def share(self, user_id: str, item_id: int, target_room: str) -> dict[str, Any]:
        """Post a library item into a chat of the person's, as them.

        A file goes with the item's own `mxc://` (no upload), then its provenance line as
        a reply; a link as one text message. Sharing into their own documents room is
        "save to my documents".
        """
        library = self._library()
        with library_errors():
            item = await library.item(user_id, item_id)
        if item.withdrawn:
            raise no_such_item()
        await self.parts.check_may_post(user_id, target_room)
        content = item.message_content()
        preview = await self._preview(user_id, item)
        if preview is not None:
            content[PDF_FIELD] = preview
        with matrix_errors():
            event_id = await self.parts.homeserver.send(user_id, target_room, content)
        if item.kind == "file":
            try:
                await self.parts.homeserver.send(user_id, target_room, item.notice_for(event_id))
            except MatrixError as exc:  # the file, with its provenance field, is shared
                log.warning("no provenance line after %s in %s: %s", event_id, target_room, exc)
        return {"room_id": target_room, "event_id": event_id, "item": item.public()}

    async def _preview(self, user_id: str, item: LibraryEntry) -> dict[str, str] | None:
        """An office file's PDF for the page's preview, as an upload of theirs would have.

        Made once per library file (the first share converts it and uploads the PDF as
        the person sharing; later shares, also after a restart, reuse that `mxc://`), so
        the library keeps the file as the region put it there and the preview costs one
        conversion, even when two teachers share it at the same moment.
        """
        if item.kind != "file" or not is_convertible(item.file_name or ""):
            return None
        async with self._preview_locks.setdefault(item.url, asyncio.Lock()):
            known = self.parts.library_previews.get(item.url)
            if known is not None:
                return known
            preview = await self._make_preview(user_id, item)
            await self.parts.library_previews.put(item.url, preview)
            return preview

    async def _make_preview(self, user_id: str, item: LibraryEntry) -> dict[str, str]:
        name = item.file_name or item.title
        if self.parts.converter is None:
            return {"error": "no_converter"}
        with tempfile.TemporaryDirectory(prefix="parta-library-") as work:
            original, pdf = Path(work) / "original", Path(work) / "converted.pdf"
            with matrix_errors():
                response = await self.parts.homeserver.open_media(user_id, item.url, None)
                try:
                    async with await anyio.open_file(original, "wb") as file:
                        async for chunk in response.aiter_bytes(DISK_CHUNK):
                            await file.write(chunk)
                finally:
                    await response.aclose()
            try:
                await self.parts.converter.to_pdf(original, name, pdf)
            except ConversionError as exc:
                log.info("no preview for library item %s: %s", item.id, exc)
                preview = {"error": exc.reason}
            else:
                with matrix_errors():
                    url = await self.parts.homeserver.upload(
                        user_id,
                        pdf_name(name),
                        "application/pdf",
                        pdf.stat().st_size,
                        read_file(pdf),
                    )
                preview = {"url": url}
        return preview

    def _library(self) -> Library:
        if self.parts.library is None:
            raise ApiError(404, "PARTA_NO_LIBRARY", "This server has no verified library.")
        return self.parts.library


@contextlib.contextmanager
def library_errors() -> Iterator[None]:
    """The library's refusals in words a teacher (or a pupil who found the page) reads."""
    try:
        yield
    except LibraryRefused as exc:
        raise ApiError(
            403,
            "PARTA_LIBRARY_REFUSED",
            "The verified library is for teachers and pupils; parents see what teachers send "
            "to the class chats.",
        ) from exc
    except NoSuchItem as exc:
        raise no_such_item() from exc
    except LibraryUnavailable as exc:
        log.warning("the library did not answer: %s", exc)
        raise ApiError(
            503,
            "PARTA_LIBRARY_UNAVAILABLE",
            "The library is not answering right now; try again in a minute.",
        ) from exc


def no_such_item() -> ApiError:
    return ApiError(
        404, "PARTA_LIBRARY_NO_ITEM", "This library item is gone: it was withdrawn or removed."
    )
