"""The broadcast's cover image, checked with Pillow before anything stores it.

The reference form asks for a landscape picture of at least 830×540 px. Only the image's
header is read for its size, so a small file that declares a billion pixels (a
decompression bomb) is refused before Pillow would allocate them; then `verify()` reads
the rest to tell a real picture from a renamed file.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageFile, UnidentifiedImageError

from provisioning.i18n import N_
from provisioning.services.schools import DomainError

MIN_WIDTH: Final = 830
MIN_HEIGHT: Final = 540
MAX_COVER_BYTES: Final = 10 * 1024 * 1024  # a phone's photo is 2–6 MB
MAX_PIXELS: Final = 40_000_000  # 8K×5K; more is a bomb (or a poster), not a cover
# Not WebP: Pillow can only check one by decoding it whole (+370 MB for 24 megapixels).
FORMATS: Final = {"JPEG": "image/jpeg", "PNG": "image/png"}
_EXIF_ORIENTATION: Final = 0x0112
_TURNED: Final = frozenset({5, 6, 7, 8})  # EXIF orientations shown rotated by 90°


_NOT_A_PICTURE: Final = N_("The cover must be a JPEG or PNG picture; this file is not one.")
_TOO_MANY_PIXELS: Final = N_(
    "The cover declares more than 40 megapixels, too many to open; choose a smaller picture."
)


class CoverRefused(DomainError):
    """The file cannot be a cover; the message names why and what is needed."""


@dataclass(frozen=True)
class Cover:
    data: bytes
    width: int  # as shown, after the EXIF orientation
    height: int
    mimetype: str


def _read_through(data: bytes) -> None:
    """Read the whole file, so a truncated or corrupt one is refused here and not shown
    broken in the chat. A JPEG is decoded at an eighth of its size (`draft`), which is
    enough to reach its end; a PNG checks its checksums without decoding (`verify`, which
    wants an image just opened).

    Raises:
        OSError, SyntaxError, ValueError: the file is truncated or corrupt.
    """
    # Pillow's switch to accept truncated files is process-wide, and importing Synapse
    # (which the region's tools may do in this process) turns it on: keep it off here.
    accepting, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
                image.load()
            else:
                image.verify()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = accepting


def check_cover(data: bytes) -> Cover:
    """The cover if it is a JPEG or PNG picture, landscape, at least 830×540 px.

    Raises:
        CoverRefused: too big a file, not a picture, a bomb, too small, or portrait.
    """
    if not data:
        raise CoverRefused(N_("The cover file is empty; choose a picture."))
    if len(data) > MAX_COVER_BYTES:
        raise CoverRefused(
            N_("The cover is over %(limit)s MB; choose a smaller picture."),
            limit=MAX_COVER_BYTES // (1024 * 1024),
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns between its own two limits; ours (below) is the lower one.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise CoverRefused(_TOO_MANY_PIXELS) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CoverRefused(_NOT_A_PICTURE) from exc
    with image:
        width, height = image.size
        kind = image.format or ""
        if kind not in FORMATS:
            raise CoverRefused(_NOT_A_PICTURE)
        if width * height > MAX_PIXELS:
            raise CoverRefused(_TOO_MANY_PIXELS)
        try:
            # A phone's photo says how it is shown; PNG's `getexif` would decode it all.
            orientation = image.getexif().get(_EXIF_ORIENTATION) if kind == "JPEG" else None
            _read_through(data)
        except (OSError, SyntaxError, ValueError, RuntimeError) as exc:  # truncated, corrupt
            raise CoverRefused(_NOT_A_PICTURE) from exc
    if orientation in _TURNED:
        width, height = height, width
    if width <= height:
        raise CoverRefused(
            N_(
                "The cover is %(width)s×%(height)s px and not landscape; it must be "
                "landscape (wider than tall) and at least 830×540 px."
            ),
            width=width,
            height=height,
        )
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise CoverRefused(
            N_(
                "The cover is %(width)s×%(height)s px; it must be landscape and at least "
                "830×540 px."
            ),
            width=width,
            height=height,
        )
    return Cover(data, width, height, FORMATS[kind])
