"""Verify realauth webhook signatures (the timestamped HMAC scheme Stripe documents for its webhooks,
https://docs.stripe.com/webhooks#verify-manually).

Header ``Realauth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``; several ``v1``
entries may be sent while a secret is rotated, one matching is enough. A timestamp further than ``tolerance``
seconds (default 300) from the receiver's clock, in either direction, is refused so a captured delivery cannot be
replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "Realauth-Signature"
#: Seconds a signature's timestamp may be away from the receiver's clock.
DEFAULT_TOLERANCE = 300


class WebhookSignatureError(ValueError):
    """The signature header is missing, malformed, outside the tolerance or matches none of the secrets."""


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _hex(secret: str | bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(_key(secret), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign_webhook(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The header value realauth sends for ``body`` at ``timestamp`` (now by default); for tests of a receiver."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_hex(secret, t, body)}"


def verify_webhook(
    secret: str | bytes | Iterable[str | bytes],
    body: bytes,
    header: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check ``header`` (the Realauth-Signature value) against the raw request ``body``; returns its timestamp.

    ``secret`` may be several secrets (during a rotation). ``body`` must be the bytes received, before any JSON
    parsing. Raises WebhookSignatureError; its message never contains the secret or the expected signature.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("body must be the raw request bytes")
    if not header:
        raise WebhookSignatureError(f"missing {SIGNATURE_HEADER} header")
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not secrets:
        raise ValueError("no webhook secret given")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureError(f"malformed {SIGNATURE_HEADER} header: needs t=<unix seconds> and v1=<hex>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookSignatureError(f"signature timestamp is more than {tolerance:g} s from this clock")
    raw = bytes(body)
    for s in secrets:
        expected = _hex(s, timestamp, raw).encode()
        if any(hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates):
            return timestamp
    raise WebhookSignatureError("signature does not match the body")
