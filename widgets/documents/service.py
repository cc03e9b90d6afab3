"""The documents API under `/documents/api`: list, upload, preview, download, rename, share,
and the verified library teachers search and share from (`library.Library`).

Files stay ordinary Matrix files: this service only does what a Matrix client cannot do
for a school on its own — convert office files to PDF once, check limits with a clear
message before anything is stored, serve range requests, and share a file into another
chat by its `mxc://` URI without uploading it again. Every request acts as the signed-in
person (`homeserver.Homeserver`), so a pupil cannot read another class's materials by
guessing an ID: Synapse refuses their token for a room they are not in, and the service
never takes an `mxc://` URI from the page, only event IDs it reads as that person.

No `from __future__ import annotations` here: FastAPI must see the router's dependency
types, which live in `documents_router`'s scope, when the routes are declared.
"""

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import anyio
import httpx
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from foundation.settings import Settings
from foundation.web import ApiError
from matrix.client import MatrixClient
from matrix.errors import Forbidden, HomeserverUnavailable, MatrixError, NotFound
from matrix.openid import OpenIDError, OpenIDVerifier, token_grant
from widgets.call.room_access import NoAccess, RoomAccess, check_room_access
from widgets.documents.convert import ConversionError, Converter, is_convertible
from widgets.documents.files import (
    PDF_FIELD,
    BadName,
    Document,
    Kind,
    SortKey,
    clean_name,
    select,
)
from widgets.documents.homeserver import Homeserver
from widgets.documents.library import (
    Library,
    LibraryEntry,
    LibraryRefused,
    LibraryUnavailable,
    NoSuchItem,
    ProvisioningLibrary,
)
from widgets.documents.local_media import LocalFile, LocalMedia
from widgets.documents.previews import PreviewStore
from widgets.documents.ranges import Unsatisfiable, cut, parse_range
from widgets.documents.sessions import SESSIONS_PER_TOKEN, NotSignedIn, Sessions, TooManySessions

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DISK_CHUNK = 1024 * 1024  # one worker-thread hop per MiB read
UPLOAD_PIECE = 1024 * 1024  # what an upload is passed on to Synapse in (see `_exactly`)
SERVE_CACHE_S = 30.0


@dataclass
class DocumentsService:
    homeserver: Homeserver
    verifier: OpenIDVerifier
    sessions: Sessions
    server_name: str
    max_upload_bytes: int
    converter: Converter | None  # None: LibreOffice is not installed; office files get no PDF
    quota_bytes: int = 0  # per person; 0 = unlimited
    local_media: LocalMedia | None = None  # downloads of our own files read from disk
    library: Library | None = None  # the verified library teachers share from; None: none
    _served: dict[tuple[str, str, str], tuple[float, Document]] = field(default_factory=dict)
    # A library file's PDF preview by the file's mxc:// (see `_library_preview`).
    library_previews: PreviewStore = field(default_factory=PreviewStore)
    _preview_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, verifier: OpenIDVerifier) -> "DocumentsService":
        """The service of a deployment; `close()` it when the app stops."""
        bot = MatrixClient(settings.homeserver_url, settings.as_token.get_secret_value())
        media = httpx.AsyncClient(
            base_url=settings.homeserver_url, timeout=httpx.Timeout(120.0, connect=5.0)
        )
        return cls(
            homeserver=Homeserver(bot, media),
            local_media=LocalMedia(settings.media_store_dir, settings.server_name, bot),
            verifier=verifier,
            sessions=Sessions(),
            server_name=settings.server_name,
            max_upload_bytes=settings.max_upload_size_mb * MIB,
            converter=Converter.from_system(
                settings.documents_convert_workers, settings.documents_convert_time_limit_s
            ),
            quota_bytes=settings.documents_quota_mb * MIB,
            library=ProvisioningLibrary.from_settings(settings),
            library_previews=PreviewStore(settings.documents_state_dir / "library-previews.json"),
        )

    async def close(self) -> None:
        await self.homeserver.aclose()
        if self.library is not None:
            await self.library.aclose()

    # --- who is asking -----------------------------------------------------------------

    async def sign_in(self, openid: dict[str, Any]) -> str:
        try:
            user_id = await self.verifier.verify(openid)
        except OpenIDError as exc:
            raise ApiError(401, "M_UNKNOWN_TOKEN", f"Sign-in failed: {exc}") from exc
        if user_id.partition(":")[2] != self.server_name:
            raise ApiError(
                403,
                "PARTA_OTHER_REGION",
                "Documents are kept by your own region's server; open them there.",
            )
        return user_id

    # --- reading -------------------------------------------------------------------------

    async def rooms(self, user_id: str) -> dict[str, Any]:
        """The person's own documents room (made on first use) and their other rooms."""
        with _matrix_errors():
            mine = await self.homeserver.own_room(user_id)
            try:
                await self._access(user_id, mine)
            except ApiError:
                await self.homeserver.join(user_id, mine)  # they had left it: back in
            rooms = await self.homeserver.joined_rooms(user_id)
        return {
            "mine": mine,
            "rooms": [
                {"room_id": room_id, "name": name, "mine": room_id == mine}
                for room_id, name in rooms
            ],
            "library": await self.may_use_library(user_id),
        }

    async def check_member(self, user_id: str, room_id: str) -> None:
        """A clear 403 for someone not in the room (Synapse itself would say "not found")."""
        await self._access(user_id, room_id)

    async def file(self, user_id: str, room_id: str, event_id: str) -> Document:
        await self.check_member(user_id, room_id)
        with _matrix_errors():
            return await self.homeserver.document(user_id, room_id, event_id)

    async def file_to_serve(self, user_id: str, room_id: str, event_id: str) -> Document:
        """`file`, remembered for a moment for downloads: a video being watched or a PDF
        being read asks for one range after another, and each would otherwise cost five
        calls to Synapse. A file deleted meanwhile stays downloadable that long at most."""
        key = (user_id, room_id, event_id)
        now = time.monotonic()
        cached = self._served.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        document = await self.file(user_id, room_id, event_id)
        if len(self._served) > 10_000:
            self._served = {k: v for k, v in self._served.items() if v[0] > now}
        self._served[key] = (now + SERVE_CACHE_S, document)
        return document

    async def files(self, user_id: str, room_id: str) -> list[Document]:
        await self.check_member(user_id, room_id)
        with _matrix_errors():
            return await self.homeserver.room_documents(user_id, room_id)

    async def open_content(
        self, user_id: str, document: Document, *, pdf: bool, range_header: str | None
    ) -> Response:
        if pdf and not document.pdf_url and document.kind != "pdf":
            raise ApiError(
                404,
                "PARTA_NO_PREVIEW",
                _no_preview_message(document.pdf_error),
            )
        mxc = document.pdf_url if pdf and document.pdf_url else document.url
        mimetype = "application/pdf" if pdf else document.mimetype
        name = document.name if not (pdf and document.pdf_url) else _pdf_name(document.name)
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",  # a served HTML file runs no script here
            "Cache-Control": "private, max-age=3600",
        }
        local = await self.local_media.find(mxc) if self.local_media is not None else None
        if local is not None:
            return _from_disk(local, mimetype, headers, range_header)
        with _matrix_errors():
            upstream = await self.homeserver.open_media(user_id, mxc, None)
        size = _int_header(upstream.headers.get("Content-Length"))
        try:
            wanted = parse_range(range_header, size) if size is not None else None
        except Unsatisfiable:
            await upstream.aclose()
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        body: AsyncIterator[bytes] = upstream.aiter_raw()
        status = 200
        if wanted is not None and size is not None:
            body = cut(body, wanted)
            headers["Content-Range"] = wanted.content_range(size)
            headers["Content-Length"] = str(wanted.length)
            status = 206
        elif size is not None:
            headers["Content-Length"] = str(size)

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in body:
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(stream(), status_code=status, media_type=mimetype, headers=headers)

    # --- writing -------------------------------------------------------------------------

    async def upload(
        self, user_id: str, room_id: str, raw_name: str, mimetype: str, length: int | None,
        body: AsyncIterator[bytes],
    ) -> Document:  # fmt: skip
        """Check, (convert,) upload and post one file; all of it or, on an error, nothing."""
        try:
            name = clean_name(raw_name)
        except BadName as exc:
            raise ApiError(400, "PARTA_BAD_NAME", f"The file name is not valid: {exc}.") from exc
        if length is None:
            raise ApiError(411, "PARTA_LENGTH_REQUIRED", "Send the file with its size.")
        if length == 0:
            raise ApiError(400, "PARTA_EMPTY_FILE", f"{name} is empty: there is nothing to keep.")
        if length > self.max_upload_bytes:
            raise ApiError(
                413,
                "PARTA_TOO_LARGE",
                f"{name} is {_mib(length)} MB; files can be at most "
                f"{_mib(self.max_upload_bytes)} MB.",
            )
        await self._check_may_post(user_id, room_id)
        await self._check_quota(user_id, name, length)
        mimetype = mimetype or "application/octet-stream"
        if is_convertible(name):
            return await self._upload_office(user_id, room_id, name, mimetype, length, body)
        with _matrix_errors():
            url = await self.homeserver.upload(
                user_id, name, mimetype, length, _exactly(body, length, name)
            )
        document = Document(room_id, "", user_id, name, mimetype, length, url, 0)
        return await self._post(user_id, room_id, document, [url])

    async def _upload_office(
        self, user_id: str, room_id: str, name: str, mimetype: str, length: int,
        body: AsyncIterator[bytes],
    ) -> Document:  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="parta-upload-") as work:
            original = Path(work) / "original"
            async with await anyio.open_file(original, "wb") as file:
                async for chunk in _exactly(body, length, name):
                    await file.write(chunk)
            pdf_url: str | None = None
            pdf_error: str | None = None
            pdf = Path(work) / "converted.pdf"
            if self.converter is None:
                pdf_error = "no_converter"
            else:
                try:
                    await self.converter.to_pdf(original, name, pdf)
                except ConversionError as exc:
                    log.info("no preview for %s: %s", name, exc)
                    pdf_error = exc.reason
            uploaded: list[str] = []
            try:
                with _matrix_errors():
                    url = await self.homeserver.upload(
                        user_id, name, mimetype, length, _read(original)
                    )
                    uploaded.append(url)
                    if pdf_error is None:
                        pdf_url = await self.homeserver.upload(
                            user_id, _pdf_name(name), "application/pdf",
                            pdf.stat().st_size, _read(pdf),
                        )  # fmt: skip
                        uploaded.append(pdf_url)
            except ApiError:
                await self._forget_media(uploaded)
                raise
        document = Document(
            room_id, "", user_id, name, mimetype, length, url, 0, pdf_url, pdf_error
        )
        return await self._post(user_id, room_id, document, uploaded)

    async def _post(
        self, user_id: str, room_id: str, document: Document, uploaded: list[str]
    ) -> Document:
        try:
            with _matrix_errors():
                event_id = await self.homeserver.send(user_id, room_id, document.message_content())
        except ApiError:
            # Refused after the upload (the school policy module, say): keep nothing.
            await self._forget_media(uploaded)
            raise
        return replace(document, event_id=event_id, sent_at_ms=_now_ms())

    async def rename(self, user_id: str, document: Document, raw_name: str) -> Document:
        self._check_own(user_id, document)
        try:
            name = clean_name(raw_name)
        except BadName as exc:
            raise ApiError(400, "PARTA_BAD_NAME", f"The file name is not valid: {exc}.") from exc
        new_content = {**document.message_content(), "body": name, "filename": name}
        edit = {
            **new_content,
            "body": f"* {name}",
            "m.new_content": new_content,
            "m.relates_to": {"rel_type": "m.replace", "event_id": document.event_id},
        }
        with _matrix_errors():
            await self.homeserver.send(user_id, document.room_id, edit)
        return replace(document, name=name)

    async def delete(self, user_id: str, document: Document) -> None:
        self._check_own(user_id, document)
        with _matrix_errors():
            await self.homeserver.redact(
                user_id, document.room_id, document.event_id, "Удалено владельцем"
            )

    async def share(self, user_id: str, document: Document, target_room: str) -> Document:
        """Post the same file into another chat of the person's: same `mxc://`, from them."""
        await self._check_may_post(user_id, target_room)
        with _matrix_errors():
            event_id = await self.homeserver.send(user_id, target_room, document.message_content())
        return replace(
            document, room_id=target_room, event_id=event_id, sender=user_id, sent_at_ms=_now_ms()
        )

    # --- the verified library ---------------------------------------------------------

    async def may_use_library(self, user_id: str) -> bool:
        """Whether the page offers the library; a catalogue that does not answer hides it
        (the files still work), and the next page load asks again."""
        if self.library is None:
            return False
        try:
            return await self.library.may_use(user_id)
        except LibraryUnavailable as exc:
            log.warning("the library did not answer for %s: %s", user_id, exc)
            return False

    async def search_library(
        self, user_id: str, *, subject: str, grade: int | None, text: str
    ) -> dict[str, Any]:
        library = self._library()
        with _library_errors():
            page = await library.search(user_id, subject=subject, grade=grade, text=text)
        return {
            "items": [item.public() for item in page.items if not item.withdrawn],
            "subjects": list(page.subjects),
        }

    async def share_library_item(
        self, user_id: str, item_id: int, target_room: str
    ) -> dict[str, Any]:
        """Post a library item into a chat of the person's, as them.

        A file goes with the item's own `mxc://` (no upload), then its provenance line as
        a reply; a link as one text message. Sharing into their own documents room is
        "save to my documents".
        """
        library = self._library()
        with _library_errors():
            item = await library.item(user_id, item_id)
        if item.withdrawn:
            raise _no_such_item()
        await self._check_may_post(user_id, target_room)
        content = item.message_content()
        preview = await self._library_preview(user_id, item)
        if preview is not None:
            content[PDF_FIELD] = preview
        with _matrix_errors():
            event_id = await self.homeserver.send(user_id, target_room, content)
        if item.kind == "file":
            try:
                await self.homeserver.send(user_id, target_room, item.notice_for(event_id))
            except MatrixError as exc:  # the file, with its provenance field, is shared
                log.warning("no provenance line after %s in %s: %s", event_id, target_room, exc)
        return {"room_id": target_room, "event_id": event_id, "item": item.public()}

    async def _library_preview(self, user_id: str, item: LibraryEntry) -> dict[str, str] | None:
        """An office file's PDF for the page's preview, as an upload of theirs would have.

        Made once per library file (the first share converts it and uploads the PDF as
        the person sharing; later shares, also after a restart, reuse that `mxc://`), so
        the library keeps the file as the region put it there and the preview costs one
        conversion, even when two teachers share it at the same moment.
        """
        if item.kind != "file" or not is_convertible(item.file_name or ""):
            return None
        async with self._preview_locks.setdefault(item.url, asyncio.Lock()):
            known = self.library_previews.get(item.url)
            if known is not None:
                return known
            preview = await self._make_library_preview(user_id, item)
            await self.library_previews.put(item.url, preview)
            return preview

    async def _make_library_preview(self, user_id: str, item: LibraryEntry) -> dict[str, str]:
        name = item.file_name or item.title
        if self.converter is None:
            return {"error": "no_converter"}
        with tempfile.TemporaryDirectory(prefix="parta-library-") as work:
            original, pdf = Path(work) / "original", Path(work) / "converted.pdf"
            with _matrix_errors():
                response = await self.homeserver.open_media(user_id, item.url, None)
                try:
                    async with await anyio.open_file(original, "wb") as file:
                        async for chunk in response.aiter_bytes(DISK_CHUNK):
                            await file.write(chunk)
                finally:
                    await response.aclose()
            try:
                await self.converter.to_pdf(original, name, pdf)
            except ConversionError as exc:
                log.info("no preview for library item %s: %s", item.id, exc)
                preview = {"error": exc.reason}
            else:
                with _matrix_errors():
                    url = await self.homeserver.upload(
                        user_id, _pdf_name(name), "application/pdf", pdf.stat().st_size,
                        _read(pdf),
                    )  # fmt: skip
                preview = {"url": url}
        return preview

    def _library(self) -> Library:
        if self.library is None:
            raise ApiError(404, "PARTA_NO_LIBRARY", "This server has no verified library.")
        return self.library

    # --- checks --------------------------------------------------------------------------

    async def _check_may_post(self, user_id: str, room_id: str) -> None:
        """Joined, and power enough to post messages: refused before anything is uploaded."""
        access = await self._access(user_id, room_id)
        if access.moderator or access.room.may_send(user_id, "m.room.message", state=False):
            return
        raise ApiError(
            403, "PARTA_READ_ONLY", "Only teachers and the administration post in this chat."
        )

    async def _access(self, user_id: str, room_id: str) -> RoomAccess:
        try:
            return await check_room_access(self.homeserver.bot, room_id, user_id)
        except NoAccess as exc:
            raise ApiError(403, "M_FORBIDDEN", "You are not a member of this chat.") from exc
        except HomeserverUnavailable as exc:
            raise ApiError(503, "PARTA_HOMESERVER_UNAVAILABLE", _unavailable()) from exc

    async def _check_quota(self, user_id: str, name: str, length: int) -> None:
        if not self.quota_bytes:
            return
        with _matrix_errors():
            used = await self.homeserver.media_used(user_id)
        if used + length > self.quota_bytes:
            raise ApiError(
                413,
                "PARTA_QUOTA",
                f"{name} does not fit: you keep {_mib(used)} MB of "
                f"{_mib(self.quota_bytes)} MB. Delete files you no longer need.",
            )

    def _check_own(self, user_id: str, document: Document) -> None:
        if document.sender != user_id:
            raise ApiError(403, "M_FORBIDDEN", "Only the person who added a file may change it.")

    async def _forget_media(self, urls: list[str]) -> None:
        for url in urls:
            with contextlib.suppress(MatrixError):
                await self.homeserver.delete_media(url)


# --- the HTTP surface ------------------------------------------------------------------


class SignIn(BaseModel):
    openid: dict[str, Any]


class Rename(BaseModel):
    name: str = Field(min_length=1, max_length=1000)


class Share(BaseModel):
    room_id: str = Field(pattern=r"^![^\s]+$", max_length=300)


Grade = Annotated[int | None, Query(ge=1, le=11)]
ItemID = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def documents_router(service: DocumentsService) -> APIRouter:
    router = APIRouter(prefix="/documents/api")

    def signed_in(authorization: Annotated[str | None, Header()] = None) -> str:
        token = (authorization or "").removeprefix("Bearer ").strip()
        try:
            return service.sessions.user_for(token)
        except NotSignedIn as exc:
            raise ApiError(401, "M_UNKNOWN_TOKEN", str(exc)) from exc

    Person = Annotated[str, Depends(signed_in)]

    @router.post("/session")
    async def session(body: SignIn) -> dict[str, Any]:
        user_id = await service.sign_in(body.openid)
        try:
            token = service.sessions.open(user_id, token_grant(body.openid))
        except TooManySessions as exc:
            raise ApiError(
                429,
                "PARTA_TOO_MANY_SESSIONS",
                f"This sign-in has opened {SESSIONS_PER_TOKEN} documents sessions already. "
                "Close a documents page you do not use, or sign in again.",
            ) from exc
        return {
            "token": token,
            "user_id": user_id,
            "expires_in": int(service.sessions.lifetime_s),
        }

    @router.get("/rooms")
    async def rooms(user_id: Person) -> dict[str, Any]:
        return await service.rooms(user_id)

    @router.get("/rooms/{room_id}/files")
    async def list_files(
        room_id: str,
        user_id: Person,
        q: Annotated[str, Query(max_length=200)] = "",
        kind: Kind | None = None,
        sort: SortKey = "date",
        order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    ) -> dict[str, Any]:
        documents = await service.files(user_id, room_id)
        chosen = select(documents, query=q, kind=kind, sort=sort, descending=order == "desc")
        return {"files": [_with_links(service, user_id, d) for d in chosen]}

    @router.post("/rooms/{room_id}/files", status_code=201)
    async def upload(
        room_id: str,
        request: Request,
        user_id: Person,
        name: Annotated[str, Query(max_length=1000)],
    ) -> dict[str, Any]:
        length = _int_header(request.headers.get("content-length"))
        document = await service.upload(
            user_id, room_id, name, request.headers.get("content-type", ""), length,
            request.stream(),
        )  # fmt: skip
        return _with_links(service, user_id, document)

    @router.get("/rooms/{room_id}/files/{event_id}")
    async def get_file(room_id: str, event_id: str, user_id: Person) -> dict[str, Any]:
        return _with_links(service, user_id, await service.file(user_id, room_id, event_id))

    @router.patch("/rooms/{room_id}/files/{event_id}")
    async def rename(room_id: str, event_id: str, body: Rename, user_id: Person) -> dict[str, Any]:
        document = await service.file(user_id, room_id, event_id)
        return _with_links(service, user_id, await service.rename(user_id, document, body.name))

    @router.delete("/rooms/{room_id}/files/{event_id}", status_code=204)
    async def delete(room_id: str, event_id: str, user_id: Person) -> Response:
        await service.delete(user_id, await service.file(user_id, room_id, event_id))
        return Response(status_code=204)

    @router.post("/rooms/{room_id}/files/{event_id}/share", status_code=201)
    async def share(room_id: str, event_id: str, body: Share, user_id: Person) -> dict[str, Any]:
        document = await service.file(user_id, room_id, event_id)
        return _with_links(service, user_id, await service.share(user_id, document, body.room_id))

    @router.get("/library")
    async def library_search(
        user_id: Person,
        subject: Annotated[str, Query(max_length=255)] = "",
        grade: Grade = None,
        q: Annotated[str, Query(max_length=200)] = "",
    ) -> dict[str, Any]:
        return await service.search_library(
            user_id, subject=subject.strip(), grade=grade, text=q.strip()
        )

    @router.post("/library/{item_id}/share", status_code=201)
    async def library_share(item_id: ItemID, body: Share, user_id: Person) -> dict[str, Any]:
        return await service.share_library_item(user_id, item_id, body.room_id)

    async def content(
        room_id: str, event_id: str, request: Request, u: str, t: str, *, pdf: bool
    ) -> Response:
        try:
            service.sessions.check_ticket(t, u, room_id, event_id)
        except NotSignedIn as exc:
            raise ApiError(401, "M_UNKNOWN_TOKEN", str(exc)) from exc
        document = await service.file_to_serve(u, room_id, event_id)
        return await service.open_content(
            u, document, pdf=pdf, range_header=request.headers.get("range")
        )

    @router.get("/rooms/{room_id}/files/{event_id}/content")
    async def download(room_id: str, event_id: str, request: Request, u: str, t: str) -> Response:
        return await content(room_id, event_id, request, u, t, pdf=False)

    @router.get("/rooms/{room_id}/files/{event_id}/pdf")
    async def preview(room_id: str, event_id: str, request: Request, u: str, t: str) -> Response:
        return await content(room_id, event_id, request, u, t, pdf=True)

    return router


def _with_links(service: DocumentsService, user_id: str, document: Document) -> dict[str, Any]:
    """The document for the page, with its download and preview addresses (tickets)."""
    ticket = service.sessions.ticket(user_id, document.room_id, document.event_id)
    base = f"/documents/api/rooms/{quote(document.room_id)}/files/{quote(document.event_id)}"
    query = f"?u={quote(user_id)}&t={ticket}"
    public = document.public()
    public["content_url"] = f"{base}/content{query}"
    public["pdf_url"] = f"{base}/pdf{query}" if public["preview"] else None
    return public


@contextlib.contextmanager
def _library_errors() -> Any:
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
        raise _no_such_item() from exc
    except LibraryUnavailable as exc:
        log.warning("the library did not answer: %s", exc)
        raise ApiError(
            503,
            "PARTA_LIBRARY_UNAVAILABLE",
            "The library is not answering right now; try again in a minute.",
        ) from exc


def _no_such_item() -> ApiError:
    return ApiError(
        404, "PARTA_LIBRARY_NO_ITEM", "This library item is gone: it was withdrawn or removed."
    )


@contextlib.contextmanager
def _matrix_errors() -> Any:
    """Synapse's refusals as the service's own answers, in words a pupil understands."""
    try:
        yield
    except Forbidden as exc:
        raise ApiError(403, "M_FORBIDDEN", f"Not allowed here: {exc}") from exc
    except NotFound as exc:
        raise ApiError(404, "M_NOT_FOUND", "There is no such file here.") from exc
    except HomeserverUnavailable as exc:
        raise ApiError(503, "PARTA_HOMESERVER_UNAVAILABLE", _unavailable()) from exc
    except MatrixError as exc:
        if exc.errcode == "M_TOO_LARGE":
            raise ApiError(
                413, "PARTA_TOO_LARGE", "The server refused the file as too large."
            ) from exc
        if exc.status in (401, 403):
            raise ApiError(403, "M_FORBIDDEN", f"Not allowed here: {exc}") from exc
        raise ApiError(502, exc.errcode, f"The server refused: {exc}") from exc


async def _exactly(body: AsyncIterator[bytes], length: int, name: str) -> AsyncIterator[bytes]:
    """The body in pieces of about `UPLOAD_PIECE`, refused if it ends before or runs past
    the size it announced.

    The server hands a request body on in the pieces the socket gave (64–256 KiB), and
    each piece costs the client to Synapse a fixed toll (its write path looks up the
    running event loop and task for every write): for 100 MB that toll was about as
    long as Synapse's own upload. Joining pieces costs one copy, about 20 ms per 100 MB.
    """
    received = 0
    pending: list[bytes] = []
    pending_size = 0
    async for chunk in body:
        received += len(chunk)
        if received > length:
            raise ApiError(400, "PARTA_BAD_LENGTH", f"{name} is longer than announced.")
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= UPLOAD_PIECE:
            yield b"".join(pending)
            pending.clear()
            pending_size = 0
    if received != length:
        raise ApiError(400, "PARTA_INCOMPLETE", f"{name} arrived incomplete; send it again.")
    if pending:
        yield b"".join(pending)


def _from_disk(
    local: LocalFile, mimetype: str, headers: dict[str, str], range_header: str | None
) -> Response:
    """A local file's bytes, only those of the range asked for."""
    try:
        wanted = parse_range(range_header, local.size)
    except Unsatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{local.size}"})
    first, length, status = 0, local.size, 200
    if wanted is not None:
        first, length, status = wanted.first, wanted.length, 206
        headers["Content-Range"] = wanted.content_range(local.size)
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        _read(local.path, first, length), status_code=status, media_type=mimetype, headers=headers
    )


async def _read(path: Path, first: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
    """`length` bytes of a file from `first` (to its end by default)."""
    left = length
    async with await anyio.open_file(path, "rb") as file:
        if first:
            await file.seek(first)
        while left is None or left > 0:
            chunk = await file.read(DISK_CHUNK if left is None else min(DISK_CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def _now_ms() -> int:
    return int(time.time() * 1000)


def _int_header(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _mib(size: int) -> str:
    return f"{size / MIB:.1f}".removesuffix(".0")


def _pdf_name(name: str) -> str:
    return os.path.splitext(name)[0] + ".pdf"


def _unavailable() -> str:
    return "The server is not answering right now; try again in a minute."


def _no_preview_message(reason: str | None) -> str:
    return {
        "damaged": "This file is damaged and cannot be shown; it can still be downloaded.",
        "timeout": "This file took too long to prepare for viewing; download it instead.",
        "no_converter": "Office files cannot be shown on this server; download it instead.",
    }.get(reason or "", "This file cannot be shown here; download it instead.")
