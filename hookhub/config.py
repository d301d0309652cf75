"""Hookhub's settings: one typed object, read from ``HOOKHUB_*`` environment variables.

Build it with :func:`load_settings` and pass it down; nothing in Hookhub reads the environment
on its own or creates settings at import time.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_EMAIL_RETRY_SCHEDULE = (60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0)
"""Seconds after the first attempt of a deferred email: 1 min, 5 min, 30 min, 2 h, 6 h, 12 h;
then it has failed (a soft bounce)."""
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Seconds after the first (immediate) attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h."""

MIN_API_KEY_LENGTH = 24


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob Hookhub has. Field names map to ``HOOKHUB_<NAME>`` variables."""

    model_config = SettingsConfigDict(env_prefix="HOOKHUB_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    database_url: str = "sqlite:///./hookhub.db"
    public_url: str | None = None
    """Base URL shown in inbound receive URLs; defaults to http://{host}:{port}."""

    api_key: SecretStr | None = None
    """Made an admin key at start, for scripts and tests (at least 24 characters)."""

    secret_key: SecretStr | None = None
    """32 bytes in base64 sealing secrets at rest; required with PostgreSQL. With SQLite and
    none set, one is generated on first start and kept in ``<database>.key``."""
    secret_key_previous: SecretStr | None = None
    """Comma-separated keys that only open secrets, while a rotation is under way."""

    metrics_token: SecretStr | None = None
    """A bearer token that reads /metrics (any API key does too)."""

    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body accepted by the API and the inbound receiver."""

    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL"
    """NORMAL survives a crash of the process; FULL also survives a power cut."""

    sqlite_wal_autocheckpoint: int = Field(default=4000, ge=0)
    """WAL pages (4 KiB each) after which a commit copies the WAL into the database file; with
    0 none does and the WAL grows until something else checkpoints. SQLite's default of 1,000
    made the receive path checkpoint (and fsync twice) about 20 times a second under load;
    see bench/RESULTS.md."""

    db_pool_size: int = Field(default=10, ge=1)

    # Inbound webhooks.
    inbound_rate_limit: float | None = Field(default=500.0, ge=0)
    """Requests per second per inbound webhook and process, unless the webhook sets its own;
    0 turns the default limit off."""

    receive_body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a receive URL's request body may take to arrive, from its headers; then 408."""
    rejected_body_prefix: int = Field(default=4096, ge=0)
    """Bytes of a refused request's body (bad signature, unparseable) kept in the request log."""
    refusals_logged_per_minute: int = Field(default=60, ge=0)
    """Refused requests logged per inbound webhook, process and minute; past it (and for
    every 429) a request is only counted (``unlogged_24h`` of the webhook)."""

    dedupe_retention: float = Field(default=30 * 24 * 3600, ge=3600)
    """How long a provider's event id is remembered to drop its duplicates (seconds)."""

    # Retention: what is deleted once it is old (seconds; 0 keeps it forever).
    retention_requests: float = Field(default=30 * 24 * 3600, ge=0)
    """Inbound requests (the request log, bodies included) older than this are deleted."""
    retention_messages: float = Field(default=30 * 24 * 3600, ge=0)
    """Messages older than this are deleted with their deliveries and attempts, once every
    delivery of theirs is final (succeeded or exhausted); pending work is never deleted."""
    retention_emails: float = Field(default=90 * 24 * 3600, ge=0)
    """Emails older than this are deleted with their bytes and timelines, once final (sent,
    delivered, bounced, failed, skipped); queued and deferred ones are never deleted. Campaign
    stats count the emails that remain."""
    retention_automations: float = Field(default=90 * 24 * 3600, ge=0)
    """Finished automation enrollments (completed, exited, failed) older than this are deleted
    with their step logs; active ones never are."""
    retention_interval: float = Field(default=600.0, gt=0)
    """How often ``serve`` and ``worker`` purge (seconds)."""
    retention_batch: int = Field(default=500, ge=1, le=10_000)
    """Rows deleted per transaction, so a purge never holds the hot paths up for long."""

    # Outbound delivery.
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    retry_min_backoff: float = Field(default=5.0, ge=0)
    """Least delay before retrying after a timeout or a 429."""
    endpoint_disable_after: float = Field(default=5 * 24 * 3600, gt=0)
    allow_private_destinations: Annotated[tuple[str, ...], NoDecode] = ()
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    """CIDRs of reverse proxies whose X-Forwarded-Proto/-For the dashboard believes (its
    Secure cookie, its sign-in limits per client address)."""
    delivery_timeout: float = Field(default=15.0, gt=0)
    delivery_client: Literal["http11", "aiohttp"] = "http11"
    """The HTTP client deliveries are sent with: the lean one, or aiohttp's ClientSession."""
    delivery_lease: float | None = Field(default=None, gt=0)
    """How long a claimed delivery stays leased; default: 2 x timeout + 15 s."""
    worker_concurrency: int = Field(default=256, ge=1)
    endpoint_concurrency: int = Field(default=16, ge=1)
    poll_interval: float = Field(default=0.5, gt=0)
    batch_max_messages: int = Field(default=100, ge=1, le=10_000)
    batch_window: float = Field(default=5.0, ge=0)
    secret_rotation_overlap: float = Field(default=24 * 3600, ge=0)

    # Email (see "Email" in docs/DESIGN.md).
    smtp_url: SecretStr | None = None
    """smtp://user:pass@host:587 (STARTTLS when offered), smtps://user:pass@host:465 (implicit
    TLS), smtp://host:25?tls=off. Unset: email is captured (stored, viewable, sent nowhere)."""
    email_from: str = "Hookhub <hookhub@localhost>"
    """The default sender, `Name <address>` or an address."""
    smtp_connections: int = Field(default=8, ge=1, le=256)
    """SMTP connections each worker keeps open and sends over in parallel."""
    smtp_timeout: float = Field(default=30.0, gt=0)
    """Seconds an SMTP command may take (connect, each reply, the data)."""
    email_rate: float = Field(default=0.0, ge=0)
    """Emails a second per worker; 0 is unlimited."""
    email_retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_EMAIL_RETRY_SCHEDULE
    email_lease: float = Field(default=120.0, gt=0)
    """How long a claimed email stays leased before another worker may send it."""
    email_batch: int = Field(default=200, ge=1, le=10_000)
    """Emails claimed (and recorded) per transaction by a worker."""
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_file: str | None = None
    """With the domain and selector: the PEM private key emails are DKIM-signed with."""

    # Automations (see "Automations" in docs/DESIGN.md).
    automation_batch: int = Field(default=500, ge=1, le=10_000)
    """Due enrollments claimed, run and recorded per transaction by an automation worker."""
    automation_lease: float = Field(default=60.0, gt=0)
    """How long claimed enrollments stay leased before another worker may run them."""

    # Supervision and readiness.
    loop_stall_after: float = Field(default=60.0, gt=0)
    """Seconds without a heartbeat after which a background loop counts as stalled."""
    readiness_timeout: float = Field(default=2.0, gt=0)
    """How long /readyz waits for the database to answer and to grant its write lock."""

    @field_validator("retry_schedule", "email_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: Any) -> Any:
        value = _split_csv(value)
        if isinstance(value, list | tuple) and any(float(v) < 0 for v in value):
            raise ValueError("retry delays must be >= 0 seconds")
        return value

    @field_validator("allow_private_destinations", "trusted_proxies", mode="before")
    @classmethod
    def _parse_cidrs(cls, value: Any) -> Any:
        value = _split_csv(value)
        if isinstance(value, list | tuple):
            for cidr in value:
                ipaddress.ip_network(cidr, strict=False)  # raises ValueError on nonsense
        return value

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_API_KEY_LENGTH:
            raise ValueError(
                f"HOOKHUB_API_KEY must be at least {MIN_API_KEY_LENGTH} characters"
                " (`hookhub keys create` makes strong keys)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("database_url must be sqlite:///path or postgresql://...")
        return value

    @property
    def lease_seconds(self) -> float:
        return self.delivery_lease or 2 * self.delivery_timeout + 15

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit values (CLI options) taking precedence."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)
