"""What the bot posts into a broadcast's audience chat: pure functions of the broadcast.

Written in the region's language (`Settings.language`) for everyone in the chat, with the
times in the region's zone (`PARTA_TIMEZONE`), as the call's attendance notice is. Each
message carries the standalone call page's link: Element X on phones shows no widgets.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from foundation.settings import Settings
from provisioning.db.base import as_utc
from provisioning.db.models import Broadcast
from provisioning.i18n import N_, translations
from provisioning.reconciler.state import RoomWidget

WIDGET_PREFIX = "parta-broadcast-"  # + the broadcast's id: the widget's state key


def widget_id(broadcast_id: int) -> str:
    return f"{WIDGET_PREFIX}{broadcast_id}"


def widget(settings: Settings, broadcast: Broadcast) -> RoomWidget:
    """The call widget in broadcast mode: the call page with the broadcast's id, which the
    SFU's broadcast step reads to tell speakers from the audience."""
    url = f"{settings.call_widget_url}&{urlencode({'broadcast_id': broadcast.id})}"
    return RoomWidget(url, broadcast.title, widget_id(broadcast.id))


def standalone_link(settings: Settings, room_id: str, broadcast_id: int) -> str:
    """The call page outside a Matrix client, for the chat's room and this broadcast."""
    query = urlencode({"room_id": room_id, "broadcast_id": broadcast_id})
    return f"{settings.widgets_base_url}/call/?{query}"


def when_text(settings: Settings, broadcast: Broadcast) -> str:
    """«01.09.2027, 10:00–12:00 (Europe/Moscow)»: the region's clock, as people read it."""
    zone = ZoneInfo(settings.timezone)
    starts = as_utc(broadcast.starts_at).astimezone(zone)
    ends = as_utc(broadcast.ends_at).astimezone(zone)
    end = f"{ends:%H:%M}" if ends.date() == starts.date() else f"{ends:%d.%m.%Y %H:%M}"
    return f"{starts:%d.%m.%Y}, {starts:%H:%M}–{end} ({settings.timezone})"


def _gettext(settings: Settings, message: str, **params: object) -> str:
    text = translations(settings.language).gettext(message)
    return text % params if params else text


def _message(lines: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """An `m.text` with HTML; each line (text, bold) once as plain text, once escaped."""
    body = "\n".join(text for text, _ in lines if text)
    formatted = "<br>".join(
        f"<b>{html.escape(text)}</b>" if bold else html.escape(text).replace("\n", "<br>")
        for text, bold in lines
        if text
    )
    return {
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
    }


def cover_image(broadcast: Broadcast) -> dict[str, Any]:
    """The cover as an `m.image` (the media the bot uploaded when the form was saved)."""
    extension = broadcast.cover_mimetype.rpartition("/")[2].replace("jpeg", "jpg")
    return {
        "msgtype": "m.image",
        "body": f"cover-{broadcast.id}.{extension}",
        "url": broadcast.cover_mxc,
        "info": {
            "w": broadcast.cover_width,
            "h": broadcast.cover_height,
            "size": broadcast.cover_bytes,
            "mimetype": broadcast.cover_mimetype,
        },
    }


def announcement(
    settings: Settings,
    broadcast: Broadcast,
    room_id: str,
    speaker_names: Mapping[str, str],
    *,
    update: bool = False,
) -> dict[str, Any]:
    """The announcement (or, after an edit, its update): title, time, speakers, text, link."""
    heading = (
        N_("The broadcast has changed: «%(title)s»") if update else N_("Broadcast: «%(title)s»")
    )
    speakers = ", ".join(speaker_names.get(s, s) for s in broadcast.speakers)
    link = standalone_link(settings, room_id, broadcast.id)
    return _message(
        [
            (_gettext(settings, heading, title=broadcast.title), True),
            (_gettext(settings, N_("When: %(when)s"), when=when_text(settings, broadcast)), False),
            (_gettext(settings, N_("Speakers: %(names)s"), names=speakers), False),
            (broadcast.description, False),
            (
                _gettext(
                    settings,
                    N_("It opens in this chat at the start; the link: %(link)s"),
                    link=link,
                ),
                False,
            ),
        ]
    )


def reminder(
    settings: Settings, broadcast: Broadcast, room_id: str, *, soon: bool
) -> dict[str, Any]:
    """A day before (`soon` False) or 15 minutes before (`soon` True)."""
    template = (
        N_("In 15 minutes: the broadcast «%(title)s», %(when)s.")
        if soon
        else N_("Tomorrow: the broadcast «%(title)s», %(when)s.")
    )
    link = standalone_link(settings, room_id, broadcast.id)
    return _message(
        [
            (
                _gettext(
                    settings, template, title=broadcast.title, when=when_text(settings, broadcast)
                ),
                True,
            ),
            (_gettext(settings, N_("The link: %(link)s"), link=link), False),
        ]
    )


def started(settings: Settings, broadcast: Broadcast, room_id: str) -> dict[str, Any]:
    """At the start: the widget is in the chat; the link for clients without widgets."""
    link = standalone_link(settings, room_id, broadcast.id)
    return _message(
        [
            (
                _gettext(
                    settings, N_("The broadcast «%(title)s» has started."), title=broadcast.title
                ),
                True,
            ),
            (
                _gettext(
                    settings,
                    N_("Open it from this chat's widget, or in a browser: %(link)s"),
                    link=link,
                ),
                False,
            ),
            (_gettext(settings, N_("Write your questions here, in this chat.")), False),
        ]
    )


def cancelled(settings: Settings, broadcast: Broadcast) -> dict[str, Any]:
    return _message(
        [
            (
                _gettext(
                    settings,
                    N_("The broadcast «%(title)s» (%(when)s) is cancelled."),
                    title=broadcast.title,
                    when=when_text(settings, broadcast),
                ),
                True,
            ),
        ]
    )


def when_local(settings: Settings, moment: datetime) -> datetime:
    return as_utc(moment).astimezone(ZoneInfo(settings.timezone))
