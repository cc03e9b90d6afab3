"""Whose address a request comes from: `X-Forwarded-For` is believed only from the proxies
in `PARTA_TRUSTED_PROXIES` (issue 18: uvicorn's default believed any local client, so 25
wrong logins with a rotating header were never throttled and the audit log recorded a
forged address).

Each case starts its own provisioning service with `parta serve provisioning`, the command
`./deploy.sh` runs, on the region's database and Synapse: its login throttle is its own, so
the wrong logins here throttle nobody else's tests.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from foundation.settings import Settings
from parta.deployment import LocalDeployment
from provisioning.db.models import AuditEvent, Person, WebSession
from tests.harness.ports import free_ports
from tests.harness.processes import stop
from tests.harness.region import region_session

ATTEMPTS = 25  # the probe; the throttle allows 20 failures per address


@contextmanager
def provisioning_service(
    region: LocalDeployment, log: Path, trusted_proxies: str | None
) -> Iterator[str]:
    (port,) = free_ports(1)
    env = {key: value for key, value in os.environ.items() if key != "PARTA_TRUSTED_PROXIES"}
    env.update(
        PARTA_VAR_DIR=str(region.settings.var_dir),
        PARTA_PROVISIONING_PORT=str(port),
        PARTA_RECONCILE_INTERVAL_S="86400",  # the region's own service reconciles
    )
    if trusted_proxies is not None:
        env["PARTA_TRUSTED_PROXIES"] = trusted_proxies
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "parta", "serve", "provisioning"],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no answer in 60 s: {log.read_text()}"
            time.sleep(0.2)
        yield base
    finally:
        stop(process, grace_s=30)


def _csrf(http: httpx.Client, page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', http.get(page).text)
    assert found is not None
    return found.group(1)


def _login(http: httpx.Client, login: str, password: str, forged: str) -> int:
    form = {"login": login, "password": password, "csrf_token": _csrf(http, "/login")}
    answer = http.post("/login", data=form, headers={"X-Forwarded-For": forged})
    return answer.status_code


def _signed_in_school(
    region: LocalDeployment, base: str, login_from: str, act_from: str
) -> tuple[str | None, str | None]:
    """The region admin signs in and adds a school, each with a forged header; the
    addresses the session and the audit log recorded."""
    s = region.settings
    with httpx.Client(base_url=base, timeout=30) as http:
        password = s.region_admin_password.get_secret_value()
        assert _login(http, s.region_admin_localpart, password, login_from) == 303
        slug = f"proxy-{secrets.token_hex(3)}"
        form = {"name": f"Школа {slug}", "slug": slug, "csrf_token": _csrf(http, "/schools")}
        added = http.post("/schools", data=form, headers={"X-Forwarded-For": act_from})
        assert added.status_code == 303, added.text
        session_token = http.cookies.get("parta_session")
    with region_session(region) as session:
        origin = session.scalar(
            select(AuditEvent.origin).where(
                AuditEvent.action == "school.created", AuditEvent.subject == slug
            )
        )
        ips = session.scalars(
            select(WebSession.ip)
            .join(Person, Person.id == WebSession.person_id)
            .where(Person.matrix_user_id == s.region_admin_user_id)
            .order_by(WebSession.created_at.desc())
        ).all()
    assert session_token is not None
    return (ips[0] if ips else None), origin


def test_a_local_client_cannot_forge_its_address(region: LocalDeployment, tmp_path: Path) -> None:
    with provisioning_service(region, tmp_path / "provisioning.log", None) as base:
        session_ip, origin = _signed_in_school(region, base, "203.0.113.7", "198.51.100.9")
        assert (session_ip, origin) == ("127.0.0.1", "127.0.0.1")
        statuses = []
        with httpx.Client(base_url=base, timeout=30) as http:
            for attempt in range(ATTEMPTS):
                login = f"nobody-{secrets.token_hex(3)}"  # a fresh account: only the address
                statuses.append(_login(http, login, "wrong-password", f"10.0.{attempt}.1"))
    assert statuses[:20] == [401] * 20, statuses
    assert statuses[20:] == [429] * (ATTEMPTS - 20), statuses


def test_the_configured_proxy_s_header_is_believed(region: LocalDeployment, tmp_path: Path) -> None:
    with provisioning_service(region, tmp_path / "provisioning.log", "127.0.0.1") as base:
        session_ip, origin = _signed_in_school(region, base, "203.0.113.7", "198.51.100.9")
    assert (session_ip, origin) == ("203.0.113.7", "198.51.100.9")


def test_trusted_proxies_defaults_and_refuses_everyone() -> None:
    assert Settings(environment="development").forwarded_allow_ips == []
    production = Settings.model_construct(environment="production", trusted_proxies=None)
    assert production.forwarded_allow_ips == ["127.0.0.1"]
    listed = Settings(trusted_proxies=" 127.0.0.1, 10.0.0.0/24 ")
    assert listed.forwarded_allow_ips == ["127.0.0.1", "10.0.0.0/24"]
    assert Settings(trusted_proxies="").forwarded_allow_ips == []
    refused = {"*": "any client", "127.0.0.1,*": "any client", "nginx": "not an IP"}
    for wrong, words in refused.items():
        with pytest.raises(ValueError, match=words):
            Settings(trusted_proxies=wrong)
