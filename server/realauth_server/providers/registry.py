"""Provider kinds: one line per vendor."""

from __future__ import annotations

from .base import Provider
from .seedance import SeedanceProvider

KINDS: dict[str, type[Provider]] = {
    SeedanceProvider.kind: SeedanceProvider,
}
