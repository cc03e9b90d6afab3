"""The region's single sign-on as settings and as Synapse's rendered `oidc_providers`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from synapse.config.homeserver import HomeServerConfig

from foundation.settings import Settings
from parta.render import render_all, render_synapse_config
from parta.secrets import ensure_secrets
from tests.harness.region import write_config

OIDC = {
    "oidc_issuer": "https://id.region.example",
    "oidc_client_id": "parta",
    "oidc_client_secret": "provider-given-secret-1234",
    "oidc_name": "Госуслуги региона",
}


def _settings(var_dir: Path, **overrides: object) -> Settings:
    write_config(var_dir, **overrides)
    ensure_secrets(var_dir)
    return Settings.load(var_dir)


def _homeserver(settings: Settings) -> dict[str, object]:
    files = {f.path.name: f.content for f in render_synapse_config(settings)}
    loaded = yaml.safe_load(files["homeserver.yaml"])
    assert isinstance(loaded, dict)
    return loaded


def test_without_an_issuer_nothing_is_rendered_and_passwords_stay(tmp_path: Path) -> None:
    homeserver = _homeserver(_settings(tmp_path / "var"))
    assert "oidc_providers" not in homeserver
    assert homeserver["password_config"]["enabled"] is True  # type: ignore[index]


def test_synapse_loads_the_provider_with_parta_s_mapping_module(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "var", **OIDC, oidc_claim="email", password_login="false")
    render_all(settings)
    config = HomeServerConfig.load_config(
        "parta-test", ["--config-path", str(settings.synapse_dir / "homeserver.yaml")]
    )
    (provider,) = config.oidc.oidc_providers
    assert provider.idp_id == "oidc-region"
    assert provider.idp_name == "Госуслуги региона"
    assert provider.issuer == "https://id.region.example"
    assert list(provider.scopes) == ["openid", "email"]
    assert provider.allow_existing_users is True
    assert provider.enable_registration is False  # never an account made by the provider
    assert provider.skip_verification is False  # https: Synapse checks the discovery
    assert provider.user_mapping_provider_class.__name__ == "RegionAccountMapping"
    mapping = provider.user_mapping_provider_config
    assert mapping.claim == "email"
    assert mapping.provisioning_url == settings.provisioning_url
    assert config.auth.password_enabled_for_login is False
    assert config.auth.password_enabled_for_reauth is False
    # The admin UI's callback skips Synapse's "continue to" page; besides Synapse's own
    # fallback login page, nothing else does.
    assert config.sso.sso_client_whitelist == [
        f"{settings.web_url}/login/sso/callback",
        f"{settings.element_homeserver_url}/_matrix/static/client/login",
    ]
    # The secret stays in the 0600 file, never in the world-readable ones.
    for item in render_synapse_config(settings):
        if "provider-given-secret-1234" in item.content:
            assert item.private, item.path


def test_a_loopback_http_issuer_is_for_local_mode_only(tmp_path: Path) -> None:
    local = _settings(tmp_path / "a", **{**OIDC, "oidc_issuer": "http://127.0.0.1:9400"})
    provider = _homeserver(local)["oidc_providers"][0]  # type: ignore[index]
    assert provider["skip_verification"] is True
    with pytest.raises(ValidationError, match="only on loopback"):
        _settings(tmp_path / "b", **{**OIDC, "oidc_issuer": "http://id.region.example"})
    with pytest.raises(ValidationError, match="production needs an https issuer"):
        Settings(
            environment="production",
            synapse_workers=False,
            var_dir=tmp_path / "c",
            **{**OIDC, "oidc_issuer": "http://127.0.0.1:9400"},  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"oidc_issuer": "id.region.example"}, "is not an issuer URL"),
        ({"oidc_issuer": "https://id.region.example/?x=1"}, "is not an issuer URL"),
        ({"oidc_client_secret": ""}, "PARTA_OIDC_CLIENT_SECRET must be too"),
        ({"oidc_client_id": ""}, "PARTA_OIDC_CLIENT_ID must be too"),
        ({"oidc_claim": "snils"}, "phone_number"),
        ({"oidc_claim": "roster_id", "oidc_roster_claim": "person id"}, "oidc_roster_claim"),
    ],
)
def test_a_wrong_provider_setting_says_what_to_fix(
    tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected):
        _settings(tmp_path / "var", **{**OIDC, **overrides})


def test_a_roster_id_claim_names_the_provider_s_claim(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path / "var", **OIDC, oidc_claim="roster_id", oidc_roster_claim="person_id"
    )
    render_all(settings)
    config = HomeServerConfig.load_config(
        "parta-test", ["--config-path", str(settings.synapse_dir / "homeserver.yaml")]
    )
    (provider,) = config.oidc.oidc_providers
    assert list(provider.scopes) == ["openid", "profile"]
    mapping = provider.user_mapping_provider_config
    assert (mapping.claim, mapping.claim_name) == ("roster_id", "person_id")


def test_passwords_cannot_be_switched_off_without_a_provider(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="PARTA_OIDC_ISSUER is not set"):
        _settings(tmp_path / "var", password_login="false")


def test_the_client_secret_lives_in_secrets_env_and_survives_generation(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    write_config(var_dir, **{k: v for k, v in OIDC.items() if k != "oidc_client_secret"})
    var_dir.joinpath("secrets.env").write_text(
        "PARTA_OIDC_CLIENT_SECRET=provider-given-secret-1234\n", encoding="utf-8"
    )
    ensure_secrets(var_dir)  # adds the generated ones, keeps the operator's line
    settings = Settings.load(var_dir)
    assert settings.oidc_client_secret.get_secret_value() == "provider-given-secret-1234"
    assert "provider-given-secret-1234" not in repr(settings)
    assert "provider-given-secret-1234" not in settings.model_dump_json()
