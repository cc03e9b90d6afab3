"""A region's deployment on one machine: render, start in order, wait, bootstrap, report.

`./deploy.sh`, `parta up` and the test suite all go through `LocalDeployment`, so the
tests exercise exactly what an operator runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from foundation.private_files import make_private
from foundation.settings import SECRET_FIELDS, Settings
from matrix.client import MatrixClient
from parta.render import nginx_config_path, render_all, worker_config_path
from parta.secrets import ensure_secrets
from parta.supervisor import DeployError, ServiceSpec, Supervisor
from parta.systemd import (
    TARGET,
    ensure_service_account,
    install_units,
    render_units,
    start_stages,
    systemctl,
    systemd_runs_this_host,
    unit_name,
)
from parta.tls import CertificateProblem, check_certificate
from parta.topology import topology, widget_processes
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.services.demo import DemoSchool, ensure_demo_school
from provisioning.services.region import ensure_region_admin

SOURCE_ROOT = Path(__file__).resolve().parent.parent
SYNAPSE_MODULES_DIR = SOURCE_ROOT / "synapse-config" / "modules"


@dataclass
class UpReport:
    """What `up` did, for the operator and for tests."""

    secrets_created: list[str] = field(default_factory=list)
    config_changed: list[Path] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    ready_seconds: dict[str, float] = field(default_factory=dict)
    region_admin_created: bool = False
    demo: DemoSchool | None = None
    total_seconds: float = 0.0

    @property
    def changed_anything(self) -> bool:
        return bool(
            self.secrets_created
            or self.config_changed
            or self.started
            or self.restarted
            or self.region_admin_created
            or (self.demo is not None and (self.demo.created or self.demo.sync_actions > 0))
        )


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(hashlib.sha256(part).digest())
    return hasher.hexdigest()[:16]


def _python_path(*directories: Path) -> str:
    """PYTHONPATH with our directories first, keeping what the caller's environment had."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join([*(str(d) for d in directories), *inherited])


def _source_digest() -> bytes:
    """Parta's own code: a changed checkout restarts the services that run it."""
    files = sorted(
        p
        for package in ("parta", "foundation", "matrix", "provisioning", "widgets")
        for p in (SOURCE_ROOT / package).rglob("*")
        if p.suffix in {".py", ".mako"}
    )
    return b"".join(p.read_bytes() for p in files)


class LocalDeployment:
    """Synapse, provisioning and the bridge of one region, on this machine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.supervisor = Supervisor(settings.run_dir)
        self.certificate_warnings: list[str] = []

    @classmethod
    def prepare(cls, var_dir: Path) -> tuple[LocalDeployment, list[str]]:
        """Generate missing secrets, then load settings; returns the secrets made now."""
        created = ensure_secrets(var_dir)
        return cls(Settings.load(var_dir)), created

    def specs(self) -> list[ServiceSpec]:
        """Every service in start order."""
        return [spec for stage in self.stages() for spec in stage]

    def stages(self) -> list[list[ServiceSpec]]:
        """The services in groups: each group starts together, once the one before is up.

        Synapse's main process first (it creates and migrates the database), then its
        workers all at once, then nginx in front of them, then Parta's services.
        """
        s = self.settings
        top = topology(s)
        synapse_files = [
            s.synapse_dir / "homeserver.yaml",
            s.synapse_dir / "log.yaml",
            s.synapse_dir / f"appservice-{s.appservice_id}.yaml",
        ]
        # The operator's own settings (docs/operations.md) come after ours, and win.
        overrides = sorted(s.synapse_overrides_dir.glob("*.yaml"))
        # Synapse restarts when its configuration or the policy module's code changes.
        synapse_fingerprint = _digest(
            version("matrix-synapse").encode(),
            *(p.read_bytes() for p in [*synapse_files, *overrides]),
            *(p.read_bytes() for p in sorted(SYNAPSE_MODULES_DIR.rglob("*.py"))),
        )
        # model_dump_json masks secrets, so they are added in the clear (only hashed here).
        parta_fingerprint = _digest(
            s.model_dump_json().encode(),
            *(getattr(s, name).get_secret_value().encode() for name in SECRET_FIELDS),
            _source_digest(),
        )
        shared_config = [
            "--config-path",
            str(synapse_files[0]),
            "--config-path",
            str(s.synapse_overrides_dir),
        ]
        synapse_env = {"PYTHONPATH": _python_path(SYNAPSE_MODULES_DIR)}
        stages: list[list[ServiceSpec]] = [
            [
                ServiceSpec(
                    name="synapse",
                    title="Synapse",
                    argv=[sys.executable, "-m", "synapse.app.homeserver", *shared_config],
                    host=s.bind_address,
                    port=top.main_port,
                    health_url=f"http://{s.bind_address}:{top.main_port}/health",
                    log_files=[s.log_dir / "synapse.stdout.log", s.log_dir / "synapse.log"],
                    fingerprint=synapse_fingerprint,
                    ready_timeout=120.0,  # the first start creates the database schema
                    env=synapse_env,
                )
            ]
        ]
        if top.workers:
            stages.append(
                [
                    ServiceSpec(
                        name=f"synapse-{w.name}",
                        title=f"Synapse's worker {w.name}",
                        argv=[
                            sys.executable,
                            "-m",
                            "synapse.app.generic_worker",
                            *shared_config,
                            "--config-path",
                            str(worker_config_path(s, w.name)),
                        ],
                        host="127.0.0.1",
                        port=w.port,
                        health_url=f"http://127.0.0.1:{w.port}/health",
                        log_files=[
                            s.log_dir / f"synapse-{w.name}.stdout.log",
                            s.log_dir / f"synapse-{w.name}.log",
                        ],
                        fingerprint=_digest(
                            synapse_fingerprint.encode(),
                            worker_config_path(s, w.name).read_bytes(),
                        ),
                        ready_timeout=120.0,  # many start at once on few cores
                        env=synapse_env,
                    )
                    for w in top.workers
                ]
            )
        if s.runs_nginx:
            stages.append([self._nginx_spec()])
        stages += [
            [
                ServiceSpec(
                    name=name,
                    title=title,
                    argv=[sys.executable, "-m", "parta", "serve", name],
                    host=s.bind_address,
                    port=port,
                    health_url=f"http://{s.bind_address}:{port}/healthz",
                    log_files=[s.log_dir / f"{name}.log"],
                    fingerprint=parta_fingerprint,
                    env={"PARTA_VAR_DIR": str(s.var_dir)},
                )
            ]
            for name, title, port in (
                ("provisioning", "the provisioning service", s.provisioning_port),
                ("bridge", "the bridge", s.bridge_port),
            )
        ]
        stages.append(self._widget_specs(parta_fingerprint))
        return stages

    def _widget_specs(self, parta_fingerprint: str) -> list[ServiceSpec]:
        """The widget service's processes, started together (docs/operations.md)."""
        s = self.settings
        processes = widget_processes(s)
        ports = {p.port for p in processes}
        top = topology(s)
        taken = {s.synapse_port, s.synapse_metrics_port, s.provisioning_port, s.bridge_port}
        taken |= {top.main_port, top.main_replication_port, *(w.port for w in top.workers)}
        if s.runs_nginx:
            taken |= {s.https_port, s.http_port}
        clash = sorted(ports & taken)
        if clash:
            raise DeployError(
                f"The {len(processes)} widget processes listen on ports {min(ports)}-"
                f"{max(ports)}, and port {clash[0]} is another service's: set "
                "PARTA_WIDGETS_PORT to a free range, or fewer PARTA_WIDGET_PROCESSES, "
                f"in {s.var_dir / 'parta.env'}."
            )
        return [
            ServiceSpec(
                name=p.name,
                title=f"the widget service (calls), process {p.index} of {len(processes)}",
                argv=[
                    sys.executable,
                    "-m",
                    "parta",
                    "serve",
                    "widgets",
                    "--process",
                    str(p.index),
                    "--of",
                    str(len(processes)),
                ],
                host=s.bind_address,
                port=p.port,
                health_url=f"http://{s.bind_address}:{p.port}/healthz",
                log_files=[s.log_dir / f"{p.name}.log"],
                fingerprint=_digest(
                    parta_fingerprint.encode(), f"{p.index}/{len(processes)}".encode()
                ),
                env={"PARTA_VAR_DIR": str(s.var_dir)},
                port_setting="PARTA_WIDGETS_PORT",
            )
            for p in processes
        ]

    def _nginx_spec(self) -> ServiceSpec:
        s = self.settings
        config = nginx_config_path(s)
        files = [config]
        if s.environment == "production":
            files += [Path(s.tls_cert_file), Path(s.tls_key_file)]
        return ServiceSpec(
            name="nginx",
            title="nginx",
            argv=[
                nginx_binary(),
                "-p",
                str(s.nginx_dir),
                "-e",
                str(s.log_dir / "nginx.error.log"),
                "-c",
                str(config),
                "-g",
                "daemon off;",
            ],
            host=s.bind_address,
            port=s.synapse_port,
            health_url=f"{s.homeserver_url}/health",
            log_files=[s.log_dir / "nginx.stdout.log", s.log_dir / "nginx.error.log"],
            # A renewed certificate is served after a restart.
            fingerprint=_digest(*(p.read_bytes() for p in files if p.is_file())),
        )

    def check_certificate(self) -> None:
        """Production serves the operator's certificate: refuse to start with a wrong one.

        Raises:
            DeployError: the certificate or key cannot be served; the message says why.
        """
        s = self.settings
        if s.environment != "production":
            return
        if not s.tls_cert_file or not s.tls_key_file:
            raise DeployError(
                "Production mode serves HTTPS with your certificate: set PARTA_TLS_CERT_FILE "
                "(the full chain) and PARTA_TLS_KEY_FILE in "
                f"{s.var_dir / 'parta.env'}, then run this again."
            )
        try:
            report = check_certificate(
                Path(s.tls_cert_file), Path(s.tls_key_file), s.certificate_names
            )
        except CertificateProblem as exc:
            raise DeployError(str(exc)) from None
        self.certificate_warnings = report.warnings

    def up(self, secrets_created: list[str] | None = None) -> UpReport:
        """Bring every service up with the current configuration; safe to run again.

        Raises:
            DeployError: a service could not start; the message says why and what to do.
        """
        began = time.monotonic()
        report = UpReport(secrets_created=list(secrets_created or []))
        report.config_changed = render_all(self.settings)
        make_private(self.settings.var_dir)  # what an older version or a backup left readable
        self.check_certificate()
        stages = self.stages()
        if self.under_systemd:
            self._up_under_systemd(stages, report)
        else:
            self._up_under_supervisor(stages, report)
        report.region_admin_created, report.demo = asyncio.run(self._bootstrap())
        make_private(self.settings.var_dir)  # what this process made while starting them
        report.total_seconds = time.monotonic() - began
        return report

    @property
    def under_systemd(self) -> bool:
        """Production on a host systemd runs, as root: units instead of our supervisor."""
        return (
            self.settings.environment == "production"
            and os.geteuid() == 0
            and systemd_runs_this_host()
        )

    def _up_under_systemd(self, stages: list[list[ServiceSpec]], report: UpReport) -> None:
        ensure_service_account(self.settings.var_dir)
        changed = install_units(render_units(self.settings, stages))
        if changed:
            systemctl("daemon-reload")
        systemctl("enable", TARGET)
        report.started, report.restarted = start_stages(stages, changed)

    def _up_under_supervisor(self, stages: list[list[ServiceSpec]], report: UpReport) -> None:
        # Services of an earlier layout (fewer workers, no nginx any more) stop first.
        wanted = {spec.name for stage in stages for spec in stage}
        for name in reversed(self.supervisor.known()):
            if name not in wanted and self.supervisor.stop(name):
                report.restarted.append(name)
        for stage in stages:
            starting = []
            for spec in stage:
                current = self.supervisor.running(spec.name)
                if current is not None and current.fingerprint == spec.fingerprint:
                    report.unchanged.append(spec.name)
                    continue
                if current is not None:
                    self.supervisor.stop(spec.name)
                    report.restarted.append(spec.name)
                else:
                    report.started.append(spec.name)
                self.supervisor.start(spec)
                starting.append(spec)
            for spec in starting:
                report.ready_seconds[spec.name] = self.supervisor.wait_healthy(spec)

    async def _bootstrap(self) -> tuple[bool, DemoSchool | None]:
        """The region admin, and in development the demo school (reconciled each time)."""
        engine = make_engine(self.settings.sqlalchemy_url)
        try:
            async with MatrixClient(
                self.settings.homeserver_url, self.settings.as_token.get_secret_value()
            ) as client:
                with make_session_factory(engine)() as session:
                    admin_created = await ensure_region_admin(session, client, self.settings)
                    demo = None
                    if self.settings.demo_school and self.settings.environment == "development":
                        demo = await ensure_demo_school(session, client, self.settings)
                    return admin_created, demo
        finally:
            engine.dispose()

    def service_names(self) -> list[str]:
        """This deployment's services in start order, and any an earlier layout left."""
        try:
            names = [spec.name for spec in self.specs()]
        except (OSError, DeployError):  # not rendered yet: Parta's own four, all stopped
            names = ["synapse", "provisioning", "bridge", "widgets"]
        return names + [n for n in self.supervisor.known() if n not in names]

    def stop(self) -> list[str]:
        """Stop what this deployment started, in reverse order; return what was stopped."""
        if self.under_systemd:
            running = [name for name, pid in self.status().items() if pid]
            systemctl("stop", TARGET)
            return list(reversed(running))
        return [name for name in reversed(self.service_names()) if self.supervisor.stop(name)]

    def status(self) -> dict[str, int | None]:
        """The pid of each service that runs, or None."""
        result: dict[str, int | None] = {}
        for name in self.service_names():
            if self.under_systemd:
                shown = systemctl("show", "--property=MainPID", "--value", unit_name(name))
                pid = int(shown.stdout.strip() or 0)
                result[name] = pid or None
                continue
            running = self.supervisor.running(name)
            result[name] = running.pid if running else None
        return result


def nginx_binary() -> str:
    """Debian's nginx (in /usr/sbin, which an ordinary account's PATH may lack)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise DeployError(
            "nginx is not installed, and production mode (or Synapse's workers) runs behind "
            "it. On Debian: apt-get install nginx (./deploy.sh production installs it)."
        )
    return found
