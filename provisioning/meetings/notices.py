"""What the bot posts into a class's parents chat about a meeting: pure functions.

In the region's language with the times in `PARTA_TIMEZONE`, formatted as the broadcasts'
notices (`provisioning.broadcasts.notices`). Each carries the standalone call link of the
parents chat: Element X on phones shows no widgets; the chat's own call widget
«Родительское собрание» is the same call.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from foundation.settings import Settings
from provisioning.broadcasts.notices import _gettext, _message
from provisioning.db.base import as_utc
from provisioning.db.models import ParentMeeting
from provisioning.i18n import N_


def call_url(settings: Settings, room_id: str) -> str:
    """The parents chat's call page outside a Matrix client (as `web.call_links`)."""
    return f"{settings.widgets_base_url}/call/?{urlencode({'room_id': room_id})}"


def when_text(settings: Settings, meeting: ParentMeeting) -> str:
    """«01.09.2027, 18:00–19:00 (Europe/Moscow)»."""
    zone = ZoneInfo(settings.timezone)
    starts = as_utc(meeting.starts_at).astimezone(zone)
    ends = as_utc(meeting.ends_at).astimezone(zone)
    end = f"{ends:%H:%M}" if ends.date() == starts.date() else f"{ends:%d.%m.%Y %H:%M}"
    return f"{starts:%d.%m.%Y}, {starts:%H:%M}–{end} ({settings.timezone})"


def _format(settings: Settings, meeting: ParentMeeting) -> str:
    if meeting.hybrid:
        return _gettext(
            settings,
            N_(
                "Format: hybrid, in the classroom and remotely; the classroom joins the call "
                "as one participant."
            ),
        )
    return _gettext(settings, N_("Format: remote, in the call of this chat."))


def invitation(
    settings: Settings, meeting: ParentMeeting, label: str, room_id: str, *, update: bool
) -> dict[str, Any]:
    """The invitation (or, after an edit, its update): time, format, agenda, the link."""
    heading = (
        N_("The parent meeting of class %(label)s has changed")
        if update
        else N_("Parent meeting of class %(label)s")
    )
    return _message(
        [
            (_gettext(settings, heading, label=label), True),
            (_gettext(settings, N_("When: %(when)s"), when=when_text(settings, meeting)), False),
            (_format(settings, meeting), False),
            (_gettext(settings, N_("Agenda:")), True),
            (meeting.agenda, False),
            (
                _gettext(
                    settings,
                    N_(
                        "The call «Родительское собрание» of this chat opens at the time; "
                        "in a browser: %(link)s"
                    ),
                    link=call_url(settings, room_id),
                ),
                False,
            ),
        ]
    )


def reminder(
    settings: Settings, meeting: ParentMeeting, label: str, room_id: str, *, soon: bool
) -> dict[str, Any]:
    template = (
        N_("In 15 minutes: the parent meeting of class %(label)s, %(when)s.")
        if soon
        else N_("Tomorrow: the parent meeting of class %(label)s, %(when)s.")
    )
    return _message(
        [
            (_gettext(settings, template, label=label, when=when_text(settings, meeting)), True),
            (_gettext(settings, N_("The link: %(link)s"), link=call_url(settings, room_id)), False),
        ]
    )


def started(settings: Settings, meeting: ParentMeeting, label: str, room_id: str) -> dict[str, Any]:
    return _message(
        [
            (
                _gettext(
                    settings, N_("The parent meeting of class %(label)s begins."), label=label
                ),
                True,
            ),
            (
                _gettext(
                    settings,
                    N_(
                        "Join the call «Родительское собрание» in this chat, or in a browser: "
                        "%(link)s"
                    ),
                    link=call_url(settings, room_id),
                ),
                False,
            ),
        ]
    )


def cancelled(settings: Settings, meeting: ParentMeeting, label: str) -> dict[str, Any]:
    return _message(
        [
            (
                _gettext(
                    settings,
                    N_("The parent meeting of class %(label)s (%(when)s) is cancelled."),
                    label=label,
                    when=when_text(settings, meeting),
                ),
                True,
            )
        ]
    )


def minutes(
    settings: Settings, meeting: ParentMeeting, label: str, *, correction: bool
) -> dict[str, Any]:
    """The minutes as plain text under a heading; a later save posts a correction."""
    zone = ZoneInfo(settings.timezone)
    day = f"{as_utc(meeting.starts_at).astimezone(zone):%d.%m.%Y}"
    heading = (
        N_("Correction: the minutes of the parent meeting of class %(label)s, %(date)s")
        if correction
        else N_("Minutes of the parent meeting of class %(label)s, %(date)s")
    )
    return _message(
        [
            (_gettext(settings, heading, label=label, date=day), True),
            (meeting.minutes or "", False),
        ]
    )
