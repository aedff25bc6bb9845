"""Authorization for official-shape backends: a JWT from access + secret key, or a static key."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Protocol

import jwt

LIFETIME = 1800
RENEW_BEFORE = 300
NOT_BEFORE_SKEW = 5
# After Kling refused a token as not yet valid or expired, allow for more clock difference.
WIDE_SKEW = 60


def encode_jwt(
    access_key: str,
    secret_key: str,
    now: float,
    lifetime: int = LIFETIME,
    skew: int = NOT_BEFORE_SKEW,
) -> str:
    """An HS256 JWT with Kling's claims: `iss` the access key, `exp` and `nbf` around `now`."""
    claims = {"iss": access_key, "exp": int(now) + lifetime, "nbf": int(now) - skew}
    with warnings.catch_warnings():
        # Kling issues the secret key: a warning about its length is nothing we could act on.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        # PyJWT writes the header as {"alg": "HS256", "typ": "JWT"}, the one Kling asks for.
        return jwt.encode(claims, secret_key, algorithm="HS256")


class Auth(Protocol):
    """Gives the Authorization header; `renew` drops a cached credential."""

    def header(self) -> dict[str, str]:
        """The Authorization header to send now."""

    def renew(self) -> None:
        """Forget the current credential so the next header is fresh."""


class BearerAuth:
    """A static API key sent as a bearer token."""

    def __init__(self, key: str) -> None:
        self._header = {"Authorization": f"Bearer {key}"}

    def header(self) -> dict[str, str]:
        """The same header every time."""
        return self._header

    def renew(self) -> None:
        """Nothing to renew."""


class JwtAuth:
    """A JWT signed with the secret key, reused until shortly before it expires."""

    def __init__(
        self, access_key: str, secret_key: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._skew = NOT_BEFORE_SKEW

    def header(self) -> dict[str, str]:
        """A bearer header with a token that is valid for a while yet."""
        now = self._clock()
        if self._token is None or now >= self._renew_at:
            self._token = encode_jwt(self._access_key, self._secret_key, now, skew=self._skew)
            self._renew_at = now + LIFETIME - RENEW_BEFORE
        return {"Authorization": f"Bearer {self._token}"}

    def renew(self) -> None:
        """Make the next header carry a new token, tolerant of a clock behind ours."""
        self._token = None
        self._skew = WIDE_SKEW
