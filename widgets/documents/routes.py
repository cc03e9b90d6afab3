"""The documents API under `/documents/api`: HTTP only; the service holds the rules.

No `from __future__ import annotations` here: FastAPI must see the router's dependency
types, which live in `documents_router`'s scope, when the routes are declared.
"""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from foundation.web import ApiError, bearer_token
from matrix.openid import token_grant
from widgets.documents.files import Document, Kind, SortKey, select
from widgets.documents.service import DocumentsService
from widgets.documents.sessions import SESSIONS_PER_TOKEN, NotSignedIn, TooManySessions
from widgets.documents.streams import int_header


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

    def signed_in(request: Request) -> str:
        try:
            return service.user_signed_in(bearer_token(request))
        except NotSignedIn as exc:
            raise ApiError(401, "M_UNKNOWN_TOKEN", str(exc)) from exc

    SignedInUserID = Annotated[str, Depends(signed_in)]

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
    async def rooms(user_id: SignedInUserID) -> dict[str, Any]:
        return await service.rooms(user_id)

    @router.get("/rooms/{room_id}/files")
    async def list_files(
        room_id: str,
        user_id: SignedInUserID,
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
        user_id: SignedInUserID,
        name: Annotated[str, Query(max_length=1000)],
    ) -> dict[str, Any]:
        length = int_header(request.headers.get("content-length"))
        document = await service.upload(
            user_id,
            room_id,
            name,
            request.headers.get("content-type", ""),
            length,
            request.stream(),
        )
        return _with_links(service, user_id, document)

    @router.get("/rooms/{room_id}/files/{event_id}")
    async def get_file(room_id: str, event_id: str, user_id: SignedInUserID) -> dict[str, Any]:
        return _with_links(service, user_id, await service.file(user_id, room_id, event_id))

    @router.patch("/rooms/{room_id}/files/{event_id}")
    async def rename(
        room_id: str, event_id: str, body: Rename, user_id: SignedInUserID
    ) -> dict[str, Any]:
        document = await service.file(user_id, room_id, event_id)
        return _with_links(service, user_id, await service.rename(user_id, document, body.name))

    @router.delete("/rooms/{room_id}/files/{event_id}", status_code=204)
    async def delete(room_id: str, event_id: str, user_id: SignedInUserID) -> Response:
        await service.delete(user_id, await service.file(user_id, room_id, event_id))
        return Response(status_code=204)

    @router.post("/rooms/{room_id}/files/{event_id}/share", status_code=201)
    async def share(
        room_id: str, event_id: str, body: Share, user_id: SignedInUserID
    ) -> dict[str, Any]:
        document = await service.file(user_id, room_id, event_id)
        return _with_links(service, user_id, await service.share(user_id, document, body.room_id))

    @router.get("/library")
    async def library_search(
        user_id: SignedInUserID,
        subject: Annotated[str, Query(max_length=255)] = "",
        grade: Grade = None,
        q: Annotated[str, Query(max_length=200)] = "",
    ) -> dict[str, Any]:
        return await service.library_sharing.search(
            user_id, subject=subject.strip(), grade=grade, text=q.strip()
        )

    @router.post("/library/{item_id}/share", status_code=201)
    async def library_share(
        item_id: ItemID, body: Share, user_id: SignedInUserID
    ) -> dict[str, Any]:
        return await service.library_sharing.share(user_id, item_id, body.room_id)

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
