"""``Authorization: Bearer <key>`` (the Seedance relay's scheme)."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from ..secret import Secret


def bearer_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


class BearerAuth(httpx.Auth):
    def __init__(self, api_key: Secret) -> None:
        self._key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(bearer_headers(self._key.reveal()))
        yield request
