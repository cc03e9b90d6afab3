"""Whole deployments for the tests, through the same code `./deploy.sh` runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from foundation.settings import CONFIG_FILE_NAME
from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from tests.harness.ports import free_ports


def write_config(var_dir: Path, **overrides: object) -> None:
    """Write var/parta.env with free ports and the given settings (as PARTA_* lines)."""
    synapse, metrics, provisioning, bridge, widgets = free_ports(5)
    values: dict[str, object] = {
        "synapse_port": synapse,
        "synapse_metrics_port": metrics,
        "provisioning_port": provisioning,
        "bridge_port": bridge,
        "widgets_port": widgets,
        "log_level": "INFO",
        "demo_school": "false",  # tests/test_demo.py loads it on purpose
        # The service's own reconciler runs only when a test's API call asks for it.
        "reconcile_interval_s": 86400,
        # Every browser test asks for SMS codes from 127.0.0.1; the per-address daily limit
        # has its own tests (tests/test_phone_codes.py, tests/web/test_phone_codes_ui.py).
        "sms_daily_per_address": 100000,
        **overrides,
    }
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / CONFIG_FILE_NAME).write_text(
        "".join(f"PARTA_{key.upper()}={value}\n" for key, value in values.items()),
        encoding="utf-8",
    )


def new_deployment(var_dir: Path, **overrides: object) -> LocalDeployment:
    write_config(var_dir, **overrides)
    deployment, _ = LocalDeployment.prepare(var_dir)
    return deployment


@contextmanager
def region_session(region: LocalDeployment) -> Iterator[Session]:
    """A session on the running deployment's own database (what its services see)."""
    engine = make_engine(region.settings.sqlalchemy_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()
