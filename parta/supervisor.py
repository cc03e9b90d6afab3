"""Start, watch and stop the deployment's processes, and only the ones it started.

Each running service has a state file `var/run/<name>.json` with its pid, its start time
(`/proc/<pid>/stat`), its command line and a fingerprint of its configuration. A pid
counts as ours only while its start time still matches, so a recycled pid is never
signalled; the start time, not the command line, since nginx rewrites its own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from foundation.private_files import PRIVATE_UMASK


class DeployError(Exception):
    """A problem the operator must fix; the message says what to do."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service and how to know it is healthy."""

    name: str
    title: str  # shown to people: "Synapse", "the bridge"
    argv: list[str]
    host: str
    port: int
    health_url: str
    log_files: list[Path]  # the first one receives the process's stdout and stderr
    fingerprint: str
    ready_timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    port_setting: str = ""  # the PARTA_* setting that moves its port, if not named after it


@dataclass(frozen=True)
class RunningService:
    name: str
    pid: int
    fingerprint: str
    started_at: float


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:  # a zombie: exited, not yet reaped
        return None
    return raw.decode(errors="replace").split("\0")[:-1]


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot); None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields follow the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


STOPPED = "the process stopped"


def poll_health(
    spec: ServiceSpec, alive: Callable[[], bool], every: float = 0.2
) -> tuple[float | None, str]:
    """Poll the service's health URL until it answers 200, the process is gone, or its
    time is up: (seconds it took, or None; what it last saw, or STOPPED)."""
    started = time.monotonic()
    deadline = started + spec.ready_timeout
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if not alive():
                return None, STOPPED
            try:
                response = http.get(spec.health_url)
                if response.status_code == 200:
                    return time.monotonic() - started, "200"
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(every)
    return None, last


class Supervisor:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _state_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def known(self) -> list[str]:
        """Every service with a state file, running or not (what an older layout left)."""
        return sorted(p.stem for p in self.run_dir.glob("*.json"))

    def running(self, name: str) -> RunningService | None:
        """The service if the process we started is still alive, else None."""
        path = self._state_file(name)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        pid = int(state["pid"])
        if "start_ticks" in state:
            ours = _start_ticks(pid) == state["start_ticks"]
        else:  # written by an older Parta
            ours = _cmdline(pid) == state["argv"]
        if not ours:
            path.unlink(missing_ok=True)  # it died, or the pid now belongs to someone else
            return None
        return RunningService(name, pid, str(state["fingerprint"]), float(state["started_at"]))

    def start(self, spec: ServiceSpec) -> int:
        """Start the service detached from this terminal; raise DeployError if it cannot."""
        if not port_is_free(spec.host, spec.port):
            raise DeployError(
                f"Port {spec.port} on {spec.host} is already used by another program, so "
                f"{spec.title} cannot start. Stop that program, or choose another port in "
                f"var/parta.env ({spec.port_setting or f'PARTA_{spec.name.upper()}_PORT'}=...)."
            )
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        spec.log_files[0].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = os.open(spec.log_files[0], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the terminal; stop() signals its group
                env={**os.environ, **spec.env},
                close_fds=True,
                umask=PRIVATE_UMASK,  # its databases, logs and media: this account's only
            )
        finally:
            os.close(log)
        self._state_file(spec.name).write_text(
            json.dumps(
                {
                    "pid": process.pid,
                    "start_ticks": _start_ticks(process.pid),
                    "argv": spec.argv,
                    "fingerprint": spec.fingerprint,
                    "started_at": time.time(),
                }
            ),
            encoding="utf-8",
        )
        return process.pid

    def wait_healthy(self, spec: ServiceSpec) -> float:
        """Wait until the health URL answers 200; return the seconds it took.

        Raises:
            DeployError: the process exited, or did not become healthy in time; the
                message carries the end of its log.
        """
        seconds, last = poll_health(spec, alive=lambda: self.running(spec.name) is not None)
        if seconds is not None:
            return seconds
        if last == STOPPED:
            raise DeployError(
                f"{spec.title} stopped while starting; the end of its log:\n"
                + "\n".join(tail(p) for p in spec.log_files)
            )
        logs = ", ".join(str(p) for p in spec.log_files)
        raise DeployError(
            f"{spec.title} did not answer on {spec.host}:{spec.port} within "
            f"{spec.ready_timeout:.0f} s (last: {last}); see {logs}. Its log ends with:\n"
            + "\n".join(tail(p) for p in spec.log_files)
        )

    def stop(self, name: str, timeout: float = 20.0) -> bool:
        """Stop the service if we started it and it runs; True if it was stopped now."""
        service = self.running(name)
        if service is None:
            return False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(service.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _start_ticks(service.pid) is not None:
                _reap(service.pid)
                time.sleep(0.1)
            if _start_ticks(service.pid) is None:
                break
        self._state_file(name).unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    """Collect a child that exited, when the supervisor itself started it (tests do)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
