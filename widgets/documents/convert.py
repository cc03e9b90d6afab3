"""Office files to PDF with LibreOffice headless, a few at a time, each within a time limit.

A teacher's presentation is shown in the document widget and in calls as a PDF (pdf.js
renders it the same in every browser). LibreOffice is the converter that reads what
schools have: pptx and ppt, docx and doc, odp, odt, xlsx. Each conversion runs in its own
`soffice` process with its own profile directory: two at once with one profile fail, and
a profile left by a killed process cannot break the next one. A process that runs past
the time limit is killed with its children.

The file is checked before LibreOffice sees it: a "pptx" that is not a valid zip package
would otherwise be opened as plain text and "converted" into pages of gibberish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 2
DEFAULT_TIME_LIMIT_S = 120.0
SOFFICE_NAMES = ("soffice", "libreoffice")

# The LibreOffice export filter per kind, so a document is never opened by the wrong module.
_OOXML = "ooxml"
_ODF = "odf"
_OLE2 = "ole2"
CONVERTIBLE: dict[str, tuple[str, str]] = {
    ".pptx": (_OOXML, "impress_pdf_Export"),
    ".ppt": (_OLE2, "impress_pdf_Export"),
    ".odp": (_ODF, "impress_pdf_Export"),
    ".docx": (_OOXML, "writer_pdf_Export"),
    ".doc": (_OLE2, "writer_pdf_Export"),
    ".odt": (_ODF, "writer_pdf_Export"),
    ".xlsx": (_OOXML, "calc_pdf_Export"),
}
_OLE2_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")


class ConversionError(Exception):
    """The file could not be turned into a PDF; `reason` is a stable code for the page.

    The original stays stored and downloadable: only its preview is missing.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def is_convertible(name: str) -> bool:
    return PurePath(name).suffix.lower() in CONVERTIBLE


def check_container(path: Path, name: str) -> None:
    """Refuse a file whose bytes are not what its extension says (`damaged`)."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in CONVERTIBLE:
        raise ConversionError("not_convertible", f"{name}: only office files are converted")
    kind = CONVERTIBLE[suffix][0]
    if kind == _OLE2:
        with path.open("rb") as file:
            if file.read(len(_OLE2_MAGIC)) != _OLE2_MAGIC:
                raise ConversionError("damaged", f"{name} is not an old-format Office file")
        return
    try:
        with zipfile.ZipFile(path) as package:
            names = set(package.namelist())
            broken = package.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ConversionError("damaged", f"{name} is not a valid {suffix} package") from exc
    if broken is not None:
        raise ConversionError("damaged", f"{name}: the part {broken} is damaged")
    marker = "[Content_Types].xml" if kind == _OOXML else "mimetype"
    if marker not in names:
        raise ConversionError("damaged", f"{name} is a zip file but not a {suffix} document")


def find_soffice() -> str | None:
    for name in SOFFICE_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Converter:
    """Converts with at most `workers` LibreOffice processes at once."""

    soffice: str
    workers: int = DEFAULT_WORKERS
    time_limit_s: float = DEFAULT_TIME_LIMIT_S

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.workers)

    @classmethod
    def from_system(
        cls, workers: int = DEFAULT_WORKERS, time_limit_s: float = DEFAULT_TIME_LIMIT_S
    ) -> Converter | None:
        """The converter with Debian's LibreOffice, or None when it is not installed."""
        soffice = find_soffice()
        return cls(soffice, workers, time_limit_s) if soffice else None

    async def to_pdf(self, source: Path, name: str, target: Path) -> None:
        """Write `source` (called `name` by its owner) as a PDF to `target`.

        Raises ConversionError with `damaged`, `timeout` or `failed`; `target` is then
        left untouched, so no half-written PDF is ever kept.
        """
        check_container(source, name)
        suffix = PurePath(name).suffix.lower()
        export_filter = CONVERTIBLE[suffix][1]
        async with self._slots:
            with tempfile.TemporaryDirectory(prefix="parta-convert-") as work:
                work_dir = Path(work)
                # LibreOffice names its output after its input: give it a safe name.
                local = work_dir / f"document{suffix}"
                shutil.copyfile(source, local)
                await self._run(local, work_dir, export_filter, name)
                produced = work_dir / "out" / "document.pdf"
                if not produced.is_file() or not _looks_like_pdf(produced):
                    raise ConversionError("failed", f"LibreOffice made no PDF of {name}")
                partial = target.with_name(target.name + ".part")
                shutil.copyfile(produced, partial)
                os.replace(partial, target)

    async def _run(self, local: Path, work_dir: Path, export_filter: str, name: str) -> None:
        profile = (work_dir / "profile").as_uri()
        process = await asyncio.create_subprocess_exec(
            self.soffice,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--convert-to",
            f"pdf:{export_filter}",
            "--outdir",
            str(work_dir / "out"),
            str(local),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one on timeout
            env={**os.environ, "HOME": str(work_dir)},
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), self.time_limit_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise ConversionError(
                "timeout", f"{name} took longer than {self.time_limit_s:.0f} s to convert"
            ) from None
        if process.returncode != 0:
            log.warning(
                "LibreOffice failed",
                extra={"document": name, "code": process.returncode, "output": output[-2000:]},
            )
            raise ConversionError("failed", f"LibreOffice could not convert {name}")


def _looks_like_pdf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(5) == b"%PDF-"
