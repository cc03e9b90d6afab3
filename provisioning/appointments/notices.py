"""What the bot posts into a booking's private room: pure functions.

In the region's language with the times in `PARTA_TIMEZONE`, formatted as the meetings'
notices. Each carries the room's standalone call link (Element X on phones shows no
widgets; the room's call widget is the same call).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from foundation.settings import Settings
from provisioning.broadcasts.notices import _gettext, _message
from provisioning.db.base import as_utc
from provisioning.db.models import AppointmentSlot
from provisioning.i18n import N_
from provisioning.meetings.notices import call_url


def when_text(settings: Settings, slot: AppointmentSlot) -> str:
    """«01.09.2027, 18:00–18:15 (Europe/Moscow)»."""
    zone = ZoneInfo(settings.timezone)
    starts = as_utc(slot.starts_at).astimezone(zone)
    ends = as_utc(slot.ends_at).astimezone(zone)
    return f"{starts:%d.%m.%Y}, {starts:%H:%M}–{ends:%H:%M} ({settings.timezone})"


def booked(
    settings: Settings, slot: AppointmentSlot, host: str, parent: str, child: str, room_id: str
) -> dict[str, Any]:
    return _message(
        [
            (
                _gettext(
                    settings,
                    N_("Appointment: %(host)s and %(parent)s (parent of %(child)s)"),
                    host=host,
                    parent=parent,
                    child=child,
                ),
                True,
            ),
            (_gettext(settings, N_("When: %(when)s"), when=when_text(settings, slot)), False),
            (
                _gettext(
                    settings,
                    N_("The call of this room opens at the time; in a browser: %(link)s"),
                    link=call_url(settings, room_id),
                ),
                False,
            ),
        ]
    )


def reminder(
    settings: Settings, slot: AppointmentSlot, room_id: str, *, soon: bool
) -> dict[str, Any]:
    template = (
        N_("In 15 minutes: your appointment, %(when)s.")
        if soon
        else N_("Tomorrow: your appointment, %(when)s.")
    )
    return _message(
        [
            (_gettext(settings, template, when=when_text(settings, slot)), True),
            (_gettext(settings, N_("The link: %(link)s"), link=call_url(settings, room_id)), False),
        ]
    )


def cancelled(settings: Settings, slot: AppointmentSlot, *, by_host: bool) -> dict[str, Any]:
    template = (
        N_("The teacher has cancelled the appointment of %(when)s.")
        if by_host
        else N_("The parent has cancelled the appointment of %(when)s; the slot is free again.")
    )
    return _message([(_gettext(settings, template, when=when_text(settings, slot)), True)])
