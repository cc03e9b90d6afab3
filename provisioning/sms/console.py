"""The console gateway: local mode's "phone" is a private file, not the service's log.

Each message is one JSON line appended to `var/sms-outbox.log` (mode 0600). A code must
never appear in a log line, and logs get shipped and shared; this file is read by the
person running the demo (`./deploy.sh` prints where it is) and by the browser tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from provisioning.sms.gateway import SmsMessage, SmsNotSent


class ConsoleGateway:
    name = "console"

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self._lock = threading.Lock()

    async def send(self, message: SmsMessage) -> None:
        await asyncio.to_thread(self._append, message)

    def _append(self, message: SmsMessage) -> None:
        line = json.dumps(
            {"at": datetime.now(UTC).isoformat(), "to": message.to, "text": message.text},
            ensure_ascii=False,
        )
        try:
            self.outbox.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                fd = os.open(self.outbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.fchmod(fd, 0o600)
                    os.write(fd, (line + "\n").encode())
                finally:
                    os.close(fd)
        except OSError as exc:
            raise SmsNotSent(
                f"could not write the SMS outbox {self.outbox}: {exc.strerror}"
            ) from None


def read_outbox(outbox: Path) -> list[dict[str, str]]:
    """Every message in the outbox, oldest first (for demos and tests)."""
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines() if line]
