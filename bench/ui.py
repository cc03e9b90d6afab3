"""Benchmark: server render time of the admin UI's heaviest pages for a big school.

Prints one JSON object. A school of --pupils pupils (default 1,000; with teachers and
about 1.5 parents per pupil) is generated into a fresh database; the provisioning service
runs under uvicorn on a free loopback port, and each page is fetched --requests times
(default 200) by a signed-in school administrator. Figures are p50/p95 of the whole
request as the client sees it; the sign-in page (no database work) is measured in the
same run as the baseline of what the framework itself costs.

Usage: .venv/bin/python bench/ui.py [--pupils 1000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foundation.settings import Settings  # noqa: E402
from provisioning.app import create_app  # noqa: E402
from provisioning.db.base import utcnow  # noqa: E402
from provisioning.db.engine import make_engine, make_session_factory  # noqa: E402
from provisioning.db.migrate import upgrade_to_head  # noqa: E402
from provisioning.db.models import Region, Role, WebSession  # noqa: E402
from provisioning.services import schools as svc  # noqa: E402
from provisioning.services.generate import generate_school  # noqa: E402
from provisioning.services.region import ensure_region  # noqa: E402
from provisioning.web.security import SESSION_COOKIE, SESSION_IDLE, new_token, token_hash  # noqa: E402

TARGET_MS = 150.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(settings: Settings, pupils: int) -> tuple[str, int, int]:
    """Fill the database; return a session cookie of the school's admin, school and class IDs."""
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_to_head(engine)
    with make_session_factory(engine)() as session:
        region = ensure_region(session, settings)
        assert isinstance(region, Region)
        school = generate_school(
            session, region, "Школа бенчмарка", pupils=pupils, academic_year=2026, seed=3,
            slug="bench",
        )  # fmt: skip
        director = svc.add_person(session, "Директор Бенчмарка", matrix_user_id="@director:bench")
        svc.grant_school_role(session, director, school.school, Role.SCHOOL_ADMIN)
        token = new_token()
        now = utcnow()
        session.add(
            WebSession(
                token_hash=token_hash(token), person_id=director.id, created_at=now,
                last_seen_at=now, expires_at=now + SESSION_IDLE,
            )
        )  # fmt: skip
        session.commit()
        class_id = school.classes[len(school.classes) // 2].id
        school_id = school.school.id
        assert session.scalar(select(WebSession).where(WebSession.person_id == director.id))
    engine.dispose()
    return token, school_id, class_id


def measure(client: httpx.Client, path: str, count: int) -> dict[str, float]:
    durations = []
    for _ in range(3):  # warm caches (templates, catalogues) first
        client.get(path).raise_for_status()
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        durations.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    durations.sort()
    return {
        "p50_ms": round(statistics.median(durations), 1),
        "p95_ms": round(durations[int(len(durations) * 0.95) - 1], 1),
        "bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parta-bench-ui-") as tmp:
        port = free_port()
        settings = Settings(
            var_dir=Path(tmp), provisioning_port=port, synapse_port=free_port(),
            web_secret="bench-" + "x" * 32, reconcile_interval_s=86_400, log_level="WARNING",
        )  # fmt: skip
        token, school_id, class_id = prepare(settings, args.pupils)
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline:
                raise SystemExit("the provisioning service did not start within 30 s")
            time.sleep(0.05)
        result: dict[str, Any] = {"pupils": args.pupils, "requests": args.requests}
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as anonymous:
                # The baseline: a page with no database work, as a stranger sees it.
                for key, value in measure(anonymous, "/login", args.requests).items():
                    result[f"login_page_{key}"] = value
            with httpx.Client(
                base_url=base, cookies={SESSION_COOKIE: token}, headers={"Accept": "text/html"},
                timeout=30,
            ) as client:  # fmt: skip
                pages = {
                    "school_page": f"/schools/{school_id}",
                    "class_page": f"/schools/{school_id}/classes/{class_id}",
                    "people_page": f"/schools/{school_id}/people",
                    "people_search": f"/schools/{school_id}/people?q=ива&role=pupil",
                }
                for name, path in pages.items():
                    figures = measure(client, path, args.requests)
                    for key, value in figures.items():
                        result[f"{name}_{key}"] = value
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    result["targets_met"] = {
        f"{page}_p95_ms<{TARGET_MS:g}": result[f"{page}_p95_ms"] < TARGET_MS
        for page in ("school_page", "class_page", "people_page")
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
