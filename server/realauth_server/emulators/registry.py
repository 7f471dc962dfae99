"""Emulator per vendor kind: one line per vendor."""

from __future__ import annotations

from .base import Emulator
from .seedance import SeedanceEmulator

EMULATORS: dict[str, type[Emulator]] = {
    SeedanceEmulator.vendor: SeedanceEmulator,
}
