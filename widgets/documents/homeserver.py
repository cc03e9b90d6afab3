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
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from matrix import media, rooms
from matrix.accounts import login_as
from matrix.client import MatrixClient, TokenClient
from matrix.errors import Forbidden, NotFound
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
        token = await login_as(self.bot, user_id, valid_until_ms=valid_until_ms)
        self._tokens[user_id] = (time.monotonic() + PUPPET_LIFETIME_S, token)
        return token

    async def _as(self, user_id: str) -> TokenClient:
        """A client calling as the person, with their own token."""
        return TokenClient(self.http, await self.token_for(user_id))

    async def room_documents(self, user_id: str, room_id: str) -> list[Document]:
        """The room's files as the person may see them (Synapse checks their membership)."""
        person = await self._as(user_id)
        events = await rooms.read_recent(
            person, room_id, event_filter=_FILES_FILTER, limit=MAX_TIMELINE_EVENTS, page=_PAGE
        )
        return documents_in(events)

    async def document(self, user_id: str, room_id: str, event_id: str) -> Document:
        """One file of the room, with its latest rename; NotFound if it is not a file."""
        person = await self._as(user_id)
        event = await rooms.read_event(person, room_id, event_id)
        edits = await rooms.read_relations(person, room_id, event_id, "m.replace", limit=100)
        found = documents_in([event, *(edits.get("chunk") or [])])
        if not found:
            raise NotFound(404, "M_NOT_FOUND", "this event is not a file", {})
        return found[0]

    async def upload(
        self, user_id: str, name: str, mimetype: str, size: int, body: AsyncIterator[bytes]
    ) -> str:
        """Stream a file into the media repository as the person; its `mxc://` URI."""
        token = await self.token_for(user_id)
        return await media.upload_stream(self.http, token, name, mimetype, size, body)

    async def send(self, user_id: str, room_id: str, content: Mapping[str, Any]) -> str:
        return await rooms.send_message(await self._as(user_id), room_id, content)

    async def redact(self, user_id: str, room_id: str, event_id: str, reason: str) -> None:
        await rooms.redact(await self._as(user_id), room_id, event_id, reason=reason)

    async def own_room(self, user_id: str) -> str:
        """The person's "Мои документы" room, made on first use; only they are in it.

        Made by the bot (pupils may not create rooms), which joins the person with the
        admin API and leaves; its alias `#docs-<localpart>` (an appservice namespace,
        so nobody else can take it) finds it again, also after a race with itself.
        """
        localpart, _, server_name = user_id.removeprefix("@").partition(":")
        alias_name = OWN_ROOM_PREFIX + localpart.replace("/", "_")
        room_id = await rooms.resolve_alias(self.bot, f"#{alias_name}:{server_name}")
        if room_id is not None:
            return room_id
        ensured = await rooms.create_or_adopt(
            self.bot,
            alias_name,
            server_name,
            {
                "preset": "private_chat",
                "name": OWN_ROOM_NAME,
                "topic": OWN_ROOM_TOPIC,
                # The bot, its creator, keeps unlimited power (room version 12).
                "power_level_content_override": {"users": {user_id: 100}},
                "initial_state": [
                    {"type": OWN_ROOM_EVENT, "state_key": "", "content": {"owner": user_id}}
                ],
            },
        )
        if ensured.created:
            await self.join(user_id, ensured.room_id)
            await rooms.leave(self.bot, ensured.room_id)
        return ensured.room_id

    async def join(self, user_id: str, room_id: str) -> None:
        """Put the person into a room (their own documents room, which they had left).

        Best effort: a refusal is left for the access check that follows to report.
        """
        with contextlib.suppress(Forbidden):
            await rooms.admin_join(self.bot, room_id, user_id)

    async def joined_rooms(self, user_id: str) -> list[tuple[str, str]]:
        """The person's rooms with their names (spaces left out: they hold no files)."""
        person = await self._as(user_id)
        joined = await rooms.joined_rooms(person)
        limit = asyncio.Semaphore(8)

        async def describe(room_id: str) -> tuple[str, str] | None:
            async with limit:
                try:
                    create = await rooms.read_state(person, room_id, "m.room.create")
                    if create.get("type") == "m.space":
                        return None
                    named = await rooms.read_state(person, room_id, "m.room.name")
                    return room_id, str(named.get("name") or room_id)
                except NotFound:
                    return room_id, room_id
                except Forbidden:
                    return None

        found = await asyncio.gather(*(describe(r) for r in joined[:MAX_ROOMS]))
        return sorted((r for r in found if r is not None), key=lambda r: r[1].casefold())

    async def media_used(self, user_id: str) -> int:
        """Bytes of media the person uploaded (Synapse's admin API), for the quota."""
        return await media.admin_media_bytes(self.bot, user_id)

    async def delete_media(self, mxc: str) -> None:
        """Remove an upload that ended up in no message (a refused post)."""
        await media.admin_delete_media(self.bot, mxc)

    async def open_media(self, user_id: str, mxc: str, range_header: str | None) -> httpx.Response:
        """Start a download (the caller streams and closes it); Range is passed through."""
        token = await self.token_for(user_id)
        return await media.open_download(self.http, token, mxc, range_header=range_header)
