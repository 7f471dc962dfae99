"""Volcengine OpenAPI "SignerV4" (HMAC-SHA256), used by visual (``cv``) and Ark (``ark``).

Written from the vendor's description (https://www.volcengine.com/docs/6369/67269 and /67270): the SK is
used as literal UTF-8 with no prefix, the scope is ``YYYYMMDD/region/service/request``, and every ``X-*`` header
takes part.
The server half (:func:`verify_v4`) recomputes from the raw bytes received, as the gateway does.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

from ..secret import Secret
from . import has_header, host_header, with_headers

ALGORITHM = "HMAC-SHA256"
#: Default signature validity at the gateway (X-Expires), in seconds.
MAX_SKEW = 900.0
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: What the official SignerV4 sets on a request other than GET that has none (volcengine/auth/SignerV4.py).
DEFAULT_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def format_x_date(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def parse_x_date(value: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except (ValueError, OverflowError):
        return None


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(secret_access_key.encode("utf-8"), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "request")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """RFC 3986 encoding (space → %20), sorted by key byte value; repeated keys keep their order."""
    enc = [(quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs]
    enc.sort(key=lambda kv: kv[0].encode())
    return "&".join(f"{k}={v}" for k, v in enc)


def canonical_uri(path: str) -> str:
    return quote(path or "/", safe="/-_.~")


def is_signed_header(lower_name: str) -> bool:
    return lower_name in ("content-type", "content-md5", "host") or lower_name.startswith("x-")


def _norm_host(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if sep and port in ("80", "443"):
        return host
    return value


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(canonical headers block, signed header list) over lower-cased, trimmed names and values."""
    items: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        items[lower] = " ".join(value.strip().split()) if lower != "host" else _norm_host(value.strip())
    names = sorted(items)
    return "".join(f"{n}:{items[n]}\n" for n in names), ";".join(names)


def string_to_sign(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    signed: Mapping[str, str],
    body: bytes,
    x_date: str,
    scope: str,
) -> tuple[str, str]:
    """(StringToSign, SignedHeaders) for one request."""
    block, names = _canonical_headers(signed)
    canonical = "\n".join(
        [method.upper(), canonical_uri(path), canonical_query(query), block, names, hashlib.sha256(body).hexdigest()]
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{x_date}\n{scope}\n{digest}", names


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    service: str,
    now: float,
    session_token: str | None = None,
    add_content_sha256: bool = True,
) -> dict[str, str]:
    """Headers to add to a request so Volcengine accepts it (X-Date, X-Content-Sha256, Authorization…).

    ``headers`` are those the request already carries; the ones named Content-Type, Content-Md5,
    Host and X-* are signed (Host is taken from the URL when absent). ``add_content_sha256=False``
    reproduces the doc's worked example, which signs no body hash header.
    """
    parts = urlsplit(url)
    x_date = format_x_date(now)
    added: dict[str, str] = {"X-Date": x_date}
    if add_content_sha256:
        added["X-Content-Sha256"] = hashlib.sha256(body).hexdigest()
    if session_token:
        added["X-Security-Token"] = session_token
    signed = {k: v for k, v in headers.items() if is_signed_header(k.lower()) and k.lower() != "x-date"}
    if not any(k.lower() == "host" for k in signed):
        signed["Host"] = parts.netloc
    signed.update(added)
    scope = f"{x_date[:8]}/{region}/{service}/request"
    sts, names = string_to_sign(
        method, parts.path, parse_qsl(parts.query, keep_blank_values=True), signed, body, x_date, scope
    )
    signature = hmac.new(signing_key(secret_access_key, x_date[:8], region, service), sts.encode(), hashlib.sha256)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={names}, Signature={signature.hexdigest()}"
    )
    return added


#: Headers a signer replaces: a retry's request is signed afresh, never with the previous attempt's.
_STALE = ("Authorization", "X-Date", "X-Content-Sha256", "X-Security-Token")


class VolcV4Signer:
    """Signs the exact bytes sent, at send time, with the current clock (secrets revealed only here)."""

    __slots__ = ("_ak", "_clock", "_sk", "_token", "region", "service")

    def __init__(
        self,
        access_key_id: Secret,
        secret_access_key: Secret,
        *,
        region: str,
        service: str,
        clock: Callable[[], float] = time.time,
        session_token: Secret | None = None,
    ) -> None:
        self._ak = access_key_id
        self._sk = secret_access_key
        self._token = session_token
        self.region = region
        self.service = service
        self._clock = clock

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        out = with_headers(headers, {}, drop=_STALE)
        if not has_header(out, "Host"):
            # Host is signed: send the very value signed rather than whatever the transport derives.
            out["Host"] = host_header(url)
        if method.upper() != "GET" and not has_header(out, "Content-Type"):
            # Content-Type is a signed header: set it now, as the official SignerV4 does, or the transport adds its
            # own after signing (aiohttp: application/octet-stream on a bytes body) and the wire carries it unsigned.
            out["Content-Type"] = DEFAULT_CONTENT_TYPE
        added = sign_v4(
            method,
            url,
            out,
            body,
            access_key_id=self._ak.reveal(),
            secret_access_key=self._sk.reveal(),
            region=self.region,
            service=self.service,
            now=self._clock(),
            session_token=self._token.reveal() if self._token else None,
        )
        out.update(added)
        return out


# --- the server half (emulators) ------------------------------------------------------------------


class SignatureError(Exception):
    """Why a request's signature is refused, as a Volcengine gateway error code."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Verified:
    access_key_id: str
    signed_headers: tuple[str, ...]
    session_token: str


def parse_authorization(value: str) -> tuple[str, str, str, str]:
    """(access key id, scope, signed headers, signature) from an Authorization header."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError("MissingSignature", "Authorization is not HMAC-SHA256", 401)
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, val = item.strip().partition("=")
        if eq:
            fields[key] = val
    try:
        credential, names, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except KeyError as exc:
        raise SignatureError("MissingSignature", f"Authorization lacks {exc.args[0]}", 401) from None
    ak, slash, scope = credential.partition("/")
    if not slash or not ak:
        raise SignatureError("MissingSignature", "Credential is malformed", 401)
    return ak, scope, names, signature


def verify_v4(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    lookup: Callable[[str], str | None],
    region: str,
    service: str,
    now: float,
    max_skew: float = MAX_SKEW,
    required: tuple[str, ...] = ("host", "x-date"),
) -> Verified:
    """Check a received request the way the gateway does; raise :class:`SignatureError` if refused.

    ``headers`` must be case-insensitive (aiohttp's CIMultiDictProxy is); ``lookup`` maps an
    access key id to its secret, or None when unknown. ``required`` are the lower-case header names
    SignedHeaders must list (a service may require more, e.g. visual's ``content-type``).
    """
    auth = headers.get("Authorization", "")
    if not auth:
        raise SignatureError("MissingAuthenticationToken", "Authorization header is missing", 401)
    ak, scope, names, signature = parse_authorization(auth)
    x_date = headers.get("X-Date", "")
    stamp = parse_x_date(x_date) if x_date else None
    if stamp is None:
        raise SignatureError("MissingRequestInfo", "X-Date is missing or malformed", 400)
    if abs(now - stamp) > max_skew:
        raise SignatureError("InvalidTimestamp", f"X-Date is more than {int(max_skew)} s off the server clock", 400)
    if scope != f"{x_date[:8]}/{region}/{service}/request":
        raise SignatureError("SignatureDoesNotMatch", "credential scope does not match date, region or service", 401)
    secret = lookup(ak)
    if secret is None:
        raise SignatureError("InvalidAccessKey", "the access key id does not exist", 401)
    listed = [n for n in names.split(";") if n]
    missing = [n for n in required if n not in listed]
    if missing:
        raise SignatureError("SignatureDoesNotMatch", f"{' and '.join(required)} must be signed", 401)
    signed: dict[str, str] = {}
    for name in listed:
        value = headers.get(name)
        if value is None:
            raise SignatureError("SignatureDoesNotMatch", f"signed header {name} was not sent", 401)
        signed[name] = value
    body_hash = headers.get("X-Content-Sha256")
    if body_hash is not None and body_hash != hashlib.sha256(body).hexdigest():
        raise SignatureError("SignatureDoesNotMatch", "X-Content-Sha256 does not match the body", 401)
    sts, _ = string_to_sign(method, path, query, signed, body, x_date, scope)
    expected = hmac.new(signing_key(secret, x_date[:8], region, service), sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("SignatureDoesNotMatch", "the request signature does not match", 401)
    return Verified(ak, tuple(listed), headers.get("X-Security-Token", ""))
