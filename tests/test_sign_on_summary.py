"""The deploy summary tells the region administrator how to sign in (`parta.cli`)."""

from __future__ import annotations

from pathlib import Path

from parta.cli import _admin_sign_in
from tests.test_sign_on_config import OIDC, _settings


def test_with_passwords_the_summary_gives_the_password(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "var")
    said = _admin_sign_in(settings, "")
    assert settings.region_admin_password.get_secret_value() in said


def test_with_passwords_off_it_names_the_sign_on_and_never_the_password(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "var", **OIDC, password_login="false")
    said = _admin_sign_in(settings, "")
    assert settings.region_admin_password.get_secret_value() not in said
    assert "«Госуслуги региона»" in said and "phone number" in said
    roster = _settings(tmp_path / "roster", **OIDC, password_login="false", oidc_claim="roster_id")
    assert "roster ID" in _admin_sign_in(roster, "")
