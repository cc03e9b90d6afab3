"""The rendered Synapse configuration: valid for Synapse itself, hardened, secrets private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from synapse.config.homeserver import HomeServerConfig

from foundation.settings import Settings
from parta.deployment import LocalDeployment
from parta.render import render_all, render_synapse_config
from parta.secrets import ensure_secrets
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
        r"#docs\-.*:school\.example\.org",  # a person's documents room
        r"#appt\-.*:school\.example\.org",  # an appointment's room
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
        Settings(environment="production", synapse_database="postgresql", as_token="changeme")  # type: ignore[arg-type]


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


# --- TURN (coturn) ------------------------------------------------------------------------


def _rendered(settings: Settings) -> dict[str, str]:
    return {f.path.name: f.content for f in render_synapse_config(settings)}


def _options(conf: str) -> list[str]:
    return [line for line in conf.splitlines() if line and not line.startswith("#")]


def test_local_mode_has_no_turn_unless_asked(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "var")
    assert "turnserver.conf" not in _rendered(settings)
    assert not {"turn_uris", "turn_shared_secret"} & set(_homeserver(settings))
    render_all(settings)
    assert not settings.turn_config_path.exists()


def test_coturn_gets_the_generated_secret_and_refuses_internal_peers(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    settings = _settings(
        var_dir,
        server_name="school.example.org",
        turn_host="turn.school.example.org",
        turn_port=3479,
        turn_relay_min_port=50000,
        turn_relay_max_port=50999,
    )
    secret = settings.turn_shared_secret.get_secret_value()
    assert len(secret) >= 32
    # Generated at deploy time into var/secrets.env, never part of the templates.
    assert f"PARTA_TURN_SHARED_SECRET={secret}" in (var_dir / "secrets.env").read_text()
    options = _options(_rendered(settings)["turnserver.conf"])
    for expected in (
        "use-auth-secret",
        f"static-auth-secret={secret}",
        "realm=school.example.org",
        "listening-port=3479",
        "min-port=50000",
        "max-port=50999",
        "no-multicast-peers",
        "no-tcp-relay",
        "no-cli",
        "fingerprint",
        "no-tls",  # development: no certificate
    ):
        assert expected in options, expected
    denied = {line.removeprefix("denied-peer-ip=") for line in options if "denied-peer" in line}
    for internal in (
        "10.0.0.0-10.255.255.255",
        "172.16.0.0-172.31.255.255",
        "192.168.0.0-192.168.255.255",
        "127.0.0.0-127.255.255.255",
        "169.254.0.0-169.254.255.255",
        "100.64.0.0-100.127.255.255",
        "::1",
        "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ):
        assert internal in denied, internal
    assert not [line for line in options if line.startswith(("allowed-peer-ip", "cert=", "tls-"))]
    render_all(settings)
    assert stat.S_IMODE(settings.turn_config_path.stat().st_mode) == 0o600  # holds the secret
    assert settings.turn_config_path == var_dir / "turn" / "turnserver.conf"


def test_coturn_in_production_has_tls_and_the_sfus_private_address(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path / "var",
        environment="production",
        synapse_database="postgresql",
        turn_host="turn.school.example.org",
        turn_allowed_peer_ips='["10.0.0.7"]',
        turn_external_ip="203.0.113.9/10.0.0.7",
    )
    options = _options(_rendered(settings)["turnserver.conf"])
    for expected in (
        "tls-listening-port=5349",
        "cert=/etc/letsencrypt/live/turn.school.example.org/fullchain.pem",
        "pkey=/etc/letsencrypt/live/turn.school.example.org/privkey.pem",
        "no-tlsv1",
        "no-tlsv1_1",
        "allowed-peer-ip=10.0.0.7",
        "external-ip=203.0.113.9/10.0.0.7",
    ):
        assert expected in options, expected
    assert "no-tls" not in options
    assert "denied-peer-ip=10.0.0.0-10.255.255.255" in options  # the rest stays refused


def test_synapse_gets_turn_only_when_configured_and_accepts_it(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path / "var",
        environment="production",
        synapse_database="postgresql",
        turn_host="turn.school.example.org",
    )
    hs = _homeserver(settings)
    uris = [
        "turn:turn.school.example.org:3478?transport=udp",
        "turn:turn.school.example.org:3478?transport=tcp",
        "turns:turn.school.example.org:5349?transport=tcp",
    ]
    assert hs["turn_uris"] == uris
    assert hs["turn_shared_secret"] == settings.turn_shared_secret.get_secret_value()
    assert hs["turn_allow_guests"] is False
    render_all(settings)
    config = HomeServerConfig.load_config(
        "parta-test", ["--config-path", str(settings.synapse_dir / "homeserver.yaml")]
    )
    assert config.voip.turn_uris == uris
    assert config.voip.turn_shared_secret == settings.turn_shared_secret.get_secret_value()
    assert config.voip.turn_user_lifetime == 8 * 3600 * 1000  # ms: longer than a lesson

    # Given URIs win over the derived ones; a URI that is not TURN is refused.
    explicit = _settings(
        tmp_path / "var2", turn_uris='["turn:relay.example.org:443?transport=tcp"]'
    )
    assert _homeserver(explicit)["turn_uris"] == ["turn:relay.example.org:443?transport=tcp"]
    with pytest.raises(ValidationError, match="is not a TURN URI"):
        Settings(turn_uris=["https://relay.example.org"])
    with pytest.raises(ValidationError, match="turn_relay_min_port"):
        Settings(turn_relay_min_port=60000, turn_relay_max_port=50000)
