"""What each backend module declares: its settings, how it is enabled, built, and its models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import httpx
from pydantic import AfterValidator, BaseModel, SecretStr, model_validator

from bot.providers.base import Provider
from bot.providers.catalogue import ModelSpec


def _without_trailing_slash(value: str) -> str:
    return value.rstrip("/")


# A root URL from the configuration; paths are appended to it.
Url = Annotated[str, AfterValidator(_without_trailing_slash)]


class SettingsSection(BaseModel):
    """Settings of one part of the bot; the bot's Settings is made of every section.

    Field names are the environment variables' names (case does not matter).
    """

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        """An empty value (`KIE_API_KEY=` in `.env`) leaves an optional setting unset."""
        if not isinstance(data, dict):
            return data
        optional = {name for name, info in cls.model_fields.items() if info.default is None}
        return {
            key: value
            for key, value in data.items()
            if not (key in optional and isinstance(value, str) and not value.strip())
        }

    def secrets(self) -> list[str]:
        """Every secret value set, for log redaction: derived from the SecretStr fields."""
        values = (getattr(self, name) for name in type(self).model_fields)
        return [value.get_secret_value() for value in values if isinstance(value, SecretStr)]


@dataclass(frozen=True)
class BuildContext:
    """What a backend's provider may be built with besides its settings."""

    # Where the bot keeps its data (the database's folder); a backend may keep files below.
    data_directory: Path
    transport: httpx.AsyncBaseTransport | None = None
    timeout: httpx.Timeout | None = None


S = TypeVar("S", bound=SettingsSection)


def _fine(settings: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class Backend(Generic[S]):
    """One backend as its module declares it; the registry collects them."""

    name: str
    # Its name for people: "kie.ai", "Kling API".
    title: str
    settings: type[S]
    models: tuple[ModelSpec, ...]
    build: Callable[[S, BuildContext], Provider]
    # True when its credentials are set; None: on exactly when no paid backend is.
    enabled: Callable[[S], bool | None]
    paid: bool = True
    # What is set wrongly, one line each (e.g. half of a key pair).
    problems: Callable[[S], list[str]] = field(default=_fine)
    # How to enable it, for the line shown when no backend is configured.
    hint: str = ""
