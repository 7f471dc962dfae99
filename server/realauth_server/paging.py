"""ListAuthSessions page tokens: opaque to callers, tamper-evident, bound to the tenant and the filters.

A token is ``base64url(JSON position + HMAC-SHA256)``. The MAC key is a store-wide shared secret, so every replica
accepts every replica's tokens; the tenant is in the MAC, so one tenant's token is worthless to another, and the
filters' digest is in the payload, so a token reused with other filters is refused instead of silently listing
from the wrong place. The position is a keyset cursor (create_time, session_id), never an offset.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from . import errors as E
from .store.base import Cursor, SessionFilter

#: Name of the store's shared secret that signs page tokens.
SECRET_NAME = "page-token"
#: Longer tokens are refused before any decoding (realauth's own are about 150 characters).
MAX_TOKEN = 512
MAC_BYTES = 16
VERSION = 1


def filter_digest(flt: SessionFilter) -> str:
    """A digest of the filters (not the page size: AIP-158 lets it change between pages)."""
    state = flt.state.value if flt.state is not None else ""
    canon = json.dumps(
        [flt.subject_id, state, flt.provider, flt.create_time_start, flt.create_time_end], separators=(",", ":")
    )
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


def _mac(key: bytes, tenant: str, payload: bytes) -> bytes:
    return hmac.new(key, b"page:" + tenant.encode() + b"\0" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def encode(key: bytes, tenant: str, flt: SessionFilter, cursor: Cursor) -> str:
    payload = json.dumps(
        {"v": VERSION, "t": cursor[0], "id": cursor[1], "f": filter_digest(flt)}, separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(payload + _mac(key, tenant, payload)).decode().rstrip("=")


def decode(key: bytes, tenant: str, flt: SessionFilter, token: str) -> Cursor:
    """The cursor in ``token``, or InvalidParameter("page_token") saying whether it is foreign or for other filters."""
    invalid = E.InvalidParameter(
        "page_token", "is not a page token this service issued to this caller; send next_page_token unchanged"
    )
    if len(token) > MAX_TOKEN:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if len(raw) <= MAC_BYTES or not hmac.compare_digest(mac, _mac(key, tenant, payload)):
        raise invalid
    data = json.loads(payload)  # ours: the MAC says so
    if data.get("f") != filter_digest(flt):
        raise E.InvalidParameter(
            "page_token",
            "was issued for other filters; send the same subject_id, state, provider and create_time range as "
            "the request that returned it (or no page_token to start over)",
        )
    return (float(data["t"]), str(data["id"]))
