"""Synapse's refusals become the documents service's answers, one status and errcode each."""

from __future__ import annotations

import pytest

from foundation.web import ApiError
from matrix.errors import Forbidden, HomeserverUnavailable, MatrixError, NotFound
from widgets.documents.errors import UNAVAILABLE, matrix_errors


@pytest.mark.parametrize(
    ("refusal", "status", "errcode"),
    [
        (Forbidden(403, "M_FORBIDDEN", "not in room"), 403, "M_FORBIDDEN"),
        (NotFound(404, "M_NOT_FOUND", "no event"), 404, "M_NOT_FOUND"),
        (HomeserverUnavailable(502, "M_UNKNOWN", "down"), 503, "PARTA_HOMESERVER_UNAVAILABLE"),
        (MatrixError(413, "M_TOO_LARGE", "too big"), 413, "PARTA_TOO_LARGE"),
        (MatrixError(401, "M_UNKNOWN_TOKEN", "expired"), 403, "M_FORBIDDEN"),
        (MatrixError(400, "M_BAD_STATE", "odd"), 502, "M_BAD_STATE"),
    ],
)
def test_each_refusal_has_its_answer(refusal: MatrixError, status: int, errcode: str) -> None:
    with pytest.raises(ApiError) as raised, matrix_errors():
        raise refusal
    assert (raised.value.status, raised.value.errcode) == (status, errcode)
    assert raised.value.__cause__ is refusal


def test_a_server_that_does_not_answer_is_told_in_plain_words() -> None:
    with pytest.raises(ApiError) as raised, matrix_errors():
        raise HomeserverUnavailable(503, "M_UNKNOWN", "timeout")
    assert raised.value.error == UNAVAILABLE


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), matrix_errors():
        raise KeyError("not Synapse's")
