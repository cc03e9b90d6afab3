"""Starts `tests.harness.smpp_server` as its own process on a free loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness.ports import free_ports
from tests.harness.processes import stop

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SmscProcess:
    port: int
    outbox: Path
    system_id: str
    password: str

    def messages(self) -> list[dict[str, object]]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text().splitlines() if line]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def smpp_server(directory: Path, *, silent: bool = False) -> Iterator[SmscProcess]:
    port = free_ports(1)[0]
    smsc = SmscProcess(port, directory / f"smsc-{port}.jsonl", "parta", "sm8pass1")
    argv = [
        sys.executable,
        "-m",
        "tests.harness.smpp_server",
        "--port",
        str(port),
        "--outbox",
        str(smsc.outbox),
        "--system-id",
        smsc.system_id,
        "--password",
        smsc.password,
        *(["--silent"] if silent else []),
    ]
    process = subprocess.Popen(argv, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test SMSC did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield smsc
    finally:
        stop(process)
