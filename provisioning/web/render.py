"""Jinja2 pages in the reader's language: one environment per locale, built once."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from provisioning.i18n import LANGUAGE_NAMES, LOCALES, translations
from provisioning.web.audit_labels import action_label, actor_label

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_ID_BREAKS = re.compile(r"(?<=[./_-])|(?=:)")  # after a dot, slash, _ or -; before the server


def breakable_id(value: object) -> Markup:
    """A Matrix ID or room alias that wraps between its parts, never inside a word:
    `@ivan.petrov:school.example` may break as `@ivan.` `petrov` `:school.` `example`."""
    parts = _ID_BREAKS.split("" if value is None else str(value))
    return Markup("<wbr>").join(escape(part) for part in parts)


@cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(locale=locale, locales=LOCALES, language_names=LANGUAGE_NAMES)
    env.filters["number"] = lambda value: format_decimal(value, locale=locale)
    env.filters["mxid"] = breakable_id
    gettext = translations(locale).gettext
    env.globals["audit_action_label"] = lambda code: action_label(code, gettext)
    env.globals["audit_actor_label"] = lambda actor: actor_label(actor, gettext)
    return env


def translate(request: Request, message: str, **params: object) -> str:
    """Translate a message (marked with `N_` elsewhere) for this request's reader."""
    text = translations(request.state.locale).gettext(message)
    return text % params if params else text


def region_zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.settings.timezone)


def local_time(moment: datetime, zone: ZoneInfo) -> datetime:
    """A stored moment in the region's zone (SQLite gives them back without a zone: UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))
    return aware.astimezone(zone)


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with what every page needs: the viewer, CSRF token, locale, clock."""
    locale: str = request.state.locale
    zone = region_zone(request)

    def when(moment: datetime | None, fmt: str = "short") -> str:
        if moment is None:
            return ""
        return format_datetime(local_time(moment, zone), format=fmt, tzinfo=zone, locale=locale)

    html = (
        environment(locale)
        .get_template(template)
        .render(
            request=request,
            viewer=getattr(request.state, "viewer", None),
            csrf_token=request.state.csrf_token,
            when=when,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status)
