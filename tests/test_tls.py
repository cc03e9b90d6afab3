"""Production mode's certificate check (parta/tls.py, `parta check-tls`), on certificates
made by a real CA in the test (trustme): each way an operator's files go wrong is named."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from parta.tls import CertificateProblem, check_certificate, covers

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)
SERVER = "region.test"


def write(tmp_path: Path, leaf: trustme.LeafCert, *, chain: bool = True) -> tuple[Path, Path]:
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    pems = leaf.cert_chain_pems if chain else leaf.cert_chain_pems[:1]
    cert.write_bytes(b"".join(p.bytes() for p in pems))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


@pytest.fixture(scope="module")
def intermediate() -> trustme.CA:
    """Like Let's Encrypt: the server's certificate is signed by an intermediate."""
    return trustme.CA().create_child_ca()


def test_a_good_full_chain_passes_with_its_names_and_expiry(
    tmp_path: Path, intermediate: trustme.CA
) -> None:
    leaf = intermediate.issue_cert(SERVER, "matrix.region.test")
    cert, key = write(tmp_path, leaf)
    report = check_certificate(cert, key, [SERVER, "matrix.region.test"], now=NOW)
    assert report.names == (SERVER, "matrix.region.test")
    assert report.chain_length == 2 and report.warnings == []
    assert report.days_left(NOW) > 300


def test_a_name_the_certificate_does_not_cover_is_named(
    tmp_path: Path, intermediate: trustme.CA
) -> None:
    cert, key = write(tmp_path, intermediate.issue_cert(SERVER))
    with pytest.raises(
        CertificateProblem, match=r"does not cover chat\.region\.test; it covers region\.test"
    ):
        check_certificate(cert, key, [SERVER, "chat.region.test"], now=NOW)


def test_an_expired_certificate_says_when_and_what_to_do(
    tmp_path: Path, intermediate: trustme.CA
) -> None:
    ended = NOW - timedelta(days=3)
    leaf = intermediate.issue_cert(SERVER, not_before=NOW - timedelta(days=90), not_after=ended)
    cert, key = write(tmp_path, leaf)
    with pytest.raises(CertificateProblem, match=rf"expired on {ended:%Y-%m-%d}.*Renew"):
        check_certificate(cert, key, [SERVER], now=NOW)


def test_a_certificate_not_valid_yet_points_at_the_clock(
    tmp_path: Path, intermediate: trustme.CA
) -> None:
    leaf = intermediate.issue_cert(SERVER, not_before=NOW + timedelta(days=2))
    cert, key = write(tmp_path, leaf)
    with pytest.raises(CertificateProblem, match=r"not valid until.*clock"):
        check_certificate(cert, key, [SERVER], now=NOW)


def test_the_key_of_another_certificate_is_refused(
    tmp_path: Path, intermediate: trustme.CA
) -> None:
    cert, _ = write(tmp_path, intermediate.issue_cert(SERVER))
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = write(other, intermediate.issue_cert(SERVER))
    with pytest.raises(CertificateProblem, match="is not the key of the certificate"):
        check_certificate(cert, other_key, [SERVER], now=NOW)


def test_a_key_behind_a_passphrase_is_refused(tmp_path: Path, intermediate: trustme.CA) -> None:
    leaf = intermediate.issue_cert(SERVER)
    cert, key = write(tmp_path, leaf)
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(CertificateProblem, match=r"passphrase.*openssl pkey"):
        check_certificate(cert, key, [SERVER], now=NOW)


def test_missing_and_garbled_files_are_named(tmp_path: Path, intermediate: trustme.CA) -> None:
    cert, key = write(tmp_path, intermediate.issue_cert(SERVER))
    with pytest.raises(CertificateProblem, match=r"no certificate file at .*fullchain.pem"):
        check_certificate(tmp_path / "nothing" / "fullchain.pem", key, [SERVER], now=NOW)
    with pytest.raises(CertificateProblem, match="no key file at"):
        check_certificate(cert, tmp_path / "missing.pem", [SERVER], now=NOW)
    garbled = tmp_path / "garbled.pem"
    garbled.write_text("not a certificate")
    with pytest.raises(CertificateProblem, match="holds no PEM certificate"):
        check_certificate(garbled, key, [SERVER], now=NOW)
    with pytest.raises(CertificateProblem, match="holds no PEM private key"):
        check_certificate(cert, garbled, [SERVER], now=NOW)


def test_a_chain_out_of_order_is_refused(tmp_path: Path, intermediate: trustme.CA) -> None:
    leaf = intermediate.issue_cert(SERVER)
    cert, key = write(tmp_path, leaf)
    pems = leaf.cert_chain_pems
    cert.write_bytes(pems[1].bytes() + pems[0].bytes())  # issuer first
    with pytest.raises(CertificateProblem, match="is not the key of the certificate"):
        check_certificate(cert, key, [SERVER], now=NOW)  # the first one is served as leaf
    unrelated = trustme.CA().create_child_ca().issue_cert(SERVER).cert_chain_pems[1]
    cert.write_bytes(pems[0].bytes() + unrelated.bytes())
    with pytest.raises(CertificateProblem, match="certificate 1 is not signed by certificate 2"):
        check_certificate(cert, key, [SERVER], now=NOW)


def test_only_the_leaf_and_a_near_expiry_are_warnings(
    tmp_path: Path, intermediate: trustme.CA
) -> None:
    leaf = intermediate.issue_cert(SERVER, not_after=NOW + timedelta(days=5))
    cert, key = write(tmp_path, leaf, chain=False)
    report = check_certificate(cert, key, [SERVER], now=NOW)
    assert len(report.warnings) == 2
    assert "full chain" in report.warnings[0] and "Renew it now" in report.warnings[1]


@pytest.mark.parametrize(
    ("pattern", "name", "covered"),
    [
        ("region.test", "REGION.test.", True),
        ("*.region.test", "matrix.region.test", True),
        ("*.region.test", "region.test", False),  # a wildcard needs a label of its own
        ("*.region.test", "a.b.region.test", False),  # and stands for exactly one
        ("*.test", "region.test", True),
        ("region.test", "matrix.region.test", False),
    ],
)
def test_wildcards_cover_one_label(pattern: str, name: str, covered: bool) -> None:
    assert covers(pattern, name) is covered


def test_the_command_prints_what_to_do(tmp_path: Path, intermediate: trustme.CA) -> None:
    var = tmp_path / "var"
    var.mkdir()
    cert, key = write(tmp_path, intermediate.issue_cert(SERVER, f"widgets.{SERVER}"))
    env = {
        **os.environ,
        "PARTA_SERVER_NAME": SERVER,
        "PARTA_TLS_CERT_FILE": str(cert),
        "PARTA_TLS_KEY_FILE": str(key),
        "PARTA_PUBLIC_HOSTS": '["chat.region.test"]',
    }
    command = [sys.executable, "-m", "parta", "check-tls", "--var-dir", str(var)]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert refused.returncode == 1
    assert "does not cover chat.region.test" in refused.stderr
    env["PARTA_PUBLIC_HOSTS"] = "[]"
    passed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert passed.returncode == 0, passed.stderr
    assert f"covers {SERVER}, widgets.{SERVER} and expires on" in passed.stdout
    # The widgets' own host (PARTA_WIDGETS_HOST) must be covered too.
    env["PARTA_WIDGETS_HOST"] = f"calls.{SERVER}"
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert refused.returncode == 1 and f"does not cover calls.{SERVER}" in refused.stderr
