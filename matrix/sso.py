"""Synapse's single sign-on: the redirect a browser is sent into (client-server API), and
the links between a provider's people and accounts (admin API)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from matrix.client import MatrixClient, path
from matrix.errors import NotFound


def sso_redirect_url(homeserver_url: str, idp_id: str, redirect_url: str) -> str:
    """Where a browser starts signing in with the identity provider `idp_id`.

    The homeserver sends the browser back to `redirect_url` with `loginToken=…` added,
    which `MatrixClient.check_login_token` redeems (m.login.token).
    """
    return (
        f"{homeserver_url.rstrip('/')}/_matrix/client/v3/login/sso/redirect/"
        f"{quote(idp_id, safe='')}?{urlencode({'redirectUrl': redirect_url})}"
    )


async def account_of_subject(matrix: MatrixClient, idp_id: str, subject: str) -> str | None:
    """The account a provider's person (`sub`) is linked to, if any (Synapse's admin API)."""
    url = path("auth_providers", idp_id, "users", subject, base="/_synapse/admin/v1")
    try:
        answer = await matrix.request("GET", url)
    except NotFound:
        return None
    user_id = answer.get("user_id")
    return user_id if isinstance(user_id, str) else None


async def link_subject(matrix: MatrixClient, user_id: str, idp_id: str, subject: str) -> None:
    """Link the provider's person `subject` to the account `user_id`, as Synapse's own SSO
    login would: their next "Sign in with …" opens this account without asking anything.

    The account's other links are replaced (Synapse's `external_ids` is the whole list);
    Parta's accounts have one provider at most.

    Raises:
        MatrixError: `M_UNKNOWN` with 409 when the subject is linked to another account.
    """
    await matrix.admin_put_user(
        user_id, {"external_ids": [{"auth_provider": idp_id, "external_id": subject}]}
    )
