"""Wiring: store, providers, emulators, the gRPC server and the HTTP side, and graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from aiohttp import web
from grpc_health.v1 import health as threaded_health
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from realauth.v1 import realauth_pb2

from .api.registration import add_realauth_service
from .api.servicer import RealAuthServicer
from .clock import SYSTEM_CLOCK, Clock
from .config import Settings, check_sandbox_admin
from .emulators.base import Emulator
from .emulators.registry import EMULATORS
from .http.app import build_http_app
from .http.limits import LimitedAppRunner, max_url_for
from .http.listen import bind_tcp, bound_port
from .interceptors.admission import AdmissionInterceptor, TenantRateInterceptor
from .interceptors.auth import AuthInterceptor
from .interceptors.deadline import DeadlineInterceptor
from .interceptors.errors import ErrorInterceptor
from .interceptors.observe import ObserveInterceptor
from .logs import redact_value
from .providers.base import LANDING_PATH, PUSH_PATH, Provider, ProviderContext
from .providers.registry import KINDS
from .service import AuthService, WatchLimits
from .store.base import SessionStore
from .store.factory import open_store
from .store.retention import Retention

log = logging.getLogger("realauth")

SERVICE_NAME = realauth_pb2.DESCRIPTOR.services_by_name["RealAuthService"].full_name
MAX_MESSAGE = 16 * 1024 * 1024  # Tencent's CompareImageBase64 alone may be 8 MB
#: Calls gRPC core may hold before the Python server picks them up. grpc.aio takes calls from core one at a time, so
#: a burst waits there; past core's default hard limit (3,000) core cancels the surplus (the caller sees CANCELLED
#: and realauth never sees the call: no log line, no metric). With a high limit every call reaches the admission
#: bounds, which refuse the surplus at once and visibly. A call waiting in core costs a few KiB.
MAX_PENDING_CALLS = 100_000
#: A readiness ping slower than this counts as a failure.
READINESS_TIMEOUT = 2.0


@dataclass(frozen=True)
class WorkerSlot:
    """This process is worker ``index`` of ``realauth serve --workers N`` (workers.py, the supervisor)."""

    index: int
    http_fd: int  # the supervisor's listening HTTP socket, shared by every worker
    ready_fd: int  # written to once serving, then closed: the supervisor counts ready workers


@dataclass
class RealAuthServer:
    settings: Settings
    clock: Clock = field(default_factory=lambda: SYSTEM_CLOCK)
    worker: WorkerSlot | None = None
    grpc_port: int = 0
    http_port: int = 0
    health_port: int = 0  # the dedicated probe port, when server.health_port is set
    emulators: dict[str, Emulator] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)

    async def start(self) -> None:
        # The HTTP socket is bound first: with --http-port 0 the default public URL needs the real port.
        check_sandbox_admin(self.settings)  # settings built without load_settings get the same refusal
        if self.worker is not None:
            http_sock = socket.socket(fileno=self.worker.http_fd)  # bound and listening in the supervisor
            http_sock.setblocking(False)
        else:
            http_sock = bind_tcp(self.settings.effective_http_host, self.settings.http_port)
        self.http_port = bound_port(http_sock)
        self.settings = s = self.settings.with_http_port(self.http_port)
        try:
            await self._start(s, http_sock)
        except BaseException:
            await self._abandon_start()
            http_sock.close()
            raise

    async def _abandon_start(self) -> None:
        """Undo a start that failed half way (a taken gRPC port, a bad certificate): a store left open keeps its
        thread, and the process would never exit."""
        grpc_server = getattr(self, "grpc", None)
        if grpc_server is not None:
            await grpc_server.stop(0)
        runner = getattr(self, "http_runner", None)
        if runner is not None:
            await runner.cleanup()
        probe = getattr(self, "probe_server", None)
        if probe is not None:
            probe.stop(0)
        for p in self.providers.values():
            await p.aclose()
        store = getattr(self, "store", None)
        if store is not None:
            await store.close()

    async def _start(self, s: Settings, http_sock: socket.socket) -> None:
        self.store: SessionStore = open_store(
            s.store, Retention(result_seconds=s.retention_seconds), shared=self.worker is not None
        )
        await self.store.open()
        landing_key = s.landing_secret.reveal_bytes() if s.landing_secret else await self.store.shared_secret("landing")
        redact_value(landing_key)  # generated into the store, so no Secret of the configuration holds it
        ctx = ProviderContext(clock=self.clock, emulator_url=s.emulator_url, config_dir=s.config_file)
        for p in s.providers:
            self.providers[p.name] = KINDS[p.kind](p, ctx)
        sandbox_kinds = {p.kind for p in s.providers if p.sandbox}
        # Embedded emulators only ever send a browser or a push back to this realauth's own landing and push routes.
        own = (s.effective_public_url + LANDING_PATH, s.effective_public_url + PUSH_PATH)
        for kind in sorted(sandbox_kinds):
            self.emulators[kind] = EMULATORS[kind](
                clock=self.clock,
                public_url=f"{s.emulator_url}/{kind}",
                admin=s.sandbox_admin_enabled,
                targets=own,
            )
        default = next(p.name for p in s.providers if p.is_default)
        self.service = AuthService(
            store=self.store,
            providers=self.providers,
            default_provider=default,
            clock=self.clock,
            public_url=s.effective_public_url,
            landing_key=landing_key,
            tenants={t.name: t.access for t in s.tenants},
            watch_limits=WatchLimits(
                cap_seconds=s.watch_cap_seconds,
                max_open=s.max_watches,
                default_per_tenant=s.max_watches_per_tenant,
                per_tenant={t.name: t.max_watches for t in s.tenants if t.max_watches is not None},
            ),
        )
        rates = {t.name: t.rate_limit for t in s.tenants if t.rate_limit is not None}

        self.http_runner = LimitedAppRunner(
            build_http_app(self.service, self.emulators),
            header_timeout=s.http_header_timeout_seconds,
            max_url=max_url_for(p.max_landing_query for p in self.providers.values()),
            access_log=None,
            handler_cancellation=True,
        )
        await self.http_runner.setup()
        await web.SockSite(self.http_runner, http_sock).start()

        self.grpc = grpc.aio.server(
            interceptors=[
                ObserveInterceptor(s.region),
                ErrorInterceptor(),
                AdmissionInterceptor(s.max_in_flight),
                AuthInterceptor(s.tenants),
                TenantRateInterceptor(self.store, lambda tenant: rates.get(tenant, s.tenant_rate_limit)),
                DeadlineInterceptor(s.rpc_cap_seconds),
            ],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
                ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
                # grpc's default SO_REUSEPORT lets a second process bind the same port and silently take a share
                # of the connections (a stale replica, another instance on the host): refuse to start instead.
                # Workers of one supervisor share the port on purpose (workers.py).
                ("grpc.so_reuseport", self._reuseport),
            ],
        )
        servicer = RealAuthServicer(self.service)
        add_realauth_service(servicer, self.grpc)  # a request that does not decode gets InvalidParameter, not UNKNOWN
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        self._start_probe_server(s)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.grpc,
        )
        address = f"{s.host}:{s.port}"
        try:
            if s.tls is not None:
                creds = grpc.ssl_server_credentials(
                    [(s.tls.key_file.read_bytes(), s.tls.cert_file.read_bytes())],
                    root_certificates=s.tls.client_ca_file.read_bytes() if s.tls.client_ca_file else None,
                    require_client_auth=s.tls.require_client_cert,
                )
                self.grpc_port = self.grpc.add_secure_port(address, creds)
            else:
                self.grpc_port = self.grpc.add_insecure_port(address)
        except RuntimeError:  # newer grpc raises where older ones returned 0 (the port is taken, say)
            self.grpc_port = 0
        if self.grpc_port == 0:
            raise OSError(f"cannot listen for gRPC on {s.host}:{s.port}")
        await self.grpc.start()
        await self._set_health("", health_pb2.HealthCheckResponse.SERVING)
        await self._set_health(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self.ready = True
        self._readiness = asyncio.create_task(self._watch_readiness(s.readiness_interval_seconds), name="readiness")

    def _start_probe_server(self, s: Settings) -> None:
        """``server.health_port``: grpc.health.v1 alone, on a server with its own threads and completion queue.

        Calls to the main port wait in one queue, and the event loop picks them up one at a time: under a burst a
        probe there waits behind thousands of calls. The probe server answers from its own thread (it needs only
        the GIL, released every few milliseconds), so a kubelet sees the truth within milliseconds.
        """
        self.probe_health: threaded_health.HealthServicer | None = None
        self.probe_server: grpc.Server | None = None
        if s.health_port is None:
            return
        self.probe_health = threaded_health.HealthServicer()
        self.probe_server = grpc.server(
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
            options=[("grpc.so_reuseport", self._reuseport)],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.probe_health, self.probe_server)
        try:
            self.health_port = self.probe_server.add_insecure_port(f"{s.host}:{s.health_port}")
        except RuntimeError:  # as for the main port
            self.health_port = 0
        if self.health_port == 0:
            raise OSError(f"cannot listen for health probes on {s.host}:{s.health_port}")
        self.probe_server.start()

    @property
    def _reuseport(self) -> int:
        """1 only in a worker of ``--workers N``: its gRPC ports are shared with its sibling workers."""
        return 1 if self.worker is not None else 0

    async def _set_health(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        await self.health.set(service, status)
        if self.probe_health is not None:
            self.probe_health.set(service, status)

    async def _watch_readiness(self, interval: float) -> None:
        """Readiness follows the store: NOT_SERVING for realauth.v1 while a ping fails, SERVING once one succeeds.

        The overall ``""`` status is liveness and stays SERVING: restarting realauth does not bring a store back.
        """
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(min(interval, READINESS_TIMEOUT)):
                    await self.store.ping()
                ready, error = True, ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure to answer means "do not send me traffic"
                ready, error = False, type(exc).__name__
            if ready == self.ready:
                continue
            self.ready = ready
            if ready:
                log.info("session store reachable again: ready")
                await self._set_health(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
            else:
                log.warning("session store unreachable: not ready", extra={"error": error})
                await self._set_health(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def stop(self, grace: float | None = None, drain: float = 0.0) -> None:
        """NOT_SERVING first (probes see it during ``drain``), then let in-flight calls finish."""
        grace = self.settings.shutdown_grace if grace is None else grace
        self._readiness.cancel()
        await asyncio.gather(self._readiness, return_exceptions=True)
        await self._set_health("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._set_health(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        if drain > 0:
            await asyncio.sleep(drain)
        self.service.begin_shutdown()
        await self.grpc.stop(grace)
        if self.probe_server is not None:
            await asyncio.to_thread(self.probe_server.stop(0).wait)
        await self.http_runner.cleanup()
        for p in self.providers.values():
            await p.aclose()
        await self.store.close()

    def banner(self) -> None:
        s = self.settings
        host = "127.0.0.1" if s.host in ("0.0.0.0", "[::]", "::") else s.host
        mode = "sandbox (built-in vendor emulators, no credentials)" if s.sandbox else "configured providers"
        log.info(
            "realauth listening",
            extra={
                "grpc": f"{s.host}:{self.grpc_port}",
                "http": f"{s.effective_http_host}:{self.http_port}",
                "grpc_host": s.host,
                "http_host": s.effective_http_host,
                "health": f"{s.host}:{self.health_port}" if self.probe_server is not None else "",
                "mode": mode,
                "emulators": ",".join(sorted(self.emulators)),
                "sandbox_admin": s.sandbox_admin_enabled and bool(self.emulators),
            },
        )
        log.info("public URL for browsers and vendors", extra={"public_url": s.effective_public_url})
        if not s.tenants:
            if s.sandbox:
                log.info("sandbox mode: every caller is the built-in 'sandbox' tenant; no API key is required")
            else:
                log.warning("no [tenants] configured: the API is open to any caller (tenant 'sandbox')")
        else:
            log.info(
                "callers authenticate with API keys or client certificates",
                extra={"tenants": ",".join(t.name for t in s.tenants), "tls": s.tls is not None},
            )
        log.info(
            "try it",
            extra={
                "cmd": f".venv/bin/buf curl --protocol grpc --http2-prior-knowledge "
                f'--data \'{{"callback_url":"https://example.com/done"}}\' '
                f"http://{host}:{self.grpc_port}/realauth.v1.RealAuthService/CreateAuthSession"
            },
        )


#: gc thresholds for ``realauth serve``: young generations as CPython's defaults, the full collection 1,000 times
#: rarer. A full collection walks every live object holding the GIL; with thousands of calls in flight it took
#: 270-340 ms on the benchmark machine, freezing every thread, health probes included (docs/reliability.md).
GC_THRESHOLDS = (700, 10, 10_000)


def tune_gc() -> None:
    """Keep collector pauses short under load: start-up objects leave the collector's view, full passes are rare."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(settings: Settings, drain: float = 1.0, worker: WorkerSlot | None = None) -> int:
    server = RealAuthServer(settings, worker=worker)
    await server.start()
    tune_gc()
    server.banner()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if worker is not None:  # after the handlers: the supervisor may send SIGTERM as soon as it reads this
        os.write(worker.ready_fd, b"ready")
        os.close(worker.ready_fd)
    await stop.wait()
    log.info(
        "shutting down: health is NOT_SERVING, finishing in-flight calls",
        extra={"grace_s": settings.shutdown_grace},
    )
    await server.stop(drain=min(drain, settings.shutdown_grace))
    log.info("stopped")
    return 0
