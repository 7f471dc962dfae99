"""Benchmarks that print ratios against baselines measured in the same run (`make bench`).

`make bench` (scenario ``table``, the default) runs the process-separated benchmark of tools/bench_split.py:
realauth, the vendor and the callers each in a process of their own, realauth's CPU from /proc/<pid>/stat, against
floors measured in the same run (docs/performance.md explains the table). ``--quick`` is a small run (smoke test).

The older in-process scenario is ``bench.py cpu``:

1. Outbound transport, 50 concurrent small POSTs to a local aiohttp server: CPU per request of realauth's own
   outbound path (``Provider.send``: its aiohttp session, the neutral request, the signer) against plain aiohttp (the
   floor) and httpx's default transport (for reference: what realauth shipped before aiohttp, minus httpx-aiohttp).
2. The service: server CPU per CreateAuthSession (sandbox Seedance: gRPC in, signed HTTP out to the emulator, store
   write) against a bare grpc.aio unary call in the same process, and against an emulator-only HTTP round trip.

Only 127.0.0.1 is used; every loop is bounded by a request count. Numbers are process CPU seconds (time.process_time),
which includes both sides since they share the process — the ratios are what to read.

3. `bench.py overload` (issue 9's target, not part of `make test`): `realauth serve` with the default settings and the
   Seedance emulator answering in 2 s, each a process of its own; 5,000 concurrent CreateAuthSession calls from one
   client. Prints the status counts, latencies, the server's peak RSS and the slowest health answers seen meanwhile.
   `bench.py burst --target HOST:PORT` fires the burst alone (tests/test_admission.py runs it as a separate process,
   so the calls really arrive at once) and prints JSON.

4. `bench.py workers` (issue 14, not part of `make test`): `realauth serve --workers K` for K = 1 and 2 on SQLite,
   the Seedance emulator a process of its own; -n CreateAuthSession calls, 64 at a time over 8 connections (so the
   kernel spreads them over the workers). Prints creates/s (wall clock) and the server's CPU per create (user +
   system time of the supervisor and every worker, from /proc), the client and the emulator excluded.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "clients" / "python")]

import aiohttp  # noqa: E402
import bench_split  # noqa: E402
import grpc  # noqa: E402
import httpx  # noqa: E402
from aiohttp import web  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_health.v1._async import HealthServicer  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from realauth.v1 import realauth_pb2 as pb  # noqa: E402
from realauth.v1 import realauth_pb2_grpc as pb_grpc  # noqa: E402
from realauth_server.config import load_settings  # noqa: E402
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
    app.router.add_post(bench_split.CREATE_PATH, echo)  # where the shipped path posts the Seedance create body
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
        ours, close = bench_split.shipped_post(url.rstrip("/"))
        out["Provider.send over aiohttp (shipped)"] = await measure(n, lambda: ours(None))
        await close()
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


def _refusal(err: grpc.aio.AioRpcError) -> str:
    """ErrorInfo reason and scope, and whether RetryInfo is there, of a failed call (e.g. "Overloaded/server/retry")."""
    reason, scope, retry = "", "", "no-retry-info"
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, scope = info.reason, info.metadata.get("scope", "")
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = "retry"
    return f"{reason}/{scope}/{retry}"


async def _probe(target: str, service: str, stop: asyncio.Event, seen: list[float]) -> None:
    """A kubelet-like gRPC health probe on its own connection, every 50 ms."""
    async with grpc.aio.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        while not stop.is_set():
            start = time.monotonic()
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            seen.append(time.monotonic() - start if resp.status == health_pb2.HealthCheckResponse.SERVING else 99.0)
            await asyncio.sleep(0.05)


async def burst(target: str, calls: int, deadline: float, probes: dict[str, str] | None = None) -> dict[str, object]:
    """``calls`` concurrent CreateAuthSession calls on one channel; health probes (name → address) alongside."""
    codes: collections.Counter[str] = collections.Counter()
    refusals: collections.Counter[str] = collections.Counter()
    latency: dict[str, list[float]] = collections.defaultdict(list)
    probes = {"main port": target} if probes is None else probes
    health: dict[str, list[float]] = {name: [] for name in probes}
    stop = asyncio.Event()
    probing = [asyncio.create_task(_probe(addr, "", stop, health[name])) for name, addr in probes.items()]
    await asyncio.sleep(0.2)
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.RealAuthServiceStub(ch)
        req = pb.CreateAuthSessionRequest(callback_url="https://example.com/done")
        await stub.ListProviders(pb.ListProvidersRequest(), timeout=10)  # connected before the burst

        async def one() -> None:
            start = time.monotonic()
            try:
                await stub.CreateAuthSession(req, timeout=deadline)
                code = "OK"
            except grpc.aio.AioRpcError as err:
                code = err.code().name
                refusals[_refusal(err)] += 1
            codes[code] += 1
            latency[code].append(time.monotonic() - start)

        start = time.monotonic()
        await asyncio.gather(*(one() for _ in range(calls)))
        elapsed = time.monotonic() - start
    stop.set()
    await asyncio.gather(*probing)
    out: dict[str, object] = {
        "elapsed_s": round(elapsed, 2),
        "codes": dict(codes),
        "refusals": dict(refusals),
        "latency_s": {
            c: [round(min(v), 3), round(sorted(v)[len(v) // 2], 3), round(max(v), 3)] for c, v in latency.items()
        },
    }
    for name, seen in health.items():
        seen.sort()
        key = "health" if name == "main port" else f"health ({name})"
        out[f"{key} checks"] = len(seen)
        out[f"{key} max_ms"] = round(max(seen, default=0.0) * 1000, 1)
        out[f"{key} p99_ms"] = round(seen[int(len(seen) * 0.99)] * 1000, 1) if seen else 0.0
    return out


def probe(target: str) -> None:
    """A kubelet-like probe in a process of its own (so the caller's busy loop does not delay it): one Check every
    50 ms until stdin closes, then the latencies as JSON."""
    import threading

    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    seen: list[float] = []
    with grpc.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        while not done.is_set():
            start = time.monotonic()
            resp = stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            seen.append(time.monotonic() - start if resp.status == health_pb2.HealthCheckResponse.SERVING else 99.0)
            time.sleep(0.05)
    seen.sort()
    print(
        json.dumps(
            {
                "checks": len(seen),
                "max_ms": round(seen[-1] * 1000, 1),
                "p99_ms": round(seen[int(len(seen) * 0.99)] * 1000, 1),
            }
        )
    )


def _wait_for(log: Path, msg: str, proc: subprocess.Popen[bytes]) -> dict[str, str]:
    """The first JSON log record with this message (a process started with --port 0 logs its real ports)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if f'"msg": "{msg}"' in line:
                try:
                    return dict(json.loads(line))
                except ValueError:
                    break
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"process did not start:\n{log.read_text(errors='replace')}")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def overload(calls: int, latency: float) -> None:
    """The full-size scenario: default settings, processes of their own, one client."""
    realauth = str(ROOT / ".venv" / "bin" / "realauth")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        emu_log, serve_log = work / "emulator.log", work / "serve.log"
        procs: list[subprocess.Popen[bytes]] = []
        try:
            with emu_log.open("wb") as out:
                # The vendor and the callers run at the lowest priority: in production they are other machines, and on
                # a small box they would otherwise take the CPU the measured server needs.
                cmd = ["nice", "-n", "19", realauth, "emulate", "seedance", "--port", "0", "--log-format", "json"]
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=out))
            url = _wait_for(emu_log, "emulator listening", procs[0])["url"]
            httpx.put(f"{url}/_emulator/faults", json={"latency": latency, "path": "auth/session"}).raise_for_status()
            cfg = work / "realauth.toml"
            cfg.write_text(f'[providers.seedance]\nbase_url = "{url}"\napi_key = "sandbox-seedance-relay-key"\n')
            cmd = [realauth, "serve", "--config", str(cfg), "--store", "memory://", "--host", "127.0.0.1"]
            cmd += ["--port", "0", "--http-port", "0", "--health-port", "0", "--log-format", "json"]
            with serve_log.open("wb") as out:
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=out))
            listening = _wait_for(serve_log, "realauth listening", procs[1])
            probes = {"main port": listening["grpc"], "health_port": listening["health"]}
            probers = {
                name: subprocess.Popen(
                    [sys.executable, __file__, "probe", "--target", addr], stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
                for name, addr in probes.items()
            }
            time.sleep(1.0)
            os.nice(19)  # this process is the callers from here on
            result = asyncio.run(burst(listening["grpc"], calls, 30.0, {}))
            for name, p in probers.items():
                out, _ = p.communicate(b"", timeout=30)
                result[f"health probe process ({name})"] = json.loads(out)
            result["server_peak_rss_mb"] = round(_peak_rss_mb(procs[1].pid), 1)
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(timeout=15)
    print(f"\nOverload: {calls} concurrent creates, vendor answering in {latency:g} s, default settings")
    print(json.dumps(result, indent=2))


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (/proc/PID/stat fields 14 and 15)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


async def _creates(target: str, n: int, concurrency: int = 64, connections: int = 8) -> float:
    """n CreateAuthSession calls, ``concurrency`` at a time over ``connections`` TCP connections; wall seconds."""
    opts = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=opts) for _ in range(connections)]
    stubs = [pb_grpc.RealAuthServiceStub(ch) for ch in channels]
    req = pb.CreateAuthSessionRequest(callback_url="https://example.com/done")
    for stub in stubs:
        await stub.ListProviders(pb.ListProvidersRequest(), timeout=10)  # connected before the clock starts
    left = iter(range(n))

    async def loop(stub: pb_grpc.RealAuthServiceStub) -> None:
        for _ in left:
            await stub.CreateAuthSession(req, timeout=30)

    start = time.monotonic()
    await asyncio.gather(*(loop(stubs[i % connections]) for i in range(concurrency)))
    elapsed = time.monotonic() - start
    for ch in channels:
        await ch.close()
    return elapsed


def _serve_workers(work: Path, count: int, store: str, n: int) -> tuple[float, float, float, float]:
    """One measurement: (creates/s, server CPU ms per create, client CPU ms per create, emulator CPU ms per create).

    A fresh emulator each time: it keeps every session it created, and the later runs would pay for the earlier ones.
    """
    realauth = str(ROOT / ".venv" / "bin" / "realauth")
    run = time.monotonic_ns()
    emu_log, log_path, cfg = work / f"emulator-{run}.log", work / f"serve-{run}.log", work / f"realauth-{run}.toml"
    with emu_log.open("wb") as out:
        cmd = [realauth, "emulate", "seedance", "--port", "0", "--log-format", "json"]
        emulator = subprocess.Popen(cmd, stdout=out, stderr=out)
    proc: subprocess.Popen[bytes] | None = None
    try:
        url = _wait_for(emu_log, "emulator listening", emulator)["url"]
        cfg.write_text(f'[providers.seedance]\nbase_url = "{url}"\napi_key = "sandbox-seedance-relay-key"\n')
        cmd = [realauth, "serve", "--config", str(cfg), "--store", store, "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--http-port", "0", "--log-format", "json", "--workers", str(count)]  # INFO: a line per call
        with log_path.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=out)
        if count > 1:
            ready = _wait_for(log_path, "realauth workers listening", proc)
            pids = [proc.pid, *(int(p) for p in ready["pids"].split(","))]
        else:
            ready = _wait_for(log_path, "realauth listening", proc)
            pids = [proc.pid]
        target = ready["grpc"]
        asyncio.run(_creates(target, min(n, 500)))  # warm-up: connections, caches, SQLite pages
        cpu, emu, client = _cpu_seconds(pids), _cpu_seconds([emulator.pid]), time.process_time()
        elapsed = asyncio.run(_creates(target, n))
        cpu, emu = _cpu_seconds(pids) - cpu, _cpu_seconds([emulator.pid]) - emu
        client = time.process_time() - client
        return n / elapsed, cpu / n * 1000, client / n * 1000, emu / n * 1000
    finally:
        for p in (proc, emulator):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)


def workers(n: int, counts: list[int], rounds: int, store: str) -> None:
    """creates/s and server CPU per create with ``realauth serve --workers K``, each K in turn, ``rounds`` times."""
    results: dict[int, list[tuple[float, float, float, float]]] = {c: [] for c in counts}
    load = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for r in range(rounds):
            for count in counts:
                url = store or f"sqlite:///{work}/bench-{count}-{r}.db"
                results[count].append(_serve_workers(work, count, url, n))
    kind = store.split(":", 1)[0] if store else "sqlite"
    print(f"\nWorkers: {n} creates x {rounds} rounds, 64 at a time over 8 connections, {kind} store;")
    print(f"emulator and client on this host ({os.cpu_count()} CPUs, load average before: {' '.join(load)})")
    head = f"  {'workers':>7}  {'creates/s (median; all)':<32}  {'CPU ms/create: server':>22}"
    print(f"{head}  {'client':>6}  {'vendor':>6}")
    for count, rows in results.items():
        rates = sorted(r[0] for r in rows)
        median = rates[len(rates) // 2]
        server, client, emu = (sorted(r[i] for r in rows)[len(rows) // 2] for i in (1, 2, 3))
        every = ", ".join(f"{x:.0f}" for x in (r[0] for r in rows))
        print(f"  {count:>7}  {median:>6.0f}; {every:<24}  {server:>22.2f}  {client:>6.2f}  {emu:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "scenario",
        nargs="?",
        default="table",
        choices=(
            "table",
            "cpu",
            "overload",
            "burst",
            "probe",
            "workers",
            "vendor",
            "bare-grpc",
            "bare-gateway",
            "load",
            "profile",
            "experiments",
            "instructions",
        ),
    )
    parser.add_argument("-n", type=int, default=1000, help="calls per measurement (default 1000)")
    parser.add_argument("--calls", type=int, default=5000, help="overload/burst: concurrent creates (default 5000)")
    parser.add_argument("--latency", type=float, default=2.0, help="overload: vendor latency in s (default 2)")
    parser.add_argument("--target", default="", help="burst: realauth's gRPC address")
    parser.add_argument("--timeout", type=float, default=30.0, help="burst: each call's deadline (default 30)")
    parser.add_argument("--workers", default="1,2", help="workers: the --workers values to compare (default 1,2)")
    parser.add_argument("--seconds", type=float, default=8.0, help="table/load: seconds per measured window (8)")
    parser.add_argument("--rounds", type=int, default=3, help="table/workers: rounds, medians reported (3)")
    parser.add_argument("--quick", action="store_true", help="table: memory store only, no cold start/overload")
    parser.add_argument("--json", default=str(ROOT / "var" / "bench.json"), help="table: where the JSON goes")
    parser.add_argument("--rpc", default="create", help="load: health, create, exchange, post, post-shipped")
    parser.add_argument("--concurrency", type=int, default=50, help="load: closed-loop callers (50)")
    parser.add_argument("--rate", type=float, default=0.0, help="load: open-loop calls/s (0: closed loop)")
    parser.add_argument("--warmup", type=int, default=200, help="load: warm-up calls before the window")
    parser.add_argument("--prepare", type=int, default=0, help="load: sessions to create before exchanging")
    parser.add_argument("--buckets", action="store_true", help="load: also report calls per second")
    parser.add_argument(
        "--features",
        default="",
        help="bare-gateway: comma-separated additions to the plain handler (bench_split.GATEWAY_FEATURES); "
        "experiments: the ones to measure (default: each in turn)",
    )
    parser.add_argument(
        "--native", action="store_true", help="profile: also sample native frames (py-spy --native) and perf"
    )
    parser.add_argument(
        "--server", default="realauth", help="profile: realauth (default) or gateway (the bare gateway)"
    )
    parser.add_argument(
        "--store",
        default="",
        help="profile: memory (default), sqlite or a store URL; workers: the store URL (default: a fresh SQLite file)",
    )
    args = parser.parse_args()
    if args.scenario == "workers":
        workers(args.n, [int(c) for c in args.workers.split(",")], args.rounds, args.store)
    elif args.scenario == "table":
        bench_split.table(args.seconds, args.rounds, Path(args.json), quick=args.quick)
    elif args.scenario == "profile":
        bench_split.profile(args.rpc, args.store or "memory", args.seconds, native=args.native, server=args.server)
    elif args.scenario == "experiments":
        chosen = [f for f in args.features.split(",") if f] or None
        bench_split.experiments(args.seconds, args.rounds, chosen, Path(args.json).with_name("experiments.json"))
    elif args.scenario == "instructions":
        chosen = [f for f in args.features.split(",") if f] or None
        bench_split.instructions(args.seconds, chosen, Path(args.json).with_name("instructions.json"))
    elif args.scenario == "vendor":
        bench_split.vendor_main(args.latency if "--latency" in sys.argv else 0.0)
    elif args.scenario == "bare-grpc":
        bench_split.bare_grpc_main()
    elif args.scenario == "bare-gateway":
        # "a,b" or "a+b" (experiments take a comma-separated list of variants, each of them may combine with "+")
        bench_split.bare_gateway_main(
            args.target, frozenset(f for f in args.features.replace("+", ",").split(",") if f)
        )
    elif args.scenario == "load":
        spec = bench_split.LoadSpec(
            args.rpc, args.target, args.seconds, args.concurrency, args.rate, args.warmup, args.prepare, args.buckets
        )
        bench_split.load_main(spec)
    elif args.scenario == "overload":
        overload(args.calls, args.latency)
    elif args.scenario == "probe":
        probe(args.target)
    elif args.scenario == "burst":
        print(json.dumps(asyncio.run(burst(args.target, args.calls, args.timeout))))
    else:
        asyncio.run(main_async(args.n))


if __name__ == "__main__":
    main()
