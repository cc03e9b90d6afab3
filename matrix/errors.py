"""Typed exceptions for Matrix error responses, keyed by `errcode`.

Callers catch what they can handle (`UserInUse` while ensuring an account exists)
instead of checking return values, which is easy to forget.
"""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """A request to the homeserver failed; `errcode` and `error` come from its answer."""

    errcode = "M_UNKNOWN"

    def __init__(self, status: int, errcode: str, error: str, body: dict[str, Any] | None = None):
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error
        self.body = body or {}


class Forbidden(MatrixError):
    errcode = "M_FORBIDDEN"


class UnknownToken(MatrixError):
    errcode = "M_UNKNOWN_TOKEN"


class MissingToken(MatrixError):
    errcode = "M_MISSING_TOKEN"


class NotFound(MatrixError):
    errcode = "M_NOT_FOUND"


class UserInUse(MatrixError):
    errcode = "M_USER_IN_USE"


class InvalidUsername(MatrixError):
    errcode = "M_INVALID_USERNAME"


class Exclusive(MatrixError):
    errcode = "M_EXCLUSIVE"


class RoomInUse(MatrixError):
    errcode = "M_ROOM_IN_USE"


class BadJson(MatrixError):
    errcode = "M_BAD_JSON"


class InvalidParam(MatrixError):
    errcode = "M_INVALID_PARAM"


class UserDeactivated(MatrixError):
    errcode = "M_USER_DEACTIVATED"


class LimitExceeded(MatrixError):
    errcode = "M_LIMIT_EXCEEDED"


class Unrecognized(MatrixError):
    errcode = "M_UNRECOGNIZED"


class HomeserverUnavailable(MatrixError):
    """No answer, or a 5xx, after every retry: the homeserver is down or overloaded."""

    errcode = "PARTA_HOMESERVER_UNAVAILABLE"


class HomeserverUnreachable(HomeserverUnavailable):
    """Not even a connection after every retry: the homeserver is down, not just slow.

    Callers working through many requests stop at this one (every later request would
    wait out its own deadline too); a slow or failing single request is not this.
    """


_BY_ERRCODE: dict[str, type[MatrixError]] = {
    cls.errcode: cls
    for cls in (
        Forbidden,
        UnknownToken,
        MissingToken,
        NotFound,
        UserInUse,
        InvalidUsername,
        Exclusive,
        RoomInUse,
        BadJson,
        InvalidParam,
        LimitExceeded,
        UserDeactivated,
        Unrecognized,
    )
}


def error_from_response(status: int, body: dict[str, Any]) -> MatrixError:
    """Build the exception that matches a Matrix error answer."""
    errcode = str(body.get("errcode", "M_UNKNOWN"))
    error = str(body.get("error", "")) or f"HTTP {status}"
    cls = _BY_ERRCODE.get(errcode)
    if cls is None:
        cls = NotFound if status == 404 and errcode == "M_UNKNOWN" else MatrixError
    return cls(status, errcode, error, body)
