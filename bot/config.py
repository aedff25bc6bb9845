"""Configuration from the environment and a `.env` file (the configuration contract)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    public_url: str | None = None
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)

    poll_interval: float = Field(default=10.0, gt=0)
    task_timeout: float = Field(default=1200.0, gt=0)

    @field_validator(
        "telegram_api_url", "kie_api_url", "kie_upload_url", "public_url", mode="after"
    )
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator(
        "telegram_bot_token", "kie_api_key", "kie_webhook_hmac_key", "default_model", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def token(self) -> str:
        """The bot token; only call after `problems()` came back empty."""
        assert self.telegram_bot_token is not None
        return self.telegram_bot_token.get_secret_value()

    def configured_backends(self) -> list[str]:
        """Names of the backends whose credentials are set, in catalogue order."""
        return ["kie"] if self.kie_api_key else []

    def problems(self) -> list[str]:
        """What must be set before the bot can start, one line each."""
        found = []
        if self.telegram_bot_token is None:
            found.append("Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you.")
        if not self.configured_backends():
            found.append("Configure a video backend: set KIE_API_KEY (a kie.ai API key).")
        return found
