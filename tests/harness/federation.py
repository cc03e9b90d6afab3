"""Two regions that federate with each other on loopback, for tests.

Synapse sends federation requests over TLS only, to the port in the server name. So each
region is named `127.0.0.1:<port>`, and gets a second listener on that port with a
self-signed certificate. The settings a test needs beyond Parta's own (the listener, no
certificate checks, loopback not blocked) go into the region's `homeserver.d/`, the
operator's own settings (docs/operations.md), so Parta's rendered config stays as shipped.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from foundation.settings import Settings
from parta.deployment import LocalDeployment
from parta.render import render_all
from tests.harness.ports import free_ports
from tests.harness.region import new_deployment

LOOPBACK = "127.0.0.1"
CERTIFICATE = "federation-tls.crt"  # in the region's synapse directory


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / CERTIFICATE, directory / "federation-tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _federate_on_loopback(settings: Settings, port: int) -> None:
    """Add a TLS federation listener on `port`, keeping the rendered listeners."""
    render_all(settings)
    rendered = yaml.safe_load((settings.synapse_dir / "homeserver.yaml").read_text("utf-8"))
    cert, key = _self_signed(settings.synapse_dir)
    extra = {
        "listeners": [
            *rendered["listeners"],
            {
                "port": port,
                "bind_addresses": [LOOPBACK],
                "type": "http",
                "tls": True,
                "resources": [{"names": ["federation"], "compress": False}],
            },
        ],
        "tls_certificate_path": str(cert),
        "tls_private_key_path": str(key),
        "federation_verify_certificates": False,  # self-signed, on loopback only
        # Synapse blocks private addresses by default, and an IP literal server name is
        # checked against the blocklist alone (its allowlist does not apply there).
        "ip_range_blacklist": [],
        # One guest gets many invitations in the tests; Synapse allows 5 per person, then
        # one every 5 minutes (rc_invites.per_user).
        "rc_invites": {"per_user": {"per_second": 10, "burst_count": 100}},
    }
    (settings.synapse_overrides_dir / "50-federation-on-loopback.yaml").write_text(
        yaml.safe_dump(extra), encoding="utf-8"
    )


@contextmanager
def federated_regions(base: Path) -> Iterator[tuple[LocalDeployment, LocalDeployment]]:
    """Region A and region B, each on the other's allow-list, running; stopped at the end."""
    ports = free_ports(2)
    names = [f"{LOOPBACK}:{port}" for port in ports]
    regions: list[LocalDeployment] = []
    with ExitStack() as stack:
        for index, (port, title) in enumerate(zip(ports, ("Регион А", "Регион Б"), strict=True)):
            region = new_deployment(
                base / f"region-{'ab'[index]}" / "var",
                server_name=names[index],
                region_name=title,
                federation_allow_list=json.dumps([names[1 - index]]),
            )
            _federate_on_loopback(region.settings, port)
            stack.callback(region.stop)
            region.up()
            regions.append(region)
        yield regions[0], regions[1]
