"""Every vendor adapter goes through the base pipeline (``Provider.call``), read from the source (AST); and the
pipeline's hooks (``pace``, ``retry_answer``, ``status_error``) do what they say, against a local HTTP vendor.

The base adapter owns sign → send within the budget → retry → parse the envelope → error table; an adapter
supplies hooks only (build the request, read the result, read an error, pace, retriability, status). An adapter
that sends, retries or decodes a response body itself would bypass the budget, the breaker accounting or the
error table's uniform handling, so each of those is refused here.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from aiohttp import web

from realauth_server import deadlines
from realauth_server.clock import Clock
from realauth_server.domain import AuthSession, CreateParams, Landing, VendorSession, VerificationResult
from realauth_server.errors import ProviderError, ProviderUnavailable, RealAuthError
from realauth_server.providers.base import (
    ErrorTable,
    Provider,
    ProviderContext,
    ProviderSettings,
    VendorErrorRule,
    VendorFault,
)

VENDORS = Path(__file__).resolve().parents[1] / "server" / "realauth_server" / "vendors"
ADAPTERS = sorted(VENDORS.glob("*/adapter.py"))

#: Attributes of ``self`` an adapter must not call: the base pipeline calls them.
PIPELINE_ONLY = {"send", "with_retries"}
#: Base helpers that decode a body outside the ``envelope`` hook.
BODY_HELPERS = {"json_body"}


def _violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            if attr in PIPELINE_ONLY and isinstance(owner, ast.Name) and owner.id == "self":
                found.append(f"line {node.lineno}: self.{attr}(...) (use self.call with hooks)")
            if attr == "send" and isinstance(owner, ast.Attribute) and owner.attr == "http":
                found.append(f"line {node.lineno}: .http.send(...) (use self.call with hooks)")
            if attr == "json" and not node.args and not node.keywords:
                found.append(f"line {node.lineno}: .json() on a response (the envelope hook reads the body)")
        if isinstance(node, ast.Name) and node.id in BODY_HELPERS:
            found.append(f"line {node.lineno}: {node.id} (the envelope hook reads the body)")
        if isinstance(node, ast.ImportFrom) and any(a.name in BODY_HELPERS for a in node.names):
            found.append(
                f"line {node.lineno}: imports {', '.join(a.name for a in node.names if a.name in BODY_HELPERS)}"
            )
    return found


def _calls_pipeline(tree: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "call"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "self"
        for n in ast.walk(tree)
    )


def test_every_vendor_has_an_adapter() -> None:
    assert {p.parent.name for p in ADAPTERS} >= {"seedance", "volcengine", "megvii", "tencent"}


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: p.parent.name)
def test_adapter_uses_the_base_pipeline(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert _violations(tree) == [], f"{path.parent.name}/adapter.py bypasses the base pipeline"
    assert _calls_pipeline(tree), f"{path.parent.name}/adapter.py never calls self.call"


def test_the_check_sees_a_bypass() -> None:
    """The checker itself: each way round the pipeline is reported."""
    source = (
        "from ...providers.base import json_body\n"
        "class P:\n"
        "    async def f(self, r):\n"
        "        await self.send(r, action='a')\n"
        "        await self.with_retries('a', None)\n"
        "        await self.http.send(r)\n"
        "        return r.json()\n"
    )
    assert len(_violations(ast.parse(source))) == 5


# --- the hooks' behaviour, over a real port ---------------------------------------------------------------------


class _Vendor:
    """A local HTTP vendor answering a fixed status and JSON body, counting requests."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body, self.hits = status, body, 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.json_response(self.body, status=self.status)


@contextlib.asynccontextmanager
async def _serve(vendor: _Vendor) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/", vendor.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


class _Hooked(Provider):
    """The smallest adapter: an ``err`` field is the vendor error; the hooks under test are switchable."""

    kind: ClassVar[str] = "hooked"
    options_field: ClassVar[str] = ""
    error_table: ClassVar[ErrorTable] = ErrorTable([VendorErrorRule("Busy", ProviderUnavailable, True)])
    default_exchange_window: ClassVar[float] = 60.0
    once: ClassVar[bool] = False
    body_decides: ClassVar[bool] = False

    def __init__(self, url: str) -> None:
        super().__init__(ProviderSettings("h", "hooked", url, False, 60.0), ProviderContext(Clock(), ""))
        self.pacing = False
        self.paced_while_reading: list[bool] = []
        self.paced_while_building: list[bool] = []

    @classmethod
    def sandbox_settings(cls, emulator_url: str) -> dict[str, Any]:
        return {}

    async def create_session(self, params: CreateParams) -> VendorSession:
        raise NotImplementedError

    def parse_landing(self, session: AuthSession, query: Mapping[str, str]) -> Landing:
        raise NotImplementedError

    async def exchange(self, session: AuthSession) -> VerificationResult:
        raise NotImplementedError

    def vendor_error(self, data: dict[str, Any], action: str) -> VendorFault | None:
        return VendorFault(str(data["err"]), "busy") if data.get("err") else None

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        self.pacing = True
        try:
            yield
        finally:
            self.pacing = False

    def pace(self, action: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self._held()

    def retry_answer(self, error: RealAuthError, repeats: int) -> bool:
        return repeats < 2 if self.once and error.vendor_code == "Busy" else error.is_retriable

    def status_error(
        self, response: httpx.Response, action: str, data: dict[str, Any], fault: VendorFault | None, request_id: str
    ) -> RealAuthError | None:
        return None if self.body_decides else super().status_error(response, action, data, fault, request_id)

    def read(self, response: httpx.Response, action: str) -> dict[str, Any]:
        self.paced_while_reading.append(self.pacing)
        return self.read_envelope(response, action)

    def build(self) -> tuple[httpx.Request, httpx.Auth | None]:
        self.paced_while_building.append(self.pacing)
        return self.http.build_request("POST", self.settings.base_url), None

    async def go(self) -> dict[str, Any]:
        with deadlines.budget(5, "test"):
            return await self.call("Go", self.build, self.read)


@pytest.mark.parametrize("once", [False, True])
async def test_retry_answer_bounds_the_retries_of_a_vendor_answer(once: bool) -> None:
    vendor = _Vendor(200, {"err": "Busy"})
    async with _serve(vendor) as url:
        provider = _Hooked(url)
        provider.once = once
        try:
            with pytest.raises(ProviderUnavailable):
                await provider.go()
        finally:
            await provider.aclose()
    assert vendor.hits == (2 if once else 3)


async def test_pace_is_held_around_the_send_not_the_read() -> None:
    vendor = _Vendor(200, {"ok": 1})
    async with _serve(vendor) as url:
        provider = _Hooked(url)
        try:
            assert await provider.go() == {"ok": 1}
        finally:
            await provider.aclose()
    assert vendor.hits == 1
    assert provider.paced_while_building == [True] and provider.paced_while_reading == [False]


@pytest.mark.parametrize("body_decides", [False, True])
async def test_status_error_decides_a_non_200_answer(body_decides: bool) -> None:
    vendor = _Vendor(503, {"ok": 1})
    async with _serve(vendor) as url:
        provider = _Hooked(url)
        provider.body_decides = body_decides
        try:
            if body_decides:
                assert await provider.go() == {"ok": 1}
            else:
                with pytest.raises(ProviderError, match="HTTP 503 without an error code"):
                    await provider.go()
        finally:
            await provider.aclose()
