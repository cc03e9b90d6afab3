"""Request bodies limited at the edge, per route, before anything reads them.

FastAPI reads a body parameter (JSON, a form, `bytes`) whole before a route's dependencies
run, so authentication came after the body was in memory: a 300 MB unauthenticated roster
import took provisioning from 202 to 664 MB (issue 18). This ASGI middleware refuses a
body over its route's allowance with 413 by its `Content-Length` before the app sees it,
and counts the bytes of a body without one (chunked) as they are read. A route that may
take more than the small default does so only for a caller who is signed in, checked from
the headers alone before a byte of the body is read.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foundation.web import error_response

KIB = 1024
MIB = 1024 * KIB
DEFAULT_BODY_BYTES = 64 * KIB  # every form and JSON body Parta takes fits in this
FORM_OVERHEAD_BYTES = 64 * KIB  # a multipart form's boundaries, headers and other fields
# A refused body this size or smaller is read and dropped before the answer: a browser
# that is still sending shows a connection error instead of the page that says why.
DRAIN_MAX_BYTES = 64 * MIB
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Allowance:
    """A route that takes more than the default: up to `max_bytes` of content plus overhead.

    `path` is a regular expression matched against the whole path.
    """

    method: str
    path: str
    max_bytes: int
    overhead_bytes: int = 0
    signed_in_only: bool = True

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path, path) is not None


@dataclass(frozen=True)
class Refusal:
    """Why a body was refused: its route's limit (what the person may send) and whether
    the caller would have been allowed more once signed in."""

    max_bytes: int
    sign_in_first: bool

    def message(self) -> str:
        if self.sign_in_first:
            return (
                f"The request is too large (over {describe_size(self.max_bytes)}). "
                "Sign in first: only a signed-in person may send more here."
            )
        return (
            f"The request is too large: at most {describe_size(self.max_bytes)} may be sent "
            "here. Make the file smaller or split it, then try again."
        )


def describe_size(size: int) -> str:
    """64 KB, 5 MB, 32 MB: what a person reads (binary units, as the limits are set)."""
    if size >= MIB:
        return f"{size / MIB:g} MB"
    return f"{size / KIB:g} KB"


def json_refusal(_: Scope, refusal: Refusal) -> Response:
    return error_response(413, "M_TOO_LARGE", refusal.message())


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body grows past its limit while the app reads it.

    An HTTPException, because FastAPI turns any other error while it parses a body into
    a 400 "error parsing the body"; the app's handler for it answers 413 in its own shape.
    """

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(413, refusal.message())
        self.refusal = refusal


SignedIn = Callable[[Scope], Awaitable[bool]]
Respond = Callable[[Scope, Refusal], Response | Awaitable[Response]]


class BodyLimits:
    """ASGI middleware: refuse bodies over their route's allowance with 413.

    Args:
        app: the application.
        allowances: the routes that may take more than `default_bytes`.
        signed_in: tells from a request's headers whether its caller is signed in; an
            allowance with `signed_in_only` applies only then.
        respond: builds the 413 answer (JSON by default; a page for a browser).
        default_bytes: every other request's limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowances: Sequence[Allowance] = (),
        signed_in: SignedIn | None = None,
        respond: Respond = json_refusal,
        default_bytes: int = DEFAULT_BODY_BYTES,
    ) -> None:
        self.app = app
        self.allowances = tuple(allowances)
        self.signed_in = signed_in
        self.respond = respond
        self.default_bytes = default_bytes

    async def limit_for(self, scope: Scope) -> tuple[int, Refusal]:
        """The bytes this request may send, and what to say if it sends more."""
        method, path = scope["method"], scope["path"]
        allowance = next((a for a in self.allowances if a.matches(method, path)), None)
        if allowance is None:
            return self.default_bytes, Refusal(self.default_bytes, sign_in_first=False)
        if allowance.signed_in_only and not (
            self.signed_in is not None and await self.signed_in(scope)
        ):
            return self.default_bytes, Refusal(self.default_bytes, sign_in_first=True)
        return (
            allowance.max_bytes + allowance.overhead_bytes,
            Refusal(allowance.max_bytes, sign_in_first=False),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared <= self.default_bytes:
            # Within every route's limit; the server delivers no more than was declared.
            await self.app(scope, receive, send)
            return
        limit, refusal = await self.limit_for(scope)
        if declared is not None and declared > limit:
            # A client that asked `Expect: 100-continue` waits for the answer and sends
            # nothing; any other is still sending, so a modest body is read first.
            if declared <= DRAIN_MAX_BYTES and not _expects_continue(scope):
                await _drain(receive, DRAIN_MAX_BYTES)
            await self._refuse(scope, receive, send, refusal)
            return
        received = 0
        started = over = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(refusal)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if over:  # the app's own 413: read the rest first, so the client sees it
                    await _drain(receive, DRAIN_MAX_BYTES - received)
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except BodyTooLarge:
            if started:
                raise
            await _drain(receive, DRAIN_MAX_BYTES - received)
            await self._refuse(scope, receive, send, refusal)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
        answer = self.respond(scope, refusal)
        response = answer if isinstance(answer, Response) else await answer
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length; None without one (chunked), or if it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None
    return None


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]
    )


async def _drain(receive: Receive, budget: int) -> None:
    """Read the rest of the body, up to `budget` bytes, and drop it: nothing is kept."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        budget -= len(message.get("body", b""))
