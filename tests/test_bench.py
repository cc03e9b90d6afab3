"""The benchmarks say how to install what they need beyond `./deploy.sh`, instead of a
traceback ending in `No module named 'pptx'`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import INSTALL_TEST_EXTRAS, require_test_extras

ROOT = Path(__file__).resolve().parents[1]

# Run a benchmark as `./deploy.sh` leaves the machine: without the test extras' packages.
WITHOUT_TEST_EXTRAS = """
import runpy, sys
for name in ("pptx", "pypdf", "pytest", "playwright", "hypothesis"):
    sys.modules[name] = None  # `import pptx` now fails as if it were not installed
sys.argv = [sys.argv[1], "--help"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


SCRIPTS = sorted(
    p.name for p in (ROOT / "bench").glob("*.py") if p.name not in ("__init__.py", "harness.py")
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_starts_or_names_the_command_for_the_extras(script: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TEST_EXTRAS, f"bench/{script}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode == 0:
        assert "usage:" in done.stdout  # it needs nothing of the extras
    else:
        assert "Traceback" not in done.stderr, done.stderr
        assert INSTALL_TEST_EXTRAS in done.stderr and f"bench/{script}" in done.stderr


def test_what_is_installed_passes(capsys: pytest.CaptureFixture[str]) -> None:
    require_test_extras("bench/x.py", json="json")
    with pytest.raises(SystemExit) as stopped:
        require_test_extras("bench/x.py", json="json", no_such_module_here="no-such-package")
    assert "no-such-package" in str(stopped.value.code)


@pytest.mark.postgres
@pytest.mark.timeout(1200)
def test_the_load_benchmark_measures_both_modes_in_one_run() -> None:
    """bench/load.py --quick: two classes against one Synapse process and against the
    workers, each a production-mode deployment; what it reports is what it measured."""
    done = subprocess.run(
        [sys.executable, "bench/load.py", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=1100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert {"monolith_max_users", "workers_max_users", "scale_ratio", "runs"} <= set(result)
    assert result["speedup"] == 20 and result["messages_per_person_per_hour"] == 240
    processes = {}
    for mode in ("monolith", "workers"):
        first = result["runs"][mode][0]
        assert first["users"] == 30
        # 30 people posting 240 an hour each: 2 a second, give or take a Poisson process.
        assert 0.5 < first["messages_per_s"] < 6
        assert first["deliveries_sampled"] > 0 and first["send_errors"] == 0
        assert 0 < first["delivery_p50_s"] <= first["delivery_p99_s"]
        assert 0 < first["send_p50_s"] <= first["send_p99_s"]
        processes[mode] = {name for name in first["cores_busy"] if name.startswith("synapse")}
        assert processes[mode] == set(first["synapse_rss_mib"])
        assert all(mib > 50 for mib in first["synapse_rss_mib"].values())  # a live Synapse
        assert first["synapse_cores_busy"] > 0 and first["cores_busy"]["postgres"] > 0
        assert result[f"{mode}_max_users"] in (0, 30, 60)
    assert processes["monolith"] == {"synapse"}
    assert {"synapse", "synapse-synchrotron1", "synapse-event_persister2"} <= processes["workers"]


def test_the_broadcast_benchmark_sends_pictures_through_an_edge_and_reports_its_keys() -> None:
    """A small run: the viewers receive the speaker's frames through the edge process,
    and the figures the issue asks for are there (their values are the benchmark's)."""
    done = subprocess.run(
        [sys.executable, "bench/broadcast.py", "--viewers", "4", "--seconds", "3",
         "--per-process", "4", "--min-fps", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (run,) = result["runs"]
    assert run["fps_mean"] > 5 and run["latency_samples"] > 0, run
    for key in ("viewers_per_edge", "targets_met"):
        assert key in result
    for key in ("edge_cpu_pct", "origin_cpu_per_edge_pct", "latency_p99_ms"):
        assert key in run
