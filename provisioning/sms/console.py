"""The console gateway: local mode's "phone" is a private file, not the service's log.

Each message is one JSON line appended to `var/sms-outbox.log` (mode 0600); with
`flash_calls` a flash call is simulated there too: «Звонок с номера +7 900 000-12-34»,
the code being the calling number's last 4 digits. A code must
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

import phonenumbers

from provisioning.sms.gateway import FlashCall, SmsMessage, SmsNotSent


class ConsoleGateway:
    name = "console"

    def __init__(self, outbox: Path, *, flash_calls: bool = False) -> None:
        self.outbox = outbox
        self.flash_calls = flash_calls
        self._lock = threading.Lock()

    async def send(self, message: SmsMessage) -> None:
        await asyncio.to_thread(self._append, message.to, {"text": message.text})

    async def flash_call(self, call: FlashCall) -> None:
        if not self.flash_calls:
            raise SmsNotSent("flash calls are off (PARTA_SMS_FLASH_CALL)")
        caller = calling_number(call.code)
        entry = {"call_from": caller, "text": f"Звонок с номера {caller}"}
        await asyncio.to_thread(self._append, call.to, entry)

    def _append(self, to: str, entry: dict[str, str]) -> None:
        line = json.dumps(
            {"at": datetime.now(UTC).isoformat(), "to": to, **entry}, ensure_ascii=False
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


def calling_number(code: str) -> str:
    """The simulated caller, +7 900 000-XX-XX, ending with the code."""
    number = phonenumbers.parse(f"+7900000{code}", None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def read_outbox(outbox: Path) -> list[dict[str, str]]:
    """Every message in the outbox, oldest first (for demos and tests)."""
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines() if line]
