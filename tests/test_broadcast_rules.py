"""The cover check (Pillow) and what a broadcast owes its chat at a given moment: pure."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image, ImageFile

from provisioning.broadcasts.clock import due
from provisioning.broadcasts.cover import MAX_PIXELS, CoverRefused, check_cover
from provisioning.broadcasts.service import split_speakers
from provisioning.db.models import Broadcast, BroadcastState
from tests.harness.broadcasts import picture


def test_a_landscape_picture_of_830_by_540_or_more_is_a_cover() -> None:
    for kind, mimetype in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
        cover = check_cover(picture(830, 540, kind))
        assert (cover.width, cover.height, cover.mimetype) == (830, 540, mimetype)


@pytest.mark.parametrize(
    ("size", "words"),
    [
        ((829, 540), "829×540 px; it must be landscape and at least 830×540 px"),
        ((1000, 539), "1000×539 px; it must be landscape and at least 830×540 px"),
        ((540, 830), "540×830 px and not landscape"),
        ((900, 900), "900×900 px and not landscape"),
    ],
)
def test_a_small_or_portrait_picture_is_refused_with_its_size(
    size: tuple[int, int], words: str
) -> None:
    with pytest.raises(CoverRefused) as refused:
        check_cover(picture(*size))
    assert words in str(refused.value)


def test_a_phone_photo_turned_by_exif_counts_as_it_is_shown() -> None:
    """Stored 1200×800 with orientation 6 (turned 90°): people see it portrait."""
    image = Image.linear_gradient("L").resize((1200, 800)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    with pytest.raises(CoverRefused, match="800×1200 px and not landscape"):
        check_cover(out.getvalue())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.7\n",
        b"GIF89a" + b"\0" * 100,
        picture(1000, 600)[:200],
        picture(1000, 600)[:-300],
        picture(1000, 600, "PNG")[:-100],
        picture(1000, 600, "WEBP"),
    ],
    ids=["empty", "pdf", "gif", "jpeg-head", "truncated-jpeg", "truncated-png", "webp"],
)
def test_what_is_not_a_picture_is_refused(data: bytes) -> None:
    with pytest.raises(CoverRefused, match=r"JPEG or PNG|is empty"):
        check_cover(data)


def test_a_truncated_picture_is_refused_even_where_pillow_accepts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Importing Synapse turns Pillow's process-wide `LOAD_TRUNCATED_IMAGES` on."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for data in (picture(1000, 600)[:-300], picture(1000, 600, "PNG")[:-100]):
        with pytest.raises(CoverRefused, match="JPEG or PNG"):
            check_cover(data)
    assert ImageFile.LOAD_TRUNCATED_IMAGES  # left as it was found


def _declared_png(width: int, height: int) -> bytes:
    """A PNG declaring any size, whose pixel data is a few bytes (never decoded here)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [10_000, 30_000], ids=["over-ours", "over-pillows"])
def test_a_decompression_bomb_is_refused_from_its_header(side: int) -> None:
    """A few bytes that declare 100 or 900 megapixels: refused before any are allocated."""
    assert side * side > MAX_PIXELS
    with pytest.raises(CoverRefused, match="too many to open"):
        check_cover(_declared_png(side, side))


def test_speakers_come_repeated_or_comma_separated_each_once() -> None:
    assert split_speakers(["@a:x, @b:x", "@c:x", "@a:x", " "]) == ["@a:x", "@b:x", "@c:x"]


NOW = datetime(2027, 9, 1, 7, 0, tzinfo=UTC)


def _broadcast(
    *, starts: datetime, created: datetime, state: BroadcastState, version: int = 1
) -> Broadcast:
    return Broadcast(
        id=1,
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        created_at=created,
        state=state,
        version=version,
    )


def test_what_is_due_when() -> None:
    starts = NOW + timedelta(days=3)
    b = _broadcast(starts=starts, created=NOW, state=BroadcastState.SCHEDULED)
    assert due(b, set(), NOW) == ["announce"]
    announced = {"announce"}
    assert due(b, announced, NOW + timedelta(days=1)) == []
    assert due(b, announced, starts - timedelta(hours=23)) == ["remind_day"]
    reminded = announced | {"remind_day"}
    assert due(b, reminded, starts - timedelta(hours=23)) == []
    assert due(b, reminded, starts - timedelta(minutes=15)) == ["remind_15m"]
    reminded |= {"remind_15m"}
    assert due(b, reminded, starts) == ["start"]
    assert due(b, reminded | {"start"}, starts + timedelta(hours=2)) == ["end"]
    # An outage over the whole day before: the late reminder is not sent after the start.
    assert due(b, announced, starts + timedelta(minutes=5)) == ["start"]
    # An edit after the announcement: one update, keyed by the version.
    b.version = 2
    assert due(b, announced, NOW) == ["update:2"]
    assert due(b, announced | {"update:2"}, NOW) == []


def test_a_broadcast_scheduled_for_the_next_hour_gets_no_day_before_reminder() -> None:
    starts = NOW + timedelta(hours=1)
    b = _broadcast(starts=starts, created=NOW, state=BroadcastState.SCHEDULED)
    assert due(b, {"announce"}, NOW + timedelta(minutes=50)) == ["remind_15m"]


def test_a_cancellation_is_told_only_to_a_chat_that_was_told_of_the_broadcast() -> None:
    b = _broadcast(starts=NOW + timedelta(days=1), created=NOW, state=BroadcastState.CANCELLED)
    assert due(b, set(), NOW) == []
    assert due(b, {"announce"}, NOW) == ["cancel"]
    assert due(b, {"announce", "start"}, NOW) == ["cancel", "end"]
    assert due(b, {"announce", "start", "cancel", "end"}, NOW) == []
