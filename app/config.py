"""Typed settings from HOMEWARD_* environment variables (documented in deploy/env.example).

Infrastructure only: the settings that decide GMP outcomes (dose range, transport temperatures,
culture limits, infusion protocol, label product data) are versioned records QA approves in the
database (app/gmp_settings, QC-3, ADR 0022)."""

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
    facility_id: str = Field(default="A9999", pattern=r"^[A-NP-Z1-9][0-9]{4}$")
    display_timezone: str = "Europe/Rome"
    # How a birth date typed with day and month both ≤ 12 (03/04/1979) is read at the bedside:
    # day first (03 = day) or month first. Year-first ISO dates are never ambiguous.
    birth_date_order: Literal["day_first", "month_first"] = "day_first"
    token_idle_minutes: int = Field(default=15, ge=1, le=24 * 60)
    lockout_threshold: int = Field(default=5, ge=1, le=100)
    # A lock after `lockout_threshold` failures ends by itself after this many minutes (0: only
    # an admin lifts it); a source with `signin_source_limit` refused sign-ins within the window
    # is refused before any check (SEC-4, ADR 0021).
    lockout_minutes: int = Field(default=15, ge=0, le=7 * 24 * 60)
    signin_source_limit: int = Field(default=20, ge=1, le=10_000)
    signin_source_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Passwords (SEC-3, 21 CFR 11.300(b)): days before one must be changed (0: never), how many
    # previous ones may not be chosen again, the least zxcvbn score (0-4) a new one must reach.
    password_max_age_days: int = Field(default=180, ge=0, le=3650)
    password_history: int = Field(default=5, ge=0, le=50)
    password_min_score: int = Field(default=3, ge=0, le=4)
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
    # Days a patient whose batch ended (completed, rejected, destroyed) stays on the readiness
    # board, so the clinic sees the outcome (ADR 0013).
    board_ended_days: int = Field(default=14, ge=0, le=365)
    # How far a client's time may lie from the server's and still be contemporaneous (AUD-6):
    # an older time is a late entry and needs a reason; a later one is refused (ADR 0015).
    late_entry_skew_s: int = Field(default=7200, ge=0, le=86_400)
    # Length of a periodic audit-trail review period in days, periods aligned on Mondays 00:00
    # UTC: 7 is the ISO calendar week (AUD-8, ADR 0023).
    audit_review_period_days: int = Field(default=7, ge=1, le=91)
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


async def settings_of(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(settings_of)]
