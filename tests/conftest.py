"""Shared fixtures: a real realauth server (gRPC + HTTP on loopback ports) inside the test's loop."""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from aiohttp import web

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server.clock import Clock
from realauth_server.config import load_settings
from realauth_server.http.listen import bind_tcp, bound_port
from realauth_server.logs import JsonFormatter
from realauth_server.secret import Secret
from realauth_server.server import RealAuthServer

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"


# --- leak detection: every Secret value created during the suite, every log line it emitted ----------------------
# tests/test_zz_no_secret_leaks.py (runs last) greps all of it, the metrics and the subprocess logs for each secret.

SECRET_VALUES: set[str] = set()
LOG_LINES: list[str] = []
PROCESS_LOGS: list[Path] = []
# Values a `realauth serve` process handled that its log must never carry: vendor tokens, STS keys, subject ids,
# landing signatures, the landing secret (tests/test_log_redaction.py adds them from its DEBUG-level run). Checked
# against process logs only: this test process's own HTTP client logs the URLs it fetches.
NEVER_LOGGED: set[str] = set()

_secret_init = Secret.__init__


def _recording_init(self: Secret, value: str, source: str = "literal") -> None:
    if len(value) >= 6:
        SECRET_VALUES.add(value)
    _secret_init(self, value, source)


Secret.__init__ = _recording_init  # type: ignore[method-assign]


class _CaptureAll(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            LOG_LINES.append(self.format(record))
        except Exception:  # pragma: no cover - a formatting bug must not hide the test's own failure
            LOG_LINES.append(record.getMessage())


logging.getLogger().addHandler(_CaptureAll())
logging.getLogger().setLevel(logging.DEBUG)
for _noisy in ("aiohttp", "asyncio", "grpc", "hpack", "httpx", "httpcore", "aiosqlite"):
    logging.getLogger(_noisy).setLevel(logging.INFO)


class _Serves(Protocol):
    def app(self) -> web.Application: ...


Served = TypeVar("Served", bound="_Serves | web.Application")


@asynccontextmanager
async def on_loopback(make: Callable[[str], Served]) -> AsyncIterator[tuple[Served, str]]:
    """Serve ``make(url)`` (an emulator or a bare app) on a loopback port bound before it is built, so its URL is
    known up front and nothing can take the port in between; yields it and its URL."""
    sock = bind_tcp("127.0.0.1", 0)
    url = f"http://127.0.0.1:{bound_port(sock)}"
    try:
        served = make(url)
        runner = web.AppRunner(served if isinstance(served, web.Application) else served.app(), access_log=None)
    except BaseException:
        sock.close()
        raise
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield served, url
    finally:
        await runner.cleanup()


_GIVEN_PORTS: set[int] = set()
# Below the kernel's ephemeral range (ip_local_port_range, 32768+ by default): an outbound connection opened between
# this probe and the real bind cannot take the port (a CI run once failed exactly so). Servers that can bind port 0
# themselves (the in-process realauth, `realauth serve`, `realauth emulate`, on_loopback) do so instead of calling
# this; it is for what must know its port before it starts (redis-server, a restart on the same port).
_PORT_RANGE = (20000, 32000)


def free_port() -> int:
    """A loopback port that is free now and never handed out twice in this run."""
    for _ in range(1000):
        port = random.randrange(*_PORT_RANGE)
        if port in _GIVEN_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN_PORTS.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {_PORT_RANGE}")


@dataclass
class Harness:
    server: RealAuthServer
    channel: grpc.aio.Channel
    stub: pb_grpc.RealAuthServiceStub
    http: httpx.AsyncClient
    clock: Clock

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def emulator(self, kind: str) -> Any:
        return self.server.emulators[kind]

    async def create(self, **fields: Any) -> pb.AuthSession:
        fields.setdefault("callback_url", "https://caller.example/done")
        resp = await self.stub.CreateAuthSession(pb.CreateAuthSessionRequest(**fields))
        return resp.session

    async def vendor_redirect(self, session: pb.AuthSession, outcome: str = "pass") -> tuple[str, dict[str, list[str]]]:
        """Press Pass/Fail on the vendor page: it must 302 to this session's landing; returns (URL, its query)."""
        sep = "&" if "?" in session.verification_url else "?"
        first = await self.http.get(f"{session.verification_url}{sep}outcome={outcome}")
        assert first.status_code == 302, first.text
        location = first.headers["location"]
        landing = urlsplit(location)
        assert landing.path.startswith(f"/v1/callback/{session.session_id}/"), location
        return location, parse_qs(landing.query)

    async def complete(self, session: pb.AuthSession, outcome: str = "pass") -> httpx.Response:
        """Do what the person's browser does: open the link with an outcome, follow to the caller."""
        sep = "&" if "?" in session.verification_url else "?"
        first = await self.http.get(f"{session.verification_url}{sep}outcome={outcome}")
        assert first.status_code in (302, 303), first.text
        landing = await self.http.request("GET", first.headers["location"])
        return landing


ServerFactory = Callable[..., Awaitable[Harness]]


async def read_all(call: grpc.aio.UnaryStreamCall, limit: int = 10) -> list[pb.AuthSession]:
    """Every message until the stream ends (bounded, so a stream that never ends fails the test)."""
    out: list[pb.AuthSession] = []
    for _ in range(limit):
        msg = await call.read()
        if msg is grpc.aio.EOF:
            return out
        out.append(msg.session)
    raise AssertionError(f"stream did not end after {limit} messages: {[s.state for s in out]}")


@pytest.fixture
async def make_realauth(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    started: list[Harness] = []

    async def factory(config: str | None = None, clock: Clock | None = None, **overrides: Any) -> Harness:
        cfg_path = None
        if config is not None:
            cfg_path = tmp_path / f"realauth-{len(started)}.toml"
            cfg_path.write_text(config)
        overrides.setdefault("store", "memory://")
        overrides.setdefault("host", "127.0.0.1")
        overrides.setdefault("http_host", "127.0.0.1")
        overrides.setdefault("port", 0)  # the server binds and reports the real ports: no probe-then-bind race
        overrides.setdefault("http_port", 0)
        settings = load_settings(str(cfg_path) if cfg_path else None, **overrides)
        clock = clock or Clock()
        server = RealAuthServer(settings, clock=clock)
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        h = Harness(server, channel, pb_grpc.RealAuthServiceStub(channel), httpx.AsyncClient(timeout=30), clock)
        started.append(h)
        return h

    yield factory
    for h in started:
        await h.http.aclose()
        await h.channel.close()
        await h.server.stop(grace=1)


@pytest.fixture
async def realauth(make_realauth: ServerFactory) -> Harness:
    return await make_realauth()
