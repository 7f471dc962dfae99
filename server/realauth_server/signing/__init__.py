"""Request signing: a pure function per vendor scheme over the exact bytes sent, and a tiny signer per scheme.

No HTTP client library is imported here. A signer is called by the provider pipeline once per attempt, just before
the request goes out (a fresh clock each time, secrets revealed only there), with the method, the URL, the headers
and the body bytes that will be sent; it answers the headers to send. This is the shape of httpx's ``Auth`` flow
("the client drives the flow", encode/httpx ``_auth.py``) without its types, so the transport is free to change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Signer(Protocol):
    """Signs one request at send time: returns ``headers`` with this scheme's headers added or replaced."""

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]: ...


def host_header(url: str) -> str:
    """The ``Host`` an HTTP/1.1 client sends for ``url``: lower-case host, port only when not the scheme's default.

    Signers that sign Host set it explicitly to this value, so the header on the wire is the one signed whatever
    the transport would have derived.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"


def has_header(headers: Mapping[str, str], name: str) -> bool:
    """Whether ``headers`` has ``name`` (case-insensitively: a plain dict may spell it either way)."""
    lowered = name.lower()
    return any(k.lower() == lowered for k in headers)


def with_headers(headers: Mapping[str, str], added: Mapping[str, str], *, drop: Iterable[str] = ()) -> dict[str, str]:
    """A copy of ``headers`` without ``drop`` and any spelling of an ``added`` name, then ``added``."""
    gone = {n.lower() for n in added} | {n.lower() for n in drop}
    out = {k: v for k, v in headers.items() if k.lower() not in gone}
    out.update(added)
    return out
