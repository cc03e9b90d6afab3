"""The PDF previews of the library's office files, kept across restarts of the service.

A library file's preview is made the first time someone shares it (a LibreOffice run,
seconds for a deck) and uploaded once; every later share points at the same `mxc://`.
The map from the file's `mxc://` to its preview's is kept in one JSON file under the
service's state directory (`Settings.documents_state_dir`), so a restart does not convert
every file again. Only made previews are kept: a file that could not be converted is
remembered until the next start (LibreOffice may have been missing, or busy).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 8 * 1024 * 1024  # ~60,000 previews; a region's library is far smaller


class PreviewStore:
    """Previews by the library file's `mxc://`: `{"url": mxc}` or `{"error": reason}`."""

    def __init__(self, path: Path | None = None) -> None:
        """`path`: the JSON file; None keeps previews in memory only (tests, no state dir)."""
        self.path = path
        self._previews: dict[str, dict[str, str]] | None = None

    def get(self, file_url: str) -> dict[str, str] | None:
        return self._loaded().get(file_url)

    def put(self, file_url: str, preview: dict[str, str]) -> None:
        """Remember a preview; one that was made (`"url"`) is written to disk at once."""
        previews = self._loaded()
        previews[file_url] = preview
        if "url" in preview and self.path is not None:
            self._write({url: p for url, p in previews.items() if "url" in p})

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

    def _write(self, previews: dict[str, dict[str, str]]) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".previews-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(previews, file, ensure_ascii=False)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
