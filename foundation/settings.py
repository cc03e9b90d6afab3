"""One settings object for a region's deployment.

Every part (Synapse's rendered config, provisioning, the bridge, the CLI) reads the
same `Settings`, so a port or a server name is stated once. Values come, in order of
precedence, from the environment (`PARTA_*`), the operator's `var/parta.env` and the
generated `var/secrets.env` (mode 0600, written once by `parta.secrets`).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_FILE_NAME = "parta.env"
SECRETS_FILE_NAME = "secrets.env"
# Written by `./deploy.sh production` (parta/production.py): the mode and the databases it
# created, with their generated passwords. The operator's parta.env still wins.
PRODUCTION_FILE_NAME = "production.env"

# Secrets generated at deploy time; a production start refuses any of them missing.
SECRET_FIELDS = (
    "as_token",
    "hs_token",
    "registration_shared_secret",
    "macaroon_secret_key",
    "form_secret",
    "region_admin_password",
    "demo_password",
    "web_secret",
    "turn_shared_secret",
    "worker_replication_secret",
)
# Synapse's ID of the region's OpenID Connect provider (it must start with "oidc-").
OIDC_IDP_ID = "oidc-region"
_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "password"}
# An edge's address for a page (`call_edges`): a path on the widgets' host, or another host's.
CALL_EDGE_URL = r"^(wss?://[A-Za-z0-9.:\[\]-]+)?/call/edge/[0-9]{1,3}/ws$"
_SERVER_NAME = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_LOCALPART = re.compile(r"^[a-z0-9._=/-]+$")


class Settings(BaseSettings):
    """A region's deployment: names, addresses, databases, limits and secrets."""

    model_config = SettingsConfigDict(env_prefix="PARTA_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    var_dir: Path = Path("var")

    # Identity of the region.
    server_name: str = "localhost"
    region_name: str = "Демо-регион"
    public_homeserver_url: str = ""  # what Element users type; defaults to the local listener
    timezone: str = "Europe/Moscow"  # how the admin UI shows dates and times
    # The language of what Parta writes into a school's rooms for everyone to read (a
    # call's attendance notice), whatever the browser of the person who asked for it.
    language: Literal["ru", "en"] = "ru"
    public_web_url: str = ""  # where people open the admin UI and invite links; defaults to local
    public_widgets_url: str = ""  # where Matrix clients load widgets from; defaults to local

    # Where each service listens (loopback unless a reverse proxy fronts them).
    bind_address: str = "127.0.0.1"
    synapse_port: int = Field(default=8008, ge=1, le=65535)
    synapse_metrics_port: int = Field(default=9008, ge=1, le=65535)
    provisioning_port: int = Field(default=8080, ge=1, le=65535)
    bridge_port: int = Field(default=8009, ge=1, le=65535)
    widgets_port: int = Field(default=8010, ge=1, le=65535)  # the call (SFU) and documents
    # The reverse proxies whose X-Forwarded-For and X-Forwarded-Proto the services believe:
    # comma-separated addresses or networks. Unset: none in development, 127.0.0.1 (nginx on
    # this machine) in production. Any other client's header is ignored, so it cannot forge
    # the address the login throttle counts and the audit log records.
    trusted_proxies: str | None = None

    # Synapse's own database: SQLite for one machine, PostgreSQL for a real region.
    synapse_database: Literal["sqlite", "postgresql"] = "sqlite"
    synapse_postgres_host: str = "127.0.0.1"
    synapse_postgres_port: int = 5432
    synapse_postgres_user: str = "synapse"
    synapse_postgres_password: SecretStr = SecretStr("")
    synapse_postgres_db: str = "synapse"

    # Provisioning's database (SQLAlchemy URL); empty means SQLite under var/.
    database_url: str = ""

    # Federation: closed unless other regions' server names are listed here.
    federation_allow_list: list[str] = Field(default_factory=list)
    # Servers of the allow-list that may resolve to a loopback or private address (a region
    # on the same private network): the widget service asks no other such address.
    federation_private_servers: list[str] = Field(default_factory=list)

    # Limits.
    max_upload_size_mb: int = Field(default=100, ge=1, le=4096)
    # Documents: each person's storage (0 = unlimited, as the platform Parta replaces
    # promises), and the LibreOffice processes converting office files for preview.
    documents_quota_mb: int = Field(default=0, ge=0, le=10_000_000)
    documents_convert_workers: int = Field(default=2, ge=1, le=16)
    documents_convert_time_limit_s: float = Field(default=120.0, ge=5, le=3600)
    # The region-wide disk alarm: below this share of free space on the media store's disk,
    # the widget service's /healthz says so and its log warns (hourly).
    documents_disk_alarm_percent: float = Field(default=10.0, ge=0, le=100)

    # Matrix-side names of Parta's own accounts.
    appservice_id: str = "parta"
    bot_localpart: str = "parta"
    region_admin_localpart: str = "admin"

    # The reconciler in the provisioning service: after changes, and a full check periodically.
    reconcile_debounce_s: float = Field(default=1.0, ge=0, le=60)
    reconcile_interval_s: float = Field(default=600.0, ge=10, le=86_400)

    # The school policy module in Synapse (docs/safety.md): the language of its refusals,
    # whether pupils reach their whole school or only their class, whether adults reach
    # the region's adults or only their school's, and how old provisioning's snapshot may
    # grow before decisions about pupils fail closed.
    policy_language: Literal["ru", "en"] = "ru"
    policy_pupil_peers: Literal["school", "class"] = "school"
    policy_adult_scope: Literal["region", "school"] = "region"
    policy_max_snapshot_age_s: float = Field(default=3600.0, ge=60, le=7 * 86_400)

    # Calls: how many of the last speakers' cameras a participant receives besides the
    # teacher's, the floor's and screen shares (aiortc has no simulcast: this is the budget).
    call_last_n: int = Field(default=6, ge=0, le=30)
    # How often a live call asks its room who is in it and who moderates (a teacher
    # promoted or demoted in Matrix mid-call, a pupil who left the room).
    call_access_poll_s: float = Field(default=15.0, ge=0.1, le=600)
    # Recording a broadcast's stage (docs/broadcasts.md#recording): each speaker's stream
    # is written in parts of at most this size and this length; each part is one upload,
    # so it is also held under `max_upload_size_mb` (whichever is smaller).
    call_recording_max_mb: int = Field(default=100, ge=1, le=4096)
    call_recording_max_s: float = Field(default=3600.0, ge=10, le=12 * 3600)

    # TURN (coturn) for call clients behind NAT: off unless `turn_host` (or `turn_uris`) is
    # set, since loopback needs none. Relayed media uses the relay port range; peers on
    # private and loopback ranges are refused except `turn_allowed_peer_ips` (the SFU's own
    # address when it has no public one). Credentials live `turn_credential_lifetime_s`:
    # coturn checks them on every refresh of an allocation, so this is longer than a lesson.
    turn_host: str = ""
    turn_port: int = Field(default=3478, ge=1, le=65535)
    turn_tls_port: int = Field(default=5349, ge=1, le=65535)
    turn_relay_min_port: int = Field(default=49152, ge=1024, le=65535)
    turn_relay_max_port: int = Field(default=65535, ge=1024, le=65535)
    turn_uris: list[str] = Field(default_factory=list)  # instead of those derived from the host
    turn_allowed_peer_ips: list[str] = Field(default_factory=list)
    turn_external_ip: str = ""  # coturn's external-ip behind 1:1 NAT ("public/private")
    # Default: the region's certificate (tls_cert_file), else Let's Encrypt's for turn_host.
    turn_tls_cert: str = ""
    turn_tls_key: str = ""
    turn_credential_lifetime_s: int = Field(default=8 * 3600, ge=60, le=7 * 86_400)

    # Production mode's certificate (the full chain) and its key, served by nginx to every
    # phone; `public_hosts` are the names people reach the region by, if not only the
    # server name. `parta check-tls` checks them (parta/tls.py).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    public_hosts: list[str] = Field(default_factory=list)
    # The widget service's own host name (default `widgets.<server name>`): a Matrix client
    # loads widgets in frames, which must not share the homeserver's or the admin UI's origin.
    widgets_host: str = ""
    # nginx's public listeners: HTTPS, and HTTP only to redirect to it; empty address: all.
    https_port: int = Field(default=443, ge=1, le=65535)
    http_port: int = Field(default=80, ge=1, le=65535)
    public_bind_address: str = ""

    # Synapse's workers over Redis (docs/operations.md, "Sizing"): unset means on in
    # production and off in development; counts unset are sized to the host's cores.
    # Workers listen on consecutive loopback ports from `synapse_worker_base_port`.
    synapse_workers: bool | None = None
    synapse_event_persisters: int | None = Field(default=None, ge=2, le=16)
    synapse_synchrotrons: int | None = Field(default=None, ge=1, le=64)
    synapse_client_readers: int | None = Field(default=None, ge=1, le=64)
    synapse_federation_readers: int | None = Field(default=None, ge=1, le=32)
    synapse_federation_senders: int | None = Field(default=None, ge=1, le=16)
    synapse_worker_base_port: int = Field(default=18100, ge=1024, le=65000)
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_password: SecretStr = SecretStr("")

    # The widget service as several SFU processes (docs/operations.md, "SFU processes"):
    # unset means one per core in production and one in development. They listen on
    # consecutive loopback ports from `widgets_port`; nginx sends each call to one of them.
    widget_processes: int | None = Field(default=None, ge=1, le=64)
    # A live broadcast's audience watches from edges (docs/broadcasts.md, "Thousands of
    # viewers"): where pages reach each edge, a path on the widgets' host or an address on
    # another host, each ending in `/call/edge/<n>/ws`. Unset: with several widget
    # processes, every process of this host is an edge for the others' broadcasts; with one,
    # there are none and the audience watches the call itself.
    call_edges: list[Annotated[str, Field(pattern=CALL_EDGE_URL, max_length=512)]] = Field(
        default_factory=list, max_length=256
    )
    # This host's first widget process's place in `call_edges` (1 = the first), for edges
    # on several hosts: each host lists all of them and says which are its own.
    call_edge_first: int = Field(default=1, ge=1, le=256)
    call_edge_viewers: int = Field(default=300, ge=1, le=10_000)  # one edge's most viewers
    # Where an edge reaches any room's broadcast origin (ws://, routed by room); unset:
    # this host's nginx on loopback, which sends a room's link where its call runs.
    call_origin_url: str = Field(default="", pattern=r"^(wss?://[^\s/]+)?$", max_length=512)

    # Text messages with sign-in codes (docs/operations.md, "Choosing an SMS gateway"):
    # "console" appends each message to a private file (`sms_outbox_path`) for local mode
    # and demos; "smpp" speaks SMPP 3.4 to an operator's SMSC; "http" calls a provider's
    # web API. Provider secrets (`PARTA_SMS_SMPP_PASSWORD`, `PARTA_SMS_HTTP_AUTH`) go into
    # var/secrets.env.
    sms_gateway: Literal["console", "smpp", "http"] = "console"
    sms_sender: str = Field(default="Parta", min_length=1, max_length=20)
    sms_timeout_s: float = Field(default=15.0, ge=1, le=120)
    sms_smpp_host: str = "127.0.0.1"
    sms_smpp_port: int = Field(default=2775, ge=1, le=65535)
    sms_smpp_system_id: str = Field(default="", max_length=15)
    sms_smpp_system_type: str = Field(default="", max_length=12)
    sms_smpp_password: SecretStr = SecretStr("")
    sms_http_url: str = ""  # may hold $phone, $phone_digits, $text, $sender (URL-encoded)
    sms_http_method: Literal["POST", "GET"] = "POST"
    sms_http_content_type: Literal["json", "form"] = "json"
    sms_http_body: str = '{"to": "$phone", "text": "$text", "from": "$sender"}'
    sms_http_auth: SecretStr = SecretStr("")  # the Authorization header's whole value
    # Flash calls (звонок-сброс): the code is the calling number's last 4 digits. The
    # console gateway simulates them; the http gateway sends `sms_flash_call_url` (with
    # `sms_flash_call_body`; both may hold $phone, $phone_digits, $code, $sender). SMS
    # stays the fallback the page offers after the countdown. Unset: SMS only.
    sms_flash_call: bool = False
    sms_flash_call_url: str = Field(default="", max_length=2048)
    sms_flash_call_body: str = Field(
        default='{"phone": "$phone", "code": "$code"}', max_length=4096
    )
    # How many codes one number and one client address may ask for in 24 hours.
    sms_daily_per_number: int = Field(default=5, ge=1, le=1000)
    sms_daily_per_address: int = Field(default=20, ge=1, le=100_000)

    # A demo school with demo accounts, loaded by `./deploy.sh` in development.
    demo_school: bool = True

    # The region's single sign-on (docs/operations.md, "The region's single sign-on"): an
    # OpenID Connect provider (a regional education portal) that Element and the admin UI
    # offer as "Sign in with <oidc_name>". Off while `oidc_issuer` is empty. A person is
    # linked to their existing account by `oidc_claim` (their phone number, e-mail address or
    # roster ID as Parta holds it); nobody gets an account by it.
    oidc_issuer: str = Field(default="", max_length=500)
    oidc_client_id: str = Field(default="", max_length=255)
    oidc_client_secret: SecretStr = SecretStr("")  # given by the provider; var/secrets.env
    oidc_name: str = Field(default="", max_length=64)  # the button's label; default: the region
    oidc_claim: Literal["phone_number", "email", "roster_id"] = "phone_number"
    # With `oidc_claim=roster_id`: the provider's name of the claim carrying the roster ID
    # (portals differ: "roster_id", "person_id", "snils"…), asked for with the `profile` scope.
    oidc_roster_claim: str = Field(
        default="roster_id", min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$"
    )
    # Local passwords: off leaves the region's sign-on as the only way in (needs OIDC).
    password_login: bool = True

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    # Secrets (generated into var/secrets.env by `parta.secrets.ensure_secrets`).
    as_token: SecretStr = SecretStr("")
    hs_token: SecretStr = SecretStr("")
    registration_shared_secret: SecretStr = SecretStr("")
    macaroon_secret_key: SecretStr = SecretStr("")
    form_secret: SecretStr = SecretStr("")
    region_admin_password: SecretStr = SecretStr("")
    demo_password: SecretStr = SecretStr("")
    web_secret: SecretStr = SecretStr("")  # signs the admin UI's CSRF tokens
    turn_shared_secret: SecretStr = SecretStr("")  # coturn's static-auth-secret
    # Synapse's processes sign their HTTP replication requests to each other with it.
    worker_replication_secret: SecretStr = SecretStr("")

    @classmethod
    def load(cls, var_dir: Path | None = None) -> Settings:
        """Read settings for the deployment whose state lives in `var_dir`.

        The environment wins over `var/parta.env`, which wins over `var/production.env`,
        which wins over `var/secrets.env`.
        """
        probe = cls()
        directory = (var_dir or probe.var_dir).resolve()
        files = [
            directory / SECRETS_FILE_NAME,
            directory / PRODUCTION_FILE_NAME,
            directory / CONFIG_FILE_NAME,
        ]
        for path in files:
            _refuse_unknown_names(path)
        return cls(
            _env_file=tuple(str(f) for f in files if f.exists()),
            var_dir=directory,
        )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a time zone such as Europe/Moscow") from exc
        return value

    @field_validator("server_name")
    @classmethod
    def _check_server_name(cls, value: str) -> str:
        if not _SERVER_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a Matrix server name: use a host name such as "
                "'school.example.org' (letters, digits, dots, hyphens)"
            )
        return value

    @field_validator("bot_localpart", "region_admin_localpart", "appservice_id")
    @classmethod
    def _check_localpart(cls, value: str) -> str:
        if not _LOCALPART.match(value):
            raise ValueError(f"{value!r} may use only a-z, 0-9 and . _ = / -")
        return value

    @field_validator("federation_allow_list", "federation_private_servers")
    @classmethod
    def _check_allow_list(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for name in value:
            if not _SERVER_NAME.match(name):
                raise ValueError(f"{info.field_name}: {name!r} is not a server name")
        return value

    @model_validator(mode="after")
    def _private_servers_are_federated(self) -> Settings:
        strangers = set(self.federation_private_servers) - set(self.federation_allow_list)
        if strangers:
            raise ValueError(
                "federation_private_servers must be on federation_allow_list too: "
                + ", ".join(sorted(strangers))
            )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for address in _split_addresses(value):
            if address == "*":
                raise ValueError(
                    "trusted_proxies: '*' would believe X-Forwarded-For from any client, who "
                    "could then pose as any address; list the reverse proxies' addresses, "
                    "such as 127.0.0.1"
                )
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {address!r} is not an IP address or network such as "
                    "127.0.0.1 or 10.0.0.0/24"
                ) from None
        return value

    @field_validator("turn_uris")
    @classmethod
    def _check_turn_uris(cls, value: list[str]) -> list[str]:
        for uri in value:
            if not re.match(r"^turns?:[^\s?]+(\?transport=(udp|tcp))?$", uri):
                raise ValueError(
                    f"turn_uris: {uri!r} is not a TURN URI such as "
                    "'turn:turn.example.org:3478?transport=udp'"
                )
        return value

    @model_validator(mode="after")
    def _check_sms_gateway(self) -> Settings:
        if self.sms_gateway == "smpp" and not self.sms_smpp_system_id:
            raise ValueError(
                "sms_gateway=smpp needs PARTA_SMS_SMPP_SYSTEM_ID (and PARTA_SMS_SMPP_PASSWORD "
                "in var/secrets.env), as the SMS operator gave them"
            )
        if self.sms_gateway == "http" and not re.match(r"^https?://[^\s]+$", self.sms_http_url):
            raise ValueError(
                "sms_gateway=http needs PARTA_SMS_HTTP_URL, the provider's https:// address "
                "for sending a message"
            )
        if (
            self.sms_flash_call
            and self.sms_gateway == "http"
            and not re.match(r"^https?://[^\s]+$", self.sms_flash_call_url)
        ):
            raise ValueError(
                "PARTA_SMS_FLASH_CALL=true with the http gateway needs PARTA_SMS_FLASH_CALL_URL, "
                "the provider's address for a flash call (its code ends the calling number)"
            )
        if self.sms_flash_call and self.sms_gateway == "smpp":
            raise ValueError(
                "PARTA_SMS_FLASH_CALL=true needs the http or console gateway: SMPP sends texts only"
            )
        return self

    @model_validator(mode="after")
    def _check_turn_relay_ports(self) -> Settings:
        if self.turn_relay_min_port > self.turn_relay_max_port:
            raise ValueError("turn_relay_min_port must not be above turn_relay_max_port")
        return self

    @model_validator(mode="after")
    def _workers_need_postgresql(self) -> Settings:
        if self.uses_synapse_workers and self.synapse_database != "postgresql":
            raise ValueError(
                "Synapse's workers share one PostgreSQL database and cannot run on SQLite: "
                "set PARTA_SYNAPSE_DATABASE=postgresql (./deploy.sh production creates it), "
                "or PARTA_SYNAPSE_WORKERS=false for one Synapse process"
            )
        return self

    @model_validator(mode="after")
    def _several_widget_processes_need_nginx(self) -> Settings:
        if (self.widget_processes or 1) > 1 and self.environment != "production":
            raise ValueError(
                "several widget processes need nginx's widgets host to send each call to its "
                "process, and only production mode serves it: unset PARTA_WIDGET_PROCESSES "
                "(one process in development) or set PARTA_ENVIRONMENT=production"
            )
        return self

    @model_validator(mode="after")
    def _check_single_sign_on(self) -> Settings:
        if not self.oidc_enabled:
            if not self.password_login:
                raise ValueError(
                    "PARTA_PASSWORD_LOGIN=false leaves the region's single sign-on as the only "
                    "way in, but PARTA_OIDC_ISSUER is not set: set the provider's issuer, "
                    "client ID and secret, or keep password login on"
                )
            return self
        _check_issuer(self.oidc_issuer, production=self.environment == "production")
        missing = [
            name
            for name, value in (
                ("PARTA_OIDC_CLIENT_ID", self.oidc_client_id),
                ("PARTA_OIDC_CLIENT_SECRET", self.oidc_client_secret.get_secret_value()),
            )
            if not value.strip()
        ]
        if missing:
            raise ValueError(
                f"PARTA_OIDC_ISSUER is set, so {' and '.join(missing)} must be too: the "
                "provider gives them when the region registers Parta as a client "
                "(the secret belongs in var/secrets.env)"
            )
        if _has_control_character(self.oidc_name) or _has_control_character(self.oidc_client_id):
            raise ValueError("PARTA_OIDC_NAME and PARTA_OIDC_CLIENT_ID must be one line of text")
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        weak = [
            name
            for name in SECRET_FIELDS
            if getattr(self, name).get_secret_value().strip().lower() in _PLACEHOLDERS
            or len(getattr(self, name).get_secret_value()) < 16
        ]
        if weak:
            raise ValueError(
                "production needs real secrets, but these are missing or placeholders: "
                f"{', '.join(weak)}; run `parta init` to generate them into var/secrets.env"
            )
        return self

    # Derived values: computed, never stored twice.

    @property
    def forwarded_allow_ips(self) -> list[str]:
        """The proxies uvicorn takes the client's address from (`trusted_proxies`)."""
        if self.trusted_proxies is None:
            return ["127.0.0.1"] if self.environment == "production" else []
        return _split_addresses(self.trusted_proxies)

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer.strip())

    @property
    def oidc_idp_id(self) -> str:
        """The provider's ID in Synapse's SSO URLs (`/login/sso/redirect/<id>`)."""
        return OIDC_IDP_ID

    @property
    def oidc_label(self) -> str:
        """What the buttons say after "Sign in with": the provider's name, or the region's."""
        return self.oidc_name.strip() or self.region_name

    @property
    def homeserver_url(self) -> str:
        """Where Parta's own services reach Synapse's client-server API."""
        return f"http://{self.bind_address}:{self.synapse_port}"

    @property
    def element_homeserver_url(self) -> str:
        """The homeserver address people type into Element."""
        return self.public_homeserver_url or self.public_origin or self.homeserver_url

    @property
    def web_url(self) -> str:
        """The admin UI's address as people open it: invite links and QR codes point here."""
        return (self.public_web_url or self.public_origin or self.provisioning_url).rstrip("/")

    @property
    def public_origin(self) -> str:
        """In production, https://<server name> (nginx): Matrix, .well-known and the admin UI."""
        if self.environment != "production":
            return ""
        return _https_origin(self.server_name.split(":")[0], self.https_port)

    @property
    def certificate_names(self) -> list[str]:
        """Every host name production's certificate must cover."""
        host = self.server_name.split(":")[0]
        return list(dict.fromkeys([host, *self.public_hosts, self.public_widgets_host]))

    @property
    def public_widgets_host(self) -> str:
        return self.widgets_host or f"widgets.{self.server_name.split(':')[0]}"

    @property
    def uses_synapse_workers(self) -> bool:
        if self.synapse_workers is None:
            return self.environment == "production"
        return self.synapse_workers

    @property
    def runs_nginx(self) -> bool:
        """nginx fronts the region in production, and routes to Synapse's workers."""
        return self.environment == "production" or self.uses_synapse_workers

    @property
    def nginx_dir(self) -> Path:
        """nginx's rendered configuration, pid file and logs (production mode)."""
        return self.var_dir / "nginx"

    @property
    def bridge_url(self) -> str:
        return f"http://{self.bind_address}:{self.bridge_port}"

    @property
    def widgets_url(self) -> str:
        return f"http://{self.bind_address}:{self.widgets_port}"

    @property
    def call_widget_url(self) -> str:
        """The call widget's URL template; the Matrix client fills in the `$` variables."""
        return self._widget_page_url("call")

    @property
    def documents_widget_url(self) -> str:
        """The documents widget's URL template: the page opens on the room's own files."""
        return self._widget_page_url("documents")

    @property
    def widgets_base_url(self) -> str:
        """Where Matrix clients load widgets from: their own origin in production."""
        if self.public_widgets_url:
            return self.public_widgets_url.rstrip("/")
        if self.environment == "production":
            return _https_origin(self.public_widgets_host, self.https_port)
        return self.widgets_url

    def _widget_page_url(self, page: str) -> str:
        base = self.widgets_base_url
        return (
            f"{base}/{page}/?room_id=$matrix_room_id&user_id=$matrix_user_id"
            "&lang=$org.matrix.msc2873.client_language"
        )

    @property
    def sms_outbox_path(self) -> Path:
        """The console SMS gateway's messages (mode 0600; never the service's log)."""
        return self.var_dir / "sms-outbox.log"

    @property
    def turn_enabled(self) -> bool:
        return bool(self.turn_host or self.turn_uris)

    @property
    def turn_server_uris(self) -> list[str]:
        """The TURN URIs clients are given: `turn_uris`, or derived from `turn_host`.

        UDP and TCP on `turn_port`; in production also TURN over TLS on `turn_tls_port`,
        for networks that let only HTTPS-like traffic out.
        """
        if self.turn_uris or not self.turn_host:
            return list(self.turn_uris)
        uris = [
            f"turn:{self.turn_host}:{self.turn_port}?transport=udp",
            f"turn:{self.turn_host}:{self.turn_port}?transport=tcp",
        ]
        if self.environment == "production":
            uris.append(f"turns:{self.turn_host}:{self.turn_tls_port}?transport=tcp")
        return uris

    @property
    def turn_config_path(self) -> Path:
        """coturn's rendered config; `./deploy.sh turn` installs it as /etc/turnserver.conf."""
        return self.var_dir / "turn" / "turnserver.conf"

    @property
    def provisioning_url(self) -> str:
        return f"http://{self.bind_address}:{self.provisioning_port}"

    @property
    def bot_user_id(self) -> str:
        return f"@{self.bot_localpart}:{self.server_name}"

    @property
    def region_admin_user_id(self) -> str:
        return f"@{self.region_admin_localpart}:{self.server_name}"

    @property
    def synapse_dir(self) -> Path:
        return self.var_dir / "synapse"

    @property
    def media_store_dir(self) -> Path:
        """Synapse's media repository: every file people upload (the template says so too)."""
        return self.synapse_dir / "media_store"

    @property
    def synapse_overrides_dir(self) -> Path:
        """The operator's own Synapse settings (*.yaml), read after the rendered config."""
        return self.synapse_dir / "homeserver.d"

    @property
    def policy_snapshot_path(self) -> Path:
        """Written by provisioning, read by the school policy module inside Synapse."""
        return self.var_dir / "policy" / "snapshot.json"

    @property
    def call_state_dir(self) -> Path:
        """The widget service's saved calls (floor, hands, attendance), one file a room."""
        return self.var_dir / "calls"

    @property
    def call_recording_max_bytes(self) -> int:
        """One recording part's size limit: the setting, and what the homeserver takes."""
        return min(self.call_recording_max_mb, self.max_upload_size_mb) * 1024 * 1024

    @property
    def documents_state_dir(self) -> Path:
        """The documents service's own state (the library's PDF previews)."""
        return self.var_dir / "documents"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'parta.db'}"


def _refuse_unknown_names(path: Path) -> None:
    """A misspelt setting would be ignored silently; name it and suggest the right one."""
    if not path.exists():
        return
    known = {f"PARTA_{name.upper()}" for name in Settings.model_fields}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.split("=", 1)[0].strip()
        if not name or name.startswith("#") or "=" not in line or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"{path}:{number}: {name} is not a Parta setting{hint}")


def _https_origin(host: str, port: int) -> str:
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


def _split_addresses(value: str) -> list[str]:
    return [address.strip() for address in value.split(",") if address.strip()]


def _has_control_character(text: str) -> bool:
    return any(ord(character) < 32 or ord(character) == 127 for character in text)


def _check_issuer(issuer: str, *, production: bool) -> None:
    """An https issuer; in development also http on loopback (a test or demo provider)."""
    parts = urlsplit(issuer.strip())
    hint = "such as https://id.region.example"
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"PARTA_OIDC_ISSUER={issuer!r} is not an issuer URL {hint}")
    if parts.scheme == "https":
        return
    if production:
        raise ValueError(
            f"PARTA_OIDC_ISSUER={issuer!r}: production needs an https issuer ({hint}); "
            "tokens and people's claims must not cross the network unencrypted"
        )
    if not _is_loopback(parts.hostname):
        raise ValueError(
            f"PARTA_OIDC_ISSUER={issuer!r}: an http issuer is accepted only on loopback "
            "(127.0.0.1, ::1, localhost) for tests and demos; use https for any other host"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
