"""Emulator per vendor kind: one line per vendor."""

from __future__ import annotations

from .base import Emulator
from .megvii import MegviiEmulator
from .seedance import SeedanceEmulator
from .tencent import TencentEmulator
from .volcengine import VolcengineEmulator

EMULATORS: dict[str, type[Emulator]] = {
    SeedanceEmulator.vendor: SeedanceEmulator,
    VolcengineEmulator.vendor: VolcengineEmulator,
    MegviiEmulator.vendor: MegviiEmulator,
    TencentEmulator.vendor: TencentEmulator,
}
