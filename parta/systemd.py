"""The region's processes as systemd units, where systemd runs the host.

Each service of `LocalDeployment.stages()` becomes a unit; Synapse's workers are instances
of one template unit (`parta-synapse-worker@<name>.service`). `parta.target` groups them,
so `systemctl stop parta.target` stops the region. Units restart on failure and run
sandboxed as the `parta` account (nginx's master as root, to bind port 443), writing only
under `var/`. Where systemd is absent (containers, CI) the same processes run under
Parta's own supervisor instead (parta/supervisor.py), started by the same command.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2

from foundation.settings import Settings
from parta.render import TEMPLATE_DIR
from parta.supervisor import DeployError, ServiceSpec, poll_health

UNIT_DIR = Path("/etc/systemd/system")
TARGET = "parta.target"
SERVICE_ACCOUNT = "parta"
WORKER_TEMPLATE = "parta-synapse-worker@.service"


def systemd_runs_this_host() -> bool:
    """Whether systemd is PID 1 here (not in a container or CI) and systemctl exists."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def unit_name(service: str) -> str:
    """`synapse-client_reader1` → `parta-synapse-worker@client_reader1.service`."""
    if service.startswith("synapse-"):
        return WORKER_TEMPLATE.replace("@", "@" + service.removeprefix("synapse-"))
    return f"parta-{service}.service"


@dataclass(frozen=True)
class UnitFile:
    name: str
    content: str


def render_units(settings: Settings, stages: list[list[ServiceSpec]]) -> list[UnitFile]:
    """The unit files for these stages, plus the worker template and the target."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR / "systemd"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - unit files, not HTML
    )
    unit = env.get_template("service.j2")
    files: list[UnitFile] = []
    previous: list[str] = []
    worker_rendered = False
    for stage in stages:
        names = []
        for spec in stage:
            name = unit_name(spec.name)
            names.append(name)
            is_worker = spec.name.startswith("synapse-")
            if is_worker and worker_rendered:
                continue
            argv = list(spec.argv)
            if is_worker:
                # The template's instance name picks the worker's own file and log.
                argv[-1] = str(Path(argv[-1]).parent / "%i.yaml")
                spec = replace(spec, log_files=[settings.log_dir / "synapse-%i.stdout.log"])
            files.append(
                UnitFile(
                    WORKER_TEMPLATE if is_worker else name,
                    unit.render(
                        s=settings,
                        spec=spec,
                        title="Synapse's worker %i" if is_worker else spec.title,
                        exec_start=" ".join(_quote(a) for a in argv),
                        after=previous,
                        notify=spec.name == "synapse" or is_worker,
                        as_root=spec.name == "nginx",
                        account=SERVICE_ACCOUNT,
                    ),
                )
            )
            worker_rendered = worker_rendered or is_worker
        previous = [n for n in names if "@" not in n] or ["parta-synapse.service"]
    services = [unit_name(spec.name) for stage in stages for spec in stage]
    files.append(
        UnitFile(TARGET, env.get_template("target.j2").render(s=settings, services=services))
    )
    return files


def _quote(argument: str) -> str:
    """systemd's own quoting for ExecStart (a space or quote inside one argument)."""
    if argument and not any(c in argument for c in " \t\"'\\;$"):
        return argument
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped}"'


def install_units(files: list[UnitFile], unit_dir: Path = UNIT_DIR) -> list[str]:
    """Write the unit files that changed; return their names (those units restart)."""
    changed: list[str] = []
    for unit in files:
        path = unit_dir / unit.name
        if path.exists() and path.read_text(encoding="utf-8") == unit.content:
            continue
        path.write_text(unit.content, encoding="utf-8")
        path.chmod(0o644)
        changed.append(unit.name)
    return changed


def ensure_service_account(var_dir: Path) -> None:
    """The `parta` system account the services run as; it owns var/."""
    try:
        subprocess.run(["id", "-u", SERVICE_ACCOUNT], check=True, capture_output=True, timeout=10)
    except subprocess.CalledProcessError:
        subprocess.run(
            ["useradd", "--system", "--home-dir", str(var_dir), "--no-create-home",
             "--shell", "/usr/sbin/nologin", SERVICE_ACCOUNT],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    subprocess.run(
        ["chown", "-R", f"{SERVICE_ACCOUNT}:{SERVICE_ACCOUNT}", str(var_dir)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", *args], capture_output=True, text=True, timeout=120, check=False
    )


def start_stages(
    stages: list[list[ServiceSpec]], changed_units: list[str]
) -> tuple[list[str], list[str]]:
    """Start (or restart what changed) stage by stage, each gated by health.

    Returns (started, restarted) service names.
    """
    started: list[str] = []
    restarted: list[str] = []
    worker_template_changed = WORKER_TEMPLATE in changed_units
    for stage in stages:
        for spec in stage:
            name = unit_name(spec.name)
            active = systemctl("is-active", "--quiet", name).returncode == 0
            changed = name in changed_units or ("@" in name and worker_template_changed)
            if not active:
                _check(systemctl("enable", "--now", name), name)
                started.append(spec.name)
            elif changed:
                _check(systemctl("restart", name), name)
                restarted.append(spec.name)
        for spec in stage:
            wait_healthy_unit(spec)
    return started, restarted


def _check(result: subprocess.CompletedProcess[str], unit: str) -> None:
    if result.returncode != 0:
        raise DeployError(
            f"systemd could not start {unit}: {result.stderr.strip()}\n"
            f"See: journalctl -u {unit} -n 50"
        )


def wait_healthy_unit(spec: ServiceSpec) -> float:
    """Poll the service's health URL while its unit has not failed; seconds it took."""
    name = unit_name(spec.name)
    seconds, last = poll_health(
        spec, alive=lambda: systemctl("is-failed", "--quiet", name).returncode != 0, every=0.5
    )
    if seconds is not None:
        return seconds
    raise DeployError(
        f"{spec.title} ({name}) did not become healthy at {spec.health_url} (last: {last}). "
        f"See: journalctl -u {name} -n 50, and {', '.join(str(p) for p in spec.log_files)}"
    )
