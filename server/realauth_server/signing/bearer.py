"""``Authorization: Bearer <key>`` (the Seedance relay's scheme)."""

from __future__ import annotations

from collections.abc import Mapping

from ..secret import Secret
from . import with_headers


def bearer_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


class BearerSigner:
    """Adds the relay's API key at send time (revealed only there)."""

    __slots__ = ("_key",)

    def __init__(self, api_key: Secret) -> None:
        self._key = api_key

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        return with_headers(headers, bearer_headers(self._key.reveal()))
