"""Which claim links a provider's person (`school_policy.sign_on.claim_to_link`)."""

from __future__ import annotations

from typing import Any

import pytest
from school_policy.messages import MESSAGES
from school_policy.sign_on import Refusal, RegionAccountMapping, claim_to_link
from synapse.module_api.errors import ConfigError


@pytest.mark.parametrize(
    ("userinfo", "expected"),
    [
        ({"phone_number": "+79123456789", "phone_number_verified": True}, "+79123456789"),
        ({"phone_number": " +79123456789 "}, "+79123456789"),  # the provider says nothing
        ({"phone_number": "+79123456789", "phone_number_verified": False}, "sso_unverified"),
        ({"phone_number": "+79123456789", "phone_number_verified": "no"}, "sso_unverified"),
        ({"email": "a@b.example"}, "sso_unknown"),  # not the claim the region chose
        ({"phone_number": 79123456789}, "sso_unknown"),
        ({"phone_number": "1" * 400}, "sso_unknown"),
    ],
)
def test_only_a_verified_claim_of_the_chosen_kind_is_looked_up(
    userinfo: dict[str, Any], expected: str
) -> None:
    answer = claim_to_link(userinfo, "phone_number")
    if isinstance(answer, Refusal):
        assert answer.reason == expected
        assert set(MESSAGES[answer.reason]) == {"ru", "en"}
    else:
        assert answer == expected


def test_the_refusal_tells_people_to_ask_their_school() -> None:
    assert "invitation" in MESSAGES["sso_unknown"]["en"]
    assert "приглашение" in MESSAGES["sso_unknown"]["ru"]


def test_a_wrong_mapping_config_is_named() -> None:
    base = {"provisioning_url": "http://127.0.0.1:8080", "token": "t"}
    assert RegionAccountMapping.parse_config(base).claim == "phone_number"
    with pytest.raises(ConfigError, match="claim must be phone_number, email or roster_id"):
        RegionAccountMapping.parse_config({**base, "claim": "snils"})
    with pytest.raises(ConfigError, match="token is required"):
        RegionAccountMapping.parse_config({"provisioning_url": "http://127.0.0.1:8080"})


def test_a_roster_id_is_read_from_the_provider_s_own_claim() -> None:
    base = {"provisioning_url": "http://127.0.0.1:8080", "token": "t", "claim": "roster_id"}
    config = RegionAccountMapping.parse_config({**base, "provider_claim": "person_id"})
    assert (config.claim, config.claim_name) == ("roster_id", "person_id")
    assert RegionAccountMapping.parse_config(base).claim_name == "roster_id"
    userinfo = {"person_id": "RU-77-000123", "roster_id": "someone-else"}
    assert claim_to_link(userinfo, "roster_id", "person_id") == "RU-77-000123"
    assert claim_to_link({"person_id": 123}, "roster_id", "person_id") == "123"  # a number
    assert claim_to_link({"person_id": True}, "roster_id", "person_id") == Refusal("sso_unknown")
    refused = claim_to_link(
        {"person_id": "RU-1", "person_id_verified": False}, "roster_id", "person_id"
    )
    assert refused == Refusal("sso_unverified")
