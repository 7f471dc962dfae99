"""Benchmarks that print ratios against baselines measured in the same run (`make bench`).

1. Outbound transport, 50 concurrent small POSTs to a local aiohttp server: CPU per request of the client realauth
   ships (httpx over httpx-aiohttp) against plain aiohttp (the floor) and httpx's default transport (the slow path).
2. The service: server CPU per CreateAuthSession (sandbox Seedance: gRPC in, signed HTTP out to the emulator, store
   write) against a bare grpc.aio unary call in the same process, and against an emulator-only HTTP round trip.

Only 127.0.0.1 is used; every loop is bounded by a request count. Numbers are process CPU seconds (time.process_time),
which includes both sides since they share the process — the ratios are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "clients" / "python")]

import aiohttp  # noqa: E402
import grpc  # noqa: E402
import httpx  # noqa: E402
from aiohttp import web  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_health.v1._async import HealthServicer  # noqa: E402

from realauth.v1 import realauth_pb2 as pb  # noqa: E402
from realauth.v1 import realauth_pb2_grpc as pb_grpc  # noqa: E402
from realauth_server.config import load_settings  # noqa: E402
from realauth_server.providers.base import make_http_client  # noqa: E402
from realauth_server.server import RealAuthServer  # noqa: E402

CONCURRENCY = 50


async def measure(n: int, one: Callable[[], Awaitable[object]]) -> float:
    """CPU seconds per call for n calls, CONCURRENCY at a time (after a short warm-up)."""
    sem = asyncio.Semaphore(CONCURRENCY)

    async def run() -> None:
        async with sem:
            await one()

    await asyncio.gather(*(run() for _ in range(min(50, n))))
    start = time.process_time()
    await asyncio.gather(*(run() for _ in range(n)))
    return (time.process_time() - start) / n


async def bench_transport(n: int) -> dict[str, float]:
    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/"
    body = {"model": "doubao-seedance-2-0-260128", "CallbackURL": "https://example.com/cb"}
    out: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as s:

            async def aio() -> None:
                async with s.post(url, json=body) as r:
                    await r.read()

            out["aiohttp (floor)"] = await measure(n, aio)
        shipped = make_http_client()

        async def ours() -> None:
            (await shipped.post(url, json=body)).raise_for_status()

        out["httpx + httpx-aiohttp (shipped)"] = await measure(n, ours)
        await shipped.aclose()
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as default:

            async def slow() -> None:
                (await default.post(url, json=body)).raise_for_status()

            out["httpx default transport (not shipped)"] = await measure(max(n // 4, 50), slow)
    finally:
        await runner.cleanup()
    return out


async def bench_service(n: int) -> dict[str, float]:
    # The sandbox needs the real HTTP port in its URLs, so pick free ports first.
    def free() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    settings = load_settings(
        None, store="memory://", host="127.0.0.1", http_host="127.0.0.1", port=free(), http_port=free()
    )
    server = RealAuthServer(settings)
    await server.start()
    baseline = grpc.aio.server()
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, baseline)
    bport = baseline.add_insecure_port("127.0.0.1:0")
    await baseline.start()
    out: dict[str, float] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bport}") as ch:
            hstub = health_pb2_grpc.HealthStub(ch)

            async def bare() -> None:
                await hstub.Check(health_pb2.HealthCheckRequest())

            out["bare grpc.aio unary call (baseline)"] = await measure(n, bare)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            stub = pb_grpc.RealAuthServiceStub(ch)
            req = pb.CreateAuthSessionRequest(callback_url="https://example.com/done")

            async def create() -> None:
                await stub.CreateAuthSession(req, timeout=30)

            out["CreateAuthSession, sandbox seedance"] = await measure(n, create)
            lst = pb.ListProvidersRequest()

            async def listing() -> None:
                await stub.ListProviders(lst, timeout=30)

            out["ListProviders (interceptors, no vendor)"] = await measure(n, listing)
    finally:
        await baseline.stop(0)
        await server.stop(grace=1)
    return out


def report(title: str, rows: dict[str, float], baseline: str) -> None:
    base = rows[baseline]
    print(f"\n{title}\n" + "-" * len(title))
    for name, sec in rows.items():
        print(f"  {name:<45} {sec * 1000:8.3f} ms CPU/call   x{sec / base:6.2f} vs baseline")


async def main_async(n: int) -> None:
    t = await bench_transport(n)
    report(f"Outbound transport ({CONCURRENCY} concurrent POSTs, n={n})", t, "aiohttp (floor)")
    s = await bench_service(n)
    report(f"Service ({CONCURRENCY} concurrent calls, n={n})", s, "bare grpc.aio unary call (baseline)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="calls per measurement (default 1000)")
    args = parser.parse_args()
    asyncio.run(main_async(args.n))


if __name__ == "__main__":
    main()
