"""`parta doctor` on real deployments: a healthy one has no errors; a stopped worker, a
certificate that is expired or for another name, a port another program holds, invalid
settings, a full disk and readable files each give their own finding and what to do."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from typer.testing import CliRunner

from foundation.private_files import make_private
from foundation.settings import CONFIG_FILE_NAME
from parta.cli import app
from parta.deployment import LocalDeployment
from parta.doctor import Finding, diagnose
from parta.render import render_all
from parta.topology import topology
from tests.harness.ports import free_ports
from tests.harness.postgres import throwaway_postgres
from tests.harness.production import Production, production_deployment
from tests.harness.region import new_deployment

PRODUCTION_ONLY = {"certificate", "dns", "well-known"}


def errors(findings: list[Finding]) -> list[str]:
    return [f"{f.topic}: {f.message}" for f in findings if f.severity == "error"]


def only(findings: list[Finding], topic: str, severity: str = "error") -> list[str]:
    return [f.message for f in findings if f.topic == topic and f.severity == severity]


def test_a_running_local_region_is_healthy_without_tls_checks(region: LocalDeployment) -> None:
    # The session's region as `./deploy.sh` leaves it: tests before this one write into it
    # from the test process, whose umask is not the services' 077.
    make_private(region.settings.var_dir)
    findings = diagnose(region.settings.var_dir)
    assert errors(findings) == []
    assert not {f.topic for f in findings} & PRODUCTION_ONLY
    healthy = only(findings, "service", "ok")
    assert healthy == [f"{len(region.specs())} processes run and answer their health URL."]
    done = CliRunner().invoke(app, ["doctor", "--var-dir", str(region.settings.var_dir)])
    assert done.exit_code == 0, done.output
    assert "0 errors" in done.output


@pytest.fixture
def stopped(tmp_path: Path) -> LocalDeployment:
    """A deployment rendered (and made private, as `up` does) but never started."""
    deployment = new_deployment(tmp_path / "var")
    render_all(deployment.settings)
    make_private(deployment.settings.var_dir)
    return deployment


def test_a_port_another_program_holds_is_named_with_its_setting(
    stopped: LocalDeployment,
) -> None:
    port = stopped.settings.provisioning_port
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        findings = diagnose(stopped.settings.var_dir)
        done = CliRunner().invoke(app, ["doctor", "--var-dir", str(stopped.settings.var_dir)])
    (taken,) = only(findings, "port")
    assert f"Port {port} on 127.0.0.1 (PARTA_PROVISIONING_PORT) is taken by" in taken
    assert f"(pid {os.getpid()})" in taken and "set PARTA_PROVISIONING_PORT" in taken
    # Nothing runs yet: each process says so, with its log.
    not_running = only(findings, "service")
    assert len(not_running) == len(stopped.specs())
    assert any("The provisioning service (provisioning) is not running" in m for m in not_running)
    assert done.exit_code == 1 and "PARTA_PROVISIONING_PORT" in done.output
    # Without the squatter, the port is free again.
    assert not only(diagnose(stopped.settings.var_dir), "port")


def test_invalid_settings_are_explained(stopped: LocalDeployment) -> None:
    config = stopped.settings.var_dir / CONFIG_FILE_NAME
    original = config.read_text()
    config.write_text(original + "PARTA_SYNAPSE_PORT=eighty\n")
    (problem,) = diagnose(stopped.settings.var_dir)
    assert problem.severity == "error" and "synapse_port" in problem.message
    assert f"Correct them in {config}" in problem.message
    config.write_text(original + "PARTA_SYNAPS_PORT=8008\n")
    (problem,) = diagnose(stopped.settings.var_dir)
    assert "did you mean PARTA_SYNAPSE_PORT?" in problem.message


def test_a_full_disk_and_readable_files(stopped: LocalDeployment) -> None:
    var = stopped.settings.var_dir
    assert only(diagnose(var), "disk") == [] and only(diagnose(var), "files") == []
    # Any real disk is "full" when the alarm is at 100 % free.
    config = var / CONFIG_FILE_NAME
    config.write_text(config.read_text() + "PARTA_DOCUMENTS_DISK_ALARM_PERCENT=100\n")
    (full,) = only(diagnose(var), "disk")
    assert "free on the disk of var/" in full and "Free space" in full
    (var / "secrets.env").chmod(0o644)
    (readable,) = only(diagnose(var), "files")
    assert "secrets.env, mode 0644" in readable and "chmod -R go-rwx" in readable


def test_a_production_name_that_does_not_resolve(tmp_path: Path) -> None:
    """Rendered, never started: the name, the certificate and every process are named."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    leaf.private_key_pem.write_to_path(tmp_path / "key.pem")
    deployment = new_deployment(
        tmp_path / "var",
        environment="production",
        server_name="parta-doctor.invalid",  # RFC 6761: never resolves
        tls_cert_file=tmp_path / "cert.pem",
        tls_key_file=tmp_path / "key.pem",
        synapse_database="postgresql",
        https_port=free_ports(1)[0],
        http_port=free_ports(1)[0],
        public_bind_address="127.0.0.1",
    )
    render_all(deployment.settings)
    make_private(deployment.settings.var_dir)
    findings = diagnose(deployment.settings.var_dir)
    unresolved = only(findings, "dns")
    assert len(unresolved) == 2
    assert unresolved[0].startswith("parta-doctor.invalid does not resolve")
    assert "Add its A (and AAAA) record" in unresolved[0]
    assert "widgets.parta-doctor.invalid does not resolve" in unresolved[1]
    (certificate,) = only(findings, "certificate")
    assert "does not cover parta-doctor.invalid, widgets.parta-doctor.invalid" in certificate
    assert not only(findings, "well-known")  # not asked of a name that does not resolve
    assert len(only(findings, "service")) == len(deployment.specs()) > 10


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    # A cluster of its own: a production region holds ~65 connections (5 for each of
    # Synapse's processes), and the machine's server allows 100 to every test at once.
    with (
        throwaway_postgres() as postgres,
        production_deployment(postgres, tmp_path_factory.mktemp("doctor")) as running,
    ):
        yield running


@pytest.mark.postgres
def test_a_healthy_production_region_has_no_errors(production: Production) -> None:
    s = production.settings
    findings = diagnose(s.var_dir, tls=production.tls())
    assert errors(findings) == []
    (certificate,) = only(findings, "certificate", "ok")
    assert "covers localhost, widgets.localhost" in certificate
    # The test's names are loopback ones: said, as a warning, for a real region.
    loopback = only(findings, "dns", "warning")
    assert (
        len(loopback) == 2
        and "widgets.localhost resolves to this machine's loopback" in (loopback[1])
    )
    well_known = only(findings, "well-known", "ok")
    assert f"https://localhost:{s.https_port}/.well-known/matrix/server answers" in well_known[0]
    assert len(well_known) == 2
    assert only(findings, "service", "ok") == [
        f"{len(production.deployment.specs())} processes run and answer their health URL."
    ]
    # Trusting only the system's authorities, as a phone does, the test CA is refused.
    untrusted = only(diagnose(s.var_dir), "well-known")
    assert len(untrusted) == 2 and "CERTIFICATE_VERIFY_FAILED" in untrusted[0]


@pytest.mark.postgres
def test_an_expired_or_wrong_name_certificate(production: Production) -> None:
    s = production.settings
    cert, key = Path(s.tls_cert_file), Path(s.tls_key_file)
    served = cert.read_bytes(), key.read_bytes()
    now = datetime.now(UTC)
    try:
        for leaf, words in (
            (
                production.ca.issue_cert(
                    "localhost",
                    "widgets.localhost",
                    not_before=now - timedelta(days=90),
                    not_after=now - timedelta(days=1),
                ),
                "expired on",
            ),
            (production.ca.issue_cert("localhost"), "does not cover widgets.localhost"),
        ):
            cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
            leaf.private_key_pem.write_to_path(key)
            (problem,) = only(diagnose(s.var_dir, tls=production.tls()), "certificate")
            assert words in problem and str(cert) in problem
    finally:
        cert.write_bytes(served[0])
        key.write_bytes(served[1])
    assert not only(diagnose(s.var_dir, tls=production.tls()), "certificate")


@pytest.mark.postgres
def test_a_stopped_worker_and_its_port_taken(production: Production) -> None:
    deployment = production.deployment
    (pusher,) = topology(production.settings).of("pusher")
    assert deployment.supervisor.stop(f"synapse-{pusher.name}")
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", pusher.port))
            squatter.listen()
            findings = diagnose(production.settings.var_dir, tls=production.tls())
        (stopped,) = only(findings, "service")
        assert f"Synapse's worker {pusher.name} (synapse-{pusher.name}) is not running" in stopped
        assert f"synapse-{pusher.name}.log" in stopped
        (taken,) = only(findings, "port")
        assert f"Port {pusher.port} on 127.0.0.1 (PARTA_SYNAPSE_WORKER_BASE_PORT)" in taken
        assert len(errors(findings)) == 2
    finally:
        deployment.up()
    assert errors(diagnose(production.settings.var_dir, tls=production.tls())) == []
