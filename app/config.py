"""Typed settings from HOMEWARD_* environment variables (documented in deploy/env.example)."""

from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOMEWARD_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./homeward.db"
    secret_key: str = DEFAULT_SECRET_KEY
    facility_id: str = Field(default="A9999", pattern=r"^[A-NP-Z][0-9]{4}$")
    display_timezone: str = "Europe/Rome"
    # How a birth date typed with day and month both ≤ 12 (03/04/1979) is read at the bedside:
    # day first (03 = day) or month first. Year-first ISO dates are never ambiguous.
    birth_date_order: Literal["day_first", "month_first"] = "day_first"
    token_idle_minutes: int = Field(default=15, ge=1, le=24 * 60)
    lockout_threshold: int = Field(default=5, ge=1, le=100)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Argon2id cost (RFC 9106 "second recommended" profile by default). Tests lower it to keep
    # the suite fast; production must not.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65_536, ge=1024)
    # Requests each server process works on at once, each in one thread with one database
    # connection (docs/adr/0014). FastAPI's default 40 threads halves scan throughput (DESIGN §12).
    threadpool_size: int = Field(default=8, ge=1, le=200)
    # The longest a request waits for a worker slot, a pool connection, a row lock or SQLite's
    # write lock before it is answered 503 busy with nothing changed (DESIGN §12 overload).
    busy_timeout_s: float = Field(default=2.0, gt=0, le=30)
    # PostgreSQL's bound on any one statement, and on a transaction left idle (a safety net:
    # no code path leaves one idle, but a lock must never outlive its request).
    statement_timeout_s: float = Field(default=5.0, gt=0, le=600)
    # Culture clocks (starting points, not clinical advice): past a soft limit the batch shows a
    # warning; a step that would go past a hard limit is refused.
    culture_passage_soft: int = Field(default=6, ge=0)
    culture_passage_hard: int = Field(default=10, ge=0)
    culture_days_soft: int = Field(default=42, ge=0)
    culture_days_hard: int = Field(default=70, ge=0)
    culture_doublings_soft: float = Field(default=30.0, ge=0)
    culture_doublings_hard: float = Field(default=40.0, ge=0)
    # Viable cells per dose accepted by the default specification (QC-1); a starting point for
    # the lab's own validated range, not clinical advice.
    dose_cells_min: float = Field(default=1e7, gt=0)
    dose_cells_max: float = Field(default=5e8, gt=0)
    # Infusion protocol template (CLN-2; the phase IIa protocol: three doses 4 to 6 weeks apart).
    protocol_doses: int = Field(default=3, ge=1, le=20)
    protocol_interval_min_days: int = Field(default=28, ge=0)
    protocol_interval_max_days: int = Field(default=42, ge=0)
    # Days a patient whose batch ended (completed, rejected, destroyed) stays on the readiness
    # board, so the clinic sees the outcome (ADR 0013).
    board_ended_days: int = Field(default=14, ge=0, le=365)
    # How far a client's time may lie from the server's and still be contemporaneous (AUD-6):
    # an older time is a late entry and needs a reason; a later one is refused (ADR 0015).
    late_entry_skew_s: int = Field(default=7200, ge=0, le=86_400)
    # Acceptable dose temperatures in transport and at receipt (CLN-3), per storage type.
    fresh_dose_min_c: float = 2.0
    fresh_dose_max_c: float = 8.0
    cryopreserved_dose_max_c: float = -150.0
    # Outbound notifications (webhooks): JSON list of URLs, the HMAC-SHA256 key, retries.
    webhook_urls: list[str] = Field(default_factory=list)
    webhook_secret: str = ""
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    webhook_poll_seconds: float = Field(default=2.0, gt=0)
    # The HMAC-SHA256 key that signs audit checkpoints (`homeward audit checkpoint`, AUD-7). Keep
    # a copy with the auditor, not only on this server; empty: checkpoints cannot be made.
    checkpoint_key: str = ""

    # Benchmark only (`homeward bench`): accepted scans write no audit event, so the bench can
    # measure what the scan's record costs (DESIGN §12). Refusals are still recorded; refused
    # outside development.
    scan_audit: bool = True

    @field_validator("display_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> "Settings":
        if self.environment != "development" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "HOMEWARD_SECRET_KEY is still the development default; set a random secret "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
            )
        if self.environment != "development" and not self.scan_audit:
            raise ValueError("HOMEWARD_SCAN_AUDIT=0 is for benchmarks on development servers only.")
        if self.environment != "development" and len(self.secret_key) < 32:
            raise ValueError("HOMEWARD_SECRET_KEY must be at least 32 characters in production.")
        if (
            self.environment != "development"
            and self.webhook_urls
            and len(self.webhook_secret) < 16
        ):
            raise ValueError(
                "HOMEWARD_WEBHOOK_SECRET must be at least 16 characters when webhooks are sent "
                "in production: receivers verify the signature with it."
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def late_entry_skew(self) -> timedelta:
        return timedelta(seconds=self.late_entry_skew_s)

    @property
    def pool_size(self) -> int:
        """Connections per process: one per request slot, plus one each for the webhook worker,
        the print worker and the health check, so no slot ever waits for a connection."""
        return self.threadpool_size + 3


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


async def _settings_of(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(_settings_of)]
