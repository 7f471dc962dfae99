"""Megvii FaceID ``hmac_sha1`` request sign (https://faceid.com/faceid-open-doc/docs/sdkauth.html) and the H5
return-data sign (https://v2.faceid.com/document/faceid-guide-docs/adv_h5_return_notify_url).

Request sign: ``raw = "a={api_key}&b={expire_time}&c={current_time}&d={random}"`` and
``sign = standard_base64(HMAC_SHA1(api_secret, raw) ‖ raw)``. It travels as the form field ``sign`` with
``sign_version=hmac_sha1`` and stays valid until ``b``. The server side (our emulator) splits the 20-byte
digest off, finds the secret by ``a``, compares the HMAC in constant time and checks ``c < b`` and
``now ≤ b``.

H5 ("lite") return data: ``sign = sha1(API_SECRET + data)`` in lower-case hex.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..secret import Secret

SIGN_VERSION = "hmac_sha1"
DIGEST_SIZE = 20  # bytes of an HMAC-SHA1
#: ``d`` is an unsigned decimal of at most 10 digits.
MAX_RANDOM = 10**10 - 1
#: How long a sign we make stays valid (the sign is reusable until ``b``; short limits replay).
DEFAULT_TTL = 300

_RAW = re.compile(r"a=([^&]+)&b=(\d{1,20})&c=(\d{1,20})&d=(\d{1,10})")


def _random() -> int:
    return secrets.randbelow(MAX_RANDOM + 1)


def raw_string(api_key: str, expire_time: int, current_time: int, rand: str) -> str:
    return f"a={api_key}&b={expire_time}&c={current_time}&d={rand}"


def sign_raw(api_secret: str, raw: str) -> str:
    """``standard_base64(HMAC_SHA1(secret, raw) ‖ raw)`` for an already built raw string."""
    digest = hmac.new(api_secret.encode(), raw.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest + raw.encode()).decode("ascii")


def sign(
    api_key: str,
    api_secret: str,
    *,
    now: float,
    ttl: int = DEFAULT_TTL,
    random_source: Callable[[], int] = _random,
) -> str:
    """A fresh sign valid from ``now`` for ``ttl`` seconds (pure given ``now`` and ``random_source``)."""
    if ttl <= 0:
        raise ValueError("ttl must be positive (the vendor requires c < b)")
    rand = random_source()
    if not 0 <= rand <= MAX_RANDOM:
        raise ValueError("random_source must give an integer in [0, 10^10)")
    current = int(now)
    return sign_raw(api_secret, raw_string(api_key, current + ttl, current, f"{rand:010d}"))


def sign_fields(api_key: Secret, api_secret: Secret, *, now: float, ttl: int = DEFAULT_TTL) -> dict[str, str]:
    """The two form fields a signed v5 request carries (merge them into the multipart form)."""
    return {"sign": sign(api_key.reveal(), api_secret.reveal(), now=now, ttl=ttl), "sign_version": SIGN_VERSION}


#: Characters a form-data parameter (a field or file name) escapes, as browsers do (WHATWG HTML "multipart/form-data
#: encoding algorithm"): no name can end the quoted string or the header line.
_PARAM_ESCAPES = {ord('"'): "%22", ord("\r"): "%0D", ord("\n"): "%0A"}


def _param(value: str) -> bytes:
    return value.translate(_PARAM_ESCAPES).encode("utf-8")


def form_data(
    fields: Mapping[str, str],
    files: Mapping[str, tuple[str, bytes, str]] | None = None,
    *,
    boundary: str = "",
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (RFC 7578) built here, so the bytes sent are known: (body, Content-Type).

    The vendor wants form-data, not urlencoded. Text fields carry no Content-Type; ``files`` are
    ``name → (filename, content, content type)``. The boundary is random (128 bits) unless given, and is drawn again
    in the (astronomically unlikely) case a value contains it.
    """
    values = [v.encode("utf-8") for v in fields.values()]
    contents = [content for _, content, _ in (files or {}).values()]
    while True:
        mark = (boundary or secrets.token_hex(16)).encode("ascii")
        if not any(mark in v for v in (*values, *contents)):
            break
        if boundary:
            raise ValueError("the boundary occurs in the form's content")
    dash = b"--" + mark
    parts: list[bytes] = []
    for name, value in zip(fields, values, strict=True):
        parts += [dash, b'\r\nContent-Disposition: form-data; name="', _param(name), b'"\r\n\r\n', value, b"\r\n"]
    for name, (filename, content, ctype) in (files or {}).items():
        parts += [
            dash,
            b'\r\nContent-Disposition: form-data; name="',
            _param(name),
            b'"; filename="',
            _param(filename),
            b'"\r\nContent-Type: ',
            ctype.encode("ascii"),
            b"\r\n\r\n",
            content,
            b"\r\n",
        ]
    parts += [dash, b"--\r\n"]
    return b"".join(parts), f"multipart/form-data; boundary={mark.decode('ascii')}"


# --- server side (emulator) ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignedBy:
    api_key: str
    expire_time: int
    current_time: int
    random: str


class SignError(Exception):
    """Why a sign was refused, as the vendor's ``error`` string (https://faceid.com/document/faceid-guide-docs/app_api_authentication)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


AUTHENTICATION_ERROR = "AUTHENTICATION_ERROR"
INVALID_SIGN = "AUTHORIZATION_ERROR: INVALID_SIGN"
EXPIRED_SIGN = "AUTHORIZATION_ERROR: EXPIRED_SIGN"


def verify_sign(value: str, secret_for: Callable[[str], str | None], *, now: float) -> SignedBy:
    """Check a sign; raise SignError with the vendor's error string.

    Our reading of the error table's two "无效签名" rows: a sign we cannot even parse or whose ``a`` names no
    key is AUTHENTICATION_ERROR; a known key with a wrong HMAC or ``c ≥ b`` is INVALID_SIGN.
    """
    try:
        blob = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SignError(AUTHENTICATION_ERROR) from None
    if len(blob) <= DIGEST_SIZE:
        raise SignError(AUTHENTICATION_ERROR)
    digest, raw_bytes = blob[:DIGEST_SIZE], blob[DIGEST_SIZE:]
    try:
        raw = raw_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise SignError(AUTHENTICATION_ERROR) from None
    m = _RAW.fullmatch(raw)
    if m is None:
        raise SignError(AUTHENTICATION_ERROR)
    api_key, b, c, d = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    secret = secret_for(api_key)
    if secret is None:
        raise SignError(AUTHENTICATION_ERROR)
    expected = hmac.new(secret.encode(), raw_bytes, hashlib.sha1).digest()
    if not hmac.compare_digest(expected, digest) or not c < b:
        raise SignError(INVALID_SIGN)
    if int(now) > b:
        raise SignError(EXPIRED_SIGN)
    return SignedBy(api_key, b, c, d)


# --- H5 return / notify data --------------------------------------------------------------------


def data_sign(api_secret: str, data: str) -> str:
    """``sha1(API_SECRET + json_data)`` as lower-case hex (the H5 return_url/notify_url ``sign``)."""
    return hashlib.sha1((api_secret + data).encode("utf-8")).hexdigest()


def verify_data_sign(api_secret: str, data: str, value: str) -> bool:
    """Constant-time check of an H5 return ``sign`` (the vendor documents lower-case hex only)."""
    return hmac.compare_digest(data_sign(api_secret, data).encode(), value.encode("utf-8", "replace"))
