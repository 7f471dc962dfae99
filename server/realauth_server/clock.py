"""An injectable wall clock, so tests can move time instead of waiting for vendor windows."""

from __future__ import annotations

import time


class Clock:
    """Wall-clock seconds since the epoch, with an adjustable offset (tests only move it forward)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


SYSTEM_CLOCK = Clock()
