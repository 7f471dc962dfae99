"""TC3-HMAC-SHA256, Tencent Cloud API 3.0 request signing (https://tencentcloud.com/document/product/1026/31038).

One pure function signs (method, URL, headers, exact body bytes) for a moment in time; the
emulator verifies with the same code from the raw bytes it received and the SignedHeaders the
client named; ``TC3Signer`` signs the exact bytes the provider pipeline sends, at send time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..clock import Clock
from ..secret import Secret
from . import host_header

ALGORITHM = "TC3-HMAC-SHA256"
#: What the official SDK signs; the docs allow more (e.g. x-tc-action).
DEFAULT_SIGNED_HEADERS = ("content-type", "host")
#: Server-side tolerance between X-TC-Timestamp and its own clock.
MAX_SKEW_SECONDS = 300
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<sid>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z0-9-]+)/tc3_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_date(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _lookup(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """``METHOD\\nURI\\nQUERY\\nCANONICAL_HEADERS\\nSIGNED_HEADERS\\nHEX(SHA256(payload))``."""
    names = sorted({h.strip().lower() for h in signed_headers})
    lines = []
    for name in names:
        value = _lookup(headers, name)
        if value is None:
            raise ValueError(f"signed header {name} is not present")
        lines.append(f"{name}:{value.strip().lower()}\n")
    unsigned = (_lookup(headers, "X-TC-Content-SHA256") or "") == UNSIGNED_PAYLOAD
    payload_hash = _sha256_hex(UNSIGNED_PAYLOAD.encode() if unsigned else body)
    return "\n".join([method.upper(), path or "/", query, "".join(lines), ";".join(names), payload_hash])


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{_sha256_hex(canonical.encode('utf-8'))}"


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    return _hmac(k_service, "tc3_request")


def signature(secret_key: str, timestamp: int, service: str, canonical: str) -> str:
    key = signing_key(secret_key, utc_date(timestamp), service)
    return hmac.new(key, string_to_sign(timestamp, service, canonical).encode("utf-8"), hashlib.sha256).hexdigest()


def sign_tc3(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    now: float,
    signed_headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
) -> dict[str, str]:
    """The request's headers plus Host (if absent), X-TC-Timestamp and Authorization.

    ``headers`` should carry Content-Type, X-TC-Action, X-TC-Version, X-TC-Region and optionally
    X-TC-Token / X-TC-Language; the body must be the exact bytes that will be sent.
    """
    parts = urlsplit(url)
    out = dict(headers)
    if _lookup(out, "Host") is None:
        out["Host"] = host_header(url)
    timestamp = int(now)
    out = {k: v for k, v in out.items() if k.lower() not in ("x-tc-timestamp", "authorization")}
    out["X-TC-Timestamp"] = str(timestamp)
    query = parts.query if method.upper() == "GET" else ""
    canonical = canonical_request(method, parts.path, query, out, signed_headers, body)
    names = ";".join(sorted({h.strip().lower() for h in signed_headers}))
    sig = signature(secret_key, timestamp, service, canonical)
    out["Authorization"] = (
        f"{ALGORITHM} Credential={secret_id}/{utc_date(timestamp)}/{service}/tc3_request, "
        f"SignedHeaders={names}, Signature={sig}"
    )
    return out


# --- verification (the emulator's side) ------------------------------------------------------------


@dataclass
class TC3Failure(Exception):
    """Why a request's signature is refused, with Tencent's own error code."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Verified:
    secret_id: str
    timestamp: int
    signed_headers: tuple[str, ...]


def verify_tc3(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_for: Callable[[str], str | None],
    service: str,
    now: float,
    max_skew: float = MAX_SKEW_SECONDS,
) -> Verified:
    """Recompute the signature from the raw request; raise :class:`TC3Failure` when it does not hold."""
    auth = _lookup(headers, "Authorization")
    if not auth:
        raise TC3Failure("AuthFailure.InvalidAuthorization", "The Authorization header is missing.")
    m = _AUTH_RE.match(auth.strip())
    if m is None:
        raise TC3Failure("AuthFailure.InvalidAuthorization", "The Authorization header is malformed.")
    signed = tuple(m["signed"].split(";"))
    if "content-type" not in signed or "host" not in signed or list(signed) != sorted(set(signed)):
        raise TC3Failure(
            "AuthFailure.InvalidAuthorization",
            "SignedHeaders must be sorted and include content-type and host.",
        )
    if any(_lookup(headers, name) is None for name in signed):
        raise TC3Failure("AuthFailure.InvalidAuthorization", "A header named in SignedHeaders is missing.")
    stamp_text = _lookup(headers, "X-TC-Timestamp") or ""
    if not stamp_text.isdigit():
        raise TC3Failure("MissingParameter", "The request is missing a valid X-TC-Timestamp.")
    timestamp = int(stamp_text)
    if abs(now - timestamp) > max_skew:
        raise TC3Failure(
            "AuthFailure.SignatureExpire",
            f"Signature expired. Timestamp {timestamp} differs from the server time by more than {max_skew:.0f} s.",
        )
    secret_key = secret_for(m["sid"])
    if secret_key is None:
        raise TC3Failure("AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure it is correct.")
    if m["service"] != service or m["date"] != utc_date(timestamp):
        raise TC3Failure(
            "AuthFailure.SignatureFailure",
            "The credential scope does not match the service or the date of X-TC-Timestamp.",
        )
    canonical = canonical_request(method, path, query if method.upper() == "GET" else "", headers, signed, body)
    expected = signature(secret_key, timestamp, service, canonical)
    if not hmac.compare_digest(expected, m["sig"]):
        raise TC3Failure(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        )
    return Verified(m["sid"], timestamp, signed)


# --- the signer the provider pipeline calls --------------------------------------------------------


class TC3Signer:
    """Signs the exact bytes sent, at send time, with secrets revealed only here."""

    __slots__ = ("_clock", "_id", "_key", "_service", "_signed", "_token")

    def __init__(
        self,
        secret_id: Secret,
        secret_key: Secret,
        *,
        service: str,
        clock: Clock,
        signed_headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
        token: Secret | None = None,
    ) -> None:
        self._id = secret_id
        self._key = secret_key
        self._service = service
        self._clock = clock
        self._signed = tuple(signed_headers)
        self._token = token

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """``headers`` plus Host (the value signed, when absent), X-TC-Timestamp, Authorization and X-TC-Token."""
        out = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "x-tc-token")}
        if self._token is not None:
            out["X-TC-Token"] = self._token.reveal()
        return sign_tc3(
            method,
            url,
            out,
            body,
            secret_id=self._id.reveal(),
            secret_key=self._key.reveal(),
            service=self._service,
            now=self._clock.now(),
            signed_headers=self._signed,
        )
