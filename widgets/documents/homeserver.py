"""The documents service's calls to Synapse, made as the person they are for.

Every read and write goes out with a token of the person's own (Synapse's admin "login
as user", short-lived and cached), not as the bot: Synapse then applies its own rules
on top of ours (membership, history visibility, who may post, the school policy
module), a shared file appears as sent by the person, and uploaded media is theirs.
Bodies are streamed both ways: a 100 MB video never sits in the service's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from matrix.client import MatrixClient, path
from matrix.errors import Forbidden, NotFound, RoomInUse, error_from_response
from widgets.documents.files import Document, documents_in

PUPPET_LIFETIME_S = 3600.0
PUPPET_RENEW_BEFORE_S = 600.0  # a token this close to its end is not used for a new request
MAX_TIMELINE_EVENTS = 20_000  # a room's file list reads at most this far back
MAX_ROOMS = 500
OWN_ROOM_PREFIX = "docs-"  # in foundation.naming's managed prefixes: the appservice's namespace
OWN_ROOM_NAME = "Мои документы"
OWN_ROOM_TOPIC = "Ваши файлы: видны только вам. Your files: only you see them."
OWN_ROOM_EVENT = "org.parta.documents"
_PAGE = 1000
_FILES_FILTER = json.dumps({"types": ["m.room.message"], "lazy_load_members": True})


@dataclass
class Homeserver:
    """Synapse's client and media APIs, as a given local person."""

    bot: MatrixClient  # the appservice bot, a Synapse admin: it issues the person tokens
    http: httpx.AsyncClient  # base_url = the homeserver; streams, no retries
    _tokens: dict[str, tuple[float, str]] = field(default_factory=dict)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.bot.close()

    async def token_for(self, user_id: str) -> str:
        cached = self._tokens.get(user_id)
        if cached is not None and cached[0] - PUPPET_RENEW_BEFORE_S > time.monotonic():
            return cached[1]
        valid_until_ms = int((time.time() + PUPPET_LIFETIME_S) * 1000)
        answer = await self.bot.request(
            "POST",
            path("users", user_id, "login", base="/_synapse/admin/v1"),
            body={"valid_until_ms": valid_until_ms},
        )
        token = str(answer["access_token"])
        self._tokens[user_id] = (time.monotonic() + PUPPET_LIFETIME_S, token)
        return token

    async def _json(
        self,
        user_id: str,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {await self.token_for(user_id)}"}
        response = await self.http.request(method, url, json=body, params=params, headers=headers)
        answer = _body(response)
        if response.status_code >= 400:
            raise error_from_response(response.status_code, answer)
        return answer

    async def room_documents(self, user_id: str, room_id: str) -> list[Document]:
        """The room's files as the person may see them (Synapse checks their membership)."""
        events: list[dict[str, Any]] = []
        since: str | None = None
        while len(events) < MAX_TIMELINE_EVENTS:
            params = {"dir": "b", "limit": str(_PAGE), "filter": _FILES_FILTER}
            if since:
                params["from"] = since
            page = await self._json(
                user_id, "GET", path("rooms", room_id, "messages"), params=params
            )
            chunk = page.get("chunk") or []
            events.extend(e for e in chunk if isinstance(e, dict))
            since = page.get("end")
            if not chunk or not since:
                break
        return documents_in(events)

    async def document(self, user_id: str, room_id: str, event_id: str) -> Document:
        """One file of the room, with its latest rename; NotFound if it is not a file."""
        event = await self._json(user_id, "GET", path("rooms", room_id, "event", event_id))
        edits = await self._json(
            user_id,
            "GET",
            path("rooms", room_id, "relations", event_id, "m.replace", base="/_matrix/client/v1"),
            params={"limit": "100"},
        )
        found = documents_in([event, *(edits.get("chunk") or [])])
        if not found:
            raise NotFound(404, "M_NOT_FOUND", "this event is not a file", {})
        return found[0]

    async def upload(
        self, user_id: str, name: str, mimetype: str, size: int, body: AsyncIterator[bytes]
    ) -> str:
        """Stream a file into the media repository as the person; its `mxc://` URI."""
        headers = {
            "Authorization": f"Bearer {await self.token_for(user_id)}",
            "Content-Type": mimetype,
            "Content-Length": str(size),
        }
        response = await self.http.post(
            "/_matrix/media/v3/upload",
            params={"filename": name},
            headers=headers,
            content=body,
        )
        answer = _body(response)
        if response.status_code >= 400:
            raise error_from_response(response.status_code, answer)
        return str(answer["content_uri"])

    async def send(self, user_id: str, room_id: str, content: Mapping[str, Any]) -> str:
        txn = secrets.token_urlsafe(12)
        answer = await self._json(
            user_id,
            "PUT",
            path("rooms", room_id, "send", "m.room.message", txn),
            body=content,
        )
        return str(answer["event_id"])

    async def redact(self, user_id: str, room_id: str, event_id: str, reason: str) -> None:
        txn = secrets.token_urlsafe(12)
        await self._json(
            user_id,
            "PUT",
            path("rooms", room_id, "redact", event_id, txn),
            body={"reason": reason},
        )

    async def own_room(self, user_id: str) -> str:
        """The person's "Мои документы" room, made on first use; only they are in it.

        Made by the bot (pupils may not create rooms), which joins the person with the
        admin API and leaves; its alias `#docs-<localpart>` (an appservice namespace,
        so nobody else can take it) finds it again, also after a race with itself.
        """
        localpart, _, server_name = user_id.removeprefix("@").partition(":")
        alias_name = OWN_ROOM_PREFIX + localpart.replace("/", "_")
        alias = f"#{alias_name}:{server_name}"
        room_id = await self._resolve(alias)
        if room_id is None:
            try:
                created = await self.bot.request(
                    "POST",
                    path("createRoom"),
                    body={
                        "preset": "private_chat",
                        "name": OWN_ROOM_NAME,
                        "topic": OWN_ROOM_TOPIC,
                        "room_alias_name": alias_name,
                        # The bot, its creator, keeps unlimited power (room version 12).
                        "power_level_content_override": {"users": {user_id: 100}},
                        "initial_state": [
                            {"type": OWN_ROOM_EVENT, "state_key": "", "content": {"owner": user_id}}
                        ],
                    },
                )
                room_id = str(created["room_id"])
            except RoomInUse:
                room_id = await self._resolve(alias)
                if room_id is None:
                    raise
            else:
                await self.join(user_id, room_id)
                await self.bot.request("POST", path("rooms", room_id, "leave"), body={})
        return room_id

    async def join(self, user_id: str, room_id: str) -> None:
        """Put the person into a room (their own documents room, which they had left)."""
        with contextlib.suppress(Forbidden):  # "already in the room"
            await self.bot.request(
                "POST", path("join", room_id, base="/_synapse/admin/v1"), body={"user_id": user_id}
            )

    async def _resolve(self, alias: str) -> str | None:
        try:
            answer = await self.bot.request("GET", path("directory", "room", alias))
        except NotFound:
            return None
        return str(answer["room_id"])

    async def joined_rooms(self, user_id: str) -> list[tuple[str, str]]:
        """The person's rooms with their names (spaces left out: they hold no files)."""
        joined = await self._json(user_id, "GET", path("joined_rooms"))
        rooms = [r for r in joined.get("joined_rooms") or [] if isinstance(r, str)]
        limit = asyncio.Semaphore(8)

        async def describe(room_id: str) -> tuple[str, str] | None:
            async with limit:
                try:
                    create = await self._json(
                        user_id, "GET", path("rooms", room_id, "state", "m.room.create", "")
                    )
                    if create.get("type") == "m.space":
                        return None
                    named = await self._json(
                        user_id, "GET", path("rooms", room_id, "state", "m.room.name", "")
                    )
                    return room_id, str(named.get("name") or room_id)
                except NotFound:
                    return room_id, room_id
                except Forbidden:
                    return None

        found = await asyncio.gather(*(describe(r) for r in rooms[:MAX_ROOMS]))
        return sorted((r for r in found if r is not None), key=lambda r: r[1].casefold())

    async def media_used(self, user_id: str) -> int:
        """Bytes of media the person uploaded (Synapse's admin API), for the quota."""
        total, start = 0, 0
        for _ in range(1000):  # bounded: 100,000 files
            page = await self.bot.request(
                "GET",
                path("users", user_id, "media", base="/_synapse/admin/v1"),
                query={"from": str(start), "limit": "100"},
            )
            media = page.get("media") or []
            total += sum(m.get("media_length") or 0 for m in media if isinstance(m, dict))
            next_token = page.get("next_token")
            if not media or next_token is None:
                break
            start = int(next_token)
        return total

    async def delete_media(self, mxc: str) -> None:
        """Remove an upload that ended up in no message (a refused post)."""
        server, _, media_id = mxc.removeprefix("mxc://").partition("/")
        await self.bot.request("DELETE", path("media", server, media_id, base="/_synapse/admin/v1"))

    async def open_media(self, user_id: str, mxc: str, range_header: str | None) -> httpx.Response:
        """Start a download (the caller streams and closes it); Range is passed through."""
        server, _, media_id = mxc.removeprefix("mxc://").partition("/")
        headers = {"Authorization": f"Bearer {await self.token_for(user_id)}"}
        if range_header:
            headers["Range"] = range_header
        request = self.http.build_request(
            "GET",
            f"/_matrix/client/v1/media/download/{quote(server)}/{quote(media_id)}",
            headers=headers,
            timeout=httpx.Timeout(60.0, read=300.0),
        )
        response = await self.http.send(request, stream=True)
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise error_from_response(response.status_code, _body(response))
        return response


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"errcode": "M_UNKNOWN", "error": f"HTTP {response.status_code}"}
    return answer if isinstance(answer, dict) else {}
