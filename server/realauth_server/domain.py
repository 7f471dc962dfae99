"""Vendor-neutral domain objects: what a session is, independent of proto and of any vendor."""

from __future__ import annotations

import enum
import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


class SessionState(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    EXCHANGED = "exchanged"
    FAILED = "failed"
    EXPIRED = "expired"
    #: The caller cancelled it while pending (CancelAuthSession): its landing is refused, nothing is exchanged.
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (SessionState.EXCHANGED, SessionState.FAILED, SessionState.EXPIRED, SessionState.CANCELLED)


LOCALES = ("zh", "en", "zh-Hant")


@dataclass
class VerificationResult:
    passed: bool
    group_id: str = ""
    score: float | None = None
    vendor_result_code: str = ""
    vendor_result_message: str = ""
    complete_time: float = 0.0
    vendor_request_id: str = ""


@dataclass
class Landing:
    """What the vendor's browser redirect told us about the person's attempt."""

    finished: bool
    passed: bool | None
    params: dict[str, str] = field(default_factory=dict)
    token: str = ""


@dataclass
class CreateParams:
    """A validated CreateAuthSession request, as an adapter sees it."""

    session_id: str
    callback_url: str
    locale: str
    subject_id: str
    model: str
    options: Any = None  # the kind's typed options message (proto), or None


@dataclass
class VendorSession:
    """What an adapter returns from the vendor's start call."""

    token: str
    verification_url: str
    expire_time: float
    vendor_request_id: str = ""
    vendor_data: dict[str, str] = field(default_factory=dict)


@dataclass
class AuthSession:
    session_id: str
    tenant: str
    provider: str
    provider_kind: str
    state: SessionState
    token: str
    verification_url: str
    callback_url: str
    create_time: float
    expire_time: float
    exchange_deadline: float
    update_time: float
    subject_id: str = ""
    locale: str = "zh"
    model: str = ""
    idempotency_key: str = ""
    vendor_data: dict[str, str] = field(default_factory=dict)
    landing: dict[str, str] = field(default_factory=dict)
    result: VerificationResult | None = None
    error_code: str = ""
    #: Digest per create parameter (service.fingerprint): a reused idempotency_key must match it.
    fingerprint: dict[str, str] = field(default_factory=dict)
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``asdict(self)`` with ``state`` as its value, built directly (every store write makes one).

        ``asdict`` deep-copies field by field (≈ 30 µs a session); with the maps holding strings, as they do, a flat
        copy of each is the same thing. Anything else (a map holding a mutable value) takes ``asdict`` itself.
        """
        vendor_data, landing, fingerprint, r = self.vendor_data, self.landing, self.fingerprint, self.result
        if not (_flat(vendor_data) and _flat(landing) and _flat(fingerprint)) or type(r) not in _RESULT_TYPES:
            d = asdict(self)
            d["state"] = self.state.value
            return d
        return {
            "session_id": self.session_id,
            "tenant": self.tenant,
            "provider": self.provider,
            "provider_kind": self.provider_kind,
            "state": self.state.value,
            "token": self.token,
            "verification_url": self.verification_url,
            "callback_url": self.callback_url,
            "create_time": self.create_time,
            "expire_time": self.expire_time,
            "exchange_deadline": self.exchange_deadline,
            "update_time": self.update_time,
            "subject_id": self.subject_id,
            "locale": self.locale,
            "model": self.model,
            "idempotency_key": self.idempotency_key,
            "vendor_data": dict(vendor_data),
            "landing": dict(landing),
            "result": None
            if r is None
            else {
                "passed": r.passed,
                "group_id": r.group_id,
                "score": r.score,
                "vendor_result_code": r.vendor_result_code,
                "vendor_result_message": r.vendor_result_message,
                "complete_time": r.complete_time,
                "vendor_request_id": r.vendor_request_id,
            },
            "error_code": self.error_code,
            "fingerprint": dict(fingerprint),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuthSession:
        d = dict(d)
        d["state"] = SessionState(d["state"])
        if d.get("result") is not None:
            d["result"] = VerificationResult(**d["result"])
        return cls(**d)

    def evolve(self, **changes: Any) -> AuthSession:
        """``dataclasses.replace(self, **changes)``: a shallow copy with these fields changed.

        Done on the instance's ``__dict__`` (≈ 1 µs rather than replace's ≈ 4 µs: it re-runs ``__init__`` over
        every field); AuthSession has no ``__post_init__`` and no ``init=False`` field, so that is all replace does.
        A name that is not a field goes to replace itself, which refuses it.
        """
        if not changes.keys() <= _SESSION_FIELDS or type(self) is not AuthSession:
            return replace(self, **changes)
        new = object.__new__(AuthSession)
        state = self.__dict__.copy()
        state.update(changes)
        new.__dict__ = state
        return new

    @property
    def due_time(self) -> float:
        """After this moment a non-terminal session is expired."""
        return max(self.exchange_deadline, self.expire_time)

    def reported_state(self, now: float) -> SessionState:
        """The state a read at ``now`` reports: a non-terminal session past its window is expired (even unwritten)."""
        if not self.state.terminal and now > self.due_time:
            return SessionState.EXPIRED
        return self.state


_SESSION_FIELDS = frozenset(f.name for f in fields(AuthSession) if f.init)
assert not hasattr(AuthSession, "__post_init__") and len(_SESSION_FIELDS) == len(fields(AuthSession))

#: Immutable values: ``asdict`` would return them as they are (deepcopy of a str, number, bool or None is itself).
_ATOMS = (str, int, float, bool, type(None))
_RESULT_TYPES = (type(None), VerificationResult)


def _flat(m: dict[str, str]) -> bool:
    """A plain dict of immutable keys and values: ``dict(m)`` equals what ``asdict`` makes of it."""
    return type(m) is dict and all(type(k) in _ATOMS and type(v) in _ATOMS for k, v in m.items())


def new_session_id() -> str:
    return "ses_" + secrets.token_hex(12)
