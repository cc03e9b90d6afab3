#!/usr/bin/env bash
# Parta on one machine.
#   ./deploy.sh            bring everything up (same as ./deploy.sh up); safe to run again
#   ./deploy.sh test       install test dependencies and run lint, types and the test suite
#   ./deploy.sh production on a Debian host, as root: the region with TLS, PostgreSQL, Redis, workers
#   ./deploy.sh turn       production, on a Debian host: install and configure coturn (TURN)
#   ./deploy.sh move-to-postgresql --database-url URL   this deployment's data onto PostgreSQL
#   ./deploy.sh stop | status | logs [service] | sync [--dry-run] [--full] | demo | render | help
#   ./deploy.sh backup [--output DIR]    one archive of the region while it runs; prints its path
#   ./deploy.sh restore FILE [--force]   bring a backup back (on a fresh host), then start it
#   ./deploy.sh doctor     check settings, ports, certificate, DNS, health, disk; say what to do
# State lives in var/ (or $PARTA_VAR_DIR); the virtualenv in .venv/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CALLER_DIR="$PWD"  # a backup named relative to where the operator stands
cd "$ROOT"
VENV="$ROOT/.venv"
export PARTA_VAR_DIR="${PARTA_VAR_DIR:-$ROOT/var}"

die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# Install the project into .venv, again only when pyproject.toml changed or extras are missing.
# The stamp holds "<hash of pyproject.toml> <extras>"; an install with [test] serves `up` too.
ensure_venv() {
  local extras="$1" python stamp hash have
  if [ ! -x "$VENV/bin/python" ]; then
    python="$(find_python)" || die "Parta needs Python 3.11 or newer, and none was found.
  On Debian: apt-get install python3 python3-venv   (or set PYTHON=/path/to/python3.11)"
    "$python" -c 'import venv, ensurepip' 2>/dev/null ||
      die "Python's venv module is missing. On Debian: apt-get install python3-venv"
    say "creating the virtualenv in .venv"
    "$python" -m venv "$VENV"
  fi
  stamp="$VENV/.parta-installed"
  hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  have="$(cat "$stamp" 2>/dev/null || true)"
  if [ "$have" = "$hash $extras" ] || { [ -z "$extras" ] && [ "$have" = "$hash [test]" ]; }; then
    return 0
  fi
  say "installing Parta and its pinned dependencies into .venv (about a minute the first time)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip ||
    die "pip could not upgrade itself; is the package index reachable?"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".$extras" ||
    die "installing the Python packages failed (see the pip output above). A package that
  builds from source needs a compiler and headers: apt-get install build-essential python3-dev libpq-dev"
  printf '%s %s' "$hash" "$extras" >"$stamp"
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "please install these Debian packages: $*"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing Debian packages: $*"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The tests use the PostgreSQL on 127.0.0.1:5432 when it answers; otherwise they start a
# throwaway cluster from Debian's binaries, which must then be installed. Browser tests
# need Debian's Chromium and a font with Cyrillic letters; documents, LibreOffice.
ensure_test_system_packages() {
  local missing=()
  if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null &&
     ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
  fi
  command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
  # The admin UI's tests drive Debian's Chromium headless (never a downloaded browser).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
  # The TURN test relays a call through Debian's coturn on loopback.
  command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
  # Production mode's tests run nginx in front of Synapse's workers, which talk over Redis.
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || missing+=(logrotate)
  # Documents: office files become PDFs with LibreOffice headless (no desktop parts).
  command -v soffice >/dev/null 2>&1 ||
    missing+=(libreoffice-core libreoffice-impress libreoffice-writer libreoffice-calc)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
  # Debian starts the package's own coturn (an open STUN server on port 3478); the tests
  # start theirs on loopback, so a test machine does not keep that one running.
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [[ " ${missing[*]} " == *" coturn "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now --quiet coturn || true
  fi
  # Likewise Debian's nginx with its default site on port 80: the tests start their own.
  if [[ " ${missing[*]} " == *" nginx "* ]]; then
    if [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now --quiet nginx || true
    elif [ -f /run/nginx.pid ]; then
      $sudo /usr/sbin/nginx -s quit || true
    fi
  fi
}

run_tests() {
  ensure_test_system_packages
  ensure_venv "[test]"
  say "ruff check"
  "$VENV/bin/ruff" check .
  say "ruff format --check"
  "$VENV/bin/ruff" format --check .
  say "mypy"
  "$VENV/bin/mypy"
  say "lint-imports (the architecture's arrows, pyproject.toml)"
  PYTHONPATH=synapse-config/modules "$VENV/bin/lint-imports"
  say "pytest"
  "$VENV/bin/pytest" "$@"
}

# TURN for call clients behind NAT (production, on a Debian host): render var/turn/turnserver.conf
# from the settings (PARTA_TURN_HOST), install Debian's coturn, write /etc/turnserver.conf
# (readable by coturn's user only: it holds the shared secret) and enable the service.
# Safe to run again: coturn restarts only when the file changed.
setup_turn() {
  local conf="$PARTA_VAR_DIR/turn/turnserver.conf" target=/etc/turnserver.conf sudo=""
  [ -x "$VENV/bin/parta" ] || die "Parta is not installed yet; run ./deploy.sh first."
  "$VENV/bin/parta" init >/dev/null
  "$VENV/bin/parta" render >/dev/null
  [ -f "$conf" ] || die "TURN is not configured: set PARTA_TURN_HOST (the relay's public host name)
  in $PARTA_VAR_DIR/parta.env, then run ./deploy.sh turn again"
  command -v turnserver >/dev/null 2>&1 || apt_install coturn
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] ||
    die "coturn runs as a systemd service, and systemd is not running on this host"
  if $sudo cmp -s "$conf" "$target"; then
    say "$target is up to date"
  else
    say "writing $target from $conf"
    $sudo install -m 0640 -o root -g turnserver "$conf" "$target"
    $sudo systemctl restart coturn
  fi
  $sudo systemctl enable --quiet --now coturn
  local tries=0
  until $sudo systemctl is-active --quiet coturn; do
    tries=$((tries + 1))
    [ "$tries" -le 20 ] || die "coturn did not start within 10 s; see: journalctl -u coturn -n 50"
    sleep 0.5
  done
  say "coturn is running; open the ports named in docs/operations.md (TURN)"
}

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Production mode on a Debian host: Debian's PostgreSQL, Redis, nginx and coturn, then
# `parta production` (its settings, the databases, every process gated by health: under
# systemd where it runs the host, else under Parta's own supervisor). Safe to run again.
run_production() {
  [ "$(id -u)" -eq 0 ] || die "production mode installs packages and services: run it as root
  (sudo ./deploy.sh production)"
  [ -r /etc/debian_version ] || die "production mode is made for Debian 12; this host is not Debian"
  local missing=() systemd=false
  [ -d /run/systemd/system ] && systemd=true
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
  command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || missing+=(logrotate)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
  if $systemd; then
    systemctl enable --now --quiet postgresql redis-server
    # Parta runs its own nginx with its own configuration (var/nginx/nginx.conf).
    systemctl disable --now --quiet nginx 2>/dev/null || true
  else
    # A container or CI: no service manager; start Debian's servers with their scripts.
    answers 127.0.0.1 5432 || service postgresql start >/dev/null
    answers 127.0.0.1 6379 || service redis-server start >/dev/null
    if [ -f /run/nginx.pid ]; then /usr/sbin/nginx -s quit 2>/dev/null || true; fi
  fi
  ensure_venv ""
  "$VENV/bin/parta" production
  # Logs: Synapse rotates its own; the rest is rotated here, copied and truncated in place
  # so the processes keep writing to the same file.
  local logs="$PARTA_VAR_DIR/log"
  printf '%s {\n%s\n}\n' \
    "$logs/*.stdout.log $logs/nginx.access.log $logs/nginx.error.log $logs/provisioning.log $logs/bridge.log $logs/widgets*.log" \
    "    daily
    rotate 14
    compress
    delaycompress
    missingok
    notifempty
    copytruncate" >"${PARTA_LOGROTATE_DIR:-/etc/logrotate.d}/parta"
  if [ -f "$PARTA_VAR_DIR/turn/turnserver.conf" ]; then
    if $systemd; then setup_turn; else
      say "TURN is configured, but coturn runs as a systemd service and this host has no systemd"
    fi
  fi
}

command="${1:-up}"
[ "$#" -gt 0 ] && shift
case "$command" in
  up)
    ensure_venv ""
    exec "$VENV/bin/parta" up "$@"
    ;;
  test)
    run_tests "$@"
    ;;
  production)
    run_production
    ;;
  turn)
    setup_turn
    ;;
  restore)
    # On a fresh host Parta is not installed yet: the restore is its first run.
    [ "$#" -gt 0 ] || die "name the backup to restore: ./deploy.sh restore FILE [--force]"
    archive="$1"
    shift
    case "$archive" in /* | -*) ;; *) archive="$CALLER_DIR/$archive" ;; esac
    ensure_venv ""
    exec "$VENV/bin/parta" restore "$archive" "$@"
    ;;
  stop | status | logs | render | init | sync | demo | backup | doctor | move-to-postgresql)
    [ -x "$VENV/bin/parta" ] || die "Parta is not installed yet; run ./deploy.sh first."
    exec "$VENV/bin/parta" "$command" "$@"
    ;;
  help | -h | --help)
    usage
    ;;
  *)
    usage >&2
    die "unknown command '$command'"
    ;;
esac
