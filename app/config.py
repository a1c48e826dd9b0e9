"""Settings, read from `SYNCAUCTION_*` environment variables.

Built once by `get_settings()` and passed explicitly to `create_app()`, the worker and the CLI;
nothing reads the environment at import time, so tests pass their own `Settings(...)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me"
URL_SCHEMES = {
    "database_url": ("sqlite://", "postgres://", "postgresql://", "asyncpg://"),
    "redis_url": ("redis://", "rediss://", "unix://"),
}


class Settings(BaseSettings):
    """Runtime configuration. Every field maps to `SYNCAUCTION_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="SYNCAUCTION_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="Tortoise URL; unset means a SQLite file in DATA_DIR."
    )
    redis_url: str | None = Field(
        default=None, description="Unset = embedded mode (in-process jobs, bus, rate limits)."
    )
    secret_key: str = DEFAULT_SECRET_KEY
    allow_private_webhook_targets: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None
    rate_limit_enabled: bool = True
    unauthenticated_rate_limit: int = Field(default=60, ge=1, description="Requests/min per IP.")
    max_body_bytes: int = 1024 * 1024
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = True
    auto_migrate: bool | None = Field(
        default=None, description="Migrate at start-up; default: only in embedded mode."
    )
    demo: bool | None = Field(
        default=None, description="Create the demo account at start-up; default: development."
    )
    auction_house_url: str | None = Field(
        default=None,
        description="The auction house's lot feed; unset = the built-in simulator (live data "
        "needs it set; the sandbox always reads the simulator).",
    )
    auction_house_token: str | None = Field(default=None, description="Bearer token of the feed.")
    simulator_catalog_size: int = Field(
        default=300, ge=1, le=1_000_000, description="Lots in the built-in auction-house simulator."
    )
    simulator_seed: int = Field(default=1, description="Seed of the simulated catalog.")
    sync_batch_size: int = Field(default=500, ge=1, le=5000, description="Lots per transaction.")
    event_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days events, webhook deliveries and their attempt logs are kept.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        level = value.strip().upper()
        return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)  # logging's aliases

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url", "redis_url")
    @classmethod
    def _known_scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        schemes = URL_SCHEMES[info.field_name]
        if value is not None and not value.lower().startswith(schemes):
            # The message never repeats the URL: it may hold a password.
            listed = ", ".join(schemes[:-1]) + " or " + schemes[-1]
            raise ValueError(
                f"must start with {listed} (the URL is not shown: it may hold a password)"
            )
        return value

    @model_validator(mode="after")
    def _refuse_demo_outside_development(self) -> Settings:
        if self.env != "development" and self.demo:
            raise ValueError(
                "SYNCAUCTION_DEMO is for development: the demo shop lists simulated stores and "
                "keeps its keys in a file"
            )
        return self

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.env != "development" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "SYNCAUCTION_SECRET_KEY is left at its default; set a random value "
                "(for example `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                "outside development"
            )
        if self.env != "development" and len(self.secret_key) < 32:
            raise ValueError("SYNCAUCTION_SECRET_KEY must be at least 32 characters in production")
        return self

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: jobs, events and limits stay in this process."""
        return self.redis_url is None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite://{(self.data_dir / 'syncauction.sqlite3').resolve()}"

    @property
    def should_migrate_at_startup(self) -> bool:
        return self.embedded if self.auto_migrate is None else self.auto_migrate

    @property
    def should_create_demo(self) -> bool:
        return self.is_development if self.demo is None else self.demo

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        # A wildcard bind address is not somewhere a browser can go; show loopback instead.
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)
        return f"http://{host}:{self.port}"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
