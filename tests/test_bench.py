"""The benchmarks say how to install what they need beyond `./deploy.sh`, instead of a
traceback ending in `No module named 'pptx'`."""

from __future__ import annotations

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
