"""Render a region's configuration from `Settings`: Synapse's into `var/synapse/`.

With workers (production) each worker's file goes into `var/synapse/workers/` and nginx's
into `var/nginx/`. With TURN configured coturn's goes into `var/turn/` (`./deploy.sh turn`
installs it as /etc/turnserver.conf on a Debian host).

Files are rewritten only when their content changes, so a second `parta up` can tell
that nothing changed and leave Synapse running.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
from signedjson.key import generate_signing_key, write_signing_keys

from foundation.naming import MANAGED_ALIAS_PREFIXES
from foundation.settings import Settings
from matrix.worker_routes import ROUTES
from parta.topology import (
    SINGLE_WRITER_STREAMS,
    Topology,
    topology,
    upstreams,
    widget_processes,
)

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "synapse-config" / "templates"

# Peers the TURN relay refuses: a signed-in person must not reach the host's or the school's
# internal network through it (RFC 6890 special-purpose ranges: "this network", private,
# shared address space, loopback, link-local, documentation, benchmarking, reserved;
# IPv6 loopback, IPv4-mapped, NAT64, discard, Teredo, 6to4, unique-local, link-local).
TURN_DENIED_PEER_RANGES = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255",
    "192.0.2.0-192.0.2.255",
    "192.88.99.0-192.88.99.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "198.51.100.0-198.51.100.255",
    "203.0.113.0-203.0.113.255",
    "224.0.0.0-255.255.255.255",
    "::1",
    "::ffff:0.0.0.0-::ffff:255.255.255.255",
    "64:ff9b::-64:ff9b::ffff:ffff",
    "100::-100::ffff:ffff:ffff:ffff",
    "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)


@dataclass(frozen=True)
class RenderedFile:
    path: Path
    content: str
    private: bool  # holds secrets: written with mode 0600


def _environment() -> jinja2.Environment:
    if not TEMPLATE_DIR.is_dir():
        raise FileNotFoundError(
            f"Synapse templates not found at {TEMPLATE_DIR}; run Parta from its source checkout"
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - YAML, not HTML
    )


def render_synapse_config(settings: Settings, top: Topology | None = None) -> list[RenderedFile]:
    """Return Synapse's homeserver.yaml, log configs and the bridge's appservice registration.

    With workers, each worker's file and log config, and nginx's configuration. With TURN
    configured (`turn_host` or `turn_uris`), coturn's turnserver.conf as well.
    """
    env = _environment()
    top = top or topology(settings)
    synapse_dir = settings.synapse_dir
    context = {
        "s": settings,
        "top": top,
        "single_writer_streams": SINGLE_WRITER_STREAMS,
        "synapse_dir": synapse_dir,
        "log_dir": settings.log_dir,
        "log_name": "synapse",
        "server_name_regex": re.escape(settings.server_name),
        "bot_localpart_regex": re.escape(settings.bot_localpart),
        "managed_alias_prefixes": [re.escape(p) for p in MANAGED_ALIAS_PREFIXES],
        "production": settings.environment == "production",
        "denied_peer_ranges": TURN_DENIED_PEER_RANGES,
    }
    targets: list[tuple[str, Path, bool, dict[str, object]]] = [
        ("homeserver.yaml.j2", synapse_dir / "homeserver.yaml", True, {}),
        ("log.yaml.j2", synapse_dir / "log.yaml", False, {}),
        (
            "appservice.yaml.j2",
            synapse_dir / f"appservice-{settings.appservice_id}.yaml",
            True,
            {},
        ),
    ]
    for worker in top.workers:
        targets += [
            # It holds the database's password, as homeserver.yaml does.
            ("worker.yaml.j2", worker_config_path(settings, worker.name), True, {"w": worker}),
            (
                "log.yaml.j2",
                synapse_dir / "workers" / f"{worker.name}.log.yaml",
                False,
                {"log_name": f"synapse-{worker.name}"},
            ),
        ]
    if settings.runs_nginx:
        targets.append(
            ("nginx.conf.j2", nginx_config_path(settings), False, _nginx_context(settings, top))
        )
    if settings.turn_enabled:
        # It holds coturn's static-auth-secret.
        targets.append(("turnserver.conf.j2", settings.turn_config_path, True, {}))
    return [
        RenderedFile(path, env.get_template(name).render({**context, **extra}), private)
        for name, path, private, extra in targets
    ]


def worker_config_path(settings: Settings, name: str) -> Path:
    return settings.synapse_dir / "workers" / f"{name}.yaml"


def nginx_config_path(settings: Settings) -> Path:
    return settings.nginx_dir / "nginx.conf"


def _has_ipv6() -> bool:
    """Whether this host has IPv6 at all: listening on [::] fails where it is off."""
    try:
        return bool(Path("/proc/net/if_inet6").read_text(encoding="ascii").strip())
    except OSError:
        return False


def _nginx_context(settings: Settings, top: Topology) -> dict[str, object]:
    host = settings.server_name.split(":")[0]
    if settings.public_bind_address:
        address = settings.public_bind_address
        addresses = [f"[{address}]:" if ":" in address else f"{address}:"]
    else:
        addresses = ["", "[::]:"] if _has_ipv6() else [""]
    region_hosts = list(dict.fromkeys([host, *settings.public_hosts]))
    return {
        "public": settings.environment == "production",
        "nginx_dir": settings.nginx_dir,
        "routes": ROUTES,
        "upstreams": upstreams(top),
        "widget_processes": widget_processes(settings),
        "listen_addresses": addresses,
        "region_hosts": region_hosts,
        "https_port_suffix": "" if settings.https_port == 443 else f":{settings.https_port}",
        # Other regions' servers reach this one through nginx, on the HTTPS port.
        "well_known_server": json.dumps({"m.server": f"{host}:{settings.https_port}"}),
        "well_known_client": json.dumps(
            {"m.homeserver": {"base_url": settings.element_homeserver_url}}
        ),
    }


def signing_key_path(settings: Settings) -> Path:
    return settings.synapse_dir / f"{settings.server_name}.signing.key"


def write_rendered(files: list[RenderedFile]) -> list[Path]:
    """Write the files whose content differs; return the paths that changed."""
    changed: list[Path] = []
    for item in files:
        item.path.parent.mkdir(parents=True, exist_ok=True)
        if item.path.exists() and item.path.read_text(encoding="utf-8") == item.content:
            continue
        tmp = item.path.with_name(item.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if item.private else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(item.content)
        os.replace(tmp, item.path)
        changed.append(item.path)
    return changed


def ensure_signing_key(settings: Settings) -> bool:
    """Create the server's signing key once; True when it was created now.

    The key identifies the region to other servers: it is never regenerated.
    """
    path = signing_key_path(settings)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        write_signing_keys(handle, [generate_signing_key("a_parta")])
    return True


def render_all(settings: Settings) -> list[Path]:
    """Render every config file and the signing key; return what changed on disk."""
    directories = [
        settings.synapse_dir / "media_store",
        settings.synapse_overrides_dir,
        settings.log_dir,
        settings.run_dir,
    ]
    if settings.runs_nginx:
        directories.append(settings.nginx_dir / "tmp")
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
    changed = write_rendered(render_synapse_config(settings))
    if ensure_signing_key(settings):
        changed.append(signing_key_path(settings))
    return changed
