"""Registration's own client of the region's provider: what its cookies and claims hold
(`provisioning.web.provider_sign_on`); the flow itself runs in tests/web/test_sign_on_ui.py."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from provisioning.web.provider_sign_on import (
    ProviderError,
    SignedCookie,
    _vouched,
    id_token_claims,
)


def test_a_signed_cookie_is_read_only_as_written_for_its_purpose_and_time() -> None:
    started = SignedCookie("web-secret", "join-sign-on-started")
    text = started.dump({"state": "s", "expires": time.time() + 60})
    loaded = started.load(text)
    assert loaded is not None and loaded["state"] == "s"
    body, _, mac = text.partition(".")
    forged = SignedCookie("web-secret", "join-sign-on-started").dump(
        {"state": "x", "expires": 1e12}
    )
    for refused in (
        f"{forged.partition('.')[0]}.{mac}",  # another body under this MAC
        f"{body}.{'0' * len(mac)}",
        SignedCookie("web-secret", "join-sign-on-claims").dump({"expires": 1e12}),  # purpose
        SignedCookie("other-secret", "join-sign-on-started").dump({"expires": 1e12}),
        started.dump({"state": "old", "expires": time.time() - 1}),  # expired
        started.dump({"state": "no expiry"}),
        "x" * 5000,
        "",
        None,
    ):
        assert started.load(refused) is None, refused


def test_only_what_the_form_would_take_is_filled_and_vouched() -> None:
    claims = _vouched(
        "sub-1",
        {
            "given_name": "Нина",
            "family_name": "Новикова",
            "phone_number": "8 (912) 555-00-11",
            "phone_number_verified": True,
            "email": "nina@portal.example",
        },
        "invite",
        60,
    )
    assert (claims.name, claims.phone, claims.phone_verified) == (
        "Нина Новикова",
        "+79125550011",
        True,
    )
    assert (claims.email, claims.email_verified) == ("nina@portal.example", False)
    landline = _vouched(
        "sub-2",
        {"name": "x" * 500, "phone_number": "+7 495 123-45-67", "phone_number_verified": True},
        "invite",
        60,
    )
    assert (landline.name, landline.phone, landline.phone_verified) == ("", "", False)


def _key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


def test_only_a_genuine_id_token_for_this_client_and_sign_in_is_believed() -> None:
    provider, stranger = _key("provider"), _key("provider")  # the same kid: only keys differ
    keys = dict(KeySet([provider]).as_dict(private=False))
    now = int(time.time())
    good = {
        "iss": "https://id.region.example",
        "aud": "parta",
        "sub": "portal-1",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
    }

    def signed(
        claims: dict[str, object], key: RSAKey | OctKey = provider, alg: str = "RS256"
    ) -> str:
        return jwt.encode({"alg": alg, "kid": "provider"}, claims, key)

    def check(token: str) -> dict[str, object]:
        return id_token_claims(
            token, keys, issuer="https://id.region.example", client_id="parta", nonce="n-1"
        )

    assert check(signed(good))["sub"] == "portal-1"
    refused = [
        signed(good, key=stranger),  # not the provider's key
        signed({**good, "iss": "https://evil.example"}),
        signed({**good, "aud": "another-client"}),
        signed({**good, "nonce": "n-2"}),  # another sign-in's token
        signed({k: v for k, v in good.items() if k != "nonce"}),
        signed({**good, "exp": now - 3600}),
        signed({k: v for k, v in good.items() if k != "sub"}),
        signed(good, key=OctKey.import_key("x" * 32), alg="HS256"),  # a shared secret
        "not-a-token",
    ]
    for token in refused:
        with pytest.raises(ProviderError):
            check(token)
