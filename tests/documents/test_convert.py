"""Office files become PDFs with Debian's LibreOffice; bad files get a reason, no PDF."""

from __future__ import annotations

import asyncio
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.documents.slides import make_presentation
from widgets.documents.convert import ConversionError, Converter, check_container

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def converter() -> Converter:
    found = Converter.from_system(workers=2, time_limit_s=120)
    assert found is not None, (
        "LibreOffice is not installed: apt-get install libreoffice-core libreoffice-impress "
        "libreoffice-writer libreoffice-calc (./deploy.sh test installs it)"
    )
    return found


async def test_a_presentation_becomes_a_pdf_with_a_page_per_slide(
    converter: Converter, tmp_path: Path
) -> None:
    source = make_presentation(tmp_path / "lesson.pptx", slides=5)
    target = tmp_path / "lesson.pdf"
    await converter.to_pdf(source, "Урок 5А.pptx", target)
    pdf = PdfReader(target)
    assert len(pdf.pages) == 5
    assert "слайд 3" in pdf.pages[2].extract_text()


async def test_two_conversions_at_once_both_succeed(converter: Converter, tmp_path: Path) -> None:
    sources = [make_presentation(tmp_path / f"d{i}.pptx", slides=2 + i) for i in range(2)]
    targets = [tmp_path / f"d{i}.pdf" for i in range(2)]
    await asyncio.gather(
        *(converter.to_pdf(s, s.name, t) for s, t in zip(sources, targets, strict=True))
    )
    assert [len(PdfReader(t).pages) for t in targets] == [2, 3]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.pptx", b"this is not a presentation at all"),
        ("old.doc", b"PK\x03\x04 a zip, not an OLE2 document"),
        ("cut.docx", b"PK\x03\x04\x14\x00\x00\x00"),
    ],
)
async def test_a_damaged_file_is_refused_and_no_pdf_is_left(
    converter: Converter, tmp_path: Path, name: str, content: bytes
) -> None:
    source = tmp_path / "upload"
    source.write_bytes(content)
    target = tmp_path / "out.pdf"
    with pytest.raises(ConversionError) as raised:
        await converter.to_pdf(source, name, target)
    assert raised.value.reason == "damaged"
    assert not target.exists()
    assert sorted(tmp_path.iterdir()) == [source]  # noqa: ASYNC240 - a test's look


def test_a_zip_that_is_no_document_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "photos.pptx"
    with zipfile.ZipFile(source, "w") as package:
        package.writestr("photo.jpg", b"\xff\xd8\xff")
    with pytest.raises(ConversionError, match=r"not a \.pptx document") as raised:
        check_container(source, "photos.pptx")
    assert raised.value.reason == "damaged"


async def test_a_conversion_past_its_time_limit_is_stopped(tmp_path: Path) -> None:
    found = Converter.from_system(workers=1, time_limit_s=0.5)
    assert found is not None
    source = make_presentation(tmp_path / "big.pptx", slides=40)
    target = tmp_path / "big.pdf"
    with pytest.raises(ConversionError) as raised:
        await found.to_pdf(source, "big.pptx", target)
    assert raised.value.reason == "timeout"
    assert not target.exists()
    # The killed LibreOffice left nothing running that blocks the next conversion.
    quick = Converter.from_system(workers=1, time_limit_s=120)
    assert quick is not None
    small = make_presentation(tmp_path / "small.pptx", slides=1)
    await quick.to_pdf(small, "small.pptx", target)
    assert len(PdfReader(target).pages) == 1
