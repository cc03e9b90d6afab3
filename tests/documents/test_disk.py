"""The region-wide disk alarm: figures always, the alarm below the threshold, hourly logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from widgets.documents.disk import DiskAlarm


def test_the_alarm_goes_off_below_the_threshold_and_warns_once_an_hour(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "synapse" / "media_store"  # before the first upload
    quiet = DiskAlarm(missing, alarm_percent=0.0).status()
    assert quiet["alarm"] is False
    assert 0 < quiet["free_bytes"] <= quiet["total_bytes"]
    assert 0.0 <= quiet["free_percent"] <= 100.0

    full = DiskAlarm(missing, alarm_percent=100.0)  # any real disk is "too full" for this
    with caplog.at_level(logging.WARNING, logger="widgets.documents.disk"):
        assert full.status()["alarm"] is True
        assert full.status()["alarm"] is True
    warnings = [r for r in caplog.records if "nearly full" in r.getMessage()]
    assert len(warnings) == 1
