"""The library's PDF previews on disk: kept across a restart, and only those made."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from widgets.documents.previews import PreviewStore


async def test_made_previews_outlive_the_store_and_failures_do_not(tmp_path: Path) -> None:
    path = tmp_path / "documents" / "library-previews.json"
    store = PreviewStore(path)
    await store.put("mxc://hs/deck", {"url": "mxc://hs/deck-pdf"})
    await store.put("mxc://hs/broken", {"error": "damaged"})
    assert store.get("mxc://hs/broken") == {"error": "damaged"}  # until the next start
    again = PreviewStore(path)
    assert again.get("mxc://hs/deck") == {"url": "mxc://hs/deck-pdf"}
    assert again.get("mxc://hs/broken") is None  # tried again after a restart
    assert [p.name for p in path.parent.iterdir()] == ["library-previews.json"]  # no leftovers


async def test_a_damaged_file_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "library-previews.json"
    path.write_text('{"mxc://hs/deck": ', encoding="utf-8")
    store = PreviewStore(path)
    with caplog.at_level(logging.WARNING):
        assert store.get("mxc://hs/deck") is None
    assert "ignoring the saved library previews" in caplog.text
    await store.put("mxc://hs/deck", {"url": "mxc://hs/deck-pdf"})  # and the file is written anew
    assert PreviewStore(path).get("mxc://hs/deck") == {"url": "mxc://hs/deck-pdf"}


async def test_without_a_path_previews_stay_in_memory() -> None:
    store = PreviewStore()
    await store.put("mxc://hs/deck", {"url": "mxc://hs/deck-pdf"})
    assert store.get("mxc://hs/deck") == {"url": "mxc://hs/deck-pdf"}
