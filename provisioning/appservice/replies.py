"""What the bot says in rooms, in Russian and then English: its answers to `!call`, its
greeting when invited, and why it declines another server's invitation.

Every answer to `!call` carries the call's standalone link, so that someone on a phone
without the widget (or without Element) still reaches the call.
"""

from __future__ import annotations

import enum
import math
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class Outcome(enum.Enum):
    """How a `!call` ends: what the bot did, or why it did not."""

    ADDED = "added"
    SENDER_MAY_NOT = "sender_may_not"
    BOT_MAY_NOT = "bot_may_not"
    SPACE = "space"


def standalone_call_link(widget_url: str, room_id: str) -> str:
    """The call page for a browser outside a Matrix client: the room filled in, and none
    of the `$matrix_*` variables only a client fills (the page signs in by itself)."""
    parts = urlsplit(widget_url)
    query = [
        (key, value.replace("$matrix_room_id", room_id))
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if "$" not in value.replace("$matrix_room_id", "")
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def reply_text(outcome: Outcome, *, link: str, name: str, needed: int, sender_level: float) -> str:
    """The bot's answer to `!call`, in Russian and then English; always with the link."""
    have = "∞" if math.isinf(sender_level) else str(int(sender_level))
    match outcome:
        case Outcome.ADDED:
            ru = f"Звонок «{name}» добавлен в комнату: он среди виджетов комнаты в Element."
            en = f"The call «{name}» is in this room now, among the room's widgets in Element."
        case Outcome.SENDER_MAY_NOT:
            ru = (
                f"Добавить звонок может только тот, кому можно менять виджеты комнаты "
                f"(уровень прав {needed}, у вас {have}). Попросите модератора комнаты."
            )
            en = (
                f"Only someone who may change the room's widgets can add a call "
                f"(power level {needed}; yours is {have}). Ask a moderator of the room."
            )
        case Outcome.BOT_MAY_NOT:
            ru = (
                f"Чтобы добавить звонок, боту нужны права модератора в этой комнате (уровень "
                f"{needed}): настройки комнаты → Роли и права. Потом напишите !call ещё раз."
            )
            en = (
                f"To add the call, the bot needs moderator power in this room (level "
                f"{needed}): Room settings → Roles & Permissions. Then write !call again."
            )
        case Outcome.SPACE:
            ru = "Это пространство: напишите !call в одной из его комнат."
            en = "This is a space: write !call in one of its rooms."
    return f"{ru}\nС телефона: {link}\n\n{en}\nOn a phone: {link}"


GREETING = (
    "Здравствуйте! Напишите !call (или !звонок и название), и я добавлю в комнату звонок. "
    "Для этого мне нужны права модератора.\n\n"
    "Hello! Write !call (optionally with a name) and I will add a call to this room. "
    "I need moderator power for that."
)
DECLINE_REASON = "Parta's bot serves this region's schools only"


def notice(body: str, *, reply_to: str | None = None) -> dict[str, Any]:
    """The content of the bot's message: a notice (clients and bots do not answer
    notices), as a reply to the command's event when there is one."""
    content: dict[str, Any] = {"msgtype": "m.notice", "body": body}
    if reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content
