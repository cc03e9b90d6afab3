"""What the call's WebSockets share: the first message, bounded, and closing with a reason.

Before a page (or an edge) has said who it is, it costs one message of `JOIN_MAX_BYTES`
within `JOIN_TIMEOUT_S`, and nothing else: a join with its OpenID token is about 500
bytes, a viewer's ticket or an edge's proof less.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from widgets.call import messages as m

JOIN_TIMEOUT_S = 15.0  # a page that does not say who it is within this is closed
JOIN_MAX_BYTES = 4 * 1024
# WebSocket close codes (RFC 6455 and IANA's registry).
POLICY_VIOLATION = 1008  # refused: the page says why and does not retry
MESSAGE_TOO_BIG = 1009
SERVICE_RESTART = 1012  # the page reconnects, through nginx (the call moved)
TRY_AGAIN_LATER = 1013  # the page reconnects after its backoff


async def first_message(socket: WebSocket) -> str | None:
    """The socket's first message, as text; None when it was refused (and closed): too
    late or too large.

    Raises:
        WebSocketDisconnect: the other end went away first.
    """
    try:
        message = await asyncio.wait_for(socket.receive(), JOIN_TIMEOUT_S)
    except TimeoutError:
        await refuse(socket, "join_timeout")
        return None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw: str | bytes = message.get("text") or message.get("bytes") or ""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > JOIN_MAX_BYTES:
        await refuse(socket, "join_too_large", code=MESSAGE_TOO_BIG)
        return None
    return data.decode(errors="replace")


async def send_quietly(socket: WebSocket, message: dict[str, Any]) -> None:
    """Send, unless the other end is gone (its own session cleans up after it)."""
    if socket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.send_json(message)


async def close_quietly(socket: WebSocket, code: int, reason: str) -> None:
    if socket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.close(code=code, reason=reason)


async def refuse(socket: WebSocket, reason: str, *, code: int = POLICY_VIOLATION) -> None:
    """Say why in a message the page shows, then close with the same reason."""
    await send_quietly(socket, m.error(reason))
    await close_quietly(socket, code, reason)
