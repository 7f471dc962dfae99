"""realauth's own Python per call, without gRPC core, the event loop's I/O or the outbound HTTP client.

Calls CreateAuthSession / ExchangeToken through the real interceptor chain (the same ScopeChain as ``server.py``),
the tolerant registration, the servicer, the service and the ``memory://`` store, one after another in one task,
with the vendor adapter's ``create_session`` / ``exchange`` replaced by a canned answer (which still observes the
accepted vendor call, its metrics and DEBUG ``vendor call`` record, as the real one does). Logging is as
``realauth serve`` sets it up: JSON at INFO, redaction filter, to a file. What it prints is process CPU per call:
the part of a call that realauth's own code (interceptors, logs, metrics, service, protobuf ↔ domain) costs,
measured precisely enough (±2 %) to compare two versions back to back, which the end-to-end benchmark's noise
(±10 %) cannot.

    .venv/bin/python tools/bench_inproc.py [--rpc create|exchange] [--calls 20000] [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from realauth.v1 import realauth_pb2 as pb
from realauth_server.api.registration import method_handlers
from realauth_server.api.servicer import RealAuthServicer
from realauth_server.clock import Clock
from realauth_server.config import load_settings
from realauth_server.domain import AuthSession, CreateParams, VendorSession, VerificationResult
from realauth_server.interceptors.admission import AdmissionInterceptor, TenantRateInterceptor
from realauth_server.interceptors.auth import AuthInterceptor
from realauth_server.interceptors.base import ScopeChain
from realauth_server.interceptors.deadline import DeadlineInterceptor
from realauth_server.interceptors.errors import ErrorInterceptor
from realauth_server.interceptors.observe import ObserveInterceptor
from realauth_server.logs import setup_logging
from realauth_server.providers.base import observe_vendor_call
from realauth_server.server import RealAuthServer

KEY = "bench-inproc-key-0123456789"
CONFIG = f"""
[providers.seedance]
base_url = "http://127.0.0.1:9"
api_key = "bench-vendor-key-0123456789"

[tenants.bench]
keys = ["{KEY}"]
"""


class Context:
    """The parts of ``grpc.aio.ServicerContext`` realauth's interceptors and handlers use."""

    def __init__(self) -> None:
        self.metadata = (
            ("user-agent", "grpc-python/1.85.3 grpc-c/52.0.0 (linux; chttp2)"),
            ("authorization", f"Bearer {KEY}"),
        )

    def invocation_metadata(self) -> Any:
        return self.metadata

    def time_remaining(self) -> float | None:
        return None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    async def send_initial_metadata(self, metadata: Any) -> None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        raise grpc.aio.AbortError(f"{code.name}: {details}")


async def run(rpc: str, calls: int, rounds: int, profile: bool) -> None:
    settings = load_settings(
        CONFIG_PATH, store="memory://", host="127.0.0.1", http_host="127.0.0.1", port=0, http_port=0
    )
    server = RealAuthServer(settings, clock=Clock())
    await server.start()
    try:
        clock = server.clock
        for provider in server.providers.values():

            async def create_session(params: CreateParams, p: Any = provider) -> VendorSession:
                observe_vendor_call(p, "CreateAuthSession", "200", 0.001, accepted=True)
                return VendorSession(
                    token="tok_" + params.session_id,
                    verification_url="https://h5.example/verify?t=" + params.session_id[-8:],
                    expire_time=clock.now() + 600,
                    vendor_request_id="req-" + params.session_id[-8:],
                    vendor_data={"model": "m"},
                )

            async def exchange(session: AuthSession, p: Any = provider) -> VerificationResult:
                observe_vendor_call(p, "GetAuthResult", "200", 0.001, accepted=True)
                return VerificationResult(passed=True, vendor_result_code="0", vendor_request_id="req-x")

            provider.create_session = create_session  # type: ignore[method-assign]
            provider.exchange = exchange  # type: ignore[method-assign]
        s = settings
        rates = {t.name: t.rate_limit for t in s.tenants if t.rate_limit is not None}
        chain = ScopeChain(
            [
                ObserveInterceptor(s.region, None),
                ErrorInterceptor(),
                AdmissionInterceptor(s.max_in_flight),
                AuthInterceptor(s.tenants),
                TenantRateInterceptor(server.store, lambda tenant: rates.get(tenant, s.tenant_rate_limit)),
                DeadlineInterceptor(s.rpc_cap_seconds),
            ]
        )
        handlers = method_handlers(RealAuthServicer(server.service))
        prefix = "/realauth.v1.RealAuthService/"
        create = chain._wrap(prefix + "CreateAuthSession", handlers["CreateAuthSession"]).unary_unary
        exchange_h = chain._wrap(prefix + "ExchangeToken", handlers["ExchangeToken"]).unary_unary
        ctx = Context()
        create_req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done?order=42", subject_id="u1")

        async def one_round() -> float:
            if rpc == "create":
                start = time.process_time()
                for _ in range(calls):
                    await create(create_req, ctx)
                return time.process_time() - start
            ids = [(await create(create_req, ctx)).session.session_id for _ in range(calls)]
            reqs = [pb.ExchangeTokenRequest(session_id=i) for i in ids]
            start = time.process_time()
            for req in reqs:
                await exchange_h(req, ctx)
            return time.process_time() - start

        await one_round()  # warm-up
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            await one_round()
            prof.disable()
            pstats.Stats(prof, stream=sys.stdout).sort_stats(SORT).print_stats(45)
            return
        results = []
        for _ in range(rounds):
            results.append(await one_round() / calls * 1e6)
        results.sort()
        every = [round(r, 1) for r in results]
        median = results[len(results) // 2]
        print(f"{rpc}: {results[0]:.1f} µs per call at best, {median:.1f} median of {rounds} rounds (all {every})")
    finally:
        await server.stop(grace=0)


CONFIG_PATH = ""
SORT = "tottime"


def main() -> None:
    global CONFIG_PATH
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rpc", choices=("create", "exchange"), default="create")
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="one round under cProfile: functions by own time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="realauth-inproc-") as tmp:
        cfg = Path(tmp) / "realauth.toml"
        cfg.write_text(CONFIG)
        CONFIG_PATH = str(cfg)
        log = (Path(tmp) / "serve.log").open("w")
        sys.stderr, real_err = log, sys.stderr
        try:
            setup_logging("INFO", "json")
        finally:
            sys.stderr = real_err
        logging.getLogger("realauth.bench").info("bench_inproc start")
        try:
            import uvloop

            uvloop.run(run(args.rpc, args.calls, args.rounds, args.profile))
        except ImportError:
            asyncio.run(run(args.rpc, args.calls, args.rounds, args.profile))


if __name__ == "__main__":
    main()
