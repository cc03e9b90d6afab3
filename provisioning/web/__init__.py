"""The admin web UI: server-rendered pages (Jinja2 + htmx) for admins, teachers and families.

Routes do HTTP only and call the same services as the REST API; `services.access` holds
every permission rule. `install_web(app)` adds the pages, static files, the per-request
context (language, CSRF cookie, audit origin) and page-shaped errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from foundation.body_limits import BodyTooLarge, Refusal, describe_size, json_refusal
from foundation.settings import Settings
from foundation.web import http_error_response, path_errors, validation_error_response
from provisioning.audit import request_origin
from provisioning.i18n import N_, pick_locale
from provisioning.web.deps import LoginRequired, WebError
from provisioning.web.pages import router
from provisioning.web.render import render, translate
from provisioning.web.security import (
    CSRF_COOKIE,
    LANG_COOKIE,
    SESSION_COOKIE,
    LoginThrottle,
    client_ip,
    csrf_token,
    new_token,
    secure_cookies,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_API_PREFIXES = ("/api/", "/internal/", "/healthz", "/docs", "/openapi.json", "/redoc")
# The admin UI is never framed, runs only its own scripts, and keeps invite tokens in URLs
# away from other sites' logs.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Pages carry CSRF tokens, invite links and personal data: never keep a copy. (A 404 or
    # 410 page would otherwise be heuristically cacheable and outlive a change of language.)
    "Cache-Control": "no-store",
}


def is_page(request: Request) -> bool:
    """A browser's page request, as opposed to an API client's (which gets JSON errors)."""
    if request.url.path.startswith(_API_PREFIXES):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "application/json" not in accept


_NO_SUCH_PAGE = N_("There is no such page. Check the address, or start from the main page.")


def body_refusal(scope: Scope, refusal: Refusal) -> Response:
    """A 413 as a page in the reader's language for a browser, as JSON for the API."""
    request = Request(scope)
    if not is_page(request):
        return json_refusal(scope, refusal)
    size = describe_size(refusal.max_bytes)
    if refusal.sign_in_first:
        message = translate(
            request, N_("This is too much to send without signing in (over %(size)s). "
                        "Sign in and try again."), size=size,
        )  # fmt: skip
    else:
        message = translate(
            request, N_("The file is too large: at most %(size)s may be sent here. "
                        "Make it smaller or split it, then try again."), size=size,
        )  # fmt: skip
    return render(request, "error.html", status=413, message=message)


def install_web(app: FastAPI, settings: Settings) -> None:
    app.state.login_throttle = LoginThrottle()
    secret = settings.web_secret.get_secret_value().encode()
    secure = secure_cookies(settings)

    @app.middleware("http")
    async def _page_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        nonce = request.cookies.get(CSRF_COOKIE)
        fresh = not nonce or len(nonce) > 64
        if fresh:
            nonce = new_token()
        assert nonce is not None
        request.state.locale = pick_locale(request.cookies.get(LANG_COOKIE))
        request.state.csrf_token = csrf_token(secret, nonce, request.cookies.get(SESSION_COOKIE))
        with request_origin(client_ip(request)):
            response = await call_next(request)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE, nonce, max_age=365 * 86400, httponly=True, secure=secure,
                samesite="strict",
            )  # fmt: skip
        if response.headers.get("content-type", "").startswith("text/html"):
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> Response:
        message = translate(request, exc.message, **exc.params)
        return render(request, "error.html", status=exc.status, message=message)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _: LoginRequired) -> Response:
        target = f"/login?next={quote(request.url.path)}"
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, BodyTooLarge):
            return body_refusal(request.scope, exc.refusal)
        if not is_page(request):
            return http_error_response(exc)
        message = {
            404: _NO_SUCH_PAGE,
            405: N_("This page cannot be used that way. Start from the main page."),
        }.get(exc.status_code, N_("Something went wrong. Try again in a minute."))
        return render(
            request, "error.html", status=exc.status_code, message=translate(request, message)
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not is_page(request):
            return validation_error_response(exc)
        if path_errors(exc):
            message = translate(request, _NO_SUCH_PAGE)
            return render(request, "error.html", status=404, message=message)
        fields = ", ".join(sorted({str(e["loc"][-1]) for e in exc.errors()}))
        message = translate(
            request, N_("The form is incomplete or wrong in: %(fields)s. Go back and check it."),
            fields=fields,
        )  # fmt: skip
        return render(request, "error.html", status=400, message=message)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
