"""The request log every Parta service writes: one line per request, never a query string."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI, Request

from foundation.web import install_error_handlers, install_request_log


def app() -> FastAPI:
    service = FastAPI()
    install_error_handlers(service)
    install_request_log(service)

    @service.get("/files")
    def files() -> dict[str, int]:
        return {"count": 1}

    @service.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": sum([len(chunk) async for chunk in request.stream()])}

    @service.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    return service


async def test_one_line_per_request_with_status_and_time_and_no_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    caplog.set_level(logging.INFO, logger="parta.http")
    async with httpx.AsyncClient(transport=transport, base_url="http://parta.test") as client:
        assert (await client.get("/files", params={"access_token": "secret"})).status_code == 200
        body = b"x" * (3 * 1024 * 1024)
        assert (await client.post("/upload", content=body)).json() == {"size": len(body)}
        assert (await client.get("/missing")).status_code == 404
        assert (await client.get("/boom")).status_code == 500
    lines = [r for r in caplog.records if r.name == "parta.http"]
    assert [r.getMessage() for r in lines] == [
        "GET /files 200",
        "POST /upload 200",
        "GET /missing 404",
        "GET /boom 500",
    ]
    assert all(isinstance(getattr(r, "duration_ms", None), float) for r in lines)
    assert "secret" not in caplog.text
