"""What the documents service answers when Synapse refuses or does not answer: one
catalogue, so that files and library sharing say the same thing the same way."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from foundation.web import ApiError
from matrix.errors import Forbidden, HomeserverUnavailable, MatrixError, NotFound

UNAVAILABLE = "The server is not answering right now; try again in a minute."


@contextlib.contextmanager
def matrix_errors() -> Iterator[None]:
    """Synapse's refusals as the service's own answers, in words a pupil understands."""
    try:
        yield
    except Forbidden as exc:
        raise ApiError(403, "M_FORBIDDEN", f"Not allowed here: {exc}") from exc
    except NotFound as exc:
        raise ApiError(404, "M_NOT_FOUND", "There is no such file here.") from exc
    except HomeserverUnavailable as exc:
        raise ApiError(503, "PARTA_HOMESERVER_UNAVAILABLE", UNAVAILABLE) from exc
    except MatrixError as exc:
        if exc.errcode == "M_TOO_LARGE":
            raise ApiError(
                413, "PARTA_TOO_LARGE", "The server refused the file as too large."
            ) from exc
        if exc.status in (401, 403):
            raise ApiError(403, "M_FORBIDDEN", f"Not allowed here: {exc}") from exc
        raise ApiError(502, exc.errcode, f"The server refused: {exc}") from exc
