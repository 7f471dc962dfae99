"""W3C Trace Context (https://www.w3.org/TR/trace-context/): read a caller's ``traceparent``.

realauth puts the caller's trace id on every log line of the call, so its lines join the caller's trace in a log
search even with OpenTelemetry off. An invalid header is ignored (the spec says to start a new trace), never an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

#: version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex; a future version may append "-" fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
MAX_TRACEPARENT = 512


@dataclass(frozen=True)
class TraceParent:
    trace_id: str
    parent_id: str
    flags: str

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)


def parse_traceparent(value: str) -> TraceParent | None:
    """The header's fields, or None when it is absent or invalid (all-zero ids, version ff, bad shape)."""
    value = value.strip()
    if not value or len(value) > MAX_TRACEPARENT:
        return None
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return TraceParent(trace_id, parent_id, flags)


class ServerSpan(Protocol):
    """One incoming call's span (OpenTelemetry on): its trace id, attributes, and how it ended."""

    trace_id: str

    def set(self, key: str, value: str | int | float | bool) -> None: ...

    def finish(self, status: str, error: bool) -> None: ...


class Tracing(Protocol):
    """What the server wires into the gRPC and HTTP entry points when tracing is on (realauth_server.tracing)."""

    def server_span(
        self, name: str, carrier: Mapping[str, str], *, http: bool = False
    ) -> AbstractContextManager[ServerSpan]:
        """A span for one incoming call, continuing the trace named in ``carrier``'s ``traceparent``."""
        ...


#: Environment switch for OpenTelemetry tracing (beside ``server.otel``); ``OTEL_SDK_DISABLED=true`` always wins.
OTEL_ENV = "REALAUTH_OTEL"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def otel_enabled(setting: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to trace: ``OTEL_SDK_DISABLED=true`` → off; else ``REALAUTH_OTEL`` if set; else ``server.otel``.

    Decided without importing OpenTelemetry, so that off costs nothing (the SDK is never imported).
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    flag = env.get(OTEL_ENV, "").strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    if flag:
        raise ValueError(f"{OTEL_ENV} must be 1/true/on or 0/false/off")
    return setting
