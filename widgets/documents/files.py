"""Documents as Matrix sees them: file messages in rooms, renamed by edits, gone by redaction.

Sans-I/O. A document is an `m.file`, `m.image`, `m.video` or `m.audio` message whose
`url` is an `mxc://` URI in Synapse's media repository, so Element shows the same files.
A rename is an edit (`m.replace`) with the new name; a deletion is a redaction, whose
event keeps no content and so no longer counts. Parta adds one field to what it sends:
`org.parta.pdf`, the converted PDF of an office file (or why there is none), so every
client can download the original and the widget can preview it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

FILE_MSGTYPES = ("m.file", "m.image", "m.video", "m.audio")
PDF_FIELD = "org.parta.pdf"
MAX_NAME_BYTES = 240  # below common file systems' 255, room for a copy's suffix
_MXC = re.compile(r"^mxc://[A-Za-z0-9.:\[\]-]+/[A-Za-z0-9_-]+$")

Kind = Literal["pdf", "image", "video", "audio", "office", "other"]
_OFFICE_SUFFIXES = (".pptx", ".ppt", ".odp", ".docx", ".doc", ".odt", ".xlsx")


class BadName(ValueError):
    """The name cannot be a file's name; the message says why."""


def clean_name(raw: str) -> str:
    """The name as stored, or BadName: no folders, no control characters, not empty.

    A name with `/` or `\\` would be a path on the device that downloads it; it is
    refused rather than silently cut, so the person knows what is stored.
    """
    name = unicodedata.normalize("NFC", raw).strip()
    if not name or name in (".", ".."):
        raise BadName("the file has no name")
    if "/" in name or "\\" in name:
        raise BadName("a file name cannot contain / or \\")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise BadName("a file name cannot contain control characters")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise BadName(f"a file name can be at most {MAX_NAME_BYTES} bytes long")
    return name


def pdf_name(name: str) -> str:
    """The name an office file's PDF preview is uploaded under: its own, ending in .pdf."""
    return os.path.splitext(name)[0] + ".pdf"


def kind_of(name: str, mimetype: str) -> Kind:
    lower = name.lower()
    if mimetype == "application/pdf" or lower.endswith(".pdf"):
        return "pdf"
    if lower.endswith(_OFFICE_SUFFIXES):
        return "office"
    for prefix in ("image", "video", "audio"):
        if mimetype.startswith(prefix + "/"):
            return prefix
    return "other"


def msgtype_for(mimetype: str) -> str:
    for prefix in ("image", "video", "audio"):
        if mimetype.startswith(prefix + "/"):
            return f"m.{prefix}"
    return "m.file"


@dataclass(frozen=True)
class Document:
    room_id: str
    event_id: str
    sender: str
    name: str
    mimetype: str
    size: int
    url: str
    sent_at_ms: int
    pdf_url: str | None = None
    pdf_error: str | None = None  # why an office file has no PDF ("damaged", "timeout"…)

    @property
    def kind(self) -> Kind:
        return kind_of(self.name, self.mimetype)

    def public(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "event_id": self.event_id,
            "sender": self.sender,
            "name": self.name,
            "mimetype": self.mimetype,
            "size": self.size,
            "kind": self.kind,
            "sent_at_ms": self.sent_at_ms,
            "preview": "pdf" if self.pdf_url or self.kind == "pdf" else None,
            "preview_error": self.pdf_error,
        }

    def message_content(self) -> dict[str, Any]:
        """The message that shows this file in another room: the same `mxc://`, no upload."""
        content: dict[str, Any] = {
            "msgtype": msgtype_for(self.mimetype),
            "body": self.name,
            "filename": self.name,
            "url": self.url,
            "info": {"mimetype": self.mimetype, "size": self.size},
        }
        if self.pdf_url or self.pdf_error:
            content[PDF_FIELD] = (
                {"url": self.pdf_url} if self.pdf_url else {"error": self.pdf_error}
            )
        return content


def document_from_event(event: Mapping[str, Any]) -> Document | None:
    """The document a timeline event carries, or None (a message, a redacted file, junk)."""
    content = event.get("content")
    if not isinstance(content, Mapping) or content.get("msgtype") not in FILE_MSGTYPES:
        return None
    if _relation(content) == "m.replace":
        return None  # an edit: applied to its original by `documents_in`
    url = content.get("url")
    if not isinstance(url, str) or not _MXC.match(url):
        return None  # encrypted files (`file`) are not served by this widget
    info = content.get("info") if isinstance(content.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    name = content.get("filename") or content.get("body")
    size = info.get("size")
    mimetype = info.get("mimetype")
    pdf = content.get(PDF_FIELD) if isinstance(content.get(PDF_FIELD), Mapping) else {}
    assert isinstance(pdf, Mapping)
    pdf_url = pdf.get("url")
    pdf_error = pdf.get("error")
    ts = event.get("origin_server_ts")
    return Document(
        room_id=str(event.get("room_id", "")),
        event_id=str(event.get("event_id", "")),
        sender=str(event.get("sender", "")),
        name=name if isinstance(name, str) and name else "file",
        mimetype=mimetype if isinstance(mimetype, str) else "application/octet-stream",
        size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
        url=url,
        sent_at_ms=ts if isinstance(ts, int) else 0,
        pdf_url=pdf_url if isinstance(pdf_url, str) and _MXC.match(pdf_url) else None,
        pdf_error=pdf_error if isinstance(pdf_error, str) else None,
    )


def _relation(content: Mapping[str, Any]) -> str | None:
    relates = content.get("m.relates_to")
    if isinstance(relates, Mapping) and isinstance(relates.get("rel_type"), str):
        return str(relates["rel_type"])
    return None


def documents_in(events: Iterable[Mapping[str, Any]]) -> list[Document]:
    """The room's documents from its timeline, renames applied; newest first.

    An edit counts only from the original's sender (the spec's rule for `m.replace`).
    """
    originals: dict[str, Document] = {}
    renames: list[tuple[int, str, str, str]] = []  # (ts, original id, sender, new name)
    for event in events:
        content = event.get("content")
        if not isinstance(content, Mapping):
            continue
        if _relation(content) == "m.replace":
            new = content.get("m.new_content")
            relates = content["m.relates_to"]
            target = relates.get("event_id") if isinstance(relates, Mapping) else None
            if isinstance(new, Mapping) and isinstance(target, str):
                name = new.get("filename") or new.get("body")
                if isinstance(name, str) and name:
                    ts = event.get("origin_server_ts")
                    renames.append(
                        (ts if isinstance(ts, int) else 0, target, str(event.get("sender")), name)
                    )
            continue
        document = document_from_event(event)
        if document is not None:
            originals[document.event_id] = document
    for _, target, sender, name in sorted(renames):
        original = originals.get(target)
        if original is not None and original.sender == sender:
            originals[target] = replace(original, name=name)
    return sorted(originals.values(), key=lambda d: (d.sent_at_ms, d.event_id), reverse=True)


SortKey = Literal["date", "name", "size"]


def select(
    documents: Iterable[Document],
    *,
    query: str = "",
    kind: Kind | None = None,
    sort: SortKey = "date",
    descending: bool = True,
) -> list[Document]:
    """Search by name (case-insensitive, ё = е), filter by kind, sort."""
    needle = _fold(query)
    chosen = [
        d
        for d in documents
        if (not needle or needle in _fold(d.name)) and (kind is None or d.kind == kind)
    ]
    keys = {
        "date": lambda d: (d.sent_at_ms, d.event_id),
        "name": lambda d: (_fold(d.name), d.event_id),
        "size": lambda d: (d.size, d.event_id),
    }
    return sorted(chosen, key=keys[sort], reverse=descending)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold().replace("ё", "е")
