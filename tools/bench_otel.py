"""What OpenTelemetry tracing costs (docs/performance.md, "OpenTelemetry cost"): server CPU per call, tracing off
against tracing on, measured in the same run.

Tracing on means what production runs: the SDK's BatchSpanProcessor feeding an exporter — here one that drops the
batch (``--exporter null``, the default, so the number is realauth's and the SDK's cost, not a collector's) or the
real OTLP/HTTP exporter sending to a local receiver on 127.0.0.1 (``--exporter otlp``). Each call is one SERVER span
plus its CLIENT children (a CreateAuthSession: one vendor call and two store operations). Only 127.0.0.1 is used;
every loop is bounded by a request count. Numbers are process CPU seconds (time.process_time) per call; both sides
share the process, so read the difference between the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "clients" / "python")]

import grpc  # noqa: E402
from aiohttp import web  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from realauth.v1 import realauth_pb2 as pb  # noqa: E402
from realauth.v1 import realauth_pb2_grpc as pb_grpc  # noqa: E402
from realauth_server.config import load_settings  # noqa: E402
from realauth_server.server import RealAuthServer  # noqa: E402
from realauth_server.tracecontext import Tracing  # noqa: E402
from realauth_server.tracing import OtelTracing, _child_span  # noqa: E402

CONCURRENCY = 20
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class NullExporter(SpanExporter):
    """Accepts every batch and drops it (the SDK still builds, batches and hands over every span)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def measure(n: int, one: Callable[[], Awaitable[object]]) -> float:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def run() -> None:
        async with sem:
            await one()

    await asyncio.gather(*(run() for _ in range(min(100, n))))  # warm-up
    start = time.process_time()
    await asyncio.gather(*(run() for _ in range(n)))
    return (time.process_time() - start) / n


async def measure_server(n: int, stub: pb_grpc.RealAuthServiceStub) -> dict[str, float]:
    md = (("traceparent", TRACEPARENT),)
    lst = pb.ListProvidersRequest()
    req = pb.CreateAuthSessionRequest(callback_url="https://example.com/done")
    return {
        "ListProviders": await measure(n, lambda: stub.ListProviders(lst, metadata=md, timeout=30)),
        "CreateAuthSession": await measure(n, lambda: stub.CreateAuthSession(req, metadata=md, timeout=30)),
    }


async def bench(n: int, rounds: int, tracings: dict[str, Tracing | None]) -> dict[str, dict[str, float]]:
    """Both servers run at once and are measured alternately, ``rounds`` times; the best round of each is kept
    (on a shared machine the noise only ever adds)."""
    settings = load_settings(None, store="memory://", host="127.0.0.1", http_host="127.0.0.1", port=0, http_port=0)
    servers = {name: RealAuthServer(settings, tracing=t) for name, t in tracings.items()}
    for server in servers.values():
        await server.start()
    best: dict[str, dict[str, float]] = {name: {} for name in servers}
    channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") for name, s in servers.items()}
    try:
        for _ in range(rounds):
            for name, ch in channels.items():
                for rpc, sec in (await measure_server(n, pb_grpc.RealAuthServiceStub(ch))).items():
                    best[name][rpc] = min(best[name].get(rpc, sec), sec)
    finally:
        for ch in channels.values():
            await ch.close()
        for server in servers.values():
            await server.stop(grace=1)
    return best


async def main_async(n: int, rounds: int, exporter: str) -> None:
    logging.disable(logging.INFO)  # the per-call log lines are the same either way; keep the terminal quiet
    receiver = None
    if exporter == "otlp":

        async def traces(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(content_type="application/x-protobuf")

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", traces)
        receiver = web.AppRunner(app, access_log=None)
        await receiver.setup()
        site = web.TCPSite(receiver, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        os.environ.update(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}")
    tracing = OtelTracing() if exporter == "otlp" else _null_tracing()
    server_span, child_span = span_costs(tracing)
    print(f"\nOne SERVER span: {server_span * 1e6:.0f} µs CPU; one CLIENT child span: {child_span * 1e6:.0f} µs CPU")
    got = await bench(n, rounds, {"on": tracing, "off": None})
    if receiver is not None:
        await receiver.cleanup()
    print(f"\nOpenTelemetry cost ({CONCURRENCY} concurrent calls, n={n}, best of {rounds}, exporter={exporter})")
    print(f"  {'RPC':<20} {'off µs':>9} {'on µs':>9} {'extra µs':>9} {'extra':>7}")
    for name in got["off"]:
        a, b = got["off"][name] * 1e6, got["on"][name] * 1e6
        print(f"  {name:<20} {a:9.0f} {b:9.0f} {b - a:9.0f} {100 * (b - a) / a:6.1f}%")


def span_costs(tracing: OtelTracing, n: int = 20000) -> tuple[float, float]:
    """CPU per SERVER span (with its attributes and the traceparent extracted) and per CLIENT child span, alone."""
    carrier = {"traceparent": TRACEPARENT, "x-request-id": "bench", "user-agent": "grpc-python"}
    start = time.process_time()
    for _ in range(n):
        with tracing.server_span("realauth.v1.RealAuthService/ListProviders", carrier) as span:
            span.set("realauth.request_id", "bench")
            span.set("realauth.tenant", "sandbox")
            span.set("rpc.grpc.status_code", 0)
            span.finish("OK", False)
    server = (time.process_time() - start) / n
    attributes = {"db.system.name": "memory", "db.operation.name": "get", "realauth.outcome": "ok"}
    with tracing.server_span("parent", carrier):
        start = time.process_time()
        for _ in range(n):
            _child_span("store get", 0.001, attributes, False)
        child = (time.process_time() - start) / n
    return server, child


def _null_tracing() -> OtelTracing:
    os.environ["OTEL_TRACES_EXPORTER"] = "none"
    tracing = OtelTracing()  # then add the production processor with an exporter that drops the batches
    tracing.provider.add_span_processor(BatchSpanProcessor(NullExporter()))
    return tracing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="calls per measurement (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best is kept (default 3)")
    parser.add_argument("--exporter", choices=("null", "otlp"), default="null")
    args = parser.parse_args()
    asyncio.run(main_async(args.n, args.rounds, args.exporter))


if __name__ == "__main__":
    main()
