"""A broadcast form as it arrives over HTTP (the REST API's multipart and the admin UI's
form): the cover read within its bound, the times parsed, the cover uploaded last.

The body is bounded twice: the `BodyLimits` middleware refuses a bigger request by its
length before a byte is read (`provisioning.app.body_allowances`), and the cover is read
here at most one byte past its limit, so a chunked body without a length is bounded too.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import UploadFile

from matrix import media
from matrix.client import MatrixClient
from provisioning.i18n import N_

from .cover import MAX_COVER_BYTES, Cover, CoverRefused, check_cover
from .service import BroadcastInvalid


def parse_time(field: str, value: str) -> datetime:
    """An ISO 8601 moment with its zone (`2027-09-01T10:00+03:00`, or `…Z`).

    Raises:
        BroadcastInvalid: not such a moment, or without a zone.
    """
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BroadcastInvalid(
            N_("%(field)s: «%(value)s» is not an ISO 8601 time such as 2027-09-01T10:00+03:00."),
            field=field,
            value=value[:40],
        ) from exc
    if moment.tzinfo is None:
        raise BroadcastInvalid(
            N_("%(field)s: give the time zone, such as 2027-09-01T10:00+03:00."), field=field
        )
    return moment


async def read_cover(upload: UploadFile | None) -> Cover | None:
    """The chosen cover, checked; None when no file was chosen.

    Raises:
        CoverRefused: too big, not a picture, too small or portrait.
    """
    if upload is None or not upload.filename:
        return None
    if upload.size is not None and upload.size > MAX_COVER_BYTES:
        raise CoverRefused(
            N_("The cover is over %(limit)s MB; choose a smaller picture."),
            limit=MAX_COVER_BYTES // (1024 * 1024),
        )
    return check_cover(await upload.read(MAX_COVER_BYTES + 1))


async def upload_cover(client: MatrixClient, cover: Cover) -> str:
    """Store the cover in the homeserver's media repository as the bot; its mxc URI.

    Raises:
        MatrixError: the homeserver refused it or did not answer.
    """
    extension = cover.mimetype.rpartition("/")[2].replace("jpeg", "jpg")
    return await media.upload(client, f"cover.{extension}", cover.mimetype, cover.data)
