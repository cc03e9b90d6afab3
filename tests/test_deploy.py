"""`./deploy.sh` itself, as an operator runs it: first run, second run, stop, errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nio import AsyncClient, LoginResponse, SyncResponse

from foundation.settings import Settings
from parta.deployment import LocalDeployment
from tests.harness.ports import free_ports
from tests.harness.region import write_config

ROOT = Path(__file__).resolve().parent.parent


def deploy(var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTA_")}
    env["PARTA_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [str(ROOT / "deploy.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


@dataclass
class Deployed:
    var_dir: Path
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    var_dir = tmp_path_factory.mktemp("deploy-sh") / "var"
    write_config(var_dir)
    first = deploy(var_dir)
    try:
        yield Deployed(var_dir, first)
    finally:
        deploy(var_dir, "stop")


async def test_first_run_starts_everything_and_prints_a_login_that_works(
    deployed: Deployed,
) -> None:
    out = deployed.first.stdout
    assert deployed.first.returncode == 0, deployed.first.stderr
    for name in ("synapse", "provisioning", "bridge", "widgets"):
        assert re.search(rf"^started {name} \(ready in [0-9.]+ s\)$", out, re.M), out
    user_id = re.search(r"Region administrator:\s+(\S+)", out)
    password = re.search(r"Password:\s+(\S+)", out)
    homeserver = re.search(r"Homeserver for Element:\s+(\S+)", out)
    assert user_id and password and homeserver, out
    client = AsyncClient(homeserver.group(1), user_id.group(1))
    try:
        assert isinstance(await client.login(password.group(1)), LoginResponse)
        assert isinstance(await client.sync(timeout=0), SyncResponse)
    finally:
        await client.close()


def test_second_run_changes_nothing_and_says_so(deployed: Deployed) -> None:
    before = deploy(deployed.var_dir, "status")
    second = deploy(deployed.var_dir)
    assert second.returncode == 0, second.stderr
    assert "Nothing changed: every service was already running" in second.stdout
    assert "started" not in second.stdout and "restarted" not in second.stdout
    assert deploy(deployed.var_dir, "status").stdout == before.stdout


def test_a_changed_setting_restarts_only_what_it_affects(deployed: Deployed) -> None:
    config = deployed.var_dir / "parta.env"
    original = config.read_text()
    try:
        config.write_text(original + "PARTA_MAX_UPLOAD_SIZE_MB=42\n")
        changed = deploy(deployed.var_dir)
        assert changed.returncode == 0, changed.stderr
        # Synapse's file changed, and so did the settings provisioning and the bridge read.
        assert "restarted synapse" in changed.stdout
        homeserver = (deployed.var_dir / "synapse" / "homeserver.yaml").read_text()
        assert 'max_upload_size: "42M"' in homeserver
    finally:
        config.write_text(original)
        assert deploy(deployed.var_dir).returncode == 0


def test_stop_stops_exactly_what_it_started(deployed: Deployed, region: LocalDeployment) -> None:
    run_dir = deployed.var_dir / "run"
    pids = {p.stem: json.loads(p.read_text())["pid"] for p in run_dir.glob("*.json")}
    assert set(pids) == {"synapse", "provisioning", "bridge", "widgets"}
    stopped = deploy(deployed.var_dir, "stop")
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == "stopped widgets, bridge, provisioning, synapse"
    assert not any(_alive(pid) for pid in pids.values())
    # Another deployment on the same machine (the session's) is untouched.
    assert all(region.status().values())

    # A stale state file whose pid now belongs to another program: that program survives.
    decoy = subprocess.Popen(["sleep", "60"])
    try:
        state = {"pid": decoy.pid, "argv": ["python", "-m", "synapse.app.homeserver"]}
        (run_dir / "synapse.json").write_text(
            json.dumps({**state, "fingerprint": "x", "started_at": 0})
        )
        assert deploy(deployed.var_dir, "stop").stdout.strip() == "Nothing was running."
        assert decoy.poll() is None
    finally:
        decoy.kill()
        decoy.wait()
    assert deploy(deployed.var_dir, "status").returncode == 1


def test_a_taken_port_is_explained(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        var_dir = tmp_path / "var"
        write_config(var_dir, synapse_port=port)
        result = deploy(var_dir)
    assert result.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already used by another program" in result.stderr
    assert "PARTA_SYNAPSE_PORT" in result.stderr
    assert LocalDeployment(Settings.load(var_dir)).status() == {
        "synapse": None,
        "provisioning": None,
        "bridge": None,
        "widgets": None,
    }


def test_invalid_settings_are_explained(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    write_config(var_dir, server_name="not a name", bridge_port=free_ports(1)[0])
    result = deploy(var_dir)
    assert result.returncode == 1
    assert "is not a Matrix server name" in result.stderr
