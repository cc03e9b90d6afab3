"""Calls between Parta's own services, authenticated by the appservice token they share."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request

from parta.web import ApiError
from provisioning.api.deps import SettingsDep, reconcile_soon

router = APIRouter(prefix="/internal", include_in_schema=False)


@router.post("/reconcile", status_code=202)
def reconcile(request: Request, settings: SettingsDep) -> dict[str, bool]:
    """The bridge saw a decision taken in a Matrix client (a knock answered): run soon."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.as_token.get_secret_value()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(403, "M_FORBIDDEN", "Only Parta's own services call this")
    reconcile_soon(request)
    return {"requested": True}
