"""All configuration, from the environment (and ``.env`` if present): one ``Settings`` object."""

from __future__ import annotations

import os

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The most ``STATION_TIME_MAX_LEAD_SECONDS`` may be: no stored record's station time (``event_at``)
#: lies further ahead of its receipt (``created_at``), so a read of the records from a station
#: time on may skip the partitions of months that ended longer before it
#: (:func:`mes_kernel.db.partitions.received_from`).
STATION_TIME_MAX_LEAD_LIMIT_SECONDS = 86_400

# The placeholder earlier versions shipped as the development default: published, so refused everywhere.
DEFAULT_SECRET = "change-me-embedded-default-secret-key"
POSTGRES_MAX_CONNECTIONS = 100


class Settings(BaseSettings):
    """Environment variables, uppercased (``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY`` …)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: str = Field("development", description="development | production | test")
    database_url: str = "sqlite+aiosqlite:///./var/mes.db"
    redis_url: str | None = None
    redis_namespace: str = Field("mes", description="key prefix, so several installations can share a Redis")
    secret_key: str = Field(
        "", description="signs access tokens; empty = a random key generated on first run and kept in var/secret-key"
    )
    access_token_minutes: int = 15
    refresh_token_days: int = 7
    bcrypt_rounds: int = 12
    refresh_grace_seconds: float = Field(
        10.0, description="rotations of one refresh token this close to the first get the same successor"
    )
    login_max_failures: int = Field(10, description="wrong passwords in a row that lock an account")
    login_lock_minutes: int = Field(15, description="how long such a lock lasts (an admin may unlock sooner)")
    token_revocation_check: bool = Field(
        True, description="check each access token's session and user version (off only to measure its cost)"
    )

    workers: int = Field(0, description="gunicorn workers; 0 = 2 x CPU cores (the spec)")
    db_max_connections: int = Field(
        POSTGRES_MAX_CONNECTIONS, description="PostgreSQL max_connections the pools must fit in"
    )
    db_reserved_connections: int = Field(10, description="kept free for admin tools, migrations, cron")
    db_pool_size: int = Field(0, description="0 = derived from workers and max connections")
    db_max_overflow: int = Field(-1, description="-1 = derived")

    rate_limit_per_minute: int = Field(100, description="per person (writes) and per client address (spec)")
    rate_limit_reads_per_minute: int = Field(
        0,
        description="per person, GET/HEAD/OPTIONS; 0 = 6 x RATE_LIMIT_PER_MINUTE (600: one dashboard polls "
        "about 25 times a minute, so a person's dashboard on a dozen screens stays well inside it)",
    )
    station_rate_limit_per_minute: int = 6000
    max_body_bytes: int = 2 * 1024 * 1024
    max_upload_bytes: int = 64 * 1024 * 1024
    max_attachment_bytes: int = Field(
        100 * 1024 * 1024, description="largest completion attachment (streamed to the files folder), bytes"
    )

    machine_data_flush_seconds: float = Field(
        0.25, description="how often connector machine data is written (one transaction for every device)"
    )
    machine_data_max_pending: int = Field(
        50_000, description="machine values a device may have waiting for the database before new ones drop"
    )

    files_dir: str = "./var/files"
    completion_retention_days: int = 90
    log_level: str = "INFO"
    log_json: bool = True

    plugins_safe_mode: bool = False
    plugins_allow: list[str] = Field(default_factory=list)
    plugins_deny: list[str] = Field(default_factory=list)
    #: how often each worker checks the line configuration / plugin switches version (seconds)
    config_poll_seconds: float = Field(1.0, gt=0, le=60)

    health_check_timeout: float = 2.0
    health_cache_seconds: float = 1.5
    station_silent_after_seconds: int = 120
    station_watch_interval_seconds: float = 30.0

    alert_webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "mes@localhost"
    smtp_to: list[str] = Field(default_factory=list)

    audit_seal_interval_seconds: float = 5.0
    kpi_fold_interval_seconds: float = Field(
        15.0, gt=0, description="PostgreSQL: how often recording transactions' rollup shards are summed into one row"
    )
    audit_seal_grace_seconds: float = 10.0
    #: PostgreSQL: the elected sealer's session ends when it stays silent this long (a frozen or
    #: cut-off node), which frees the election lock for another worker (``audit_sealer.py``).
    audit_sealer_lease_seconds: float = Field(15.0, ge=1, le=3600)
    #: PostgreSQL: how long a record insert waits on a row another transaction holds (the same
    #: idempotency key written by a node that stopped answering) before answering 503 + Retry-After.
    record_lock_timeout_seconds: float = Field(1.0, gt=0, le=60)
    #: A station time (``recorded_at``, a scan's time, a machine sample's source time) is accepted from
    #: receipt minus ``station_time_max_age_days`` to receipt plus ``station_time_max_lead_seconds``;
    #: outside, 422 ``IMPLAUSIBLE_TIME`` (see mes_kernel/station_times.py and docs/station-times.md).
    station_time_max_lead_seconds: float = Field(
        300.0,
        ge=0,
        le=STATION_TIME_MAX_LEAD_LIMIT_SECONDS,
        description="how far ahead of the server's clock a station time may be, seconds",
    )
    station_time_max_age_days: float = Field(
        30.0, gt=0, le=3650, description="how long before its receipt a station time may be, days"
    )

    @model_validator(mode="after")
    def _refuse_weak_secrets_and_oversized_pools(self) -> Settings:
        if self.secret_key == DEFAULT_SECRET:
            raise ValueError(
                "SECRET_KEY is the published placeholder: remove it (a random key is then generated and kept in "
                "var/secret-key) or set a long random value of your own"
            )
        if self.environment == "production" and self.secret_key and len(self.secret_key) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters in production")
        if not self.is_sqlite:
            budget = self.db_max_connections - self.db_reserved_connections
            total = self.worker_count * (self.pool_size + self.max_overflow)
            if total > budget or self.worker_count > budget:
                raise ValueError(
                    f"{self.worker_count} workers x (pool {self.pool_size} + overflow {self.max_overflow}) = {total} "
                    f"connections exceed DB_MAX_CONNECTIONS {self.db_max_connections} - DB_RESERVED_CONNECTIONS "
                    f"{self.db_reserved_connections} = {budget}: lower WORKERS / DB_POOL_SIZE / DB_MAX_OVERFLOW, or "
                    "raise DB_MAX_CONNECTIONS to match the server (or a pooler such as pgbouncer in front)"
                )
        return self

    @property
    def read_rate_limit_per_minute(self) -> int:
        return self.rate_limit_reads_per_minute or 6 * self.rate_limit_per_minute

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def worker_count(self) -> int:
        return self.workers or 2 * (os.cpu_count() or 1)

    @property
    def pool_size(self) -> int:
        """Connections per worker so that workers x (pool + overflow) fits the server's limit."""
        if self.db_pool_size:
            return self.db_pool_size
        budget = max(self.worker_count, self.db_max_connections - self.db_reserved_connections)
        per_worker = max(1, budget // self.worker_count)
        return max(1, per_worker - self.max_overflow)

    @property
    def max_overflow(self) -> int:
        if self.db_max_overflow >= 0:
            return self.db_max_overflow
        budget = max(self.worker_count, self.db_max_connections - self.db_reserved_connections)
        per_worker = max(1, budget // self.worker_count)
        return per_worker // 4


def get_settings() -> Settings:
    return Settings()
