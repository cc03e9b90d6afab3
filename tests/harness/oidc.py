"""A real OpenID Connect provider on loopback: `oidc-provider-mock` as its own process.

It is a complete provider (discovery, authorisation, token, userinfo, JWKS) whose sign-in
page lists the people it was started with as buttons, by their `sub`: a test "signs in at
the region's portal" by pressing one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.harness.ports import free_ports
from tests.harness.processes import stop
from tests.harness.waiting import wait_until


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str = "parta"
    client_secret: str = "region-portal-secret"


def _answers(issuer: str) -> bool:
    try:
        answer = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
    except httpx.TransportError:
        return False
    return answer.status_code == 200 and answer.json().get("issuer") == issuer


@contextmanager
def oidc_provider(people: Sequence[Mapping[str, object]], log: Path) -> Iterator[Provider]:
    """Run the provider with `people` (claims, each with its `sub`) until the block ends."""
    (port,) = free_ports(1)
    issuer = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for person in people:
        argv += ["--user-claims", json.dumps(person, ensure_ascii=False)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: _answers(issuer) or process.poll() is not None,
            f"the OIDC provider on {issuer} (log: {log})",
            within=30,
        )
        if process.poll() is not None:
            raise RuntimeError(f"the OIDC provider exited: see {log}")
        yield Provider(issuer)
    finally:
        stop(process)
