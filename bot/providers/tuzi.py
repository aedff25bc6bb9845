"""tu-zi: a proxy of the official Kling shape with a static bearer key."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from bot.providers.backend import Backend, BuildContext, SettingsSection, Url
from bot.providers.base import Provider
from bot.providers.kling_auth import BearerAuth
from bot.providers.kling_models import official_models
from bot.providers.kling_wire import OfficialShapeProvider, WireFlavour

# Its doc marks every field required and types duration as an integer; callbacks unknown.
# It documents no lookup by our id, so a "not found" there proves nothing.
TUZI = WireFlavour(
    all_fields=True,
    integer_duration=True,
    callbacks=False,
    lookup_proves_absence=False,
    # tu-zi documents no lifetime for the result links it passes on.
    results_kept=None,
)


def tuzi(
    base_url: str,
    api_key: str,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout | None = None,
) -> OfficialShapeProvider:
    """The `tuzi` backend, rooted at `base_url` (e.g. `https://api.tu-zi.com/kling`)."""
    return OfficialShapeProvider("tuzi", base_url, BearerAuth(api_key), TUZI, transport, timeout)


class TuziSettings(SettingsSection):
    """TUZI_API_KEY enables tu-zi; TUZI_API_URL is the root under which `/v1/videos` lives."""

    tuzi_api_key: SecretStr | None = None
    tuzi_api_url: Url = "https://api.tu-zi.com/kling"


def _build(settings: TuziSettings, context: BuildContext) -> Provider:
    assert settings.tuzi_api_key is not None
    key = settings.tuzi_api_key.get_secret_value()
    return tuzi(settings.tuzi_api_url, key, context.transport, context.timeout)


BACKEND = Backend(
    name="tuzi",
    title="tu-zi",
    settings=TuziSettings,
    models=official_models("tuzi", "t", aspect_ratio=True),
    build=_build,
    enabled=lambda settings: settings.tuzi_api_key is not None,
    hint="TUZI_API_KEY (tu-zi)",
)
