"""A service's memory as the kernel counts it: now, and at its highest since a reset.

A body read whole and then dropped is handed back to the system at once (large buffers are
not kept in Python's pools), so resident memory read after the requests can look flat
while the service held the whole body for a moment. The peak (VmHWM, reset by writing 5 to
/proc/PID/clear_refs) keeps it.
"""

from __future__ import annotations

from pathlib import Path


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MB."""
    return _status_mb(pid, "VmRSS")


def reset_peak(pid: int) -> float:
    """Start counting the process's peak afresh; its resident memory now, in MB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_mb(pid)


def peak_mb(pid: int) -> float:
    """The process's highest resident memory since `reset_peak`, in MB."""
    return _status_mb(pid, "VmHWM")
