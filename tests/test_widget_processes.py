"""The widget service as several processes: sized to the host, started by the deployment,
and each call routed by a real nginx to one process, stable, spread, and on to the next
process while its own is down (docs/operations.md, "SFU processes")."""

from __future__ import annotations

import collections
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from pydantic import ValidationError

from foundation.settings import Settings
from parta.deployment import LocalDeployment, nginx_binary
from parta.render import nginx_config_path, render_all
from parta.supervisor import DeployError
from parta.topology import widget_processes
from tests.harness.ports import free_ports
from tests.harness.production import free_port_range
from tests.harness.waiting import wait_until
from tests.test_topology import _production

ROOMS = [f"!room{i}x:region.example.org" for i in range(300)]


def test_one_process_per_core_in_production_one_in_development(tmp_path: Path) -> None:
    production = _production(tmp_path / "var", widgets_port=9100)
    four = widget_processes(production, cores=4)
    assert [(p.name, p.port) for p in four] == [
        ("widgets", 9100),
        ("widgets-2", 9101),
        ("widgets-3", 9102),
        ("widgets-4", 9103),
    ]
    assert len(widget_processes(Settings(), cores=8)) == 1
    chosen = _production(tmp_path / "var2", widget_processes=3)
    assert len(widget_processes(chosen, cores=16)) == 3
    with pytest.raises(ValidationError, match="only production mode serves it"):
        Settings(widget_processes=2)


def test_the_deployment_starts_each_process_told_its_index(tmp_path: Path) -> None:
    settings = _production(tmp_path / "var", widget_processes=3, widgets_port=9200)
    render_all(settings)
    specs = {spec.name: spec for spec in LocalDeployment(settings).specs()}
    for index, name in enumerate(("widgets", "widgets-2", "widgets-3"), start=1):
        spec = specs[name]
        assert spec.argv[-4:] == ["--process", str(index), "--of", "3"]
        assert spec.port == 9200 + index - 1 and spec.health_url.endswith(f":{spec.port}/healthz")
    assert len({specs[n].fingerprint for n in ("widgets", "widgets-2", "widgets-3")}) == 3
    # A range that runs into another service's port is refused with what to change.
    clashing = _production(
        tmp_path / "var3", widget_processes=3, widgets_port=9300, bridge_port=9302
    )
    render_all(clashing)
    with pytest.raises(DeployError, match="PARTA_WIDGETS_PORT"):
        LocalDeployment(clashing).specs()


class _Backend(BaseHTTPRequestHandler):
    """A stand-in widget process: answers which process it is."""

    def do_GET(self) -> None:
        body = str(self.server.server_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _backend(port: int) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def _nginx(settings: Settings) -> Iterator[None]:
    config = nginx_config_path(settings)
    process = subprocess.Popen(
        [
            nginx_binary(),
            "-p",
            str(settings.nginx_dir),
            "-e",
            "/dev/stderr",
            "-c",
            str(config),
            "-g",
            "daemon off;",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(30)


def test_nginx_sends_each_call_to_one_process_and_on_while_it_is_down(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    base = free_port_range(3)
    synapse, https, http = free_ports(3)
    settings = _production(
        tmp_path / "var",
        tls_dir,
        widget_processes=3,
        widgets_port=base,
        synapse_port=synapse,
        https_port=https,
        http_port=http,
        public_bind_address="127.0.0.1",
    )
    render_all(settings)
    ports = [p.port for p in widget_processes(settings)]
    client = httpx.Client(
        base_url=f"https://127.0.0.1:{https}",
        headers={"Host": settings.public_widgets_host},
        verify=False,  # noqa: S501 - routing is tested here; tests/test_production.py tests TLS
        timeout=10,
    )

    def routes() -> dict[str, int]:
        # The page's spelling: encodeURIComponent, which keeps "!" and escapes ":".
        return {
            room: int(client.get(f"/call/ws?room_id={quote(room, safe='!~*()')}").text)
            for room in ROOMS
        }

    with _backend(ports[0]), _backend(ports[2]), _nginx(settings), client:
        with _backend(ports[1]):
            wait_until(lambda: _answers(client), "nginx answers", within=30)
            first = routes()
            assert routes() == first  # stable
            spread = collections.Counter(first.values())
            print(f"{len(ROOMS)} rooms over 3 processes: {sorted(spread.values())}")
            assert set(spread) == set(ports)
            assert min(spread.values()) >= len(ROOMS) // 6, spread  # none far below a third
            documents = {client.get("/documents/api/rooms").text for _ in range(20)}
            assert len(documents) == 1  # its sessions live in one process
        # Process 2 is down: its calls go on to others, every other call stays where it was.
        down = routes()
        for room, port in first.items():
            assert down[room] == port if port != ports[1] else down[room] != ports[1]
        with _backend(ports[1]):
            assert routes() == first  # back: its calls are routed to it again


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/call/ws?room_id=!a%3Ab").status_code == 200
    except httpx.TransportError:
        return False
