"""Configuration from the environment and a `.env` file (the configuration contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

UserIds = Annotated[frozenset[int], NoDecode]


class Settings(BaseSettings):
    """Every setting the bot reads; nothing else looks at the environment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    database_path: Path = Path("data/kling-bot.sqlite3")
    default_model: str | None = None

    kie_api_key: SecretStr | None = None
    kie_api_url: str = "https://api.kie.ai"
    kie_upload_url: str = "https://kieai.redpandaai.co"
    kie_webhook_hmac_key: SecretStr | None = None

    kling_access_key: SecretStr | None = None
    kling_secret_key: SecretStr | None = None
    kling_api_key: SecretStr | None = None
    kling_api_url: str = "https://api-singapore.klingai.com"

    tuzi_api_key: SecretStr | None = None
    tuzi_api_url: str = "https://api.tu-zi.com/kling"

    public_url: str | None = None
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)

    telegram_webhook: bool = False
    # None: the free preview backend is on exactly when no paid backend is configured.
    preview_backend: bool | None = None

    poll_interval: float = Field(default=10.0, gt=0)
    task_timeout: float = Field(default=1200.0, gt=0)

    allowed_user_ids: UserIds = frozenset()
    admin_user_ids: UserIds = frozenset()
    max_active_tasks_per_user: int | None = Field(default=3, ge=1)
    daily_tasks_per_user: int | None = Field(default=None, ge=1)

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

    @field_validator(
        "telegram_api_url",
        "kie_api_url",
        "kie_upload_url",
        "kling_api_url",
        "tuzi_api_url",
        "public_url",
        mode="after",
    )
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator(
        "telegram_bot_token",
        "kie_api_key",
        "kie_webhook_hmac_key",
        "kling_access_key",
        "kling_secret_key",
        "kling_api_key",
        "tuzi_api_key",
        "default_model",
        "preview_backend",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def token(self) -> str:
        """The bot token; only call after `problems()` came back empty."""
        assert self.telegram_bot_token is not None
        return self.telegram_bot_token.get_secret_value()

    @property
    def kling_jwt(self) -> bool:
        """Whether the official Kling backend signs JWTs (access + secret key)."""
        return self.kling_access_key is not None and self.kling_secret_key is not None

    def paid_backends(self) -> list[str]:
        """Names of the paid backends whose credentials are set, in catalogue order."""
        enabled = {
            "kie": self.kie_api_key is not None,
            "kling": self.kling_jwt or self.kling_api_key is not None,
            "tuzi": self.tuzi_api_key is not None,
        }
        return [name for name, on in enabled.items() if on]

    def configured_backends(self) -> list[str]:
        """Every backend offered: the paid ones, and the free preview when on."""
        paid = self.paid_backends()
        preview = self.preview_backend if self.preview_backend is not None else not paid
        return [*paid, "preview"] if preview else paid

    @property
    def preview_directory(self) -> Path:
        """Where the preview backend keeps its inputs and videos: beside the database."""
        return self.database_path.parent / "preview"

    def user_allowed(self, user_id: int) -> bool:
        """ALLOWED_USER_IDS empty means everyone; admins are always allowed."""
        return (
            not self.allowed_user_ids
            or user_id in self.allowed_user_ids
            or user_id in self.admin_user_ids
        )

    def secrets(self) -> list[str]:
        """Every secret value set, for log redaction."""
        values = (
            self.telegram_bot_token,
            self.kie_api_key,
            self.kie_webhook_hmac_key,
            self.kling_access_key,
            self.kling_secret_key,
            self.kling_api_key,
            self.tuzi_api_key,
        )
        return [value.get_secret_value() for value in values if value is not None]

    def problems(self) -> list[str]:
        """What must be set before the bot can start, one line each."""
        found = []
        if self.telegram_bot_token is None:
            found.append("Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you.")
        if self.telegram_webhook and not self.public_url:
            found.append("TELEGRAM_WEBHOOK=true needs PUBLIC_URL (where Telegram reaches the bot).")
        if (self.kling_access_key is None) != (self.kling_secret_key is None):
            found.append("Set both KLING_ACCESS_KEY and KLING_SECRET_KEY (or KLING_API_KEY).")
        elif not self.configured_backends():
            found.append(
                "Configure a video backend: set KIE_API_KEY (kie.ai), "
                "KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY (Kling), "
                "TUZI_API_KEY (tu-zi), or PREVIEW_BACKEND=true for the free preview."
            )
        return found
