"""The region-wide disk alarm: how full the disk under Synapse's media repository is.

Each person's storage is unlimited by default, as the platform Parta replaces promises,
so the region's administrators need to hear before the disk fills, not after uploads
start failing. The widget service's `/healthz` carries the figures and the alarm, which a
monitoring system reads; the log warns once an hour while it lasts.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WARN_EVERY_S = 3600.0


@dataclass
class DiskAlarm:
    path: Path  # the media store, or the nearest folder of it that exists
    alarm_percent: float
    _warned_at: float = field(default=-WARN_EVERY_S)

    def status(self) -> dict[str, Any]:
        where = self.path
        while not where.exists() and where != where.parent:
            where = where.parent  # before Synapse's first upload the folder may not exist
        usage = shutil.disk_usage(where)
        free_percent = 100.0 * usage.free / usage.total if usage.total else 0.0
        alarm = free_percent < self.alarm_percent
        if alarm and time.monotonic() - self._warned_at >= WARN_EVERY_S:
            self._warned_at = time.monotonic()
            log.warning(
                "the disk of the media store is nearly full: %.1f %% free (alarm below %.1f %%);"
                " free space or move var/synapse/media_store to a bigger disk",
                free_percent,
                self.alarm_percent,
            )
        return {
            "free_bytes": usage.free,
            "total_bytes": usage.total,
            "free_percent": round(free_percent, 1),
            "alarm": alarm,
        }
