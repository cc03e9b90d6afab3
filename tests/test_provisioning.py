"""The provisioning service: health, migrations, and the region admin's record."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from foundation.settings import Settings
from parta.deployment import LocalDeployment
from parta.secrets import ensure_secrets
from provisioning.app import create_app
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import AuditEvent, Person, Role
from tests.harness.ports import free_ports
from tests.harness.region import write_config


def test_health_reports_database_and_synapse(region: LocalDeployment) -> None:
    response = httpx.get(f"{region.settings.provisioning_url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "synapse": "ok"}


def test_health_is_degraded_when_synapse_is_down(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    write_config(var_dir, synapse_port=free_ports(1)[0])  # nothing listens there
    ensure_secrets(var_dir)
    with TestClient(create_app(Settings.load(var_dir))) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("degraded", "ok")
    assert body["synapse"].startswith("error")


def test_region_admin_is_recorded_with_role_and_audit(region: LocalDeployment) -> None:
    engine = make_engine(region.settings.sqlalchemy_url)
    try:
        with make_session_factory(engine)() as session:
            admin = session.scalar(
                select(Person).where(Person.matrix_user_id == region.settings.region_admin_user_id)
            )
            assert admin is not None
            assert [r.role for r in admin.roles] == [Role.REGION_ADMIN]
            actions = set(session.scalars(select(AuditEvent.action)))
            assert {"region.created", "role.granted"} <= actions
    finally:
        engine.dispose()


def test_errors_use_the_matrix_error_shape_for_api_clients(region: LocalDeployment) -> None:
    base = region.settings.provisioning_url
    for path, headers in (
        ("/api/v1/no-such-thing", {}),
        ("/no-such-page", {"Accept": "application/json"}),
    ):
        response = httpx.get(f"{base}{path}", headers=headers, timeout=10)
        assert response.status_code == 404
        assert response.json() == {"errcode": "M_NOT_FOUND", "error": "Not Found"}


def test_browsers_get_an_error_page_in_their_language(region: LocalDeployment) -> None:
    url = f"{region.settings.provisioning_url}/no-such-page"
    page = httpx.get(url, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 404 and "Такой страницы нет" in page.text
    assert page.headers["cache-control"] == "no-store"
    english = httpx.get(url, headers={"Accept": "text/html"}, cookies={"parta_lang": "en"})
    assert "There is no such page" in english.text


def test_only_parta_services_may_ask_for_a_reconcile(region: LocalDeployment) -> None:
    url = f"{region.settings.provisioning_url}/internal/reconcile"
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        response = httpx.post(url, headers=headers, timeout=10)
        assert response.status_code == 403
        assert response.json()["errcode"] == "M_FORBIDDEN"
    token = region.settings.as_token.get_secret_value()
    response = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 202


def test_the_library_api_is_for_parta_services_and_tells_staff_apart(
    region: LocalDeployment,
) -> None:
    base = f"{region.settings.provisioning_url}/internal/library"
    admin = {"user_id": region.settings.region_admin_user_id}
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        for path in ("", "/access", "/1"):
            response = httpx.get(f"{base}{path}", params=admin, headers=headers, timeout=10)
            assert response.status_code == 403, path
            assert response.json()["errcode"] == "M_FORBIDDEN"
    service = {"Authorization": f"Bearer {region.settings.as_token.get_secret_value()}"}
    access = httpx.get(f"{base}/access", params=admin, headers=service, timeout=10)
    assert access.json() == {"may_use": True}  # the region administrator
    stranger = {"user_id": f"@nobody:{region.settings.server_name}"}
    access = httpx.get(f"{base}/access", params=stranger, headers=service, timeout=10)
    assert access.json() == {"may_use": False}
    refused = httpx.get(base, params=stranger, headers=service, timeout=10)
    assert refused.status_code == 403 and refused.json()["errcode"] == "PARTA_LIBRARY_REFUSED"
    assert httpx.get(base, params=admin, headers=service, timeout=10).status_code == 200
