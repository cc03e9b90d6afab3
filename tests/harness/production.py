"""Production mode on loopback, for the tests: Synapse's workers over a Redis of the test's
own, on PostgreSQL, behind nginx with a certificate from a CA made here (trustme), run by
Parta's supervisor exactly as `./deploy.sh` runs it.

Clients trust that CA only (`Production.tls()`); Chromium trusts the certificate's key
(`spki_hash`). Host names: `localhost` for the region, `widgets.localhost` for the widgets
(Chromium resolves every `*.localhost` to loopback by itself).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from foundation.settings import Settings
from parta.deployment import LocalDeployment
from tests.harness.ports import free_ports
from tests.harness.postgres import PostgresServer, scratch_database
from tests.harness.redis import redis_server
from tests.harness.region import new_deployment


@dataclass
class Production:
    deployment: LocalDeployment
    ca: trustme.CA
    leaf_pem: bytes

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
    """A base port with `count` free loopback ports after it (Synapse's workers)."""
    for _ in range(200):
        base = secrets.randbelow(20_000) + 30_000
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
    """A running production-mode deployment in `workdir`, stopped and dropped afterwards."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "widgets.localhost")
    tls_dir = workdir / "tls"
    tls_dir.mkdir(parents=True)
    leaf.private_key_pem.write_to_path(tls_dir / "key.pem")
    (tls_dir / "fullchain.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    with (
        redis_server() as redis,
        scratch_database(postgres, "parta_prod_synapse") as synapse_db,
        scratch_database(postgres, "parta_prod_provisioning") as provisioning_db,
    ):
        https_port, http_port = free_ports(2)
        # Two widget processes unless a test asks for more: calls are routed between them.
        widget_processes = int(str(overrides.get("widget_processes", 2)))
        settings: dict[str, object] = {
            "environment": "production",
            "server_name": "localhost",
            "tls_cert_file": tls_dir / "fullchain.pem",
            "tls_key_file": tls_dir / "key.pem",
            "https_port": https_port,
            "http_port": http_port,
            "public_bind_address": "127.0.0.1",
            "synapse_database": "postgresql",
            "synapse_postgres_host": postgres.host,
            "synapse_postgres_port": postgres.port,
            "synapse_postgres_user": postgres.user,
            "synapse_postgres_db": synapse_db,
            "database_url": postgres.url(provisioning_db),
            "redis_port": redis.port,
            "synapse_worker_base_port": free_port_range(40),
            "widget_processes": widget_processes,
            "widgets_port": free_port_range(widget_processes),
            **overrides,
        }
        deployment = new_deployment(workdir / "var", **settings)
        try:
            deployment.up()
            yield Production(deployment, ca, leaf.cert_chain_pems[0].bytes())
        finally:
            deployment.stop()
