"""Wiring: store, providers, emulators, the gRPC server and the HTTP side, and graceful shutdown."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from aiohttp import web
from aiohttp.abc import AbstractResolver
from grpc_health.v1 import health as threaded_health
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from realauth.v1 import realauth_pb2

from .api.registration import add_realauth_service
from .api.servicer import RealAuthServicer
from .clock import SYSTEM_CLOCK, Clock
from .config import Settings, TlsSettings, check_sandbox_admin
from .http.app import build_http_app
from .http.limits import LimitedAppRunner, max_url_for
from .http.listen import bind_tcp, bound_port
from .http.metrics import register_providers
from .interceptors.admission import AdmissionInterceptor, TenantRateInterceptor
from .interceptors.auth import AuthInterceptor
from .interceptors.base import ScopeChain
from .interceptors.deadline import DeadlineInterceptor
from .interceptors.errors import ErrorInterceptor
from .interceptors.observe import ObserveInterceptor
from .logs import redact_value
from .providers.base import Provider, ProviderContext
from .service import AuthService, WatchLimits
from .store.base import SessionStore
from .store.factory import open_store
from .store.retention import Retention
from .tracecontext import Tracing, otel_enabled
from .urls import LANDING_PATH, PUSH_PATH
from .vendors.registry import KINDS, VENDOR_RETENTION, VENDORS
from .webhooks import ATTEMPT_TIMEOUT, WebhookDispatcher, WebhookOutbox

if TYPE_CHECKING:  # the emulators (and http.server under them) load only in sandbox mode, vendors/registry.py
    from .emulators.base import Emulator

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


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def grpc_options(s: Settings, reuseport: int = 0) -> list[tuple[str, int]]:
    """Channel arguments of the gRPC server (docs/configuration.md: server.keepalive_*, max_connection_age_*).

    ``so_reuseport`` is off: grpcio turns it on by default, and then a second process bound to the same port
    silently shares (or steals) its connections instead of failing at start-up. Workers of one supervisor share
    the port on purpose (``reuseport=1``, workers.py).
    """
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        # grpc.aio admits calls from core's queue one at a time; a burst past its default limit (3,000) would be
        # cancelled before any handler runs. Admit them all: the admission bounds refuse the surplus visibly.
        ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
        ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
        ("grpc.so_reuseport", reuseport),
        ("grpc.keepalive_time_ms", _ms(s.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(s.keepalive_timeout_seconds)),
        # Clients may keep idle connections alive with pings, no more often than the interval.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(s.keepalive_min_ping_interval_seconds)),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    if s.max_connection_age_seconds > 0:
        options += [
            ("grpc.max_connection_age_ms", _ms(s.max_connection_age_seconds)),
            ("grpc.max_connection_age_grace_ms", _ms(s.effective_max_connection_age_grace)),
        ]
    return options


def _bind_http(host: str, port: int) -> socket.socket:
    try:
        return bind_tcp(host, port)
    except OSError as exc:
        reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise OSError(exc.errno, f"cannot listen for HTTP on {host}:{port} (port {port}): {reason}") from None


class TlsReloader:
    """The gRPC server certificate, re-read on SIGHUP without a restart (Kubernetes rotates mounted certificates
    in place). grpc's certificate fetcher runs on a core thread at each new handshake, hence the lock; existing
    connections keep the certificate they were set up with."""

    def __init__(self, tls: TlsSettings) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._current = self._read()
        self._check(self._current)

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        t = self.tls
        ca = t.client_ca_file.read_bytes() if t.client_ca_file else None
        return t.key_file.read_bytes(), t.cert_file.read_bytes(), ca

    @staticmethod
    def _configuration(files: tuple[bytes, bytes, bytes | None]) -> grpc.ServerCertificateConfiguration:
        key, cert, ca = files
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    @staticmethod
    def _check(files: tuple[bytes, bytes, bytes | None]) -> None:
        """grpc takes any bytes and fails every later handshake; a pair that does not load (a rotation caught
        half-way) is refused here instead, naming the file, so the working certificate stays."""
        # Imported here: only a TLS configuration needs them, and they cost ~20 ms of every cold start.
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        key_pem, cert_pem, ca_pem = files
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise ValueError("tls.key_file is not a PEM private key") from None
        try:
            leaf = x509.load_pem_x509_certificates(cert_pem)[0]
        except ValueError:
            raise ValueError("tls.cert_file is not a PEM certificate chain") from None
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if leaf.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
            raise ValueError("tls.cert_file does not match tls.key_file")
        if ca_pem is not None:
            try:
                x509.load_pem_x509_certificates(ca_pem)
            except ValueError:
                raise ValueError("tls.client_ca_file is not a PEM certificate bundle") from None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self._current), self._fetch, require_client_authentication=self.tls.require_client_cert
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def reload(self) -> bool:
        """Re-read the files; True when they changed. Unreadable or invalid files raise and change nothing."""
        files = self._read()
        if files == self._current:
            return False
        self._check(files)
        configuration = self._configuration(files)
        with self._lock:
            self._pending = configuration
            self._current = files
        return True


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
    #: OpenTelemetry tracing (None: off). Built at start from ``server.otel``/``REALAUTH_OTEL`` unless given.
    tracing: Tracing | None = None
    #: The DNS resolver webhook deliveries use before their address check (tests point names at addresses).
    webhook_resolver: Callable[[], AbstractResolver] | None = None
    webhooks: WebhookDispatcher | None = None

    async def start(self) -> None:
        # The HTTP socket is bound first: with --http-port 0 the default public URL needs the real port.
        check_sandbox_admin(self.settings)  # settings built without load_settings get the same refusal
        if self.worker is not None:
            http_sock = socket.socket(fileno=self.worker.http_fd)  # bound and listening in the supervisor
            http_sock.setblocking(False)
        else:
            http_sock = _bind_http(self.settings.effective_http_host, self.settings.http_port)
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
        if self.tracing is None and otel_enabled(s.otel):
            try:
                from .tracing import OtelTracing  # the SDK is imported only here: tracing off costs nothing
            except ImportError as exc:
                raise ValueError(str(exc)) from None
            self.tracing = OtelTracing()
        self.store: SessionStore = open_store(
            s.store,
            Retention(result_seconds=s.retention_seconds, vendor_seconds=VENDOR_RETENTION),
            shared=self.worker is not None,
        )
        await self.store.open()
        landing_key = s.landing_secret.reveal_bytes() if s.landing_secret else await self.store.shared_secret("landing")
        redact_value(landing_key)  # generated into the store, so no Secret of the configuration holds it
        ctx = ProviderContext(clock=self.clock, emulator_url=s.emulator_url, config_dir=s.config_file)
        for p in s.providers:
            self.providers[p.name] = KINDS[p.kind](p, ctx)
        register_providers(self.providers.values())
        sandbox_kinds = {p.kind for p in s.providers if p.sandbox}
        # Embedded emulators only ever send a browser or a push back to this realauth's own landing and push routes.
        own = (s.effective_public_url + LANDING_PATH, s.effective_public_url + PUSH_PATH)
        if sandbox_kinds:  # imported only in sandbox mode: the emulators cost ~35 ms of every cold start
            pass
        for kind in sorted(sandbox_kinds):
            self.emulators[kind] = VENDORS[kind].emulator_class()(
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
            build_http_app(self.service, {kind: e.app() for kind, e in self.emulators.items()}, self.tracing),
            header_timeout=s.http_header_timeout_seconds,
            max_url=max_url_for(p.max_landing_query for p in self.providers.values()),
            access_log=None,
            handler_cancellation=True,
        )
        await self.http_runner.setup()
        await web.SockSite(self.http_runner, http_sock).start()

        self.auth = AuthInterceptor(s.tenants)
        self.grpc = grpc.aio.server(
            # One grpc.aio interceptor around all the scopes (outermost first): docs/performance.md has the cost.
            interceptors=[
                ScopeChain(
                    [
                        ObserveInterceptor(s.region, self.tracing),
                        ErrorInterceptor(),
                        AdmissionInterceptor(s.max_in_flight),
                        self.auth,
                        TenantRateInterceptor(self.store, lambda tenant: rates.get(tenant, s.tenant_rate_limit)),
                        DeadlineInterceptor(s.rpc_cap_seconds),
                    ]
                )
            ],
            options=grpc_options(s, self._reuseport),
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
        self.tls = TlsReloader(s.tls) if s.tls is not None else None
        try:
            if self.tls is not None:
                self.grpc_port = self.grpc.add_secure_port(address, self.tls.credentials())
            else:
                self.grpc_port = self.grpc.add_insecure_port(address)
        except RuntimeError:  # grpcio's "Failed to bind", without the reason
            self.grpc_port = 0
        if self.grpc_port == 0:
            raise OSError(
                errno.EADDRINUSE,
                f"cannot listen for gRPC on {address} (port {s.port}): the port is already in use "
                "or the address is not available here",
            )
        await self.grpc.start()
        await self._set_health("", health_pb2.HealthCheckResponse.SERVING)
        await self._set_health(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self.ready = True
        self._readiness = asyncio.create_task(self._watch_readiness(s.readiness_interval_seconds), name="readiness")
        # Webhooks: only when some tenant has an endpoint (otherwise no outbox records and no dispatcher at all).
        endpoints = [e for t in s.tenants for e in t.webhook_endpoints(not s.serves_real_providers)]
        if endpoints:
            self.store.use_outbox(WebhookOutbox(endpoints, self.clock))
            self.webhooks = WebhookDispatcher(self.store, endpoints, self.clock, resolver=self.webhook_resolver)
            self.webhooks.start()

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

    def reload(self) -> dict[str, int | str]:
        """SIGHUP: re-read every ``file:`` secret and the TLS certificate files in place.

        A file that cannot be read (or a certificate pair that does not load) keeps its previous value and is
        logged by path; one summary line per reload, never a value.
        """
        secrets = self.settings.file_secrets()
        changed = failed = 0
        for secret in secrets:
            try:
                changed += secret.reload()
            except ValueError as exc:
                failed += 1
                log.warning("secret not reloaded", extra={"error": str(exc)})
        if changed:
            self.auth.refresh()
        tls = "off"
        if self.tls is not None:
            try:
                tls = "reloaded" if self.tls.reload() else "unchanged"
            except (OSError, ValueError, RuntimeError) as exc:
                tls = "failed"
                log.warning("TLS certificate not reloaded", extra={"error": getattr(exc, "strerror", None) or str(exc)})
        report: dict[str, int | str] = {
            "file_secrets": len(secrets),
            "changed": changed,
            "failed": failed,
            "tls": tls,
        }
        log.info("reloaded file secrets and TLS certificates", extra=report)
        return report

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
        if self.webhooks is not None:  # attempts in flight finish (or are recorded as interrupted) first
            await self.webhooks.stop(min(grace, ATTEMPT_TIMEOUT))
        for p in self.providers.values():
            await p.aclose()
        await self.store.close()
        shutdown = getattr(self.tracing, "shutdown", None)
        if shutdown is not None:
            await asyncio.to_thread(shutdown)  # flush the last spans (a blocking export) off the event loop

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
                "otel": self.tracing is not None,
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
    loop.add_signal_handler(signal.SIGHUP, server.reload)
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
