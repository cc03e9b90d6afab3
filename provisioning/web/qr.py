"""QR codes for links (segno): PNG and SVG files, and data URIs for pages and print sheets."""

from __future__ import annotations

import io

import segno


def _code(url: str) -> segno.QRCode:
    return segno.make(url, error="m", micro=False)


def qr_png(url: str, *, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    _code(url).save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()


def qr_svg(url: str, *, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    _code(url).save(buffer, kind="svg", scale=scale, border=2, xmldecl=True)
    return buffer.getvalue()


def qr_data_uri(url: str, *, scale: int = 4) -> str:
    """An `<img src=…>` value: pages show codes without another request (CSP allows data:)."""
    return str(_code(url).svg_data_uri(scale=scale, border=2))
