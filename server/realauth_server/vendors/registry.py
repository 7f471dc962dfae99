"""Vendor kinds: one line per vendor (its adapter, its emulator, how long it keeps a result).

The emulator is named, not imported: production layers (config, server) read this table, and only the sandbox
wiring (server.py, cli.py) loads an emulator, through :meth:`Vendor.emulator_class`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..providers.base import Provider
from .megvii import spec as megvii
from .megvii.adapter import MegviiProvider
from .seedance import spec as seedance
from .seedance.adapter import SeedanceProvider
from .tencent import spec as tencent
from .tencent.adapter import TencentProvider
from .volcengine import spec as volcengine
from .volcengine.adapter import VolcengineProvider

if TYPE_CHECKING:
    from ..emulators.base import Emulator


@dataclass(frozen=True)
class Vendor:
    """One vendor kind: the adapter class, its emulator (``module:Class``) and the vendor's result retention."""

    adapter: type[Provider]
    emulator: str
    #: Seconds the vendor keeps a session's result after creation (store retention; docs/deployment.md).
    retention: float

    def emulator_class(self) -> type[Emulator]:
        """Import the emulator (sandbox wiring only)."""
        from ..emulators.base import Emulator

        module, _, name = self.emulator.partition(":")
        cls = getattr(importlib.import_module(module, __package__), name)
        if not (isinstance(cls, type) and issubclass(cls, Emulator)):
            raise TypeError(f"{self.emulator} is not an Emulator")
        return cls


VENDORS: Mapping[str, Vendor] = {
    # BytedToken exchangeable for 120 s; the GroupId is only ever ours afterwards.
    "seedance": Vendor(SeedanceProvider, ".seedance.emulator:SeedanceEmulator", seedance.TOKEN_WINDOW),
    # CertVerifyQuery data kept 1 h.
    "volcengine": Vendor(VolcengineProvider, ".volcengine.emulator:VolcengineEmulator", volcengine.QUERY_KEEP),
    # get_result kept 1 day (at most 3 calls).
    "megvii": Vendor(MegviiProvider, ".megvii.emulator:MegviiEmulator", megvii.RESULT_WINDOW),
    # GetWebVerificationResultIntl answers for 3 days.
    "tencent": Vendor(TencentProvider, ".tencent.emulator:TencentEmulator", tencent.RESULT_WINDOW),
}

#: Adapter class per kind (what config validation and the server build instances from).
KINDS: Mapping[str, type[Provider]] = {kind: v.adapter for kind, v in VENDORS.items()}
#: Vendor-side retention of a session's result, from creation, per kind.
VENDOR_RETENTION: Mapping[str, float] = {kind: v.retention for kind, v in VENDORS.items()}


def emulators() -> dict[str, type[Emulator]]:
    """Emulator class per kind (imports every emulator: sandbox wiring only)."""
    return {kind: v.emulator_class() for kind, v in VENDORS.items()}
