"""Every vendor adapter goes through the base pipeline (``Provider.call``), read from the source (AST); and the
pipeline's hooks (``pace``, ``retry_answer``, ``status_error``) do what they say, against a local HTTP vendor.

The base adapter owns sign → send within the budget → retry → parse the envelope → error table; an adapter
supplies hooks only (build the request, read the result, read an error, pace, retriability, status). An adapter
that sends, retries or decodes a response body itself would bypass the budget, the breaker accounting or the
error table's uniform handling, so each of those is refused here.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from aiohttp import web

from realauth_server import deadlines
from realauth_server.clock import Clock
from realauth_server.domain import AuthSession, CreateParams, Landing, VendorSession, VerificationResult
from realauth_server.errors import ProviderError, ProviderTimeout, ProviderUnavailable, RealAuthError
from realauth_server.providers import base
from realauth_server.providers.base import (
    ErrorTable,
    Provider,
    ProviderContext,
    ProviderSettings,
    VendorErrorRule,
    VendorFault,
)
from realauth_server.providers.transport import MAX_RESPONSE_BYTES, VendorRequest, VendorResponse
from realauth_server.secret import Secret
from realauth_server.signing import Signer
from realauth_server.signing.bearer import BearerSigner

from .conftest import on_loopback

VENDORS = Path(__file__).resolve().parents[1] / "server" / "realauth_server" / "vendors"
ADAPTERS = sorted(VENDORS.glob("*/adapter.py"))

#: Attributes of ``self`` an adapter must not call: the base pipeline calls them.
PIPELINE_ONLY = {"send", "with_retries"}
#: Methods of the outbound session (``self.http``) that send: only the base pipeline sends.
SESSION_SENDS = {"send", "request", "get", "post", "put", "patch", "delete", "head", "options"}
#: Base helpers that decode a body outside the ``envelope`` hook.
BODY_HELPERS = {"json_body"}


def _violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            if attr in PIPELINE_ONLY and isinstance(owner, ast.Name) and owner.id == "self":
                found.append(f"line {node.lineno}: self.{attr}(...) (use self.call with hooks)")
            if attr in SESSION_SENDS and isinstance(owner, ast.Attribute) and owner.attr == "http":
                found.append(f"line {node.lineno}: .http.{attr}(...) (use self.call with hooks)")
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
        "        await self.http.request('GET', r)\n"
        "        return r.json()\n"
    )
    assert len(_violations(ast.parse(source))) == 6


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

    def __init__(self, url: str, ctx: ProviderContext | None = None, max_attempts: int = 3) -> None:
        settings = ProviderSettings("h", "hooked", url, False, 60.0, max_attempts=max_attempts)
        super().__init__(settings, ctx or ProviderContext(Clock(), ""))
        self.request = VendorRequest("POST", url)
        self.signer: Signer | None = None
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
        self, response: VendorResponse, action: str, data: dict[str, Any], fault: VendorFault | None, request_id: str
    ) -> RealAuthError | None:
        return None if self.body_decides else super().status_error(response, action, data, fault, request_id)

    def read(self, response: VendorResponse, action: str) -> dict[str, Any]:
        self.paced_while_reading.append(self.pacing)
        return self.read_envelope(response, action)

    def build(self) -> tuple[VendorRequest, Signer | None]:
        self.paced_while_building.append(self.pacing)
        return self.request, self.signer

    async def go(self, budget: float = 5) -> dict[str, Any]:
        with deadlines.budget(budget, "test"):
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


# --- the transport, over real ports: what is sent, what is refused, how failures are classified ---------------------


@contextlib.asynccontextmanager
async def _raw(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> AsyncIterator[str]:
    """A TCP server that speaks (or fails to speak) HTTP byte by byte, for answers no web framework would give."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/x?token=secret-in-query"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def _head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


@contextlib.contextmanager
def _outcomes() -> Any:
    """The ``outcome`` of every vendor call observed meanwhile (the metrics/log hook)."""
    seen: list[str] = []

    def note(provider: Provider, action: str, outcome: str, seconds: float) -> None:
        seen.append(outcome)

    base.add_vendor_observer(note)
    try:
        yield seen
    finally:
        base._vendor_observers.remove(note)


async def _fails(provider: _Hooked, budget: float = 5) -> RealAuthError:
    try:
        with pytest.raises(RealAuthError) as err:
            await provider.go(budget)
    finally:
        await provider.aclose()
    return err.value


async def test_never_connected_is_unavailable_and_not_an_unknown_outcome() -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listened, closed only after the call
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with _outcomes() as seen:
            exc = await _fails(_Hooked(f"http://127.0.0.1:{port}/v1/x?token=secret-in-query", max_attempts=1))
    assert isinstance(exc, ProviderUnavailable) and not exc.outcome_unknown
    assert exc.message == f"h: Go failed to reach the vendor at http://127.0.0.1:{port} (ClientConnectorError)"
    assert seen == ["transport_error"]


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _head(reader)  # the request arrived; no answer


async def _cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _head(reader)
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ok"')
    await writer.drain()


@pytest.mark.parametrize(
    ("answer", "kind"), [(_hang_up, "ServerDisconnectedError"), (_cut_short, "ClientPayloadError")]
)
async def test_dropped_after_sending_is_unavailable_with_an_unknown_outcome(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], kind: str
) -> None:
    async with _raw(answer) as url:
        with _outcomes() as seen:
            exc = await _fails(_Hooked(url, max_attempts=2))
    assert isinstance(exc, ProviderUnavailable) and exc.outcome_unknown
    assert exc.message.endswith(f"failed to reach the vendor at {url.split('/v1')[0]} ({kind})"), exc.message
    assert "/v1" not in exc.message and "secret-in-query" not in exc.message
    assert seen == ["transport_error", "transport_error"]


async def test_budget_exhausted_is_a_timeout_with_an_unknown_outcome() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        await asyncio.sleep(30)

    async with _raw(silent) as url:
        with _outcomes() as seen:
            exc = await _fails(_Hooked(url, max_attempts=1), budget=0.5)
    assert isinstance(exc, ProviderTimeout) and exc.outcome_unknown
    assert seen == ["timeout"]


async def test_a_redirect_is_an_answer_never_followed() -> None:
    """A vendor impostor cannot bounce realauth (and its signed request) elsewhere: the 3xx is read as an answer."""
    elsewhere = _Vendor(200, {"ok": 1})
    async with _serve(elsewhere) as target:

        async def bounce(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(target)

        app = web.Application()
        app.router.add_post("/", bounce)
        async with on_loopback(lambda _url: app) as (_app, url):
            provider = _Hooked(url + "/")
            provider.signer = BearerSigner(Secret("bearer-key-never-forwarded"))
            exc = await _fails(provider)
    assert isinstance(exc, ProviderError) and "HTTP 307" in exc.message
    assert elsewhere.hits == 0


async def _huge_declared(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _head(reader)
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_RESPONSE_BYTES + 1}\r\n\r\n{{".encode())
    await writer.drain()
    await asyncio.sleep(30)  # the client refuses on the header alone: it never waits for the body


async def _huge_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b" " * 65536
    for _ in range(MAX_RESPONSE_BYTES // len(chunk) * 4):  # a body without end, as far as a client can tell
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()


@pytest.mark.parametrize("answer", [_huge_declared, _huge_chunked], ids=["content_length", "chunked"])
async def test_an_answer_over_the_body_bound_is_refused(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> None:
    async with _raw(answer) as url:
        with _outcomes() as seen:
            exc = await _fails(_Hooked(url, max_attempts=1), budget=10)
    assert isinstance(exc, ProviderError) and exc.outcome_unknown
    assert f"a body over {MAX_RESPONSE_BYTES} bytes" in exc.message and "secret-in-query" not in exc.message
    assert seen == ["transport_error"]


async def test_the_wire_carries_the_signed_request_and_nothing_kept_between_calls() -> None:
    """Signed at send time, sent as built: the exact body, the signer's headers, no compression asked for, and no
    cookie a vendor set sent back on the next call."""
    seen: list[tuple[dict[str, str], bytes]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        response = web.json_response({"ok": len(seen)})
        response.set_cookie("vendor_session", "tracking")
        return response

    app = web.Application()
    app.router.add_post("/", capture)
    async with on_loopback(lambda _url: app) as (_app, url):
        provider = _Hooked(url + "/")
        provider.request = VendorRequest.json("POST", url + "/", {"name": "é", "n": 1})
        provider.signer = BearerSigner(Secret("wire-bearer-key"))
        try:
            assert await provider.go() == {"ok": 1}
            assert await provider.go() == {"ok": 2}
        finally:
            await provider.aclose()
    for headers, body in seen:
        assert body == '{"name":"é","n":1}'.encode()
        assert headers["Authorization"] == "Bearer wire-bearer-key"
        assert headers["Content-Type"] == "application/json" and headers["Accept-Encoding"] == "identity"
        assert "Cookie" not in headers


async def test_an_injected_session_factory_is_used_and_closed() -> None:
    made: list[aiohttp.ClientSession] = []
    seen: list[str] = []

    def factory() -> aiohttp.ClientSession:
        made.append(aiohttp.ClientSession(headers={"X-Injected": "yes"}))
        return made[-1]

    async def capture(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Injected", ""))
        return web.json_response({"ok": 1})

    app = web.Application()
    app.router.add_post("/", capture)
    async with on_loopback(lambda _url: app) as (_app, url):
        provider = _Hooked(url + "/", ProviderContext(Clock(), "", http_client_factory=factory))
        try:
            assert await provider.go() == {"ok": 1}
        finally:
            await provider.aclose()
    assert seen == ["yes"] and len(made) == 1 and made[0].closed


def test_a_provider_is_built_outside_an_event_loop_and_opens_no_session_until_used() -> None:
    """Configuration checks build providers with no loop running; the session is made on first use, inside one."""
    provider = _Hooked("http://127.0.0.1:9/")
    assert provider._http is None
    asyncio.run(provider.aclose())


def test_the_url_signed_is_the_url_sent_and_errors_name_only_the_origin() -> None:
    """An encoded (ASCII) URL goes out exactly as built; anything else is percent-encoded once, before signing."""
    from realauth_server.providers.transport import wire_url

    built = "https://open.example.com/?Action=A&Version=1&X=a%20b+c"
    assert wire_url(built) == built
    assert wire_url("http://bücher.example/pfad/ä?q=ü") == "http://xn--bcher-kva.example/pfad/%C3%A4?q=%C3%BC"
    assert base.vendor_origin("https://user:pw@Open.Example.com:443/p?token=t") == "https://open.example.com"
    assert base.vendor_origin("http://[::1]:8080/p?x=1") == "http://[::1]:8080"
    assert base.vendor_origin("http://h:notaport/p") == "http://h"
