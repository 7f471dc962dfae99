"""The outbound HTTP transport: a library-neutral request/response pair for vendor calls, and aiohttp under it.

Adapters build a :class:`VendorRequest` (method, URL, headers, the exact body bytes) and read a
:class:`VendorResponse` (status, headers, body bytes); only this module knows the client library. The signer
(``realauth_server.signing``) sees the same method, URL, headers and bytes that go on the wire. Plain aiohttp was
chosen by the benchmark (docs/performance.md): httpx over httpx-aiohttp cost ≈ 0.34 ms of client CPU per vendor POST,
a plain ``aiohttp.ClientSession`` ≈ 0.09 ms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

#: The largest vendor answer body read (every vendor answer realauth reads is a small JSON object); a larger one is
#: refused as soon as it is seen (Content-Length, or the bytes received so far), so a hostile or broken endpoint
#: cannot make realauth buffer without bound.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
#: How long an idle pooled vendor connection is kept (seconds).
KEEPALIVE_SECONDS = 30.0
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class VendorRequest:
    """One vendor request as it will be sent: ``url`` percent-encoded, ``body`` the exact bytes."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def json(cls, method: str, url: str, payload: Any, headers: Mapping[str, str] | None = None) -> VendorRequest:
        """A JSON body, encoded as httpx 0.28 encoded ``json=`` (compact, UTF-8), so the wire bytes did not change."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        return cls(method, url, {"Content-Type": "application/json", **(headers or {})}, body)


@dataclass(frozen=True, slots=True)
class VendorResponse:
    """A vendor's answer, read in full (at most :data:`MAX_RESPONSE_BYTES`)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The decoded JSON body; ValueError when it is not JSON."""
        return json.loads(self.content)


class ResponseTooLarge(Exception):
    """The answer's body is larger than :data:`MAX_RESPONSE_BYTES` (the connection is dropped, not drained)."""


def make_http_client(max_connections: int) -> aiohttp.ClientSession:
    """One session (one connection pool) per provider instance; call it inside the running event loop.

    - the pool is sized per instance (``max_connections``, no per-host cap): a fixed small pool made every create
      past it wait for a connection until its deadline; idle connections are kept ``KEEPALIVE_SECONDS``;
    - no environment proxies or netrc (``trust_env=False``), no cookies kept between calls (vendors are APIs);
    - no compression asked for and none decoded (``Accept-Encoding: identity``, ``auto_decompress=False``): the body
      bound counts the bytes received, and a small compressed answer cannot inflate past it;
    - no client-side timeouts: the call's deadline budget bounds every request (``asyncio.timeout`` in the caller);
    - redirects are never followed (:func:`roundtrip` passes ``allow_redirects=False``).
    """
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        headers={"Accept-Encoding": "identity"},
    )


def wire_url(url: str) -> str:
    """``url`` as it goes on the wire: an ASCII URL is sent as is (it is already encoded), anything else is
    percent-encoded first, so the URL a signer signs is the one sent."""
    return url if url.isascii() else str(URL(url))


async def roundtrip(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    limit: int = MAX_RESPONSE_BYTES,
) -> VendorResponse:
    """Send one request exactly as given (no redirect followed) and read its answer, at most ``limit`` bytes.

    aiohttp's errors propagate (the caller classifies them); a body over the limit raises :class:`ResponseTooLarge`.
    """
    async with session.request(
        method, URL(url, encoded=True), data=body or None, headers=headers, allow_redirects=False
    ) as response:
        length = response.content_length
        if length is not None and length <= limit:
            content = await response.read()
        elif length is not None:
            response.close()
            raise ResponseTooLarge(length)
        else:
            content = await _read_at_most(response, limit)
        return VendorResponse(response.status, response.headers, content)


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """A body of unknown length (chunked, or until close), refused as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    total = 0
    while chunk := await response.content.read(_READ_CHUNK):
        total += len(chunk)
        if total > limit:
            response.close()
            raise ResponseTooLarge(total)
        chunks.append(chunk)
    return b"".join(chunks)
