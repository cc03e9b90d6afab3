"""The region's single sign-on: a provider's person becomes the account Parta made for them.

Synapse's OIDC login asks a user mapping provider which account a provider's person is
(`oidc_providers[].user_mapping_provider`, rendered by Parta):

    user_mapping_provider:
      module: school_policy.RegionAccountMapping
      config:
        provisioning_url: http://127.0.0.1:8080   # asked which account holds the claim
        token: <the appservice token the services share>
        claim: phone_number                       # or email, or roster_id
        provider_claim: roster_id                 # the provider's name of it (roster_id only)
        language: ru                              # of the refusal people read

We never invent an account: the provider is rendered with `allow_existing_users: true`
and `enable_registration: false`, so the localpart named here must already exist, and
Synapse then links the provider's subject to it for good. Whom Parta does not know is
refused with a page telling them to ask their school for an invitation, because schools,
not the region's portal, decide who is in a school's community.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, cast

from synapse.handlers.sso import MappingException
from synapse.module_api import ModuleApi
from synapse.module_api.errors import ConfigError

from school_policy.messages import Language, message

log = logging.getLogger(__name__)

Claim = Literal["phone_number", "email", "roster_id"]
CLAIMS: tuple[Claim, ...] = ("phone_number", "email", "roster_id")
LOOKUP_PATH = "/internal/sign-on/account"
MAX_CLAIM_CHARS = 320  # an e-mail address's longest; phone numbers are far shorter


@dataclass(frozen=True)
class SignOnConfig:
    provisioning_url: str
    token: str
    claim: Claim = "phone_number"
    language: Language = "ru"
    provider_claim: str = ""  # the provider's name of the claim; empty: `claim` itself

    @property
    def claim_name(self) -> str:
        return self.provider_claim or self.claim


@dataclass(frozen=True)
class Refusal:
    reason: str  # a key of school_policy.messages


def claim_to_link(
    userinfo: Mapping[str, Any], claim: Claim, provider_claim: str = ""
) -> str | Refusal:
    """The claim's value to look the person up by, or why they cannot be linked.

    `provider_claim` is where the provider puts it, if not under `claim` (a roster ID may
    be the portal's "person_id"); a roster ID may come as a JSON number.

    A provider that says the claim is not verified (`<claim>_verified` false) is believed:
    anyone could have typed that phone number or address. A provider that says nothing
    about verification is trusted to hand out only what it checked (docs/operations.md).
    """
    name = provider_claim or claim
    value = userinfo.get(name)
    if claim == "roster_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CLAIM_CHARS:
        return Refusal("sso_unknown")
    verified = userinfo.get(f"{name}_verified")
    if verified is not None and verified is not True and verified != "true":
        return Refusal("sso_unverified")
    return value.strip()


def _string(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"school_policy.RegionAccountMapping: {key} is required")
    return value


class RegionAccountMapping:
    """Synapse's `OidcMappingProvider` interface, answering with existing accounts only."""

    def __init__(self, config: SignOnConfig, api: ModuleApi) -> None:
        self._config = config
        self._api = api

    @staticmethod
    def parse_config(config: Mapping[str, Any]) -> SignOnConfig:
        claim = config.get("claim", "phone_number")
        if claim not in CLAIMS:
            raise ConfigError(
                f"school_policy.RegionAccountMapping: claim must be phone_number, email or "
                f"roster_id, not {claim!r}"
            )
        provider_claim = config.get("provider_claim", "")
        if not isinstance(provider_claim, str) or len(provider_claim) > 64:
            raise ConfigError(
                "school_policy.RegionAccountMapping: provider_claim must be a claim's name"
            )
        language = config.get("language", "ru")
        if language not in ("ru", "en"):
            raise ConfigError("school_policy.RegionAccountMapping: language must be ru or en")
        return SignOnConfig(
            provisioning_url=_string(config, "provisioning_url").rstrip("/"),
            token=_string(config, "token"),
            claim=cast(Claim, claim),
            language=cast(Language, language),
            provider_claim=provider_claim,
        )

    def get_remote_user_id(self, userinfo: Mapping[str, Any]) -> str:
        """The provider's own ID of the person (`sub`), which Synapse links to the account."""
        return str(userinfo["sub"])

    async def map_user_attributes(
        self, userinfo: Mapping[str, Any], token: Mapping[str, Any], failures: int
    ) -> dict[str, Any]:
        """The existing account's localpart.

        Raises:
            MappingException: the person is unknown, unverified or cannot be checked now;
                Synapse shows its text on its error page.
        """
        if failures:
            # Synapse asks again with failures > 0 only to pick a new, free localpart:
            # that would be a new account, which the provider never makes.
            self._refuse("sso_unknown")
        wanted = claim_to_link(userinfo, self._config.claim, self._config.provider_claim)
        if isinstance(wanted, Refusal):
            self._refuse(wanted.reason)
        user_id = await self._account_for(wanted)
        suffix = f":{self._api.server_name}"
        if user_id is None or not user_id.startswith("@") or not user_id.endswith(suffix):
            self._refuse("sso_unknown")
        if await self._api.check_user_exists(user_id) is None:
            self._refuse("sso_unknown")  # Parta has the person, the account is not made yet
        return {"localpart": user_id[1 : -len(suffix)], "display_name": None}

    async def get_extra_attributes(
        self, userinfo: Mapping[str, Any], token: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {}

    async def _account_for(self, value: str) -> str | None:
        """Ask provisioning which account holds the claim (None: nobody, or not one person)."""
        try:
            answer = await self._api.http_client.post_json_get_json(
                self._config.provisioning_url + LOOKUP_PATH,
                {"claim": self._config.claim, "value": value},
                headers={b"Authorization": [f"Bearer {self._config.token}".encode()]},
            )
        except Exception:  # any failure reads as "cannot check now"
            # Neither the claim nor the answer is logged: both are personal data.
            log.warning("the provisioning service did not answer the sign-on lookup")
            self._refuse("sso_unavailable")
        user_id = answer.get("user_id") if isinstance(answer, dict) else None
        return user_id if isinstance(user_id, str) else None

    def _refuse(self, reason: str) -> NoReturn:
        raise MappingException(message(reason, self._config.language))
