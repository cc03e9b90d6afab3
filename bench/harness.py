"""What the benchmarks share: a whole deployment on free loopback ports in a folder."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from contextlib import ExitStack
from pathlib import Path

from foundation.settings import CONFIG_FILE_NAME
from parta.deployment import LocalDeployment

TICKS = os.sysconf("SC_CLK_TCK")
INSTALL_TEST_EXTRAS = ".venv/bin/pip install -e '.[test]'"


def require_test_extras(script: str, **packages: str) -> None:
    """Stop with the command that installs what `script` needs beyond `./deploy.sh`.

    `packages` maps an import name to its package (`pptx="python-pptx"`): the benchmarks
    borrow the tests' helpers, which `./deploy.sh` does not install.
    """
    missing = [package for module, package in packages.items()
               if importlib.util.find_spec(module) is None]  # fmt: skip
    if missing:
        sys.exit(
            f"{script} needs {', '.join(missing)} from Parta's test extras, which ./deploy.sh "
            f"does not install. Install them with:\n    {INSTALL_TEST_EXTRAS}\n"
            "(or run ./deploy.sh test once, which installs them and runs the tests)"
        )


def cpu_times(pid: int) -> tuple[float, float]:
    """A process's CPU seconds so far, in user space and in the kernel (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # utime, stime


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def start_region(var_dir: Path, log_level: str = "WARNING") -> LocalDeployment:
    """Synapse, provisioning, the bridge and the widgets, without the demo school or
    periodic runs."""
    synapse, metrics, provisioning, bridge, widgets = free_ports(5)
    var_dir.mkdir(parents=True)
    (var_dir / CONFIG_FILE_NAME).write_text(
        f"PARTA_SYNAPSE_PORT={synapse}\nPARTA_SYNAPSE_METRICS_PORT={metrics}\n"
        f"PARTA_PROVISIONING_PORT={provisioning}\nPARTA_BRIDGE_PORT={bridge}\n"
        f"PARTA_WIDGETS_PORT={widgets}\n"
        f"PARTA_DEMO_SCHOOL=false\nPARTA_LOG_LEVEL={log_level}\n"
        # The service's own periodic run would wait on the lease anyway; keep it out of the way.
        "PARTA_RECONCILE_INTERVAL_S=86400\n",
        encoding="utf-8",
    )
    deployment, _ = LocalDeployment.prepare(var_dir)
    deployment.up()
    return deployment
