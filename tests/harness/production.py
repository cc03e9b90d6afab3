"""Production mode on loopback, for the tests: Synapse's workers over a Redis of the test's
own, on PostgreSQL, behind nginx with a certificate from a CA made here (trustme), brought
up by `parta production` under Parta's supervisor (CI has no systemd).

Clients trust that CA only (`Production.tls()`); Chromium trusts the certificate's key
(`spki_hash`). Host names: `localhost` for the region, `widgets.localhost` for the widgets
(Chromium resolves every `*.localhost` to loopback by itself).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from psycopg2 import sql

from foundation.settings import Settings
from parta.deployment import SOURCE_ROOT, LocalDeployment
from tests.harness.ports import free_ports
from tests.harness.postgres import PostgresServer
from tests.harness.redis import redis_server
from tests.harness.region import write_config

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@dataclass
class Production:
    deployment: LocalDeployment
    ca: trustme.CA
    leaf_pem: bytes
    output: str  # what `./deploy.sh production` printed
    logrotate: Path  # the logrotate configuration it wrote

    @property
    def settings(self) -> Settings:
        return self.deployment.settings

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.settings.https_port}"

    @property
    def widgets_origin(self) -> str:
        return f"https://widgets.localhost:{self.settings.https_port}"

    def tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def https(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.origin, verify=self.tls(), timeout=30)

    def spki_hash(self) -> str:
        """What Chromium's --ignore-certificate-errors-spki-list takes: base64(SHA-256(SPKI))."""
        key = x509.load_pem_x509_certificate(self.leaf_pem).public_key()
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(der).digest()).decode()


def free_port_range(count: int) -> int:
    """A base port with `count` free loopback ports after it (Synapse's workers).

    Below Linux's ephemeral range (32768 and up), from which every outgoing connection
    and every bind to port 0 takes its port: a range there could be taken between this
    check and the workers' start.
    """
    for _ in range(200):
        base = secrets.randbelow(10_000) + 20_000
        with ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports found")


@contextmanager
def production_deployment(
    postgres: PostgresServer, workdir: Path, **overrides: object
) -> Iterator[Production]:
    """A production-mode region in `workdir`, brought up by `./deploy.sh production` (as
    root, Debian's packages already there as `./deploy.sh test` installs them): it writes
    var/production.env, creates the PostgreSQL roles and databases (names of this test's
    own, so the machine's are untouched) and starts everything under the supervisor.
    Stopped, and its databases and roles dropped, afterwards."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "widgets.localhost")
    tls_dir = workdir / "tls"
    tls_dir.mkdir(parents=True)
    leaf.private_key_pem.write_to_path(tls_dir / "key.pem")
    (tls_dir / "fullchain.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    tag = secrets.token_hex(4)
    synapse_name, parta_name = f"parta_prod_synapse_{tag}", f"parta_prod_parta_{tag}"
    parta_password = secrets.token_urlsafe(16)
    with redis_server() as redis:
        https_port, http_port = free_ports(2)
        # Two widget processes unless a test asks for more: calls are routed between them.
        widget_processes = int(str(overrides.get("widget_processes", 2)))
        base = free_port_range(40 + widget_processes)
        settings: dict[str, object] = {
            "server_name": "localhost",
            "tls_cert_file": tls_dir / "fullchain.pem",
            "tls_key_file": tls_dir / "key.pem",
            "https_port": https_port,
            "http_port": http_port,
            "public_bind_address": "127.0.0.1",
            "synapse_postgres_host": postgres.host,
            "synapse_postgres_port": postgres.port,
            "synapse_postgres_user": synapse_name,
            "synapse_postgres_db": synapse_name,
            "database_url": f"postgresql+psycopg2://{parta_name}:{parta_password}"
            f"@{postgres.host}:{postgres.port}/{parta_name}",
            "redis_port": redis.port,
            # One range for Synapse's workers (40) and the widget processes after them.
            "synapse_worker_base_port": base,
            "widget_processes": widget_processes,
            "widgets_port": base + 40,
            **overrides,
        }
        var_dir = workdir / "var"
        write_config(var_dir, **settings)
        environment = {
            **os.environ,
            "PARTA_VAR_DIR": str(var_dir),
            "PARTA_LOGROTATE_DIR": str(workdir),  # not the host's /etc/logrotate.d
        }
        try:
            done = subprocess.run(
                [str(SOURCE_ROOT / "deploy.sh"), "production"],
                capture_output=True, text=True, timeout=900, cwd=SOURCE_ROOT, env=environment,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            deployment = LocalDeployment(Settings.load(var_dir))
            assert f"Homeserver for Element:  https://localhost:{https_port}" in done.stdout
            try:
                yield Production(
                    deployment, ca, leaf.cert_chain_pems[0].bytes(), done.stdout,
                    workdir / "parta",
                )  # fmt: skip
            finally:
                deployment.stop()
        finally:
            _drop(postgres, synapse_name, parta_name)


def _drop(postgres: PostgresServer, *names: str) -> None:
    """Drop the databases and roles `parta production` made for the test."""
    connection = postgres.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cur:
            for name in names:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        connection.close()


@contextmanager
def chromium_trusting(production: Production) -> Iterator[Browser]:
    """Debian's Chromium, headless, trusting exactly the region's certificate (by its key),
    as a phone trusts the region's CA."""
    # Imported here: bench/load.py uses this module without the test extras.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                f"--ignore-certificate-errors-spki-list={production.spki_hash()}",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
