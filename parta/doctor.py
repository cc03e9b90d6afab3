"""`parta doctor`: what stands between this deployment and the people who use it.

Each check reads and asks, and changes nothing: the settings, each service's ports, each
process's health URL, and in production the certificate, the public names in DNS and the
`.well-known` answers over HTTPS as a phone or another region gets them. Each finding says
what is so and what to do, so an operator can fix a region from the command's output alone.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
from pydantic import ValidationError

from foundation.private_files import exposed
from foundation.settings import CONFIG_FILE_NAME, Settings
from parta.deployment import LocalDeployment
from parta.supervisor import DeployError, ServiceSpec
from parta.tls import CertificateProblem, check_certificate
from parta.topology import topology

Severity = Literal["ok", "warning", "error"]
HEALTH_TIMEOUT_S = 5.0
LOW_DISK_BYTES = 2 * 1024**3  # Synapse's database and uploads fail well before the disk is full


@dataclass(frozen=True)
class Finding:
    severity: Severity
    topic: str  # settings, port, service, certificate, dns, well-known, disk, files
    message: str  # what is so and, unless all is well, what to do


@dataclass(frozen=True)
class Listener:
    """A port one of the deployment's processes listens on, and the setting that names it."""

    service: str  # the supervisor's name of the process that owns it
    title: str
    host: str
    port: int
    setting: str


def diagnose(
    var_dir: Path, *, tls: ssl.SSLContext | None = None, now: datetime | None = None
) -> list[Finding]:
    """Every finding about the deployment in `var_dir`, errors first.

    `tls` is the trust used for the HTTPS checks: the system's by default (what phones
    trust); the tests give their own CA.
    """
    try:
        settings = Settings.load(var_dir)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        return [_settings_error(var_dir, problems)]
    except ValueError as exc:
        return [_settings_error(var_dir, str(exc))]
    findings = [
        Finding(
            "ok",
            "settings",
            f"The settings in {settings.var_dir} load: {settings.environment} mode, server "
            f"name {settings.server_name}.",
        )
    ]
    deployment = LocalDeployment(settings)
    try:
        specs = deployment.specs()
    except (OSError, DeployError):
        specs = []
        findings.append(
            Finding(
                "error",
                "service",
                f"The configuration in {settings.synapse_dir} is not rendered yet, so nothing "
                "can start. Run ./deploy.sh.",
            )
        )
    running = deployment.status()
    findings += _port_findings(settings, specs, running)
    findings += _health_findings(specs, running)
    if settings.environment == "production":
        host = settings.server_name.split(":")[0]
        names = list(dict.fromkeys([host, *settings.public_hosts, settings.public_widgets_host]))
        findings += _certificate_findings(settings, names, now or datetime.now(UTC))
        resolved = list(_dns_findings(names, settings.https_port))
        findings += resolved
        if not any(f.severity == "error" for f in resolved):
            findings += _well_known_findings(settings, tls or ssl.create_default_context())
    findings += _disk_findings(settings)
    findings += _private_file_findings(settings)
    order: dict[Severity, int] = {"error": 0, "warning": 1, "ok": 2}
    return sorted(findings, key=lambda f: order[f.severity])


def _settings_error(var_dir: Path, problems: str) -> Finding:
    return Finding(
        "error",
        "settings",
        f"The settings in {var_dir} are not valid: {problems}. Correct them in "
        f"{var_dir / CONFIG_FILE_NAME} (or the PARTA_* variable that sets them); nothing "
        "else can be checked until they load.",
    )


# Ports.


def listeners(settings: Settings, specs: list[ServiceSpec]) -> list[Listener]:
    """The ports each process takes, with the setting an operator changes to move it."""
    workers = settings.uses_synapse_workers
    result = []
    for spec in specs:
        if spec.name == "synapse":
            setting = "PARTA_SYNAPSE_WORKER_BASE_PORT" if workers else "PARTA_SYNAPSE_PORT"
        elif spec.name.startswith("synapse-"):
            setting = "PARTA_SYNAPSE_WORKER_BASE_PORT"
        elif spec.name == "nginx":
            setting = "PARTA_SYNAPSE_PORT"
        else:
            setting = f"PARTA_{spec.name.upper()}_PORT"
        result.append(Listener(spec.name, spec.title, spec.host, spec.port, setting))
    result.append(
        Listener(
            "synapse",
            "Synapse's metrics",
            "127.0.0.1",
            settings.synapse_metrics_port,
            "PARTA_SYNAPSE_METRICS_PORT",
        )
    )
    if workers:
        base = topology(settings).main_replication_port
        result.append(
            Listener(
                "synapse",
                "Synapse's replication",
                "127.0.0.1",
                base,
                "PARTA_SYNAPSE_WORKER_BASE_PORT",
            )
        )
    if settings.environment == "production":
        host = settings.public_bind_address or "0.0.0.0"  # noqa: S104 - nginx's own default
        result += [
            Listener("nginx", "nginx's HTTPS", host, settings.https_port, "PARTA_HTTPS_PORT"),
            Listener("nginx", "nginx's HTTP", host, settings.http_port, "PARTA_HTTP_PORT"),
        ]
    return result


def _port_findings(
    settings: Settings, specs: list[ServiceSpec], running: dict[str, int | None]
) -> Iterator[Finding]:
    checked = 0
    for item in listeners(settings, specs):
        if running.get(item.service):
            checked += 1
            continue  # ours: the health check below says whether it answers
        problem = _port_problem(item)
        if problem is None:
            checked += 1
        else:
            yield problem
    if checked:
        yield Finding("ok", "port", f"{checked} ports are free or used by this deployment.")


def _port_problem(item: Listener) -> Finding | None:
    family = socket.AF_INET6 if ":" in item.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((item.host, item.port))
            return None
        except OSError as exc:
            code = exc.errno
    where = f"Port {item.port} on {item.host} ({item.setting})"
    if code == errno.EADDRINUSE:
        return Finding(
            "error",
            "port",
            f"{where} is taken by {holder(item.port)}, so {item.title} cannot start. Stop "
            f"that program, or set {item.setting} to a free port in var/{CONFIG_FILE_NAME}.",
        )
    if code == errno.EACCES:
        return Finding(
            "error",
            "port",
            f"{where} is below 1024, and this account may not listen there, so "
            f"{item.title} cannot start. Run Parta as its system user with "
            "CAP_NET_BIND_SERVICE (./deploy.sh production sets it up), or choose a port "
            f"above 1024 in {item.setting}.",
        )
    return Finding(
        "error",
        "port",
        f"{where}: {item.host} is not an address of this host ({os.strerror(code or 0)}), "
        f"so {item.title} cannot start. Set PARTA_BIND_ADDRESS or PARTA_PUBLIC_BIND_ADDRESS "
        "to one of its addresses.",
    )


def holder(port: int) -> str:
    """Which program listens on a TCP port, from /proc (another account's: unnamed)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return "another program"
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            for fd in (process / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    name = (process / "comm").read_text(encoding="utf-8").strip()
                    return f"{name} (pid {process.name})"
        except OSError:
            continue  # another account's process, or gone
    return "a program of another account"


# Processes.


def _health_findings(specs: list[ServiceSpec], running: dict[str, int | None]) -> Iterator[Finding]:
    healthy = 0
    with httpx.Client(timeout=HEALTH_TIMEOUT_S) as http:
        for spec in specs:
            log = spec.log_files[-1]
            if not running.get(spec.name):
                yield Finding(
                    "error",
                    "service",
                    f"{_sentence(spec.title)} ({spec.name}) is not running. Start it with "
                    f"./deploy.sh; if it stops again, its log says why: {log}",
                )
                continue
            try:
                answer = http.get(spec.health_url)
                problem = None if answer.status_code == 200 else _said(answer)
            except httpx.HTTPError as exc:
                problem = f"no answer ({type(exc).__name__})"
            if problem is None:
                healthy += 1
                continue
            yield Finding(
                "error",
                "service",
                f"{_sentence(spec.title)} ({spec.name}, pid {running[spec.name]}) runs, but "
                f"{spec.health_url} gives {problem}. See its log, {log}; ./deploy.sh "
                "restarts what has stopped.",
            )
    if healthy:
        yield Finding("ok", "service", f"{healthy} processes run and answer their health URL.")


def _sentence(title: str) -> str:
    """A process's title at the start of a sentence: "the bridge" -> "The bridge"."""
    return title[:1].upper() + title[1:]


def _said(answer: httpx.Response) -> str:
    return f"HTTP {answer.status_code}: {answer.text[:200].strip()}"


# Production: certificate, names, .well-known.


def _certificate_findings(settings: Settings, names: list[str], now: datetime) -> list[Finding]:
    if not settings.tls_cert_file or not settings.tls_key_file:
        return [
            Finding(
                "error",
                "certificate",
                "Production mode serves HTTPS, and no certificate is set: set "
                f"PARTA_TLS_CERT_FILE (the full chain) and PARTA_TLS_KEY_FILE in "
                f"var/{CONFIG_FILE_NAME}.",
            )
        ]
    cert, key = Path(settings.tls_cert_file), Path(settings.tls_key_file)
    try:
        report = check_certificate(cert, key, names, now=now)
    except CertificateProblem as problem:
        return [Finding("error", "certificate", str(problem))]
    findings = [Finding("warning", "certificate", warning) for warning in report.warnings]
    findings.append(
        Finding(
            "ok",
            "certificate",
            f"The certificate covers {', '.join(names)} and expires on "
            f"{report.not_after:%Y-%m-%d} (in {report.days_left(now)} days). nginx serves a "
            "renewed file after ./deploy.sh.",
        )
    )
    return findings


def _dns_findings(names: list[str], port: int) -> Iterator[Finding]:
    for name in names:
        if name == "localhost" or name.endswith(".localhost"):
            addresses = {"127.0.0.1", "::1"}  # RFC 6761: clients resolve these themselves
        else:
            try:
                found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                yield Finding(
                    "error",
                    "dns",
                    f"{name} does not resolve ({exc.strerror}), so no phone or region can "
                    "reach it. Add its A (and AAAA) record at your DNS provider, pointing at "
                    "this host's public address.",
                )
                continue
            addresses = {str(info[4][0]) for info in found}
        listed = ", ".join(sorted(addresses))
        if all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
            yield Finding(
                "warning",
                "dns",
                f"{name} resolves to this machine's loopback only ({listed}): phones and other "
                "regions cannot reach it there. Point its DNS record at the public address "
                "(and drop any /etc/hosts line that maps it to 127.x).",
            )
            continue
        yield Finding("ok", "dns", f"{name} resolves to {listed}.")


def _well_known_findings(settings: Settings, tls: ssl.SSLContext) -> Iterator[Finding]:
    origin = settings.public_origin
    host = settings.server_name.split(":")[0]
    expected = {
        "server": ("m.server", f"{host}:{settings.https_port}"),
        "client": ("m.homeserver", {"base_url": settings.element_homeserver_url}),
    }
    with httpx.Client(verify=tls, timeout=10) as http:
        for which, (field, want) in expected.items():
            url = f"{origin}/.well-known/matrix/{which}"
            try:
                answer = http.get(url)
            except httpx.HTTPError as exc:
                yield Finding(
                    "error",
                    "well-known",
                    f"{url} does not answer over HTTPS ({exc}). Check that nginx runs "
                    f"(./deploy.sh status), that port {settings.https_port} is open in the "
                    "firewall, and that the certificate is one phones trust (parta check-tls).",
                )
                continue
            try:
                got = answer.json().get(field) if answer.status_code == 200 else None
            except ValueError:
                got = None
            if which == "client" and isinstance(got, dict):
                got = {"base_url": got.get("base_url")}
            if got != want:
                yield Finding(
                    "error",
                    "well-known",
                    f"{url} answers {_said(answer)}, not {{{field!r}: {want!r}}}: another "
                    "server in front of nginx answers for this name. Let it pass "
                    "/.well-known/matrix/ through to nginx.",
                )
                continue
            yield Finding("ok", "well-known", f"{url} answers {{{field!r}: {want!r}}}.")


# The host.


def _disk_findings(settings: Settings) -> Iterator[Finding]:
    alarm = settings.documents_disk_alarm_percent
    seen: set[int] = set()
    for label, path in (("var/", settings.var_dir), ("the media store", settings.media_store_dir)):
        if not path.exists():
            continue
        device = path.stat().st_dev
        if device in seen:
            continue  # the same disk as the one before
        seen.add(device)
        usage = shutil.disk_usage(path)
        percent = usage.free / usage.total * 100
        said = (
            f"{usage.free / 1024**3:.1f} GB ({percent:.0f} %) free on the disk of {label} ({path})"
        )
        if percent < alarm or usage.free < LOW_DISK_BYTES:
            yield Finding(
                "error",
                "disk",
                f"Only {said}: below PARTA_DOCUMENTS_DISK_ALARM_PERCENT ({alarm:g} %) or "
                f"{LOW_DISK_BYTES // 1024**3} GB, Synapse's database and uploads start to "
                "fail. Free space (old backups, logs in var/log) or grow the disk.",
            )
        elif percent < 2 * alarm:
            yield Finding(
                "warning",
                "disk",
                f"{said}; the alarm is at {alarm:g} %. Plan more space before uploads fill it.",
            )
        else:
            yield Finding("ok", "disk", f"{said}.")


def _private_file_findings(settings: Settings) -> Iterator[Finding]:
    readable = exposed(settings.var_dir)
    if not readable:
        yield Finding("ok", "files", f"Nothing under {settings.var_dir} is readable by others.")
        return
    path, mode = readable[0]
    yield Finding(
        "error",
        "files",
        f"{len(readable)} paths under {settings.var_dir} hold private data other accounts on "
        f"this machine can read (first: {path}, mode {stat.S_IMODE(mode):04o}). Run "
        f"./deploy.sh to make them private again (or: chmod -R go-rwx {settings.var_dir}).",
    )
