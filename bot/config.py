"""Configuration from the environment and a `.env` file (the configuration contract)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.logs import LogFormat, LogLevel
from bot.providers.backend import Url
from bot.providers.catalogue import Catalogue
from bot.providers.kie import KieSettings
from bot.providers.kling import KlingSettings
from bot.providers.preview import PreviewSettings
from bot.providers.registry import all_model_ids, catalogue_of, configured_backends
from bot.providers.registry import problems as backend_problems
from bot.providers.tuzi import TuziSettings
from storage.database import INSTALL_DRIVER, is_postgres_url

UserIds = Annotated[frozenset[int], NoDecode]


class Settings(BaseSettings, KieSettings, KlingSettings, TuziSettings, PreviewSettings):
    """Every setting the bot reads; nothing else looks at the environment.

    The bot's own settings are here; each backend's come from its module's section (the
    registry's test checks that every registered backend's section is a base of this class).
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_url: Url = "https://api.telegram.org"
    database_path: Path = Path("data/kling-bot.sqlite3")
    # PostgreSQL instead of the SQLite file, for several replicas (its password is a secret).
    database_url: SecretStr | None = None
    default_model: str | None = None

    public_url: Url | None = None
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)

    telegram_webhook: bool = False

    poll_interval: float = Field(default=10.0, gt=0)
    task_timeout: float = Field(default=1200.0, gt=0)

    allowed_user_ids: UserIds = frozenset()
    admin_user_ids: UserIds = frozenset()
    max_active_tasks_per_user: int | None = Field(default=3, ge=1)
    daily_tasks_per_user: int | None = Field(default=None, ge=1)

    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    @field_validator("allowed_user_ids", "admin_user_ids", mode="before")
    @classmethod
    def _id_list(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(
                int(part) for part in value.replace(";", ",").split(",") if part.strip()
            )
        return value

    @field_validator("max_active_tasks_per_user", "daily_tasks_per_user", mode="before")
    @classmethod
    def _empty_or_zero_is_unlimited(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "0", "none", "unlimited"):
            return None
        return None if value == 0 else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def token(self) -> str:
        """The bot token; only call after `problems()` came back empty."""
        assert self.telegram_bot_token is not None
        return self.telegram_bot_token.get_secret_value()

    @property
    def database(self) -> str | None:
        """DATABASE_URL's value, if set."""
        return self.database_url.get_secret_value() if self.database_url else None

    def secrets(self) -> list[str]:
        """Every secret value set, the database's password on its own too."""
        found = super().secrets()
        password = urlsplit(self.database).password if self.database else None
        return [*found, password] if password else found

    def configured_backends(self) -> list[str]:
        """Every backend offered: the paid ones configured, and the free preview when on."""
        return configured_backends(self)

    def catalogue(self) -> Catalogue:
        """The models of the configured backends."""
        return catalogue_of(self.configured_backends())

    @property
    def data_directory(self) -> Path:
        """Where the bot keeps its data: the database's folder."""
        return self.database_path.parent

    def user_allowed(self, user_id: int) -> bool:
        """ALLOWED_USER_IDS empty means everyone; admins are always allowed."""
        return (
            not self.allowed_user_ids
            or user_id in self.allowed_user_ids
            or user_id in self.admin_user_ids
        )

    def problems(self) -> list[str]:
        """What must be set before the bot can start, one line each."""
        found = []
        if self.telegram_bot_token is None:
            found.append("Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you.")
        if self.telegram_webhook and not self.public_url:
            found.append("TELEGRAM_WEBHOOK=true needs PUBLIC_URL (where Telegram reaches the bot).")
        if self.database and not is_postgres_url(self.database):
            found.append("DATABASE_URL must start with postgresql:// (or leave it unset: SQLite).")
        elif self.database and importlib.util.find_spec("asyncpg") is None:
            found.append(f"DATABASE_URL needs the PostgreSQL driver: {INSTALL_DRIVER}")
        return found + backend_problems(self)


class ConfigError(Exception):
    """The configuration cannot be used; `lines` say what to fix, one each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(*lines)
        self.lines = lines


def unoffered(settings: Settings, model_id: str, where: str) -> str | None:
    """Why `model_id` (named by `where`) is not offered, with the ids that are; None if it is."""
    catalogue = settings.catalogue()
    if catalogue.get(model_id) is not None:
        return None
    hint = "its backend is not configured" if model_id in all_model_ids() else "unknown model"
    offered = ", ".join(spec.id for spec in catalogue.models)
    return f"{where} is not offered ({hint}); choose one of: {offered}"


def load_settings(*, need_bot: bool = True) -> Settings:
    """The settings from the environment and `.env`, or ConfigError with what to fix.

    Without `need_bot` (the command line's `generate`), the bot's token, webhook and default
    model are not required: a backend is enough.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(
            [
                f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            ]
        ) from None
    checked = settings
    if not need_bot:
        unused = {"telegram_bot_token": SecretStr("unused"), "telegram_webhook": False}
        checked = settings.model_copy(update=unused)
    found = checked.problems()
    if not found and need_bot and settings.default_model:
        problem = unoffered(
            settings, settings.default_model, f"DEFAULT_MODEL={settings.default_model}"
        )
        found += [problem] if problem else []
    if found:
        raise ConfigError(found)
    return settings
