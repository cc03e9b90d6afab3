"""`parta`: the operator's command line (what `./deploy.sh` calls once the venv exists)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from foundation.private_files import PRIVATE_UMASK
from foundation.settings import CONFIG_FILE_NAME, Settings
from parta.supervisor import DeployError, tail

if TYPE_CHECKING:
    from parta.deployment import LocalDeployment, UpReport
    from provisioning.services.demo import DemoSchool

# How long `parta sync` and `parta import` wait for a reconciler run already in progress.
CLI_LEASE_WAIT_S = 600.0

app = typer.Typer(help="Parta: a school messenger on Matrix.", no_args_is_help=True)
serve_app = typer.Typer(help="Run one service in the foreground (what `up` starts).")
app.add_typer(serve_app, name="serve")

VarDir = Annotated[
    Path,
    typer.Option(envvar="PARTA_VAR_DIR", help="Where configuration, data and logs live."),
]

CONFIG_TEMPLATE = """\
# Parta settings for this deployment. Uncomment and edit; `./deploy.sh` applies changes.
# The environment (PARTA_*) overrides this file; secrets live in secrets.env beside it.
# PARTA_SERVER_NAME=localhost
# PARTA_REGION_NAME=Демо-регион
# PARTA_PUBLIC_HOMESERVER_URL=https://matrix.school.example.org
# PARTA_SYNAPSE_PORT=8008
# PARTA_PROVISIONING_PORT=8080
# PARTA_BRIDGE_PORT=8009
# PARTA_SYNAPSE_METRICS_PORT=9008
# PARTA_SYNAPSE_DATABASE=sqlite          # or postgresql (then PARTA_SYNAPSE_POSTGRES_*)
# PARTA_FEDERATION_ALLOW_LIST=[]         # e.g. ["region2.example.org"]
# PARTA_FEDERATION_PRIVATE_SERVERS=[]    # allow-listed servers on a private network
# PARTA_MAX_UPLOAD_SIZE_MB=100
# PARTA_SMS_GATEWAY=console              # or smpp / http: docs/operations.md, SMS gateway
"""


def _fail(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _load(var_dir: Path) -> Settings:
    try:
        return Settings.load(var_dir)
    except ValueError as exc:
        if not isinstance(exc, ValidationError):
            _fail(str(exc))
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"The settings in {var_dir} are not valid: {problems}")


def _write_config_template(var_dir: Path) -> None:
    path = var_dir / CONFIG_FILE_NAME
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(CONFIG_TEMPLATE, encoding="utf-8")


@app.command()
def init(var_dir: VarDir = Path("var")) -> None:
    """Create var/ with a settings file to edit and generated secrets (kept if present)."""
    from parta.secrets import ensure_secrets

    _write_config_template(var_dir)
    created = ensure_secrets(var_dir)
    typer.echo(f"Generated secrets: {', '.join(created)}" if created else "Secrets exist.")


@app.command()
def render(
    var_dir: VarDir = Path("var"),
    dry_run: Annotated[bool, typer.Option(help="Print the files, write nothing.")] = False,
) -> None:
    """Render Synapse's configuration and the appservice registration into var/synapse/."""
    from parta.render import render_all, render_synapse_config

    settings = _load(var_dir)
    if dry_run:
        for item in render_synapse_config(settings):
            typer.echo(f"# ---- {item.path}\n{item.content}")
        return
    changed = render_all(settings)
    typer.echo("\n".join(f"wrote {p}" for p in changed) or "Configuration is up to date.")


@app.command()
def up(var_dir: VarDir = Path("var")) -> None:
    """Start Synapse, provisioning and the bridge (or leave them running) and print logins."""
    from parta.deployment import LocalDeployment

    _write_config_template(var_dir)
    try:
        deployment, created = LocalDeployment.prepare(var_dir)
    except ValidationError as exc:
        _fail(f"The settings in {var_dir} are not valid: {exc}")
    except ValueError as exc:
        _fail(str(exc))
    try:
        report = deployment.up(created)
    except DeployError as exc:
        _fail(str(exc))
    _print_report(deployment, report)


def _print_report(deployment: LocalDeployment, report: UpReport) -> None:
    s = deployment.settings
    for name in report.started:
        typer.echo(f"started {name} (ready in {report.ready_seconds.get(name, 0):.1f} s)")
    for name in report.restarted:
        typer.echo(f"restarted {name}: its configuration or code changed")
    for warning in deployment.certificate_warnings:
        typer.secho(warning, fg=typer.colors.YELLOW, err=True)
    if not report.changed_anything:
        typer.echo("Nothing changed: every service was already running with this configuration.")
    admin_note = "" if report.region_admin_created else " (set at first deploy)"
    typer.echo(
        f"""
Parta is running: region «{s.region_name}», server name {s.server_name}.

  Admin web UI:            {s.web_url}  (sign in as the region administrator below)
  Homeserver for Element:  {s.element_homeserver_url}
  Provisioning service:    {s.provisioning_url}  (health: {s.provisioning_url}/healthz)
  Bridge (appservice):     {s.bridge_url}  (health: {s.bridge_url}/healthz)
  Widgets (calls):         {s.widgets_base_url}  (health: {s.widgets_url}/healthz)
  Documents:               {s.widgets_base_url}/documents/  (sign in with any account below)

  Region administrator:    {s.region_admin_user_id}
{_admin_sign_in(s, admin_note)}

{_demo_block(report.demo, s)}
{_sms_line(s)}
  Data and configuration: {s.var_dir}   Logs: {s.log_dir}
  Stop: ./deploy.sh stop   Status: ./deploy.sh status   Logs: ./deploy.sh logs
  (up in {report.total_seconds:.1f} s)"""
    )


def _admin_sign_in(s: Settings, admin_note: str) -> str:
    """How the region administrator signs in: with the password, or (passwords off) only
    through the region's sign-on, where printing an unusable password would mislead."""
    if s.password_login:
        return (
            f"  Password:                {s.region_admin_password.get_secret_value()}"
            f"{admin_note}\n\n"
            f'  Sign in from Element: choose "Sign in", edit the homeserver, enter\n'
            f"  {s.element_homeserver_url}, then the user name {s.region_admin_localpart} "
            f"and the password."
        )
    return (
        f"  Passwords are off: sign in with «{s.oidc_label}» (the region's single sign-on),\n"
        f"  on the admin UI's sign-in page or in Element after entering the homeserver\n"
        f"  {s.element_homeserver_url}. The provider's account must carry the region\n"
        f"  administrator's {_claim_words(s)} as Parta holds it."
    )


def _claim_words(s: Settings) -> str:
    return {"phone_number": "phone number", "email": "e-mail address"}.get(
        s.oidc_claim, "roster ID"
    )


def _sms_line(s: Settings) -> str:
    """Where sign-in codes go: local mode's "phone" is a private file, never the log."""
    calls = " (flash calls first)" if s.sms_flash_call else ""
    if s.sms_gateway != "console":
        return f"  SMS codes go out through the {s.sms_gateway} gateway{calls}.\n"
    if s.environment == "production":
        return (
            f"  SMS codes are NOT sent to phones: they go to {s.sms_outbox_path}.\n"
            "  Choose a gateway (PARTA_SMS_GATEWAY=smpp or http, docs/operations.md).\n"
        )
    return (
        f"  SMS codes{calls} (console gateway, no messages leave this machine): "
        f"{s.sms_outbox_path}\n"
    )


@app.command()
def production(var_dir: VarDir = Path("var")) -> None:
    """Bring the region up in production mode on this Debian host (./deploy.sh production):
    PostgreSQL databases, Redis, Synapse's workers, nginx with TLS; under systemd where it
    runs the host, else under Parta's supervisor. Safe to run again."""
    from parta.deployment import LocalDeployment
    from parta.production import ensure_production_settings, prepare_host
    from parta.secrets import ensure_secrets

    _write_config_template(var_dir)
    created = ensure_secrets(var_dir)
    if ensure_production_settings(var_dir):
        typer.echo(f"wrote {var_dir / 'production.env'} (production mode, PostgreSQL)")
    deployment = LocalDeployment(_load(var_dir))
    try:
        deployment.check_certificate()
        host = prepare_host(deployment.settings)
        for made in host.created:
            typer.echo(f"created PostgreSQL {made}")
        for warning in host.warnings:
            typer.secho(warning, fg=typer.colors.YELLOW, err=True)
        report = deployment.up(created)
    except DeployError as exc:
        _fail(str(exc))
    _print_report(deployment, report)


def _demo_block(demo: DemoSchool | None, settings: Settings) -> str:
    if demo is None:
        return ""
    from provisioning.services.demo import DEMO_NAME

    width = max(len(login.role) for login in demo.logins) if demo.logins else 0
    rows = "\n".join(
        f"    {login.role:<{width}}  {login.user_id}  ({login.display_name})"
        for login in demo.logins
    )
    return (
        f"  Demo school «{DEMO_NAME}»; each of these accounts has the password "
        f"{settings.demo_password.get_secret_value()}:\n{rows}\n"
    )


@app.command("import")
def import_roster_file(
    roster: Annotated[Path, typer.Argument(help="A CSV file; see docs/operations.md.")],
    school: Annotated[str, typer.Option(help="The school's address (slug), e.g. shkola-57.")],
    create_classes: Annotated[
        str,
        typer.Option(
            help="Classes the file may create, e.g. «7Б,8В»; rows of any other class the "
            "school does not have are refused."
        ),
    ] = "",
    var_dir: VarDir = Path("var"),
) -> None:
    """Import a school's roster from CSV (all or nothing), then reconcile."""
    import asyncio

    from sqlalchemy import select

    from matrix.client import MatrixClient
    from provisioning.db.engine import make_engine, make_session_factory
    from provisioning.db.migrate import upgrade_to_head
    from provisioning.db.models import School
    from provisioning.reconciler.lease import ReconcilerBusy
    from provisioning.reconciler.run import reconcile_region
    from provisioning.services.roster import (
        RosterError,
        check_roster,
        import_roster,
        parse_class_list,
    )

    settings = _load(var_dir)
    wanted = parse_class_list(create_classes)
    if wanted is None:
        _fail(f"--create-classes lists classes such as 7Б,8В, not {create_classes!r}.")
    try:
        data = roster.read_bytes()
    except OSError as exc:
        _fail(f"Cannot read {roster}: {exc.strerror}")
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_to_head(engine)
    try:
        with make_session_factory(engine)() as session:
            found = session.scalar(select(School).where(School.slug == school))
            if found is None:
                _fail(f"There is no school with the address {school!r}.")
            try:
                checked = check_roster(session, found, data, create_classes=wanted)
                summary = import_roster(
                    session,
                    found,
                    checked.rows,
                    server_name=settings.server_name,
                    actor="cli",
                    create_classes=wanted,
                )
                session.commit()
            except RosterError as exc:
                session.rollback()
                could = [c.label for c in exc.missing_classes if not c.create]
                hint = f"\nTo create {', '.join(could)}: --create-classes {','.join(could)}"
                _fail(
                    "The file was not imported; nothing changed:\n  "
                    + "\n  ".join(exc.problems)
                    + (hint if could else "")
                )
            typer.echo(
                f"created {summary.created}, moved {summary.moved}, unchanged {summary.unchanged}"
                + (
                    f"; new classes: {', '.join(summary.classes_created)}"
                    if summary.classes_created
                    else ""
                )
            )

            async def sync() -> int:
                token = settings.as_token.get_secret_value()
                async with MatrixClient(settings.homeserver_url, token) as client:
                    report = await reconcile_region(
                        session, client, settings, wait_s=CLI_LEASE_WAIT_S
                    )
                    return len(report.plan)

            try:
                typer.echo(f"reconciled: {asyncio.run(sync())} actions")
            except ReconcilerBusy as exc:
                _fail(f"The roster is imported, but not yet placed on Matrix: {exc}.")
    finally:
        engine.dispose()


@app.command()
def demo(var_dir: VarDir = Path("var")) -> None:
    """Load the demo school (once) into a running deployment and print its logins."""
    import asyncio

    from matrix.client import MatrixClient
    from provisioning.db.engine import make_engine, make_session_factory
    from provisioning.db.migrate import upgrade_to_head
    from provisioning.services.demo import ensure_demo_school

    settings = _load(var_dir)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_to_head(engine)

    async def load() -> DemoSchool:
        token = settings.as_token.get_secret_value()
        async with MatrixClient(settings.homeserver_url, token) as client:
            with make_session_factory(engine)() as session:
                return await ensure_demo_school(session, client, settings)

    try:
        loaded = asyncio.run(load())
    finally:
        engine.dispose()
    typer.echo("Loaded the demo school." if loaded.created else "The demo school exists already.")
    typer.echo(_demo_block(loaded, settings))


@app.command("check-tls")
def check_tls(var_dir: VarDir = Path("var")) -> None:
    """Check production mode's certificate and key (PARTA_TLS_CERT_FILE, PARTA_TLS_KEY_FILE)
    for the server name and PARTA_PUBLIC_HOSTS; exit 1 with what to do when they would fail."""
    from datetime import UTC, datetime

    from parta.tls import CertificateProblem, check_certificate

    settings = _load(var_dir)
    if not settings.tls_cert_file or not settings.tls_key_file:
        _fail(
            "Set PARTA_TLS_CERT_FILE (the full chain) and PARTA_TLS_KEY_FILE (its private "
            f"key) in {var_dir / CONFIG_FILE_NAME} or the environment."
        )
    names = settings.certificate_names
    now = datetime.now(UTC)
    try:
        report = check_certificate(
            Path(settings.tls_cert_file), Path(settings.tls_key_file), names, now=now
        )
    except CertificateProblem as problem:
        _fail(str(problem))
    typer.echo(
        f"The certificate covers {', '.join(names)} and expires on "
        f"{report.not_after:%Y-%m-%d} (in {report.days_left(now)} days); issued by "
        f"{report.issuer}; {report.chain_length} certificate(s) in the chain."
    )
    for warning in report.warnings:
        typer.secho(warning, fg=typer.colors.YELLOW, err=True)


@app.command()
def stop(var_dir: VarDir = Path("var")) -> None:
    """Stop the services this deployment started (and nothing else)."""
    from parta.deployment import LocalDeployment

    stopped = LocalDeployment(_load(var_dir)).stop()
    typer.echo(f"stopped {', '.join(stopped)}" if stopped else "Nothing was running.")


@app.command()
def status(var_dir: VarDir = Path("var")) -> None:
    """Show which services run and any file others may read; exit 1 unless all is well."""
    import stat

    from foundation.private_files import exposed
    from parta.deployment import LocalDeployment

    settings = _load(var_dir)
    states = LocalDeployment(settings).status()
    for name, pid in states.items():
        typer.echo(f"{name:28} {'running, pid ' + str(pid) if pid else 'stopped'}")
    readable = exposed(settings.var_dir)
    for path, mode in readable:
        typer.echo(f"readable by other accounts: {path} (mode {stat.S_IMODE(mode):04o})")
    if readable:
        typer.echo(
            f"{len(readable)} paths under {settings.var_dir} hold private data that other "
            "accounts on this machine can read. Run ./deploy.sh to make them private again "
            f"(or: chmod -R go-rwx {settings.var_dir})."
        )
    if not all(states.values()) or readable:
        raise typer.Exit(1)


@app.command()
def logs(
    service: Annotated[
        str,
        typer.Argument(
            help="synapse, provisioning, bridge, widgets; in production also nginx and "
            "synapse-<worker> (./deploy.sh status lists them)"
        ),
    ] = "all",
    lines: Annotated[int, typer.Option("-n", help="How many lines of each log.")] = 40,
    var_dir: VarDir = Path("var"),
) -> None:
    """Print the end of each service's log."""
    from parta.deployment import LocalDeployment

    settings = _load(var_dir)
    try:
        files = {spec.name: spec.log_files for spec in LocalDeployment(settings).specs()}
    except (OSError, DeployError):  # not rendered yet: where the four services will log
        files = {
            "synapse": [settings.log_dir / "synapse.log", settings.log_dir / "synapse.stdout.log"],
            **{n: [settings.log_dir / f"{n}.log"] for n in ("provisioning", "bridge", "widgets")},
        }
    if service != "all" and service not in files:
        _fail(f"Unknown service {service!r}: use one of {', '.join(files)}.")
    for name, paths in files.items():
        # `widgets` means every SFU process (widgets, widgets-2, ...).
        if service in ("all", name) or (service == "widgets" and name.startswith("widgets-")):
            for path in paths:
                typer.echo(f"==> {path} <==\n{tail(path, lines)}\n")


@app.command()
def sync(
    var_dir: VarDir = Path("var"),
    dry_run: Annotated[
        bool, typer.Option(help="Print the plan as JSON lines; change nothing.")
    ] = False,
    full: Annotated[
        bool, typer.Option(help="Read every managed room from Synapse to repair any drift.")
    ] = False,
) -> None:
    """Make Synapse match the provisioning database (the reconciler), once."""
    import asyncio
    import json

    from foundation.logs import configure_logging
    from matrix.client import MatrixClient
    from provisioning.db.engine import make_engine, make_session_factory
    from provisioning.db.migrate import upgrade_to_head
    from provisioning.reconciler.actions import describe
    from provisioning.reconciler.lease import ReconcilerBusy
    from provisioning.reconciler.run import RunReport, reconcile_region

    settings = _load(var_dir)
    configure_logging("WARNING", "text")
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_to_head(engine)

    async def run() -> RunReport:
        token = settings.as_token.get_secret_value()
        async with MatrixClient(settings.homeserver_url, token) as client:
            with make_session_factory(engine)() as session:
                return await reconcile_region(
                    session, client, settings, full=full, dry_run=dry_run,
                    wait_s=CLI_LEASE_WAIT_S,
                )  # fmt: skip

    try:
        report = asyncio.run(run())
    except ReconcilerBusy as exc:
        _fail(f"Nothing was done: {exc}.")
    finally:
        engine.dispose()
    if dry_run:
        for action in report.plan:
            typer.echo(json.dumps(describe(action), ensure_ascii=False))
    typer.echo(
        f"{'planned' if dry_run else 'applied'} {len(report.plan)} actions "
        f"with {report.calls} calls to Synapse in {report.seconds:.1f} s",
        err=dry_run,
    )
    for failure in report.applied.failed:
        typer.echo(f"failed: {json.dumps(failure.describe(), ensure_ascii=False)}", err=True)
    if report.refused or report.postponed:
        # Refused for good: sending them again now would fail the same way (issue 18).
        typer.echo(
            f"The homeserver refuses {len(report.refused) + len(report.postponed)} changes "
            f"for good ({len(report.refused)} tried in this run, {len(report.postponed)} "
            "waiting for their next attempt). They are recorded, shown to the school's "
            "administration on its page and retried with back-off (1 minute, doubling, at "
            "most 6 hours); correcting the data (such as a person's name) retries at once.",
            err=True,
        )
    if not report.only_refusals_failed:
        unapplied = len(report.applied.failed) - len(report.refused)
        _fail(
            f"{unapplied} actions failed and {report.applied.skipped} were skipped "
            "(their room could not be created). Everything else is in place; run "
            "./deploy.sh sync again, and see var/log/synapse.log if they fail again."
        )


@app.command()
def backup(
    var_dir: VarDir = Path("var"),
    output: Annotated[
        Path | None,
        typer.Option("--output", help="The directory to write into (default: var/backups)."),
    ] = None,
) -> None:
    """Write one archive of the region (databases, media, signing key, secrets, settings)
    while it runs, and print its path."""
    from parta.backup import BackupError, create_backup

    settings = _load(var_dir)
    try:
        report = create_backup(settings, output or settings.var_dir / "backups")
    except BackupError as exc:
        _fail(str(exc))
    typer.echo(
        f"{report.files} files, {report.bytes / 1e6:.1f} MB before compression, "
        f"{report.path.stat().st_size / 1e6:.1f} MB written in {report.seconds:.1f} s. It "
        "holds the region's secrets: keep it private, and keep a copy off this machine.",
        err=True,
    )
    typer.echo(report.path)


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="An archive `parta backup` wrote.")],
    var_dir: VarDir = Path("var"),
    force: Annotated[
        bool, typer.Option(help="Replace a deployment (and databases) that already has data.")
    ] = False,
    start: Annotated[bool, typer.Option(help="Start the region when restored.")] = True,
) -> None:
    """Bring a backup back on this host (a fresh one unless --force), then start the region."""
    from parta.databases import BackupError
    from parta.restore import restore_backup

    try:
        report = restore_backup(archive, var_dir, force=force, start=start)
    except BackupError as exc:
        _fail(str(exc))
    except DeployError as exc:
        _fail(f"The backup is restored, but the region did not start: {exc}")
    if report.stopped:
        typer.echo(f"stopped {', '.join(report.stopped)}")
    if report.kept_from_environment:
        typer.echo(
            "kept from the environment, written into parta.env: "
            + ", ".join(report.kept_from_environment)
        )
    for name in report.created_databases:
        typer.echo(f"created the database {name}")
    typer.echo(
        f"Restored {report.server_name} as of {report.created_at}: {report.files} files "
        f"and both databases"
        + ("; the region is running (./deploy.sh status)." if report.started else ".")
    )


@app.command()
def doctor(var_dir: VarDir = Path("var")) -> None:
    """Check settings, ports, each process's health, and in production the certificate,
    DNS and .well-known over HTTPS, then disk space and private files; exit 1 on errors."""
    from parta.doctor import diagnose

    colours = {"error": typer.colors.RED, "warning": typer.colors.YELLOW, "ok": None}
    findings = diagnose(var_dir)
    for finding in findings:
        label = f"{finding.severity.upper():8}{finding.topic:12}"
        typer.secho(f"{label}{finding.message}", fg=colours[finding.severity])
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    typer.echo(f"{errors} errors, {warnings} warnings.")
    if errors:
        raise typer.Exit(1)


@app.command("move-to-postgresql")
def move_to_postgresql(
    database_url: Annotated[
        str,
        typer.Option(
            help="Provisioning's new database, e.g. postgresql+psycopg2://parta@127.0.0.1/parta "
            "(default: PARTA_DATABASE_URL, if it names PostgreSQL)."
        ),
    ] = "",
    synapse_host: Annotated[str, typer.Option(help="Default: PARTA_SYNAPSE_POSTGRES_HOST.")] = "",
    synapse_port: Annotated[int, typer.Option(help="Default: PARTA_SYNAPSE_POSTGRES_PORT.")] = 0,
    synapse_user: Annotated[str, typer.Option(help="Default: PARTA_SYNAPSE_POSTGRES_USER.")] = "",
    synapse_db: Annotated[
        str, typer.Option(help="Synapse's new database (default: PARTA_SYNAPSE_POSTGRES_DB).")
    ] = "",
    wait: Annotated[
        float,
        typer.Option(help="Seconds to wait for Synapse's background updates to finish."),
    ] = 600.0,
    var_dir: VarDir = Path("var"),
) -> None:
    """Move this deployment's data from SQLite to PostgreSQL (Synapse's and provisioning's),
    then switch var/parta.env to it and start again. Synapse's password comes from
    PARTA_SYNAPSE_POSTGRES_PASSWORD, never from the command line."""
    from parta.move_db import (
        MOVED_SUFFIX,
        SETTINGS_BACKUP_NAME,
        MoveFailed,
        MoveRefused,
        already_moved,
        move_to_postgresql,
        target_from,
    )

    settings = _load(var_dir)
    try:
        target = target_from(
            settings,
            synapse_host=synapse_host or None,
            synapse_port=synapse_port or None,
            synapse_user=synapse_user or None,
            synapse_db=synapse_db or None,
            database_url=database_url or None,
        )
    except MoveRefused as exc:
        if already_moved(settings):
            typer.echo("This deployment is on PostgreSQL already; nothing to do.")
            return
        _fail(str(exc))
    try:
        report = move_to_postgresql(
            settings, target, background_updates_wait_s=wait, say=typer.echo
        )
    except MoveRefused as exc:
        _fail(f"Nothing was changed. {exc}")
    except (MoveFailed, DeployError) as exc:
        _fail(str(exc))
    if report.already_done:
        typer.echo("This deployment is on PostgreSQL already; nothing to do.")
        return
    total = sum(report.provisioning_rows.values())
    typer.echo(
        f"Moved: Synapse's database in {report.seconds['synapse']:.1f} s "
        f"({report.synapse_rows.get('events', 0)} events, {report.synapse_rows.get('users', 0)} "
        f"accounts), provisioning's {len(report.provisioning_rows)} tables ({total} rows) in "
        f"{report.seconds['provisioning']:.1f} s; row counts checked.\n"
        f"Settings written to {settings.var_dir / CONFIG_FILE_NAME}: "
        f"{', '.join(report.settings_written) or 'none (they were there)'}"
        f" (the file as it was: {settings.var_dir / SETTINGS_BACKUP_NAME}).\n"
        f"The SQLite files are kept as the way back, renamed with {MOVED_SUFFIX}: "
        f"{', '.join(str(p) for p in report.kept_files)}.\n"
        "The deployment runs on PostgreSQL."
    )


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn believes X-Forwarded-For only from the configured proxies.

    Its own default trusts any client on 127.0.0.1 (or `$FORWARDED_ALLOW_IPS`): everything
    on this machine, which let a local client rotate the header past the login throttle and
    forge the audit log's addresses (issue 18).
    """
    proxies = settings.forwarded_allow_ips
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies}


@serve_app.command("provisioning")
def serve_provisioning(var_dir: VarDir = Path("var")) -> None:
    """Run the provisioning service on its configured address."""
    import uvicorn

    from foundation.logs import configure_logging
    from provisioning.app import create_app

    settings = _load(var_dir)
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.bind_address,
        port=settings.provisioning_port,
        log_config=None,
        **proxy_options(settings),
    )


@serve_app.command("bridge")
def serve_bridge(var_dir: VarDir = Path("var")) -> None:
    """Run the bridge (the appservice Synapse calls) on its configured address."""
    import uvicorn

    from foundation.logs import configure_logging
    from provisioning.appservice.app import create_app

    settings = _load(var_dir)
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.bind_address,
        port=settings.bridge_port,
        log_config=None,
        **proxy_options(settings),
    )


@serve_app.command("widgets")
def serve_widgets(
    var_dir: VarDir = Path("var"),
    process: Annotated[
        int,
        typer.Option(
            min=1, help="Which widget process: its port is PARTA_WIDGETS_PORT + this - 1."
        ),
    ] = 1,
    of: Annotated[int, typer.Option(min=1, help="How many widget processes run.")] = 1,
) -> None:
    """Run one widget service process (the call widget's SFU) on its configured address."""
    import uvicorn

    from foundation.logs import configure_logging
    from foundation.memory import freeze_startup_objects
    from widgets.app import create_app
    from widgets.call.service import MESSAGE_MAX_BYTES

    settings = _load(var_dir)
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, process=process, processes=of)
    freeze_startup_objects()  # full collections would stop every call to walk them
    uvicorn.run(
        app,
        host=settings.bind_address,
        port=settings.widgets_port + process - 1,
        log_config=None,
        ws_max_size=MESSAGE_MAX_BYTES,  # a bigger frame is refused (1009) before it is read
        **proxy_options(settings),
    )


def main() -> None:
    # Files the CLI and the services it runs make are this account's only (var/ holds
    # pupils' data, access tokens and secrets): foundation.private_files.
    os.umask(PRIVATE_UMASK)
    app()
