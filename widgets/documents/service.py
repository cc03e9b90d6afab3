"""The documents of a person's chats: list, upload, preview, download, rename, share.

Files stay ordinary Matrix files: this service only does what a Matrix client cannot do
for a school on its own — convert office files to PDF once, check limits with a clear
message before anything is stored, serve range requests, and share a file into another
chat by its `mxc://` URI without uploading it again. Every request acts as the signed-in
person (`homeserver.Homeserver`), so a pupil cannot read another class's materials by
guessing an ID: Synapse refuses their token for a room they are not in, and the service
never takes an `mxc://` URI from the page, only event IDs it reads as that person.

The HTTP routes are in `routes`, the bytes in and out in `streams`, and sharing from
the verified library in `sharing`.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from fastapi.responses import Response

from foundation.settings import Settings
from foundation.web import ApiError
from matrix.client import MatrixClient
from matrix.errors import HomeserverUnavailable, MatrixError
from matrix.openid import OpenIDError, OpenIDVerifier
from widgets.call.room_access import NoAccess, RoomAccess, check_room_access
from widgets.documents.convert import ConversionError, Converter, is_convertible
from widgets.documents.errors import UNAVAILABLE, matrix_errors
from widgets.documents.files import BadName, Document, clean_name, pdf_name
from widgets.documents.homeserver import Homeserver
from widgets.documents.library import Library, ProvisioningLibrary
from widgets.documents.local_media import LocalMedia
from widgets.documents.previews import PreviewStore
from widgets.documents.sessions import Sessions
from widgets.documents.sharing import LibrarySharing
from widgets.documents.streams import exactly, from_disk, from_homeserver, read_file

log = logging.getLogger(__name__)

MIB = 1024 * 1024
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
    # A library file's PDF preview by the file's mxc:// (see `LibrarySharing._preview`).
    library_previews: PreviewStore = field(default_factory=PreviewStore)
    library_sharing: LibrarySharing = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.library_sharing = LibrarySharing(self)

    @classmethod
    def from_settings(cls, settings: Settings, verifier: OpenIDVerifier) -> DocumentsService:
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

    async def start(self) -> None:
        """Start the library connector; the homeserver's clients open on their first call."""
        if self.library is not None:
            await self.library.start()

    async def stop(self) -> None:
        """Close the homeserver's clients and the library connector."""
        await self.homeserver.aclose()
        if self.library is not None:
            await self.library.stop()

    # --- who is asking -----------------------------------------------------------------

    def user_signed_in(self, token: str | None) -> str:
        """The user of a live documents session (the routes' and the body limit's one check).

        Raises:
            NotSignedIn: no token, or it names no live session.
        """
        return self.sessions.user_for(token)

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
        with matrix_errors():
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
            "library": await self.library_sharing.may_use(user_id),
        }

    async def check_member(self, user_id: str, room_id: str) -> None:
        """A clear 403 for someone not in the room (Synapse itself would say "not found")."""
        await self._access(user_id, room_id)

    async def file(self, user_id: str, room_id: str, event_id: str) -> Document:
        await self.check_member(user_id, room_id)
        with matrix_errors():
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
        with matrix_errors():
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
        name = document.name if not (pdf and document.pdf_url) else pdf_name(document.name)
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",  # a served HTML file runs no script here
            "Cache-Control": "private, max-age=3600",
        }
        local = await self.local_media.find(mxc) if self.local_media is not None else None
        if local is not None:
            return from_disk(local, mimetype, headers, range_header)
        with matrix_errors():
            upstream = await self.homeserver.open_media(user_id, mxc, None)
        return await from_homeserver(upstream, mimetype, headers, range_header)

    # --- writing -------------------------------------------------------------------------

    async def upload(
        self,
        user_id: str,
        room_id: str,
        raw_name: str,
        mimetype: str,
        length: int | None,
        body: AsyncIterator[bytes],
    ) -> Document:
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
        await self.check_may_post(user_id, room_id)
        await self._check_quota(user_id, name, length)
        mimetype = mimetype or "application/octet-stream"
        if is_convertible(name):
            return await self._upload_office(user_id, room_id, name, mimetype, length, body)
        with matrix_errors():
            url = await self.homeserver.upload(
                user_id, name, mimetype, length, exactly(body, length, name)
            )
        document = Document(room_id, "", user_id, name, mimetype, length, url, 0)
        return await self._post(user_id, room_id, document, [url])

    async def _upload_office(
        self,
        user_id: str,
        room_id: str,
        name: str,
        mimetype: str,
        length: int,
        body: AsyncIterator[bytes],
    ) -> Document:
        with tempfile.TemporaryDirectory(prefix="parta-upload-") as work:
            original = Path(work) / "original"
            async with await anyio.open_file(original, "wb") as file:
                async for chunk in exactly(body, length, name):
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
                with matrix_errors():
                    url = await self.homeserver.upload(
                        user_id, name, mimetype, length, read_file(original)
                    )
                    uploaded.append(url)
                    if pdf_error is None:
                        pdf_url = await self.homeserver.upload(
                            user_id,
                            pdf_name(name),
                            "application/pdf",
                            pdf.stat().st_size,
                            read_file(pdf),
                        )
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
            with matrix_errors():
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
        with matrix_errors():
            await self.homeserver.send(user_id, document.room_id, edit)
        return replace(document, name=name)

    async def delete(self, user_id: str, document: Document) -> None:
        self._check_own(user_id, document)
        with matrix_errors():
            await self.homeserver.redact(
                user_id, document.room_id, document.event_id, "Удалено владельцем"
            )

    async def share(self, user_id: str, document: Document, target_room: str) -> Document:
        """Post the same file into another chat of the person's: same `mxc://`, from them."""
        await self.check_may_post(user_id, target_room)
        with matrix_errors():
            event_id = await self.homeserver.send(user_id, target_room, document.message_content())
        return replace(
            document, room_id=target_room, event_id=event_id, sender=user_id, sent_at_ms=_now_ms()
        )

    # --- checks --------------------------------------------------------------------------

    async def check_may_post(self, user_id: str, room_id: str) -> None:
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
            raise ApiError(503, "PARTA_HOMESERVER_UNAVAILABLE", UNAVAILABLE) from exc

    async def _check_quota(self, user_id: str, name: str, length: int) -> None:
        if not self.quota_bytes:
            return
        with matrix_errors():
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


def _now_ms() -> int:
    return int(time.time() * 1000)


def _mib(size: int) -> str:
    return f"{size / MIB:.1f}".removesuffix(".0")


def _no_preview_message(reason: str | None) -> str:
    return {
        "damaged": "This file is damaged and cannot be shown; it can still be downloaded.",
        "timeout": "This file took too long to prepare for viewing; download it instead.",
        "no_converter": "Office files cannot be shown on this server; download it instead.",
    }.get(reason or "", "This file cannot be shown here; download it instead.")
