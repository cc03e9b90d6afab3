"""Synapse's single sign-on redirect, as a browser is sent into it (client-server API)."""

from __future__ import annotations

from urllib.parse import quote, urlencode


def sso_redirect_url(homeserver_url: str, idp_id: str, redirect_url: str) -> str:
    """Where a browser starts signing in with the identity provider `idp_id`.

    The homeserver sends the browser back to `redirect_url` with `loginToken=…` added,
    which `MatrixClient.check_login_token` redeems (m.login.token).
    """
    return (
        f"{homeserver_url.rstrip('/')}/_matrix/client/v3/login/sso/redirect/"
        f"{quote(idp_id, safe='')}?{urlencode({'redirectUrl': redirect_url})}"
    )
