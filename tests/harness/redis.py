"""A Redis server of the test's own, on a free loopback port, keeping nothing on disk.

Synapse's processes talk over Redis pub/sub, whose channels no database number separates;
a server per test deployment keeps two deployments' workers from hearing each other.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from foundation.settings import Settings
from parta.production import check_redis
from parta.supervisor import DeployError
from tests.harness.ports import free_ports
from tests.harness.processes import stop


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int


def _answers(port: int) -> bool:
    """PING, as production mode checks Redis before the workers start."""
    try:
        check_redis(Settings(redis_host="127.0.0.1", redis_port=port), timeout=1)
    except DeployError:
        return False
    return True


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed; install Debian's `redis-server` package "
            "(./deploy.sh test does it)"
        )
    port = free_ports(1)[0]
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
        yield RedisServer("127.0.0.1", port)
    finally:
        stop(process)
