"""Webhook signatures: a timestamped HMAC-SHA256 over the raw body (the scheme Stripe documents).

Header ``Realauth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``. A receiver
recomputes the HMAC over the bytes it received, compares in constant time, and refuses a timestamp more
than :data:`TOLERANCE` seconds from its own clock, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Realauth-Signature"
#: A receiver refuses signatures whose timestamp is further than this from its clock (docs/webhooks.md).
TOLERANCE = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match the body."""


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance: float = TOLERANCE) -> int:
    """Check a signature header against the raw body; returns its timestamp or raises SignatureError.

    Any one ``v1`` matching is enough (several may be sent while a secret is being rotated).
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("no t= timestamp or no v1= signature")
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise SignatureError("signature does not match")
    return timestamp
