"""Build the configured backends by name."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bot.config import Settings
from bot.providers.base import Provider
from bot.providers.kie import KieProvider
from bot.providers.kling import official_kling
from bot.providers.tuzi import tuzi


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else None


Transport = httpx.AsyncBaseTransport | None
Timeout = httpx.Timeout | None


def _kie(settings: Settings, transport: Transport, timeout: Timeout) -> Provider:
    key = _secret(settings.kie_api_key)
    assert key is not None
    return KieProvider(
        key,
        api_url=settings.kie_api_url,
        upload_url=settings.kie_upload_url,
        hmac_key=_secret(settings.kie_webhook_hmac_key),
        transport=transport,
        timeout=timeout,
    )


def _kling(settings: Settings, transport: Transport, timeout: Timeout) -> Provider:
    return official_kling(
        settings.kling_api_url,
        access_key=_secret(settings.kling_access_key),
        secret_key=_secret(settings.kling_secret_key),
        api_key=_secret(settings.kling_api_key),
        transport=transport,
        timeout=timeout,
    )


def _tuzi(settings: Settings, transport: Transport, timeout: Timeout) -> Provider:
    key = _secret(settings.tuzi_api_key)
    assert key is not None
    return tuzi(settings.tuzi_api_url, key, transport, timeout)


def _preview(settings: Settings, transport: Transport, timeout: Timeout) -> Provider:
    from bot.providers.preview import PreviewProvider  # PyAV loads only when it is used

    return PreviewProvider(settings.preview_directory)


FACTORIES: dict[str, Callable[[Settings, Transport, Timeout], Provider]] = {
    "kie": _kie,
    "kling": _kling,
    "tuzi": _tuzi,
    "preview": _preview,
}


def build_providers(
    settings: Settings, transport: Transport = None, timeout: Timeout = None
) -> dict[str, Provider]:
    """One provider per configured backend, keyed by backend name."""
    return {
        name: FACTORIES[name](settings, transport, timeout)
        for name in settings.configured_backends()
    }
