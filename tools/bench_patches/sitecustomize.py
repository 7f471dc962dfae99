"""Benchmark-only changes to ``realauth serve`` (``bench.py experiments --features realauth:NAME``), never shipped.

The benchmark starts realauth with this directory on PYTHONPATH and ``REALAUTH_BENCH_PATCH=name,name``; Python
imports this module at start-up. Each patch is a change recommended to the code's owners in docs/performance.md,
measured here in realauth itself against the unpatched server in the same run, without editing their modules:

- ``no-initial-metadata``: ObserveInterceptor does not send ``x-request-id`` as initial metadata before the answer
  (grpc then sends empty initial metadata in the answer's batch): the cost of the separate send.
- ``batched-stderr``: what is written to stderr (the JSON log lines) goes out with one write(2) per event-loop
  iteration instead of one per line.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from typing import Any

PATCHES = frozenset(p for p in os.environ.get("REALAUTH_BENCH_PATCH", "").split(",") if p)


class _BatchedStderr(io.TextIOBase):
    """Collects writes and sends them with one write(2) when the loop iteration ends (at once outside a loop)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        if not self.parts:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not in the event loop's thread: no batching
                self.parts.append(text)
                self.flush()
                return len(text)
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        if self.parts:
            data, self.parts = "".join(self.parts), []
            os.write(2, data.encode("utf-8", "replace"))

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class _NoInitialMetadata:
    """The servicer context, except that send_initial_metadata does nothing (ObserveInterceptor only)."""

    __slots__ = ("_context",)

    def __init__(self, context: Any) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def send_initial_metadata(self, metadata: Any) -> None:
        return None


def _patch_observe() -> None:
    from realauth_server.interceptors import observe

    original = observe.ObserveInterceptor.scope

    def scope(self: Any, method: str, context: Any) -> Any:
        return original(self, method, _NoInitialMetadata(context))

    observe.ObserveInterceptor.scope = scope  # type: ignore[method-assign]


if "batched-stderr" in PATCHES:
    sys.stderr = _BatchedStderr()
if "no-initial-metadata" in PATCHES:
    _patch_observe()
