"""Downloads of this region's own files read straight from Synapse's media store.

Synapse answers a media download with the whole file: it has no range requests (Synapse
issue #4780), so a pupil seeking to the end of a lesson's video would make the service
read all of it from Synapse first. The region's own uploads are files on this host, laid
out as Synapse's media repository documents (`local_content/ab/cd/efgh…` by media ID),
so the service reads exactly the bytes asked for from there instead, once it has checked
everything the proxy path checks (the person may read the room; the event holds the
file) and once Synapse's admin API says the file is not quarantined.

Anything else (another server's media, a store this service cannot read, a file not on
disk yet, a Synapse storage provider elsewhere) returns None: the caller streams it from
Synapse as before.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from matrix.client import MatrixClient
from matrix.errors import MatrixError, NotFound
from matrix.media import admin_media_info

log = logging.getLogger(__name__)

CHECK_CACHE_S = 30.0  # a quarantine decided meanwhile reaches downloads this late at most
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{5,255}")  # Synapse's IDs: 24 letters; no path parts


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int


@dataclass
class LocalMedia:
    """This homeserver's media store, readable by the service (or not)."""

    root: Path  # Synapse's `media_store_path`
    server_name: str
    bot: MatrixClient  # a Synapse admin: asks whether a file is quarantined
    _checked: dict[str, tuple[float, LocalFile | None]] = field(default_factory=dict)

    def file_path(self, mxc: str) -> Path | None:
        """Where Synapse keeps a local upload, or None for other servers' media."""
        server, _, media_id = mxc.removeprefix("mxc://").partition("/")
        if server != self.server_name or not _MEDIA_ID.fullmatch(media_id):
            return None
        return self.root / "local_content" / media_id[:2] / media_id[2:4] / media_id[4:]

    async def find(self, mxc: str) -> LocalFile | None:
        """The file to read for `mxc`, when it is ours, on disk, readable and servable."""
        now = time.monotonic()
        cached = self._checked.get(mxc)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._find(mxc)
        if len(self._checked) > 10_000:
            self._checked = {k: v for k, v in self._checked.items() if v[0] > now}
        self._checked[mxc] = (now + CHECK_CACHE_S, found)
        return found

    async def _find(self, mxc: str) -> LocalFile | None:
        file_path = self.file_path(mxc)
        if file_path is None:
            return None
        # Readable by this service's user? In production Synapse may keep it to itself.
        if not os.access(file_path, os.R_OK):
            return None
        try:
            size = file_path.stat().st_size
        except OSError:
            return None
        media_id = mxc.rsplit("/", 1)[1]
        try:
            info = await admin_media_info(self.bot, self.server_name, media_id)
        except NotFound:
            return None  # deleted meanwhile: Synapse itself will say so
        except MatrixError as exc:
            log.info("media info of %s not available (%s): streaming it from Synapse", mxc, exc)
            return None
        media = info.get("media_info")
        if not isinstance(media, dict) or media.get("quarantined_by"):
            return None  # quarantined: Synapse refuses it, and so does the proxy path
        return LocalFile(file_path, size)
