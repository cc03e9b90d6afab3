"""The rendered Synapse configuration: valid for Synapse itself, hardened, secrets private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from synapse.config.homeserver import HomeServerConfig

from parta.deployment import LocalDeployment
from parta.render import render_all, render_synapse_config
from parta.secrets import ensure_secrets
from parta.settings import Settings
from tests.harness.region import write_config


def _settings(var_dir: Path, **overrides: object) -> Settings:
    write_config(var_dir, **overrides)
    ensure_secrets(var_dir)
    return Settings.load(var_dir)


def _homeserver(settings: Settings) -> dict[str, object]:
    files = {f.path.name: f.content for f in render_synapse_config(settings)}
    loaded = yaml.safe_load(files["homeserver.yaml"])
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_synapse_accepts_the_rendered_config(tmp_path: Path, database: str) -> None:
    settings = _settings(tmp_path / "var", synapse_database=database)
    render_all(settings)
    config = HomeServerConfig.load_config(
        "parta-test", ["--config-path", str(settings.synapse_dir / "homeserver.yaml")]
    )
    assert config.server.server_name == "localhost"
    expected_engine = {"sqlite": "sqlite3", "postgresql": "psycopg2"}[database]
    assert config.database.databases[0].config["name"] == expected_engine
    assert config.appservice.app_service_config_files == [
        str(settings.synapse_dir / "appservice-parta.yaml")
    ]


def test_the_operators_own_settings_win_and_restart_synapse(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "var")
    render_all(settings)
    deployment = LocalDeployment(settings)
    synapse = deployment.specs()[0]
    assert synapse.argv[-2:] == ["--config-path", str(settings.synapse_overrides_dir)]
    (settings.synapse_overrides_dir / "50-local.yaml").write_text(
        "max_upload_size: 7M\n", encoding="utf-8"
    )
    config = HomeServerConfig.load_config("parta-test", synapse.argv[3:])
    assert config.media.max_upload_size == 7 * 1024 * 1024
    assert config.server.server_name == "localhost"  # the rest stays ours
    assert deployment.specs()[0].fingerprint != synapse.fingerprint
    render_all(settings)  # rendering again leaves the operator's file alone
    assert (settings.synapse_overrides_dir / "50-local.yaml").exists()


def test_hardening_options(tmp_path: Path) -> None:
    hs = _homeserver(_settings(tmp_path / "var"))
    assert hs["enable_registration"] is False
    assert hs["allow_guest_access"] is False
    assert hs["user_directory"] == {
        "enabled": True,
        "search_all_users": False,
        "exclude_remote_users": True,
        "prefer_local_users": True,
    }
    assert hs["limit_profile_requests_to_users_who_share_rooms"] is True
    assert hs["require_auth_for_profile_requests"] is True
    assert hs["room_list_publication_rules"] == [
        {"user_id": "@parta:localhost", "action": "allow"},
        {"action": "deny"},
    ]
    assert hs["default_room_version"] == "12"
    assert hs["federation_domain_whitelist"] == []
    assert hs["trusted_key_servers"] == []
    assert hs["max_upload_size"] == "100M"
    listeners = hs["listeners"]
    assert isinstance(listeners, list)
    metrics = [item for item in listeners if item["type"] == "metrics"]
    assert metrics and metrics[0]["bind_addresses"] == ["127.0.0.1"]


def test_federation_allow_list_is_rendered(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path / "var", federation_allow_list='["north.example.org","south.example.org"]'
    )
    assert _homeserver(settings)["federation_domain_whitelist"] == [
        "north.example.org",
        "south.example.org",
    ]


def test_appservice_registration_reserves_bot_and_managed_aliases(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "var", server_name="school.example.org")
    files = {f.path.name: f.content for f in render_synapse_config(settings)}
    registration = yaml.safe_load(files["appservice-parta.yaml"])
    assert registration["sender_localpart"] == "parta"
    assert registration["rate_limited"] is False
    assert registration["as_token"] == settings.as_token.get_secret_value()
    users = registration["namespaces"]["users"]
    assert users == [{"exclusive": True, "regex": r"@parta(-.*)?:school\.example\.org"}]
    aliases = [a["regex"] for a in registration["namespaces"]["aliases"]]
    assert aliases == [
        r"#region\-.*:school\.example\.org",
        r"#school\-.*:school\.example\.org",
        r"#family\-.*:school\.example\.org",
    ]


def test_secrets_are_private_generated_once_and_rendering_is_stable(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    settings = _settings(var_dir)
    secrets_file = var_dir / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    before = secrets_file.read_text()
    assert ensure_secrets(var_dir) == []
    assert secrets_file.read_text() == before

    first = render_all(settings)
    assert {p.name for p in first} == {
        "homeserver.yaml",
        "log.yaml",
        "appservice-parta.yaml",
        "localhost.signing.key",
    }
    for name in ("homeserver.yaml", "appservice-parta.yaml", "localhost.signing.key"):
        assert stat.S_IMODE((settings.synapse_dir / name).stat().st_mode) == 0o600
    key = (settings.synapse_dir / "localhost.signing.key").read_text()
    assert render_all(settings) == []
    assert (settings.synapse_dir / "localhost.signing.key").read_text() == key


def test_production_refuses_placeholder_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="production needs real secrets"):
        Settings(environment="production", as_token="changeme")  # type: ignore[arg-type]


def test_invalid_server_name_is_explained() -> None:
    with pytest.raises(ValidationError, match="is not a Matrix server name"):
        Settings(server_name="school example")


def test_a_misspelt_setting_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    write_config(var_dir)
    with (var_dir / "parta.env").open("a") as config:
        config.write("PARTA_SYNAPSE_PROT=8448\n")
    with pytest.raises(ValueError, match="PARTA_SYNAPSE_PROT is not a Parta setting; did you mean"):
        Settings.load(var_dir)
