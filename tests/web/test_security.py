"""CSRF tokens and login throttling, as pure functions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.web import security
from provisioning.web.pages.auth import safe_next, user_id_for
from provisioning.web.security import LoginLimits, LoginThrottle, csrf_token, csrf_valid

SECRET = b"s" * 32


@given(nonce=st.text(min_size=1, max_size=64), session=st.none() | st.text(min_size=1))
def test_a_csrf_token_is_valid_only_for_its_nonce_and_session(
    nonce: str, session: str | None
) -> None:
    token = csrf_token(SECRET, nonce, session)
    assert csrf_valid(SECRET, nonce, session, token)
    assert not csrf_valid(SECRET, nonce + "x", session, token)
    assert not csrf_valid(SECRET, nonce, (session or "") + "x", token)
    assert not csrf_valid(b"other" * 8, nonce, session, token)
    assert not csrf_valid(SECRET, nonce, session, "")
    assert not csrf_valid(SECRET, None, session, token)


def test_logins_are_throttled_per_account_and_per_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The throttle's own clock, moved by the test: a busy machine cannot slide the window.
    now = [1000.0]
    monkeypatch.setattr(security, "time", SimpleNamespace(monotonic=lambda: now[0]))
    throttle = LoginThrottle(LoginLimits(per_account=3, per_address=5, window_s=0.5))
    for _ in range(3):
        assert throttle.retry_after("Ivan", "10.0.0.1") == 0
        throttle.failed("ivan", "10.0.0.1")
    assert throttle.retry_after("ivan", "10.0.0.2") > 0  # the account, from anywhere
    assert throttle.retry_after("maria", "10.0.0.2") == 0
    throttle.failed("maria", "10.0.0.1")
    throttle.failed("olga", "10.0.0.1")
    assert throttle.retry_after("pavel", "10.0.0.1") > 0  # the address, for anyone
    now[0] += 0.6
    assert throttle.retry_after("ivan", "10.0.0.1") == 0  # the window slid past
    throttle.failed("anna", None)
    throttle.succeeded("anna")
    assert throttle.retry_after("anna", None) == 0


def test_only_local_paths_are_followed_after_login() -> None:
    assert safe_next("/schools/1") == "/schools/1"
    for hostile in ("https://evil.example", "//evil.example", "/\\evil.example", "", None, "x"):
        assert safe_next(hostile) == "/"


def test_people_sign_in_with_a_user_name_or_a_matrix_id() -> None:
    assert user_id_for(" Ivan.Petrov ", "region.test") == "@ivan.petrov:region.test"
    assert user_id_for("@ivan:other.test", "region.test") == "@ivan:other.test"
