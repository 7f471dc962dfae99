"""Provider kinds: one line per vendor."""

from __future__ import annotations

from .base import Provider
from .megvii import MegviiProvider
from .seedance import SeedanceProvider
from .tencent import TencentProvider
from .volcengine import VolcengineProvider

KINDS: dict[str, type[Provider]] = {
    SeedanceProvider.kind: SeedanceProvider,
    VolcengineProvider.kind: VolcengineProvider,
    MegviiProvider.kind: MegviiProvider,
    TencentProvider.kind: TencentProvider,
}
