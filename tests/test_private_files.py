"""var/ is private to the account that runs Parta, and `parta status` says when it is not."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from foundation.private_files import exposed, make_private
from parta.deployment import LocalDeployment

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def parta_status(var_dir: Path) -> subprocess.CompletedProcess[str]:
    """`./deploy.sh status` without the virtualenv it would make: the same CLI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTA_")}
    env["PARTA_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "-m", "parta", "status"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_deployments_data_and_secrets_are_private(region: LocalDeployment) -> None:
    var = region.settings.var_dir
    assert mode(var) == 0o700
    for private in (
        var / "parta.db",
        var / "synapse" / "homeserver.db",
        var / "secrets.env",
        var / "synapse" / "homeserver.yaml",
        var / "log" / "provisioning.log",
    ):
        assert private.exists(), private
        assert mode(private) & 0o077 == 0, f"{private} is {mode(private):04o}"
    assert mode(var / "synapse") & 0o077 == 0
    assert mode(var / "synapse" / "media_store") & 0o077 == 0


def test_status_names_what_others_can_read_and_exits_1(region: LocalDeployment) -> None:
    var = region.settings.var_dir
    make_private(var)  # what ./deploy.sh does at each start
    assert exposed(var) == []
    assert parta_status(var).returncode == 0
    database = var / "parta.db"
    os.chmod(database, 0o644)  # as it was before (issue 18)
    os.chmod(var, 0o755)  # noqa: S103 (the exposure under test)
    try:
        status = parta_status(var)
        assert status.returncode == 1
        assert f"readable by other accounts: {database} (mode 0644)" in status.stdout
        assert f"readable by other accounts: {var} (mode 0755)" in status.stdout
        assert "Run ./deploy.sh to make them private again" in status.stdout
    finally:
        assert set(make_private(var)) == {database, var}
    assert mode(database) == 0o600 and mode(var) == 0o700
    assert parta_status(var).returncode == 0


def test_make_private_keeps_the_owners_bits_and_skips_links(tmp_path: Path) -> None:
    var = tmp_path / "var"
    (var / "bin").mkdir(parents=True)
    script = var / "bin" / "run.sh"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o755)  # noqa: S103 (the exposure under test)
    os.chmod(var / "bin", 0o775)  # noqa: S103
    outside = tmp_path / "shared.txt"
    outside.write_text("not ours to change")
    os.chmod(outside, 0o644)
    (var / "link").symlink_to(outside)
    make_private(var)
    assert (mode(script), mode(var / "bin")) == (0o700, 0o700)
    assert mode(outside) == 0o644
    assert exposed(var) == []


def test_the_cli_creates_files_private(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTA_")}
    env["PARTA_VAR_DIR"] = str(tmp_path / "var")
    created = subprocess.run(
        [sys.executable, "-m", "parta", "init"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "parta.env") == 0o600
