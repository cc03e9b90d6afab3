"""The operator's TLS certificate, checked before production mode serves it.

nginx and coturn will serve `PARTA_TLS_CERT_FILE` with `PARTA_TLS_KEY_FILE` to every phone
of the region. A wrong file there shows up as phones that cannot connect ("certificate
not trusted", "connection not private"), far from its cause; so production mode checks it
first and says what is wrong and what to do: the file missing or unreadable, expired or
not yet valid, a name people use that it does not cover, a key that is not the
certificate's, or a key behind a passphrase (nginx would stop at every start to ask).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

RENEW_WITHIN = timedelta(days=14)  # Let's Encrypt renews at 30 days left; 14 means it failed


class CertificateProblem(Exception):
    """The certificate or its key cannot be served; the message says what to do."""


@dataclass(frozen=True)
class CertificateReport:
    """What the operator's certificate is, once it passed the checks."""

    names: tuple[str, ...]  # the DNS names it covers (subjectAltName)
    not_after: datetime
    issuer: str
    chain_length: int
    warnings: list[str] = field(default_factory=list)  # served, but needs the operator

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now).days


def covers(pattern: str, name: str) -> bool:
    """Whether a certificate name covers a host name (RFC 6125: a wildcard stands for
    exactly one whole label, the leftmost)."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    head, dot, rest = name.partition(".")
    return bool(head and dot) and rest == pattern[2:]


def check_certificate(
    cert_file: Path, key_file: Path, names: Sequence[str], *, now: datetime | None = None
) -> CertificateReport:
    """Check the certificate chain and key production mode would serve for `names`.

    Raises:
        CertificateProblem: the first thing that would stop a phone connecting, in words.
    """
    now = now or datetime.now(UTC)
    chain = _read_chain(cert_file)
    leaf = chain[0]
    key = _read_key(key_file)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != leaf.public_key().public_bytes(der, public):
        raise CertificateProblem(
            f"The key in {key_file} is not the key of the certificate in {cert_file}: they "
            "come from different requests. Use the key file that was made with this "
            "certificate's request (certbot keeps both as privkey.pem and fullchain.pem)."
        )
    if now < leaf.not_valid_before_utc:
        raise CertificateProblem(
            f"The certificate in {cert_file} is not valid until "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC. Check the host's clock, or "
            "wait until then."
        )
    if now >= leaf.not_valid_after_utc:
        raise CertificateProblem(
            f"The certificate in {cert_file} expired on {leaf.not_valid_after_utc:%Y-%m-%d}. "
            "Renew it (certbot renew) and run the command again."
        )
    covered = _dns_names(leaf)
    missing = [n for n in names if not any(covers(p, n) for p in covered)]
    if missing:
        raise CertificateProblem(
            f"The certificate in {cert_file} does not cover {', '.join(missing)}; it covers "
            f"{', '.join(covered) or 'no DNS name at all'}. Ask for a certificate that "
            "names every public host name of the region (certbot -d for each)."
        )
    _check_order(chain, cert_file)
    warnings = []
    if len(chain) == 1 and leaf.issuer != leaf.subject:
        warnings.append(
            f"{cert_file} holds only the server's certificate. If its issuer is an "
            "intermediate authority (Let's Encrypt's are), give the full chain "
            "(fullchain.pem): phones that lack the intermediate refuse to connect."
        )
    if leaf.not_valid_after_utc - now < RENEW_WITHIN:
        warnings.append(
            f"The certificate expires on {leaf.not_valid_after_utc:%Y-%m-%d}. Renew it now "
            "(certbot renew), then run the command again."
        )
    return CertificateReport(
        names=tuple(covered),
        not_after=leaf.not_valid_after_utc,
        issuer=leaf.issuer.rfc4514_string(),
        chain_length=len(chain),
        warnings=warnings,
    )


def _read_chain(cert_file: Path) -> list[x509.Certificate]:
    try:
        data = cert_file.read_bytes()
    except FileNotFoundError:
        raise CertificateProblem(
            f"There is no certificate file at {cert_file}. Set PARTA_TLS_CERT_FILE to the "
            "full chain (for certbot: /etc/letsencrypt/live/<name>/fullchain.pem)."
        ) from None
    except OSError as exc:
        raise CertificateProblem(
            f"The certificate file {cert_file} cannot be read: {exc}."
        ) from exc
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateProblem(
            f"{cert_file} holds no PEM certificate (the text between "
            "-----BEGIN CERTIFICATE----- lines). Give the full chain in PEM form."
        ) from None


def _read_key(key_file: Path) -> PrivateKeyTypes:
    try:
        data = key_file.read_bytes()
    except FileNotFoundError:
        raise CertificateProblem(
            f"There is no key file at {key_file}. Set PARTA_TLS_KEY_FILE to the "
            "certificate's private key (for certbot: privkey.pem)."
        ) from None
    except OSError as exc:
        raise CertificateProblem(f"The key file {key_file} cannot be read: {exc}.") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertificateProblem(
            f"The key in {key_file} is protected by a passphrase, which nginx would ask for "
            "at every start. Store it without one: openssl pkey -in <key> -out <new key>."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateProblem(
            f"{key_file} holds no PEM private key (the text between -----BEGIN ... PRIVATE "
            "KEY----- lines)."
        ) from None
    return key


def _dns_names(leaf: x509.Certificate) -> list[str]:
    try:
        extension = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []  # browsers and Element ignore the subject's common name
    return extension.value.get_values_for_type(x509.DNSName)


def _check_order(chain: list[x509.Certificate], cert_file: Path) -> None:
    """Each certificate of the file must be signed by the next one, as TLS sends them."""
    for position, (child, parent) in enumerate(itertools.pairwise(chain), start=1):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateProblem(
                f"In {cert_file}, certificate {position} is not signed by certificate "
                f"{position + 1}: the chain is out of order or mixes certificates. Put the "
                "server's certificate first, then each issuer in turn (certbot's "
                "fullchain.pem is in that order)."
            ) from None
