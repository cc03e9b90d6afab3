"""The PDF previews of the library's office files, kept across restarts of the service.

A library file's preview is made the first time someone shares it (a LibreOffice run,
seconds for a deck) and uploaded once; every later share points at the same `mxc://`.
The map from the file's `mxc://` to its preview's is kept in one JSON file under the
service's state directory (`Settings.documents_state_dir`), so a restart does not convert
every file again. Only made previews are kept: a file that could not be converted is
remembered until the next start (LibreOffice may have been missing, or busy).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from foundation.files import write_atomically

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 8 * 1024 * 1024  # ~60,000 previews; a region's library is far smaller


class PreviewStore:
    """Previews by the library file's `mxc://`: `{"url": mxc}` or `{"error": reason}`."""

    def __init__(self, path: Path | None = None) -> None:
        """`path`: the JSON file; None keeps previews in memory only (tests, no state dir)."""
        self.path = path
        self._previews: dict[str, dict[str, str]] | None = None
        self._writing = asyncio.Lock()

    def get(self, file_url: str) -> dict[str, str] | None:
        return self._loaded().get(file_url)

    async def put(self, file_url: str, preview: dict[str, str]) -> None:
        """Remember a preview; one that was made (`"url"`) is written to disk at once, off
        the event loop (the calls' packets go through the same loop) and in order."""
        previews = self._loaded()
        previews[file_url] = preview
        if "url" in preview and self.path is not None:
            made = {url: p for url, p in previews.items() if "url" in p}
            async with self._writing:
                await asyncio.to_thread(
                    write_atomically, self.path, json.dumps(made, ensure_ascii=False)
                )

    def _loaded(self) -> dict[str, dict[str, str]]:
        if self._previews is None:
            self._previews = self._read()
        return self._previews

    def _read(self) -> dict[str, dict[str, str]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                str(url): {"url": str(p["url"])}
                for url, p in data.items()
                if isinstance(p, dict) and isinstance(p.get("url"), str)
            }
        except (OSError, ValueError, AttributeError) as exc:
            # The previews are made again as files are shared; nothing else is lost.
            log.warning("ignoring the saved library previews in %s: %s", self.path, exc)
            return {}
