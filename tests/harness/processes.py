"""Stopping a server process a test fixture started: politely, then for sure."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], grace_s: float = 10) -> None:
    """SIGTERM, and SIGKILL if it is still there after `grace_s` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_s)
