"""tu-zi: a proxy of the official Kling shape with a static bearer key."""

from __future__ import annotations

import httpx

from bot.providers.kling_auth import BearerAuth
from bot.providers.kling_wire import OfficialShapeProvider, WireFlavour

# Its doc marks every field required and types duration as an integer; callbacks unknown.
# It documents no lookup by our id, so a "not found" there proves nothing.
TUZI = WireFlavour(
    all_fields=True, integer_duration=True, callbacks=False, lookup_proves_absence=False
)


def tuzi(
    base_url: str,
    api_key: str,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout | None = None,
) -> OfficialShapeProvider:
    """The `tuzi` backend, rooted at `base_url` (e.g. `https://api.tu-zi.com/kling`)."""
    return OfficialShapeProvider("tuzi", base_url, BearerAuth(api_key), TUZI, transport, timeout)
