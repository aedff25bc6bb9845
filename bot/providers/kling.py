"""The official Kling API: JWT from access + secret key, or a plain API key."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from bot.providers.backend import Backend, BuildContext, SettingsSection, Url
from bot.providers.base import Provider
from bot.providers.kling_auth import BearerAuth, KlingJwtAuth
from bot.providers.kling_models import official_models
from bot.providers.kling_wire import OFFICIAL, OfficialShapeProvider


def official_kling(
    base_url: str,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    api_key: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout | None = None,
) -> OfficialShapeProvider:
    """The `kling` backend; access + secret key win over a plain key."""
    auth: httpx.Auth
    if access_key and secret_key:
        auth = KlingJwtAuth(access_key, secret_key)
    elif api_key:
        auth = BearerAuth(api_key)
    else:
        raise ValueError(
            "the Kling backend needs KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY"
        )
    return OfficialShapeProvider("kling", base_url, auth, OFFICIAL, transport, timeout)


class KlingSettings(SettingsSection):
    """KLING_ACCESS_KEY + KLING_SECRET_KEY (a JWT), or KLING_API_KEY, enable the Kling API."""

    kling_access_key: SecretStr | None = None
    kling_secret_key: SecretStr | None = None
    kling_api_key: SecretStr | None = None
    kling_api_url: Url = "https://api-singapore.klingai.com"


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _build(settings: KlingSettings, context: BuildContext) -> Provider:
    return official_kling(
        settings.kling_api_url,
        access_key=_secret(settings.kling_access_key),
        secret_key=_secret(settings.kling_secret_key),
        api_key=_secret(settings.kling_api_key),
        transport=context.transport,
        timeout=context.timeout,
    )


def _enabled(settings: KlingSettings) -> bool:
    pair = settings.kling_access_key is not None and settings.kling_secret_key is not None
    return pair or settings.kling_api_key is not None


def _problems(settings: KlingSettings) -> list[str]:
    if (settings.kling_access_key is None) != (settings.kling_secret_key is None):
        return ["Set both KLING_ACCESS_KEY and KLING_SECRET_KEY (or KLING_API_KEY)."]
    return []


BACKEND = Backend(
    name="kling",
    title="Kling API",
    settings=KlingSettings,
    models=official_models("kling", "o"),
    build=_build,
    enabled=_enabled,
    problems=_problems,
    hint="KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY (Kling)",
)
