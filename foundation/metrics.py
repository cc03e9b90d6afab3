"""Prometheus metrics of a Parta service, at `/metrics` on its loopback port.

Each process has its own registry (Prometheus tells them apart by the scrape target):
the requests it answered and how long they took, by route template (never the raw path,
whose IDs would make a series per room), and the process collector's CPU and memory.
nginx refuses `/metrics` on the public side, so only this machine reads them.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

REQUESTS = Counter(
    "parta_http_requests_total",
    "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status"],
)
DURATION = Histogram(
    "parta_http_request_duration_seconds",
    "Time from a request's arrival to its response's last byte, by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def route_of(scope: Scope) -> str:
    """The matched route's template (`/api/v1/schools/{school_id}`), or `unmatched`."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else "unmatched"


def observe(scope: Scope, status: int, seconds: float) -> None:
    route = route_of(scope)
    REQUESTS.labels(route, scope["method"], f"{status // 100}xx").inc()
    DURATION.labels(route).observe(seconds)


async def _metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> None:
    app.add_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
