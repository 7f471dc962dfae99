"""The process-separated benchmark (`make bench`): realauth, the vendor and the callers each in a process of their own.

Why separate processes: in one process the caller's and the vendor's CPU count as realauth's, and nothing shows where
realauth itself spends. Here realauth's CPU is read from ``/proc/<pid>/stat`` (utime + stime, all its threads) at the
start and at the end of each measured window, so it is realauth's alone.

Parts (all on 127.0.0.1, every loop bounded by time or count):

- ``vendor``: a canned aiohttp answer to the Seedance relay's two calls (never the bottleneck: no parsing, no signing
  check, a preformatted body), optionally answering after a fixed delay.
- ``bare-grpc``: a bare grpc.aio server with only grpc.health.v1: the floor of a unary call on the server side.
- ``bare-gateway``: a grpc.aio server whose CreateAuthSession-shaped handler does one plain aiohttp POST to the
  vendor: the floor of a gRPC-to-HTTP gateway in Python ("x gateway"). ``--features`` add one of realauth's per-call
  costs at a time (``GATEWAY_FEATURES``; ``bench.py experiments`` and ``bench.py instructions`` measure them).
- ``load``: the callers (grpc.aio, 50 concurrent by default; or an open-loop rate for latency), and the bare aiohttp
  client POSTing the Seedance create body to the vendor (the floor of an outbound call on the client side). The
  ``post-shipped`` load POSTs it through realauth's own outbound path instead: a provider's ``Provider.send`` (the
  session ``make_http_client`` builds, the neutral ``VendorRequest``, the bearer signer at send time, the budget,
  the breaker and the vendor-call metrics hook), the code every vendor call goes through.

Every process uses uvloop as ``realauth serve`` does. The ratios reported are realauth's CPU per call over the sum of
the two floors ("x floors") and over the bare gateway ("x gateway"), all measured in the same run; rounds are
interleaved and medians reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REALAUTH = str(ROOT / ".venv" / "bin" / "realauth")
TICK = os.sysconf("SC_CLK_TCK")
CREATE_PATH = "/v1/real-avatar/auth/session"
EXCHANGE_PATH = "/v1/real-avatar/groups/from-token"
CREATE_BODY = {"model": "doubao-seedance-2-0-260128", "CallbackURL": "https://example.com/cb", "Lng": "zh"}
BENCH_KEY = "bench-relay-key-not-a-secret"


# --- helpers ------------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads, from /proc/<pid>/stat (fields 14 and 15)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_loop(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)


def _stdin_closed() -> threading.Event:
    """Set when the parent closes our stdin (the parent's way to stop a serving child)."""
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    return done


async def _until(done: threading.Event) -> None:
    await asyncio.to_thread(done.wait)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# --- child: the canned vendor ---------------------------------------------------------------------------------------


def vendor_main(latency: float) -> None:
    """Serve canned Seedance relay answers until stdin closes; print {"url": ...} once listening."""
    from aiohttp import web

    done = _stdin_closed()
    counter = iter(range(1, 1 << 62))
    create_tpl = (
        '{"ResponseMetadata":{"RequestId":"bench-%d"},'
        '"Result":{"BytedToken":"bt-%d","H5Link":"https://h5.example.com/auth?token=bt-%d"}}'
    )
    exchange_tpl = '{"ResponseMetadata":{"RequestId":"bench-x%d"},"Result":{"GroupId":"group-%d"}}'

    async def create(request: web.Request) -> web.Response:
        await request.read()
        if latency:
            await asyncio.sleep(latency)
        n = next(counter)
        return web.Response(body=(create_tpl % (n, n, n)).encode(), content_type="application/json")

    async def exchange(request: web.Request) -> web.Response:
        await request.read()
        n = next(counter)
        return web.Response(body=(exchange_tpl % (n, n)).encode(), content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post(CREATE_PATH, create)
        app.router.add_post(EXCHANGE_PATH, exchange)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=8192)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
        await _until(done)
        await runner.cleanup()

    run_loop(main())


# --- child: the bare grpc.aio server --------------------------------------------------------------------------------


def bare_grpc_main() -> None:
    import grpc
    from grpc_health.v1 import health_pb2_grpc
    from grpc_health.v1._async import HealthServicer

    done = _stdin_closed()

    async def main() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(json.dumps({"target": f"127.0.0.1:{port}"}), flush=True)
        await _until(done)
        await server.stop(0)

    run_loop(main())


# --- child: the bare gateway -----------------------------------------------------------------------------------

#: What the bare gateway can add to its plain handler, one at a time (``bench.py experiments``): each is something
#: realauth does per call (or a server setting it uses), so the difference to the plain gateway is its cost.
GATEWAY_FEATURES: dict[str, str] = {
    "interceptor": "one no-op grpc.aio server interceptor",
    "metadata": "initial metadata (x-request-id) sent before the answer, and trailing metadata",
    "initial-metadata": "initial metadata (x-request-id) sent before the answer only (what realauth does)",
    "code": "context.set_code(OK) and set_details",
    "options": "realauth's server options (max pending calls 100,000, keepalive, max_connection_age, so_reuseport 0)",
    "services": "a health servicer and reflection registered beside the service",
    "pool": "grpc.aio.server(migration_thread_pool=a ThreadPoolExecutor)",
    "awaits": "the handler awaits 5 more futures, each resolved on the next loop iteration",
    "contextvars": "three ContextVars set and reset, and one copy_context()",
    "prometheus": "a labelled counter, histogram and gauge updated per call",
    "timeout": "asyncio.timeout(30) around the POST",
    "logs": "three JSON log records per call through logging.StreamHandler(stderr): one write(2) each",
    "logs-batched": "the same three records, written with one write(2) per event-loop iteration",
    "ids": "two ids from secrets.token_urlsafe(16) per call (a getrandom(2) each)",
    "deep": "the POST (and the awaits) run 12 coroutines deep, 6 of them asynccontextmanager scopes, as in realauth",
}


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": record.created, "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        out.update({k: v for k, v in record.__dict__.items() if k in ("request_id", "action", "n")})
        return json.dumps(out)


class _PerIterationHandler(logging.Handler):
    """Collects the formatted records and writes them with one write(2) at the end of the loop iteration."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not self.lines:
            asyncio.get_running_loop().call_soon(self.flush)
        self.lines.append(self.format(record) + "\n")

    def flush(self) -> None:
        if self.lines:
            data, self.lines = "".join(self.lines), []
            os.write(2, data.encode())


def _gateway_logger(features: frozenset[str]) -> logging.Logger | None:
    """The "logs" experiments' logger (stderr is the harness's log file, as for ``realauth serve``)."""
    if not features & {"logs", "logs-batched"}:
        return None
    logging._srcfile = None  # as realauth's logs.py: no caller lookup, thread or process fields
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = _PerIterationHandler() if "logs-batched" in features else logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    logger = logging.getLogger("bench.gateway")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


#: How deep the "deep" feature awaits the POST (realauth: the ScopeChain's six scopes and its nest coroutines,
#: then the servicer, the service, the provider's call/attempt/send and the client's layers).
DEPTH = 12


def bare_gateway_main(vendor_url: str, features: frozenset[str] = frozenset()) -> None:
    """A minimal gRPC-to-HTTP gateway: a CreateAuthSession-shaped unary call answered by one plain aiohttp POST of
    the Seedance create body to the canned vendor (the JSON read, a small response built). Its server CPU per call
    is the floor of any gateway in Python; ``features`` (GATEWAY_FEATURES) add one thing realauth does at a time.
    Prints {"target": ...} once listening; serves until stdin closes."""
    unknown = features - set(GATEWAY_FEATURES)
    if unknown:
        raise SystemExit(f"unknown gateway features: {sorted(unknown)}")
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    import aiohttp
    import grpc

    from realauth.v1 import realauth_pb2 as pb

    done = _stdin_closed()
    url = vendor_url.rstrip("/") + CREATE_PATH
    body = json.dumps(CREATE_BODY).encode()
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
    counter = iter(range(1, 1 << 62))
    records = _gateway_logger(features)
    cvars = [contextvars.ContextVar(f"bench_{i}", default="") for i in range(3)]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        metrics: tuple[Any, Any, Any] | None = None
        if "prometheus" in features:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

            reg = CollectorRegistry()
            metrics = (
                Counter("bench_calls", "calls", ["action", "code"], registry=reg).labels("CreateAuthSession", "OK"),
                Histogram("bench_seconds", "latency", ["action", "code"], registry=reg).labels(
                    "CreateAuthSession", "OK"
                ),
                Gauge("bench_in_flight", "in flight", ["action"], registry=reg).labels("CreateAuthSession"),
            )

        async def post() -> dict[str, Any]:
            async with session.post(url, data=body, headers=headers) as r:
                r.raise_for_status()
                return dict(json.loads(await r.read()))

        async def work() -> dict[str, Any]:
            if "awaits" in features:
                for _ in range(5):
                    fut = loop.create_future()
                    loop.call_soon(fut.set_result, None)
                    await fut
            if "timeout" in features:
                async with asyncio.timeout(30):
                    return await post()
            return await post()

        @contextlib.asynccontextmanager
        async def scope() -> AsyncIterator[None]:
            yield

        async def nested(fn: Callable[[], Awaitable[dict[str, Any]]], depth: int) -> dict[str, Any]:
            """``fn`` awaited ``depth`` coroutines down, every other one inside a scope (ScopeChain's shape)."""
            if depth == 0:
                return await fn()
            if depth % 2:
                async with scope():
                    return await nested(fn, depth - 1)
            return await nested(fn, depth - 1)

        async def create(request: Any, context: grpc.aio.ServicerContext) -> Any:
            n = next(counter)
            started = time.monotonic()
            tokens = [v.set(str(n)) for v in cvars] if "contextvars" in features else []
            if tokens:
                contextvars.copy_context()
            if "metadata" in features or "initial-metadata" in features:
                await context.send_initial_metadata((("x-request-id", f"req-{n}"),))
            if metrics is not None:
                metrics[2].inc()
            data = await (nested(work, DEPTH) if "deep" in features else work())
            result = data["Result"]
            if records is not None:
                for msg in ("vendor call", "session created", "rpc"):
                    records.info(msg, extra={"request_id": f"req-{n}", "action": "CreateAuthSession", "n": n})
            if "ids" in features:
                secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            if "metadata" in features:
                context.set_trailing_metadata((("x-vendor-request-id", data["ResponseMetadata"]["RequestId"]),))
            if "code" in features:
                context.set_code(grpc.StatusCode.OK)
                context.set_details("")
            if metrics is not None:
                metrics[2].dec()
                metrics[0].inc()
                metrics[1].observe(time.monotonic() - started)
            for v, t in zip(cvars, tokens, strict=False):
                v.reset(t)
            return pb.CreateAuthSessionResponse(
                session=pb.AuthSession(
                    session_id=f"as_{n}",
                    provider="seedance",
                    verification_url=result["H5Link"],
                    state=pb.AUTH_SESSION_STATE_PENDING,
                    callback_url=request.callback_url,
                )
            )

        class NoOp(grpc.aio.ServerInterceptor):  # type: ignore[misc]
            async def intercept_service(self, continuation: Any, details: Any) -> Any:
                return await continuation(details)

        kwargs: dict[str, Any] = {}
        if "interceptor" in features:
            kwargs["interceptors"] = [NoOp()]
        if "options" in features:
            sys.path[:0] = [str(ROOT / "server")]
            from realauth_server.config import load_settings
            from realauth_server.server import grpc_options

            kwargs["options"] = grpc_options(load_settings(None, store="memory://"))
        if "pool" in features:
            kwargs["migration_thread_pool"] = ThreadPoolExecutor(max_workers=4)
        server = grpc.aio.server(**kwargs)
        service = pb.DESCRIPTOR.services_by_name["RealAuthService"].full_name
        handlers = {
            "CreateAuthSession": grpc.unary_unary_rpc_method_handler(
                create,
                request_deserializer=pb.CreateAuthSessionRequest.FromString,
                response_serializer=pb.CreateAuthSessionResponse.SerializeToString,
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        server.add_registered_method_handlers(service, handlers)  # as the generated code (and realauth) do
        if "services" in features:
            from grpc_health.v1 import health_pb2, health_pb2_grpc
            from grpc_health.v1._async import HealthServicer
            from grpc_reflection.v1alpha import reflection

            health = HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health, server)
            names = (service, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
            reflection.enable_server_reflection(names, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        gc.freeze()  # as realauth serve does after start-up (server.tune_gc): the same collector work per call
        gc.set_threshold(700, 10, 10_000)
        print(json.dumps({"target": f"127.0.0.1:{port}"}), flush=True)
        await _until(done)
        await server.stop(0)
        await session.close()

    run_loop(main())


# --- child: the load generator --------------------------------------------------------------------------------------


@dataclass
class LoadSpec:
    rpc: str  # health | create | exchange | post | post-shipped | emulator-create
    target: str
    seconds: float
    concurrency: int = 50
    rate: float = 0.0  # > 0: open loop at this many calls/s (latency); else closed loop (throughput)
    warmup: int = 200
    prepare: int = 0  # exchange: sessions created before the window
    buckets: bool = False  # report calls per second of the window (emulator degradation)


def load_main(spec: LoadSpec) -> None:
    """Warm up, print "ready", wait for "go" on stdin, run the window, print the result as JSON."""
    run_loop(_load(spec))


async def _load(spec: LoadSpec) -> None:
    call, close = await _make_call(spec)
    sem = asyncio.Semaphore(spec.concurrency)

    async def guarded(i: int) -> None:
        async with sem:
            await call(i)

    await asyncio.gather(*(guarded(i) for i in range(spec.warmup)), return_exceptions=True)
    prepared = await _prepare(spec)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    errors: dict[str, int] = {}
    latencies: list[float] = []
    stamps: list[float] = []
    start = time.monotonic()
    ends = start + spec.seconds

    async def one(i: int, scheduled: float) -> None:
        try:
            await call(i)
        except Exception as exc:
            name = type(exc).__name__
            code = getattr(exc, "code", None)
            if callable(code):
                name = str(code().name)
            errors[name] = errors.get(name, 0) + 1
        now = time.monotonic()
        latencies.append(now - scheduled)
        stamps.append(now - start)

    calls = 0
    if spec.rate > 0:  # open loop: call i is due at start + i / rate, whether or not earlier ones answered
        tasks: list[asyncio.Task[None]] = []
        limit = len(prepared) if prepared else 1 << 62
        while calls < limit:
            due = start + calls / spec.rate
            if due >= ends:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(prepared[calls] if prepared else calls, due)))
            calls += 1
        await asyncio.gather(*tasks)
    else:
        counter = iter(range(len(prepared) if prepared else 1 << 62))

        async def worker() -> None:
            nonlocal calls
            for i in counter:
                if time.monotonic() >= ends:
                    return
                calls += 1
                await one(prepared[i] if prepared else i, time.monotonic())

        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    elapsed = time.monotonic() - start
    await close()
    out: dict[str, Any] = {
        "calls": calls,
        "errors": errors,
        "elapsed_s": round(elapsed, 3),
        "throughput": round(calls / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }
    if spec.buckets:
        per: dict[int, int] = {}
        for s in stamps:
            per[int(s)] = per.get(int(s), 0) + 1
        out["per_second"] = [per.get(i, 0) for i in range(int(spec.seconds))]
    print(json.dumps(out), flush=True)


async def _prepare(spec: LoadSpec) -> list[Any]:
    """Exchange: create the sessions to exchange before the window (their ids, in order)."""
    if spec.rpc != "exchange" or not spec.prepare:
        return []
    import grpc

    from realauth.v1 import realauth_pb2 as pb
    from realauth.v1 import realauth_pb2_grpc as pb_grpc

    ids: list[Any] = []
    async with grpc.aio.insecure_channel(spec.target) as ch:
        stub = pb_grpc.RealAuthServiceStub(ch)
        req = pb.CreateAuthSessionRequest(callback_url="https://example.com/done")
        sem = asyncio.Semaphore(spec.concurrency)

        async def make() -> None:
            async with sem:
                s = await stub.CreateAuthSession(req, timeout=30)
                ids.append(pb.ExchangeTokenRequest(session_id=s.session.session_id))

        await asyncio.gather(*(make() for _ in range(spec.prepare)))
    return ids


def shipped_post(vendor: str) -> tuple[Callable[[Any], Any], Callable[[], Any]]:
    """The Seedance create POST through realauth's own outbound path, as a create sends it: a relay provider's
    ``Provider.send`` with the neutral request (``VendorRequest.json``) and the bearer signer, inside a call budget.
    Must be called inside the running loop (the provider's session is made on first use there)."""
    sys.path[:0] = [str(ROOT / "server")]
    from realauth_server import deadlines
    from realauth_server.clock import Clock
    from realauth_server.providers.base import ProviderContext, ProviderSettings
    from realauth_server.providers.transport import VendorRequest
    from realauth_server.signing.bearer import BearerSigner
    from realauth_server.vendors.seedance.adapter import SeedanceProvider

    settings = ProviderSettings("seedance", "seedance", vendor, False, 120.0, extra={"api_key": BENCH_KEY})
    provider = SeedanceProvider(settings, ProviderContext(Clock(), ""))
    url = vendor + CREATE_PATH

    async def shipped(_: Any) -> None:
        with deadlines.budget(30, "bench"):
            request = VendorRequest.json("POST", url, CREATE_BODY)
            response = await provider.send(
                request, action="CreateAuthSession", signer=BearerSigner(provider.credential("api_key"))
            )
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")

    return shipped, provider.aclose


async def _make_call(spec: LoadSpec) -> tuple[Callable[[Any], Any], Callable[[], Any]]:
    if spec.rpc in ("post", "post-shipped", "emulator-create"):
        body = json.dumps(CREATE_BODY).encode()
        url = spec.target.rstrip("/") + CREATE_PATH
        headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
        if spec.rpc == "emulator-create":
            headers["Authorization"] = "Bearer sandbox-seedance-relay-key"
        if spec.rpc == "post-shipped":
            return shipped_post(spec.target.rstrip("/"))
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

        async def post(_: Any) -> None:
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                r.raise_for_status()

        return post, session.close
    import grpc

    ch = grpc.aio.insecure_channel(spec.target)
    if spec.rpc == "health":
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        hstub = health_pb2_grpc.HealthStub(ch)
        hreq = health_pb2.HealthCheckRequest()

        async def health(_: Any) -> None:
            await hstub.Check(hreq, timeout=30)

        return health, ch.close
    from realauth.v1 import realauth_pb2 as pb
    from realauth.v1 import realauth_pb2_grpc as pb_grpc

    stub = pb_grpc.RealAuthServiceStub(ch)
    creq = pb.CreateAuthSessionRequest(callback_url="https://example.com/done")
    if spec.rpc == "create":

        async def create(_: Any) -> None:
            await stub.CreateAuthSession(creq, timeout=30)

        return create, ch.close

    async def exchange(req: Any) -> None:
        if isinstance(req, int):  # warm-up: a create then its exchange
            s = await stub.CreateAuthSession(creq, timeout=30)
            req = pb.ExchangeTokenRequest(session_id=s.session.session_id)
        await stub.ExchangeToken(req, timeout=30)

    return exchange, ch.close


# --- parent: processes -------------------------------------------------------------------------------------------


class Child:
    """A child process whose stdout is read line by line (JSON lines or "ready")."""

    def __init__(self, cmd: list[str], log: Path | None = None, nice: int = 0, wrap: list[str] | None = None) -> None:
        err = log.open("ab") if log else subprocess.DEVNULL
        prefix = (["nice", "-n", str(nice)] if nice else []) + (wrap or [])
        self.proc = subprocess.Popen(
            prefix + cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=ROOT, bufsize=0
        )
        self.pid = self.proc.pid

    def line(self, timeout: float = 120.0) -> str:
        assert self.proc.stdout is not None
        box: list[bytes] = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        t.start()
        t.join(timeout)
        if not box or not box[0]:
            self.stop()
            raise RuntimeError(f"{self.proc.args!r} gave no answer within {timeout:g} s")
        return box[0].decode().strip()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


def _me(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "bench.py"), *args]


def measure(
    spec: LoadSpec, watched: int | None, log: Path, self_cpu: bool = False, on_go: Callable[[], Any] | None = None
) -> dict[str, Any]:
    """Run one load window; CPU per call of ``watched`` (or of the load generator itself when ``self_cpu``)."""
    cmd = _me("load", "--rpc", spec.rpc, "--target", spec.target, "--seconds", str(spec.seconds))
    cmd += ["--concurrency", str(spec.concurrency), "--rate", str(spec.rate), "--warmup", str(spec.warmup)]
    cmd += ["--prepare", str(spec.prepare)] + (["--buckets"] if spec.buckets else [])
    child = Child(cmd, log)
    try:
        ready = child.line(timeout=300)
        if ready != "ready":
            raise RuntimeError(f"load generator said {ready!r}")
        pid = child.pid if self_cpu else watched
        if on_go is not None:  # a profiler attached now samples the window only, not the warm-up
            on_go()
        before = cpu_seconds(pid) if pid else 0.0
        child.send("go\n")
        result: dict[str, Any] = json.loads(child.line(timeout=spec.seconds + 120))
        after = cpu_seconds(pid) if pid else 0.0
    finally:
        child.stop()
    calls = max(int(result["calls"]), 1)
    result["cpu_ms"] = round((after - before) / calls * 1000, 4)
    result["cpu_s"] = round(after - before, 2)
    return result


@dataclass
class Realauth:
    """``realauth serve`` in a process of its own, against the canned vendor (or in sandbox mode)."""

    work: Path
    store: str
    vendor_url: str = ""  # empty: sandbox mode (the built-in emulators inside realauth)
    extra: list[str] = field(default_factory=list)
    #: benchmark-only patches (tools/bench_patches/sitecustomize.py), e.g. ["no-initial-metadata"]
    patches: list[str] = field(default_factory=list)
    #: a command to run it under (valgrind): then started as ``python -m realauth_server``, slower to serve
    wrap: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    target: str = ""
    started: float = 0.0

    def start(self) -> None:
        cfg = self.work / "realauth.toml"
        cfg.write_text(
            f'[providers.seedance]\nbase_url = "{self.vendor_url}"\napi_key = "{BENCH_KEY}"\n'
            if self.vendor_url
            else ""
        )
        self.log = self.work / f"serve-{time.monotonic_ns()}.log"
        port = free_port()
        program = [*self.wrap, sys.executable, "-m", "realauth_server"] if self.wrap else [REALAUTH]
        cmd = [*program, "serve", "--config", str(cfg), "--store", self.store, "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--http-port", "0", "--log-format", "json", *self.extra]
        self.started = time.monotonic()
        env = None
        if self.patches:
            env = dict(os.environ, REALAUTH_BENCH_PATCH=",".join(self.patches))
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(ROOT / "tools" / "bench_patches"), env.get("PYTHONPATH")])
            )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, cwd=self.work, env=env)
        self.target = f"127.0.0.1:{port}"
        self.ready_s = wait_serving(self.target, self.proc, self.started, 120.0 if self.wrap else 30.0)
        # CPU spent until SERVING: on a busy machine the wall time mostly measures the others' load.
        self.ready_cpu_s = cpu_seconds(self.proc.pid)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_serving(target: str, proc: subprocess.Popen[bytes], started: float, limit: float = 30.0) -> float:
    """Seconds from ``started`` (just before the process was spawned) until grpc.health.v1 answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    host, port = target.rsplit(":", 1)
    # Not a gRPC connect per poll: gRPC's shared subchannel would sit in its reconnect backoff (1 s, then 1.6 s ...)
    # after the first refused attempt, and that backoff, not realauth, would be measured. TCP first, then Check.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.initial_reconnect_backoff_ms", 5)]
    while time.monotonic() - started < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"realauth exited with {proc.returncode} before serving")
        with socket.socket() as sock:
            if sock.connect_ex((host, int(port))) != 0:
                time.sleep(0.002)
                continue
        with grpc.insecure_channel(target, options=options) as ch:
            try:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=0.25)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            except grpc.RpcError:
                pass
        time.sleep(0.002)
    raise RuntimeError(f"realauth did not serve within {limit:g} s")


@contextmanager
def canned_vendor(log: Path, latency: float | None = None) -> Iterator[str]:
    """The canned vendor (``bench.py vendor``) in a process of its own, for the block's duration: its base URL."""
    vendor = Child(_me("vendor", *(["--latency", str(latency)] if latency is not None else [])), log)
    try:
        yield json.loads(vendor.line(30))["url"]
    finally:
        vendor.stop()


@contextmanager
def redis_server(work: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is needed for the Redis rows (apt-get install redis-server; `make redis-server`)"
        )
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- parent: the table ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = {}
    for pkg in ("grpcio", "protobuf", "aiohttp", "yarl", "uvloop", "aiosqlite", "redis"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "-"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "loadavg_at_start": os.getloadavg()[0],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


def med(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows)) if rows else 0.0


def table(seconds: float, rounds: int, out_json: Path, quick: bool = False) -> dict[str, Any]:
    """The issue's full table; ``quick`` (the smoke test) runs memory:// only: the floors, the shipped client's POST,
    creates and exchanges."""
    stores = ["memory"] if quick else ["memory", "sqlite", "redis"]
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, load {info['loadavg_at_start']:.2f}, python {info['python']}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"{rounds} rounds x {seconds:g} s per measurement, 50 concurrent callers, medians reported\n", flush=True)
    results: dict[str, Any] = {"machine": info, "seconds": seconds, "rounds": rounds, "rows": {}}
    raw: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="realauth-bench-") as tmp:
        work = Path(tmp)
        log = work / "children.log"
        vendor = Child(_me("vendor"), log)
        bare = Child(_me("bare-grpc"), log)
        redis_cm = redis_server(work) if "redis" in stores else None
        gateway: Child | None = None
        try:
            vendor_url = json.loads(vendor.line(30))["url"]
            bare_target = json.loads(bare.line(30))["target"]
            gateway = Child(_me("bare-gateway", "--target", vendor_url), log)
            gateway_target = json.loads(gateway.line(30))["target"]
            redis_url = redis_cm.__enter__() if redis_cm else ""
            urls = {"memory": "memory://", "sqlite": f"sqlite:///{work}/bench.db", "redis": redis_url}
            warm = 100 if quick else 300
            for r in range(rounds):
                print(f"round {r + 1}/{rounds} ...", flush=True)
                raw.setdefault("floor_grpc", []).append(
                    measure(LoadSpec("health", bare_target, seconds, warmup=warm), bare.pid, log)
                )
                raw.setdefault("floor_post", []).append(
                    measure(LoadSpec("post", vendor_url, seconds, warmup=warm), None, log, self_cpu=True)
                )
                raw.setdefault("gateway", []).append(
                    measure(LoadSpec("create", gateway_target, seconds, warmup=warm), gateway.pid, log)
                )
                raw.setdefault("post_shipped", []).append(
                    measure(LoadSpec("post-shipped", vendor_url, seconds, warmup=warm), None, log, self_cpu=True)
                )
                for store in stores:
                    ra = Realauth(work, urls[store], vendor_url)
                    ra.start()
                    try:
                        c = measure(LoadSpec("create", ra.target, seconds, warmup=warm), ra.pid, log)
                        raw.setdefault(f"create_{store}", []).append(c)
                        prepare = int(c["throughput"] * seconds * 1.5) + 200
                        x = measure(LoadSpec("exchange", ra.target, seconds, warmup=50, prepare=prepare), ra.pid, log)
                        raw.setdefault(f"exchange_{store}", []).append(x)
                    finally:
                        ra.stop()
            floor = med(raw["floor_grpc"], "cpu_ms") + med(raw["floor_post"], "cpu_ms")
            gateway_ms = med(raw["gateway"], "cpu_ms")
            rows: dict[str, Any] = {}
            for key, runs in raw.items():
                rows[key] = {
                    "cpu_ms": round(med(runs, "cpu_ms"), 3),
                    "throughput": round(med(runs, "throughput"), 1),
                    "errors": sum(sum(run["errors"].values()) for run in runs),
                    "calls": sum(run["calls"] for run in runs),
                }
                if key.startswith(("create_", "exchange_")):
                    rows[key]["ratio"] = round(rows[key]["cpu_ms"] / floor, 2)
                    rows[key]["ratio_gateway"] = round(rows[key]["cpu_ms"] / gateway_ms, 2) if gateway_ms else 0.0
                    rows[key]["per_core"] = round(1000 / rows[key]["cpu_ms"], 0) if rows[key]["cpu_ms"] else 0
            results["floor_ms"] = round(floor, 3)
            results["gateway_ms"] = round(gateway_ms, 3)
            results["rows"] = rows
            if not quick:
                results["latency"] = latency_rows(work, log, rows, urls, stores, vendor_url, bare_target, seconds)
                results["cold_start_s"] = cold_start(work)
                results["overload"] = overload_row(work, log)
                results["sandbox"] = sandbox_rows(work, log, seconds)
        finally:
            if redis_cm:
                redis_cm.__exit__(None, None, None)
            vendor.stop()
            bare.stop()
            if gateway is not None:
                gateway.stop()
    print_table(results)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON: {out_json}")
    return results


def latency_rows(
    work: Path,
    log: Path,
    rows: dict[str, Any],
    urls: dict[str, str],
    stores: list[str],
    vendor_url: str,
    bare_target: str,
    seconds: float,
) -> dict[str, Any]:
    """p50/p99 at half of saturation (open loop), and the floors at the same rate; "added" is realauth's p99 less
    the bare gRPC call's and the bare POST's p99 at that rate."""
    out: dict[str, Any] = {}
    secs = min(seconds, 4.0)
    for store in stores:
        ra = Realauth(work, urls[store], vendor_url)
        ra.start()
        try:
            for rpc in ("create", "exchange"):
                rate = max(rows[f"{rpc}_{store}"]["throughput"] / 2, 10.0)
                prepare = int(rate * secs * 1.2) + 100 if rpc == "exchange" else 0
                spec = LoadSpec(rpc, ra.target, secs, rate=rate, warmup=100, prepare=prepare)
                got = measure(spec, ra.pid, log)
                g = measure(LoadSpec("health", bare_target, secs, rate=rate, warmup=100), None, log)
                p = measure(LoadSpec("post", vendor_url, secs, rate=rate, warmup=100), None, log)
                out[f"{rpc}_{store}"] = {
                    "rate": round(rate, 1),
                    "p50_ms": got["p50_ms"],
                    "p99_ms": got["p99_ms"],
                    "floor_p99_ms": round(g["p99_ms"] + p["p99_ms"], 2),
                    "added_p99_ms": round(got["p99_ms"] - g["p99_ms"] - p["p99_ms"], 2),
                    "errors": sum(got["errors"].values()),
                }
        finally:
            ra.stop()
    return out


def cold_start(work: Path, runs: int = 5) -> dict[str, float]:
    """Process start (spawn) to grpc.health.v1 SERVING, memory:// and SQLite; medians of wall time and of the
    process's CPU time until then."""
    out: dict[str, float] = {}
    for store, url in (("memory", "memory://"), ("sqlite", f"sqlite:///{work}/cold.db")):
        wall, cpu = [], []
        for _ in range(runs):
            ra = Realauth(work, url, "http://127.0.0.1:9")
            ra.start()
            wall.append(ra.ready_s)
            cpu.append(ra.ready_cpu_s)
            ra.stop()
        out[store] = round(statistics.median(wall), 3)
        out[f"{store}_cpu"] = round(statistics.median(cpu), 3)
    return out


def overload_row(work: Path, log: Path, calls: int = 5000, latency: float = 2.0) -> dict[str, Any]:
    """5,000 concurrent creates at once against a canned vendor answering in 2 s: status counts, peak RSS."""
    with canned_vendor(log, latency) as url:
        ra = Realauth(work, "memory://", url)
        ra.start()
        try:
            cmd = _me("burst", "--target", ra.target, "--calls", str(calls), "--timeout", "30")
            done = subprocess.run(cmd, capture_output=True, timeout=180, cwd=ROOT, check=True)
            burst = json.loads(done.stdout.decode().strip().splitlines()[-1])
            return {
                "calls": calls,
                "vendor_latency_s": latency,
                "codes": burst["codes"],
                "elapsed_s": burst["elapsed_s"],
                "server_peak_rss_mb": round(peak_rss_mb(ra.pid), 1),
            }
        finally:
            ra.stop()


def sandbox_rows(work: Path, log: Path, seconds: float) -> dict[str, Any]:
    """The built-in emulators: creates against sandbox mode (emulator inside realauth), and a standalone Seedance
    emulator's POST/s second by second (its per-request cost must not grow with the sessions it has seen)."""
    out: dict[str, Any] = {}
    ra = Realauth(work, "memory://", "")
    ra.start()
    try:
        got = measure(LoadSpec("create", ra.target, seconds, warmup=200), ra.pid, log)
        out["create_sandbox_memory"] = {k: got[k] for k in ("cpu_ms", "throughput", "calls")}
        out["create_sandbox_memory"]["errors"] = sum(got["errors"].values())
    finally:
        ra.stop()
    port = free_port()
    cmd = [REALAUTH, "emulate", "seedance", "--port", str(port), "--log-format", "json", "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        spec = LoadSpec("emulator-create", f"http://127.0.0.1:{port}", 2 * seconds, warmup=50)
        spec.buckets = True
        got = measure(spec, proc.pid, log)
        per = got.get("per_second", [])
        out["emulator_seedance_standalone"] = {
            "posts": got["calls"],
            "first_second": per[0] if per else 0,
            "last_second": per[-1] if per else 0,
            "per_second": per,
            "cpu_ms": got["cpu_ms"],
            "errors": sum(got["errors"].values()),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return out


def print_table(res: dict[str, Any]) -> None:
    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.2f} (at the start {res['machine']['loadavg_at_start']:.2f}; 2 cores)")
    rows = res["rows"]
    floor = res["floor_ms"]
    print(f"\n{'':<34} {'CPU/call':>10} {'x floors':>9} {'x gateway':>10} {'calls/s':>9} {'per core':>9} {'errors':>7}")
    names = {
        "floor_grpc": "floor: bare grpc.aio (server)",
        "floor_post": "floor: bare aiohttp POST (client)",
        "gateway": "bare gateway (server)",
        "post_shipped": "shipped client POST (client)",
    }
    for key, row in rows.items():
        label = names.get(
            key, key.replace("_", " ").replace("create", "CreateAuthSession").replace("exchange", "ExchangeToken")
        )
        ratio = f"x{row['ratio']:.2f}" if "ratio" in row else ""
        ratio_gw = f"x{row['ratio_gateway']:.2f}" if "ratio_gateway" in row else ""
        per_core = f"{row['per_core']:.0f}" if "per_core" in row else ""
        print(
            f"{label:<34} {row['cpu_ms']:>7.3f} ms {ratio:>9} {ratio_gw:>10} {row['throughput']:>9.0f}"
            f" {per_core:>9} {row['errors']:>7}"
        )
    print(f"(floors added: {floor:.3f} ms; bare gateway: {res.get('gateway_ms', 0.0):.3f} ms)")
    if res.get("latency"):
        print(
            f"\n{'open loop at half saturation':<34} {'rate/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
            f" {'floor p99':>10} {'added p99':>10}"
        )
        for key, row in res["latency"].items():
            print(
                f"{key:<34} {row['rate']:>8.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
                f" {row['floor_p99_ms']:>10.2f} {row['added_p99_ms']:>10.2f}"
            )
    if "cold_start_s" in res:
        cs = res["cold_start_s"]
        print(
            f"\ncold start (spawn to health SERVING): memory {cs['memory']:.3f} s ({cs['memory_cpu']:.3f} s CPU),"
            f" SQLite {cs['sqlite']:.3f} s ({cs['sqlite_cpu']:.3f} s CPU)"
        )
    if "overload" in res:
        ov = res["overload"]
        print(
            f"overload: {ov['calls']} concurrent creates, vendor {ov['vendor_latency_s']:g} s: {ov['codes']},"
            f" {ov['elapsed_s']} s, peak RSS {ov['server_peak_rss_mb']} MB"
        )
    if "sandbox" in res:
        sb = res["sandbox"]
        c = sb["create_sandbox_memory"]
        print(f"sandbox create (emulator inside realauth): {c['cpu_ms']:.3f} ms CPU/call, {c['throughput']:.0f}/s")
        e = sb["emulator_seedance_standalone"]
        print(
            f"standalone Seedance emulator: {e['first_second']} POST/s in the first second,"
            f" {e['last_second']} in the last ({e['posts']} in all)"
        )


def profile(
    rpc: str, store: str, seconds: float, top: int = 40, native: bool = False, server: str = "realauth"
) -> None:
    """py-spy on ``realauth serve`` (or the bare gateway) under the closed-loop load: the functions by inclusive
    share of samples. ``native``: py-spy samples native frames too (``--native``) and the samples are grouped by
    library, and a second window runs ``perf record`` (when perf is there) for the split by shared object and
    thread, kernel included."""
    spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    if server not in ("realauth", "gateway"):
        raise SystemExit("--server is realauth or gateway")
    if server == "gateway" and rpc != "create":
        raise SystemExit("the bare gateway answers creates only (--rpc create)")
    name = f"{server}-{rpc}-{store.split(':')[0]}" + ("-native" if native else "")
    keep = ROOT / "var" / f"profile-{name}.txt"
    keep.parent.mkdir(parents=True, exist_ok=True)
    perf_keep = ROOT / "var" / f"perf-{name}.txt"
    perf_got: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="realauth-prof-") as tmp:
        work = Path(tmp)
        log = work / "children.log"
        with canned_vendor(log) as url:
            ra: Realauth | None = None
            gw: Child | None = None
            if server == "gateway":
                gw = Child(_me("bare-gateway", "--target", url), log)
                target, pid = json.loads(gw.line(30))["target"], gw.pid
            else:
                db = {"memory": "memory://", "sqlite": f"sqlite:///{work}/p.db"}.get(store, store)
                ra = Realauth(work, db, url)
                ra.start()
                target, pid = ra.target, ra.pid
            try:
                out = work / "raw.txt"
                cmd = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250"]
                # --native unwinds the C stacks, which needs the threads paused while each sample is taken
                cmd += ["--format", "raw", "--output", str(out)] + (["--native"] if native else ["--nonblocking"])
                samplers: list[subprocess.Popen[bytes]] = []

                def attach() -> None:  # when the window starts: the warm-up is not sampled
                    samplers.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("ab")))

                prepare = int(700 * (seconds + 2)) if rpc == "exchange" else 0
                spec = LoadSpec(rpc, target, seconds + 2, warmup=300, prepare=prepare)
                got = measure(spec, pid, log, on_go=attach)
                samplers[0].wait(timeout=60)
                if not out.exists():
                    raise RuntimeError(f"py-spy wrote no profile:\n{log.read_text(errors='replace')[-2000:]}")
                shutil.copy(out, keep)
                perf = shutil.which("perf")
                if native and perf:
                    perf_got = _perf_windows(perf, rpc, target, pid, seconds, prepare, work, log, perf_keep)
            finally:
                if ra is not None:
                    ra.stop()
                if gw is not None:
                    gw.stop()
    inclusive: dict[str, int] = {}
    total = 0
    for line in keep.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        # by function (the line numbers dropped), each counted once per sample
        for frame in {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}:
            inclusive[frame] = inclusive.get(frame, 0) + n
    print(
        f"{server} {rpc} {store}: {got['cpu_ms']:.3f} ms CPU/call, {got['throughput']:.0f}/s; {total} samples ({keep})"
    )
    print("\nwhere the CPU goes (each sample to the innermost frame of a known part):")
    for part, n in sorted(parts(keep).items(), key=lambda kv: -kv[1]):
        print(f"{100 * n / total:6.1f}%  {n / total * got['cpu_ms']:6.3f} ms  {part}")
    if native:
        print(
            "\nby library (py-spy --native: each sample to its innermost frame's library; in this mode py-spy counts"
            "\na thread blocked in a system call as busy, so the libc share is mostly waiting: perf below counts CPU):"
        )
        for lib, n in sorted(libraries(keep).items(), key=lambda kv: -kv[1]):
            print(f"{100 * n / total:6.1f}%  {n / total * got['cpu_ms']:6.3f} ms  {lib}")
    if perf_got is not None:
        print_perf(perf_keep, perf_got, pid)
    print("\nfunctions by inclusive share:")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{100 * n / total:6.1f}%  {frame}")


#: Libraries of a native frame (py-spy --native names a frame "function (file:line)" or "function (library)").
LIBRARIES = (
    ("cygrpc (grpc.aio's Cython layer and gRPC C-core, one shared object)", ("cygrpc", "grpc_", "grpc::", "absl")),
    ("uvloop (its Cython layer and libuv)", ("uvloop", "uv_", "uv__")),
    ("libpython (the interpreter)", ("libpython", "_Py", "Py")),
    ("libssl / libcrypto", ("libssl", "libcrypto")),
    ("libc and kernel entry (syscalls)", ("libc.so", "libc-", "__libc", "syscall", "epoll", "__GI_")),
)


def libraries(raw: Path) -> dict[str, int]:
    """Samples per library of the innermost frame (py-spy --native); a Python frame innermost is "Python code"."""
    out: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        inner = stack.rsplit(";", 1)[-1]
        name = "Python code (innermost frame is a .py function)" if ".py:" in inner else "other native"
        if ".py:" not in inner:
            name = next((lib for lib, needles in LIBRARIES if any(n in inner for n in needles)), name)
        out[name] = out.get(name, 0) + int(count)
    return out


def _perf_windows(
    perf: str, rpc: str, target: str, pid: int, seconds: float, prepare: int, work: Path, log: Path, keep: Path
) -> dict[str, Any]:
    """Two more load windows: ``perf record -e cpu-clock`` (every thread, kernel included: where the CPU is, by
    thread, shared object and symbol) and ``perf trace -s`` (the system calls, counted per thread)."""
    data = work / "perf.data"
    secs = str(int(seconds))
    spec = LoadSpec(rpc, target, seconds + 2, warmup=300, prepare=prepare)
    cmd = [perf, "record", "-e", "cpu-clock", "-F", "499", "-p", str(pid), "-o", str(data), "--", "sleep", secs]
    procs: list[subprocess.Popen[bytes]] = []

    def attach(cmd: list[str]) -> Callable[[], None]:
        return lambda: procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("ab")))

    # each profiler runs for ``seconds`` inside a window of ``seconds + 2``: every sample is under load
    got = measure(spec, pid, log, on_go=attach(cmd))
    procs.pop().wait(timeout=60)
    report = subprocess.run(
        [perf, "report", "-i", str(data), "--sort", "pid,dso,sym", "--stdio", "-q"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    trace_out = work / "trace.txt"
    cmd = [perf, "trace", "-s", "-p", str(pid), "-o", str(trace_out), "--", "sleep", secs]
    traced = measure(spec, pid, log, on_go=attach(cmd))
    procs.pop().wait(timeout=60)
    trace = trace_out.read_text(errors="replace") if trace_out.exists() else ""
    keep.write_text(
        f"# perf record window: {got['calls']} calls, {got['cpu_ms']} ms CPU/call\n"
        + report.stdout.decode(errors="replace")
        + f"\n# perf trace -s window: {traced['calls']} calls in {traced['elapsed_s']} s"
        f" (the trace's own window: {secs} s)\n" + trace
    )
    got["trace_calls_per_s"] = traced["throughput"]
    got["trace_seconds"] = int(seconds)
    return got


PERF_LINE = re.compile(r"^\s*([\d.]+)%\s+(\d+):(\S+)\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$")


def perf_rows(report: str, pid: int) -> list[tuple[float, str, str, str]]:
    """``perf report --sort pid,dso,sym -q`` (perf's "pid" is the thread id) as (percent, thread, object,
    symbol); the thread is "main" for the event loop's (tid = pid), "python" for the other Python threads, else its
    name (gRPC core's own threads)."""
    out = []
    for line in report.splitlines():
        m = PERF_LINE.match(line)
        if not m:
            continue
        share, tid, comm, dso, _, sym = m.groups()
        thread = "main" if int(tid) == pid else comm
        out.append((float(share), thread, dso, sym))
    return out


def _lib(dso: str, sym: str) -> str:
    if dso.startswith("[kernel"):
        return "kernel"
    if dso.startswith("libpython"):
        if sym.startswith("_PyEval_EvalFrameDefault"):
            return "libpython: bytecode (_PyEval_EvalFrameDefault)"
        if sym.startswith(("gc_", "visit_", "deduce_unreachable", "move_", "subtract_refs", "update_refs")):
            return "libpython: garbage collector"
        return "libpython: runtime (objects, calls, dicts, allocation)"
    if dso.startswith("cygrpc"):
        return "cygrpc (grpc.aio's Cython layer + gRPC C-core, stripped)"
    if dso.startswith("loop.cpython"):
        return "uvloop (Cython + libuv)"
    if dso.startswith(("libc.so", "libc-")):
        return "libc"
    if dso.startswith(("libssl", "libcrypto")):
        return "libssl/libcrypto"
    return "other extensions (" + dso.split(".", 1)[0] + ")"


def perf_summary(report: str, pid: int) -> dict[str, dict[str, float]]:
    """Percent of the samples by thread and by library (``_lib``)."""
    out: dict[str, dict[str, float]] = {}
    for share, thread, dso, sym in perf_rows(report, pid):
        lib = _lib(dso, sym)
        if lib.startswith("other extensions"):
            lib = "other extensions (aiohttp, multidict, yarl, protobuf, _asyncio, _json, ...)"
        by = out.setdefault(thread, {})
        by[lib] = by.get(lib, 0.0) + share
    return out


TRACE_LINE = re.compile(r"^\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+([\d.]+)")
TRACE_THREAD = re.compile(r"^\s*(\S+) \((\d+)\), (\d+) events")


def trace_counts(trace: str, pid: int) -> dict[str, dict[str, int]]:
    """``perf trace -s`` output as {thread: {syscall: calls}} (thread named as in :func:`perf_rows`)."""
    out: dict[str, dict[str, int]] = {}
    thread = ""
    for line in trace.splitlines():
        t = TRACE_THREAD.match(line)
        if t:
            thread = "main" if int(t.group(2)) == pid else t.group(1)
            continue
        m = TRACE_LINE.match(line)
        if m and thread:
            by = out.setdefault(thread, {})
            by[m.group(1)] = by.get(m.group(1), 0) + int(m.group(2))
    return out


def print_perf(keep: Path, got: dict[str, Any], pid: int) -> None:
    text = keep.read_text()
    report, _, trace = text.partition("\n# perf trace -s window")
    ms = got["cpu_ms"]
    print(f"\nby thread and library (perf record -e cpu-clock, its own window: {ms:.3f} ms CPU/call; {keep}):")
    summary = perf_summary(report, pid)
    for thread, libs in sorted(summary.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(libs.values())
        print(f"{total:6.1f}%  {total / 100 * ms:6.3f} ms  thread {thread}")
        for lib, share in sorted(libs.items(), key=lambda kv: -kv[1]):
            if share >= 0.3:
                print(f"  {share:6.1f}%  {share / 100 * ms:6.3f} ms  {lib}")
    print("\ntop symbols (perf):")
    for share, thread, dso, sym in sorted(perf_rows(report, pid), reverse=True)[:25]:
        print(f"{share:6.2f}%  {thread:<14} {dso[:30]:<30} {sym[:60]}")
    calls = got.get("trace_calls_per_s", 0.0) * got.get("trace_seconds", 0)
    counts = trace_counts(trace, pid)
    if counts and calls:
        print(f"\nsystem calls per call (perf trace -s, ≈ {calls:.0f} calls in its window):")
        for thread, by in counts.items():
            per = {k: v / calls for k, v in by.items()}
            top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.05)
            print(f"  {thread:<14} {sum(per.values()):5.2f}: {top}")


#: Parts of a call, matched against a sample's frames from the innermost outwards (the first match wins).
PARTS = (
    (
        "outbound HTTP client (aiohttp, yarl, providers/transport.py)",
        ("realauth_server/providers/transport.py", "aiohttp/", "(aiohttp", "/yarl/", "(yarl"),
    ),
    ("logging (records, redaction, JSON, write)", ("logging/__init__.py", "realauth_server/logs.py")),
    ("metrics (prometheus_client)", ("prometheus_client/", "realauth_server/http/metrics.py")),
    ("store (incl. the aiosqlite thread, redis client)", ("realauth_server/store/", "aiosqlite/", "redis/")),
    ("protobuf <-> domain (api/convert.py)", ("realauth_server/api/convert.py",)),
    ("interceptors", ("realauth_server/interceptors/",)),
    ("service, providers, signing, domain (realauth's own logic)", ("realauth_server/",)),
    ("event loop and gRPC core (native code, no Python frame)", ("Runner.run (", "Thread.run (")),
)


def parts(raw: Path) -> dict[str, int]:
    """Samples per part of the call (PARTS) in a py-spy raw (collapsed) profile."""
    out: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        name = "other (Python runtime, asyncio, grpc.aio's Python layer)"
        for frame in reversed(stack.split(";")):
            hit = next((p for p, needles in PARTS if any(n in frame for n in needles)), None)
            if hit is not None:
                name = hit
                break
        out[name] = out.get(name, 0) + int(count)
    return out


#: The features that together are what realauth's gRPC side does per create (it sends x-request-id before the
#: answer, sets no code on success, runs no migration pool).
REALAUTH_LIKE = ("interceptor", "initial-metadata", "options", "services", "contextvars", "prometheus", "timeout")


#: realauth itself with one benchmark-only patch (tools/bench_patches/sitecustomize.py), paired with plain realauth.
REALAUTH_PATCHES = ("realauth:no-initial-metadata", "realauth:batched-stderr")


def experiments(seconds: float, rounds: int, chosen: list[str] | None, out_json: Path) -> dict[str, Any]:
    """The bare gateway with one of realauth's per-call costs added at a time, measured back to back against the
    plain gateway (a fresh process each window, rounds interleaved, medians), and realauth itself in the same run."""
    variants = ["", *(chosen or [*GATEWAY_FEATURES, ",".join(REALAUTH_LIKE), *REALAUTH_PATCHES]), "realauth"]
    raw: dict[str, list[dict[str, Any]]] = {}
    load = os.getloadavg()[0]
    print(f"{rounds} rounds x {seconds:g} s, 50 concurrent callers, load {load:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="realauth-exp-") as tmp:
        work = Path(tmp)
        log = work / "children.log"
        with canned_vendor(log) as url:

            def window(variant: str) -> dict[str, Any]:
                if variant.startswith("realauth"):  # "realauth" or "realauth:patch+patch"
                    patches = [p for p in variant.partition(":")[2].split("+") if p]
                    ra = Realauth(work, "memory://", url, patches=patches)
                    ra.start()
                    try:
                        return measure(LoadSpec("create", ra.target, seconds), ra.pid, log)
                    finally:
                        ra.stop()
                gw = Child(_me("bare-gateway", "--target", url, "--features", variant), log)
                try:
                    target = json.loads(gw.line(30))["target"]
                    return measure(LoadSpec("create", target, seconds), gw.pid, log)
                finally:
                    gw.stop()

            for r in range(rounds):
                print(f"round {r + 1}/{rounds} ...", flush=True)
                base, before = "", window("")
                raw.setdefault("", []).append(before)
                for v in variants[1:]:
                    if v == "realauth":
                        raw.setdefault(v, []).append(window(v))
                        continue
                    want = "realauth" if v.startswith("realauth:") else ""
                    if want != base:
                        base, before = want, window(want)
                        raw.setdefault(want, []).append(before)
                    got = window(v)
                    after = window(base)  # the baseline again: each variant sits between two baseline windows
                    raw[base].append(after)
                    got["paired_delta_ms"] = got["cpu_ms"] - (before["cpu_ms"] + after["cpu_ms"]) / 2
                    raw.setdefault(v, []).append(got)
                    before = after
    plain = med(raw[""], "cpu_ms")
    rows: dict[str, dict[str, Any]] = {
        (k or "plain"): {
            "cpu_ms": round(med(runs, "cpu_ms"), 3),
            # the median over the rounds of (variant - the mean of the plain windows just before and after it)
            "delta_ms": round(med(runs, "paired_delta_ms"), 3) if "paired_delta_ms" in runs[0] else 0.0,
            "plain_delta_ms": round(med(runs, "cpu_ms") - plain, 3),
            "all_ms": [run["cpu_ms"] for run in runs],
            "throughput": round(med(runs, "throughput"), 1),
            "errors": sum(sum(run["errors"].values()) for run in runs),
        }
        for k, runs in raw.items()
    }
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print(
        "\ndelta: the median over the rounds of (variant - the mean of the plain windows just before and after);"
        "\n(realauth:PATCH: against plain realauth); the realauth row's delta is its median less the plain gateway's"
    )
    print(f"\n{'experiment':<44} {'CPU/call':>10} {'delta':>9} {'calls/s':>8} {'errors':>6}  rounds")
    for k, row in rows.items():
        label = "realauth-like: " + "+".join(REALAUTH_LIKE) if k == ",".join(REALAUTH_LIKE) else (k or "plain")
        delta = row["plain_delta_ms"] if k == "realauth" else row["delta_ms"]
        print(
            f"{label[:44]:<44} {row['cpu_ms']:>7.3f} ms {delta:>+9.3f} {row['throughput']:>8.0f}"
            f" {row['errors']:>6}  {', '.join(f'{x:.3f}' for x in row['all_ms'])}"
        )
    out = {"seconds": seconds, "rounds": rounds, "loadavg_at_start": load, "rows": rows}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nJSON: {out_json}")
    return out


def instructions(seconds: float, chosen: list[str] | None, out_json: Path) -> dict[str, Any]:
    """User-space instructions per create (valgrind callgrind, every thread), for the gateway variants and realauth:
    unlike CPU time they do not move with the machine's load. The kernel's work (system calls, the loopback TCP
    path) is not counted. Instrumentation is switched on when the window starts (the warm-up is not counted)."""
    control = shutil.which("callgrind_control")
    valgrind = shutil.which("valgrind")
    if not control or not valgrind:
        raise SystemExit("valgrind (with callgrind_control) is needed: apt-get install valgrind")
    variants = ["", *(chosen or [*GATEWAY_FEATURES, ",".join(REALAUTH_LIKE), "realauth", *REALAUTH_PATCHES])]
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="realauth-ir-") as tmp:
        work = Path(tmp)
        log = work / "children.log"
        with canned_vendor(log) as url:
            for v in variants:
                out = work / f"cg-{len(rows)}.out"
                wrap = [valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
                wrap += ["--cache-sim=no", "--branch-sim=no", "--dump-instr=no", "--separate-threads=no"]
                ra: Realauth | None = None
                gw: Child | None = None
                if v.startswith("realauth"):
                    patches = [p for p in v.partition(":")[2].split("+") if p]
                    ra = Realauth(work, "memory://", url, patches=patches, wrap=wrap)
                    ra.start()
                    target, pid = ra.target, ra.pid
                else:
                    gw = Child(_me("bare-gateway", "--target", url, "--features", v), log, wrap=wrap)
                    target, pid = json.loads(gw.line(300))["target"], gw.pid

                def on(pid: int = pid) -> None:
                    subprocess.run([control, "-i", "on", str(pid)], capture_output=True, timeout=60, check=True)

                try:
                    got = measure(LoadSpec("create", target, seconds, warmup=100), None, log, on_go=on)
                    subprocess.run([control, "-d", str(pid)], capture_output=True, timeout=120, check=True)
                finally:
                    if ra is not None:
                        ra.stop()
                    if gw is not None:
                        gw.stop()
                total = 0
                objects: dict[str, int] = {}
                # only the dump taken at the window's end ("<file>.1"); "<file>" itself is written at exit and holds
                # the shutdown (interpreter finalisation, its last collection)
                for dump in work.glob(f"{out.name}.*"):
                    text = dump.read_text(errors="replace")
                    for line in text.splitlines():
                        if line.startswith(("summary:", "totals:")):
                            total = max(total, int(line.split()[1]))
                            break
                    for lib, n in callgrind_objects(text).items():
                        objects[lib] = objects.get(lib, 0) + n
                    dump.unlink()
                calls = max(int(got["calls"]), 1)
                rows[v or "plain"] = {
                    "instructions_per_call": round(total / calls),
                    "calls": calls,
                    "by_library": {k: round(n / calls) for k, n in sorted(objects.items(), key=lambda kv: -kv[1])},
                }
                print(
                    f"{(v or 'plain')[:60]:<60} {total / calls:>12,.0f} instructions/call ({calls} calls)", flush=True
                )
    plain = rows["plain"]["instructions_per_call"]
    real = rows.get("realauth", {}).get("instructions_per_call", 0)
    print(f"\n{'variant':<60} {'Ir/call':>12} {'delta':>12}")
    for k, row in rows.items():
        base = real if k.startswith("realauth:") else plain
        row["delta"] = row["instructions_per_call"] - base if k != "plain" else 0
        print(f"{k[:60]:<60} {row['instructions_per_call']:>12,} {row['delta']:>+12,}")
    if "realauth" in rows:
        libs = sorted(set(rows["plain"]["by_library"]) | set(rows["realauth"]["by_library"]))
        print(f"\nby library, instructions per create (self cost): {'bare gateway':>14} {'realauth':>12} {'delta':>12}")
        order = sorted(libs, key=lambda lib: -rows["realauth"]["by_library"].get(lib, 0))
        for lib in order:
            a, b = rows["plain"]["by_library"].get(lib, 0), rows["realauth"]["by_library"].get(lib, 0)
            if max(a, b) >= 2000:
                print(f"  {lib[:46]:<46} {a:>14,} {b:>12,} {b - a:>+12,}")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"seconds": seconds, "rows": rows}, indent=2) + "\n")
    print(f"\nJSON: {out_json}")
    return rows


def callgrind_objects(text: str) -> dict[str, int]:
    """Self instructions per library (``_lib``) in a callgrind dump (``--dump-instr=no``: "line cost" lines).

    The format names objects and functions once with an id ("ob=(3) /path", later "ob=(3)"); a cost line after a
    ``calls=`` line is the call's inclusive cost and is skipped (it is counted in the callee's own lines)."""
    names: dict[str, str] = {}
    fn_names: dict[str, str] = {}
    out: dict[str, int] = {}
    ob = fn = ""
    skip = False
    for line in text.splitlines():
        if not line:
            continue
        c = line[0]
        if c.isdigit() or c in "+-*":
            if skip:
                skip = False
                continue
            parts_ = line.split()
            if len(parts_) >= 2:
                lib = _lib(Path(ob).name, fn)
                out[lib] = out.get(lib, 0) + int(parts_[1])
            continue
        key, _, value = line.partition("=")
        if key in ("ob", "fn", "cob", "cfn"):  # ob/cob share one id space, fn/cfn another
            table_ = names if key.endswith("ob") else fn_names
            m = re.match(r"\((\d+)\)(?: (.*))?", value)
            if m:
                if m.group(2) is not None:
                    table_[m.group(1)] = m.group(2)
                value = table_.get(m.group(1), value)
            if key == "ob":
                ob = value
            elif key == "fn":
                fn = value
        elif key == "calls":
            skip = True
    return out
