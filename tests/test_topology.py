"""Synapse's workers and nginx's routing, rendered: sized to the host, accepted by Synapse
and by a real nginx (`nginx -t`), and routing each request where Synapse's docs say."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError
from synapse.config.homeserver import HomeServerConfig

from foundation.settings import Settings
from matrix.worker_routes import ROUTES
from parta.deployment import LocalDeployment, nginx_binary
from parta.render import nginx_config_path, render_all, worker_config_path
from parta.secrets import ensure_secrets
from parta.supervisor import DeployError
from parta.topology import UPSTREAM_ROLES, topology, worker_counts
from tests.harness.region import write_config


def _production(var_dir: Path, tls_dir: Path | None = None, **overrides: object) -> Settings:
    tls: dict[str, object] = {}
    if tls_dir is not None:
        leaf = trustme.CA().issue_cert("region.example.org", "widgets.region.example.org")
        leaf.private_key_pem.write_to_path(tls_dir / "key.pem")
        (tls_dir / "chain.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        tls = {"tls_cert_file": tls_dir / "chain.pem", "tls_key_file": tls_dir / "key.pem"}
    write_config(
        var_dir,
        environment="production",
        server_name="region.example.org",
        synapse_database="postgresql",
        **tls,
        **overrides,
    )
    ensure_secrets(var_dir)
    return Settings.load(var_dir)


def test_workers_are_sized_to_the_cores_unless_set(tmp_path: Path) -> None:
    settings = _production(tmp_path / "var")
    two = worker_counts(settings, cores=2)
    assert two["event_persister"] == 2 and two["synchrotron"] == 1
    sixteen = worker_counts(settings, cores=16)
    assert sixteen["event_persister"] == 4 and sixteen["synchrotron"] == 8
    assert sixteen["client_reader"] == 4 and sixteen["federation_reader"] == 2
    assert sixteen["appservice"] == sixteen["background"] == 1  # these cannot be sharded
    chosen = _production(tmp_path / "var2", synapse_synchrotrons=5, synapse_event_persisters=3)
    assert worker_counts(chosen, cores=2)["synchrotron"] == 5
    top = topology(chosen, cores=2)
    ports = [top.main_replication_port, top.main_port, *(w.port for w in top.workers)]
    assert len(set(ports)) == len(ports)  # every process its own port
    assert top.names("event_persister") == [f"event_persister{i}" for i in (1, 2, 3)]


def test_workers_need_postgresql_and_development_runs_one_process(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot run on SQLite"):
        Settings(environment="production", synapse_database="sqlite")
    with pytest.raises(ValidationError, match="cannot run on SQLite"):
        Settings(synapse_workers=True)
    assert not Settings().uses_synapse_workers and not Settings().runs_nginx
    one = _production(tmp_path / "var", synapse_workers="false")
    assert topology(one).workers == () and one.runs_nginx  # still TLS in front


def test_synapse_accepts_the_shared_file_and_each_worker(tmp_path: Path) -> None:
    settings = _production(tmp_path / "var")
    render_all(settings)
    top = topology(settings)
    shared = ["--config-path", str(settings.synapse_dir / "homeserver.yaml")]
    main = HomeServerConfig.load_config("parta-test", shared)
    assert main.redis.redis_enabled and main.worker.writers.events == top.names("event_persister")
    assert main.worker.writers.typing == ["streams1"]
    assert set(main.worker.instance_map) == {"main", *top.names("event_persister"), "streams1"}
    assert not main.media.can_load_media_repo  # the media worker serves it
    for worker in top.workers:
        config = HomeServerConfig.load_config(
            "parta-test", [*shared, "--config-path", str(worker_config_path(settings, worker.name))]
        )
        assert config.worker.worker_name == worker.name
        assert config.media.can_load_media_repo == (worker.role == "media")
        assert config.worker.run_background_tasks == (worker.role == "background")


def _nginx_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx_binary(), "-t", "-p", str(config.parent), "-e", "/dev/stderr", "-c", str(config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_one_synapse_process_behind_nginx_takes_every_upstream(tmp_path: Path) -> None:
    """Production with PARTA_SYNAPSE_WORKERS=false: nginx keeps the loopback port Parta's
    services use, Synapse listens beside it, and every route ends at that one process."""
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    settings = _production(tmp_path / "var", tls_dir, synapse_workers="false")
    render_all(settings)
    top = topology(settings)
    assert top.main_port != settings.synapse_port
    main = HomeServerConfig.load_config(
        "parta-test", ["--config-path", str(settings.synapse_dir / "homeserver.yaml")]
    )
    assert main.server.listeners[0].port == top.main_port
    text = nginx_config_path(settings).read_text()
    servers = re.findall(r"upstream synapse_\w+ \{[^}]*?server 127\.0\.0\.1:(\d+)", text)
    assert len(servers) == len(UPSTREAM_ROLES) and set(servers) == {str(top.main_port)}
    assert f"listen {settings.bind_address}:{settings.synapse_port};" in text
    check = _nginx_check(nginx_config_path(settings))
    assert check.returncode == 0, check.stderr


def test_a_real_nginx_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    settings = _production(tmp_path / "var", tls_dir, https_port=8443, http_port=8080)
    render_all(settings)
    config = nginx_config_path(settings)
    check = subprocess.run(
        [
            nginx_binary(),
            "-t",
            "-p",
            str(settings.nginx_dir),
            "-e",
            "/dev/stderr",
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr
    text = config.read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert "server_name region.example.org;" in text
    assert "server_name widgets.region.example.org;" in text
    assert '"m.server": "region.example.org:8443"' in text
    assert "return 301 https://$host:8443$request_uri;" in text


@pytest.mark.parametrize(
    ("request_path", "upstream"),
    [
        ("/_matrix/client/v3/sync", "synchrotron"),
        ("/_matrix/client/v3/rooms/!a:x/send/m.room.message/1", "client_reader"),
        ("/_matrix/client/v3/rooms/!a:x/invite", "client_reader"),
        ("/_matrix/client/v3/createRoom", "client_reader"),
        ("/_matrix/client/v3/login", "client_reader"),
        ("/_matrix/client/v3/rooms/!a:x/messages", "client_by_room"),
        ("/_matrix/client/v3/rooms/!a:x/typing/@u:x", "streams"),
        ("/_matrix/client/v3/rooms/!a:x/receipt/m.read/$e", "streams"),
        ("/_matrix/client/v3/user/@u:x/account_data/m.direct", "streams"),
        ("/_matrix/client/v3/sendToDevice/m.x/1", "streams"),
        ("/_matrix/client/v3/user_directory/search", "background"),
        ("/_matrix/client/v1/media/download/x/y", "media"),
        ("/_matrix/media/v3/upload", "media"),
        ("/_synapse/admin/v1/media/x/y", "media"),
        ("/_matrix/federation/v1/send/123", "federation_send"),
        ("/_matrix/federation/v1/make_join/!a:x/@u:x", "federation_reader"),
        ("/_matrix/key/v2/query", "federation_reader"),
        # What no worker takes stays with the main process.
        ("/_synapse/admin/v2/users/@u:x", None),
        ("/_matrix/client/v3/register", "client_reader"),
        ("/_matrix/client/v3/keys/upload", None),
        ("/_matrix/federation/v1/openid/userinfo", None),
    ],
)
def test_routes_follow_synapses_worker_documentation(
    request_path: str, upstream: str | None
) -> None:
    found = next((target for pattern, target in ROUTES if re.search(pattern, request_path)), None)
    assert found == upstream


def test_production_refuses_to_start_without_a_fitting_certificate(tmp_path: Path) -> None:
    settings = _production(tmp_path / "var")
    with pytest.raises(DeployError, match="PARTA_TLS_CERT_FILE"):
        LocalDeployment(settings).check_certificate()
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    other = _production(tmp_path / "var2", tls_dir, public_hosts='["school.example.org"]')
    with pytest.raises(DeployError, match=r"school\.example\.org"):
        LocalDeployment(other).check_certificate()
