"""Wiring: store, providers, emulators, the gRPC server and the HTTP side, and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from aiohttp import web
from aiohttp.abc import AbstractResolver
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
from .interceptors.auth import AuthInterceptor
from .interceptors.deadline import DeadlineInterceptor
from .interceptors.errors import ErrorInterceptor
from .interceptors.observe import ObserveInterceptor
from .logs import redact_value
from .providers.base import LANDING_PATH, PUSH_PATH, Provider, ProviderContext
from .providers.registry import KINDS
from .service import AuthService
from .store.base import SessionStore
from .store.factory import open_store
from .store.retention import Retention
from .webhooks import ATTEMPT_TIMEOUT, WebhookDispatcher, WebhookOutbox

log = logging.getLogger("realauth")

SERVICE_NAME = realauth_pb2.DESCRIPTOR.services_by_name["RealAuthService"].full_name
MAX_MESSAGE = 16 * 1024 * 1024  # Tencent's CompareImageBase64 alone may be 8 MB


@dataclass
class RealAuthServer:
    settings: Settings
    clock: Clock = field(default_factory=lambda: SYSTEM_CLOCK)
    grpc_port: int = 0
    http_port: int = 0
    emulators: dict[str, Emulator] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    #: The DNS resolver webhook deliveries use before their address check (tests point names at addresses).
    webhook_resolver: Callable[[], AbstractResolver] | None = None
    webhooks: WebhookDispatcher | None = None

    async def start(self) -> None:
        # The HTTP socket is bound first: with --http-port 0 the default public URL needs the real port.
        check_sandbox_admin(self.settings)  # settings built without load_settings get the same refusal
        http_sock = bind_tcp(self.settings.effective_http_host, self.settings.http_port)
        self.http_port = bound_port(http_sock)
        self.settings = s = self.settings.with_http_port(self.http_port)
        try:
            await self._start(s, http_sock)
        except BaseException:
            http_sock.close()
            raise

    async def _start(self, s: Settings, http_sock: socket.socket) -> None:
        self.store: SessionStore = open_store(s.store, Retention(result_seconds=s.retention_seconds))
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
        )

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
                AuthInterceptor(s.tenants),
                DeadlineInterceptor(s.rpc_cap_seconds),
            ],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ],
        )
        servicer = RealAuthServicer(self.service)
        add_realauth_service(servicer, self.grpc)  # a request that does not decode gets InvalidParameter, not UNKNOWN
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.grpc,
        )
        address = f"{s.host}:{s.port}"
        if s.tls is not None:
            creds = grpc.ssl_server_credentials(
                [(s.tls.key_file.read_bytes(), s.tls.cert_file.read_bytes())],
                root_certificates=s.tls.client_ca_file.read_bytes() if s.tls.client_ca_file else None,
                require_client_auth=s.tls.require_client_cert,
            )
            self.grpc_port = self.grpc.add_secure_port(address, creds)
        else:
            self.grpc_port = self.grpc.add_insecure_port(address)
        if self.grpc_port == 0:
            raise OSError(f"cannot listen for gRPC on {s.host}:{s.port}")
        await self.grpc.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        # Webhooks: only when some tenant has an endpoint (otherwise no outbox records and no dispatcher at all).
        endpoints = [e for t in s.tenants for e in t.webhook_endpoints(not s.serves_real_providers)]
        if endpoints:
            self.store.use_outbox(WebhookOutbox(endpoints, self.clock))
            self.webhooks = WebhookDispatcher(self.store, endpoints, self.clock, resolver=self.webhook_resolver)
            self.webhooks.start()

    async def stop(self, grace: float | None = None, drain: float = 0.0) -> None:
        """NOT_SERVING first (probes see it during ``drain``), then let in-flight calls finish."""
        grace = self.settings.shutdown_grace if grace is None else grace
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        if drain > 0:
            await asyncio.sleep(drain)
        self.service.begin_shutdown()
        await self.grpc.stop(grace)
        await self.http_runner.cleanup()
        if self.webhooks is not None:  # attempts in flight finish (or are recorded as interrupted) first
            await self.webhooks.stop(min(grace, ATTEMPT_TIMEOUT))
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


async def serve(settings: Settings, drain: float = 1.0) -> int:
    server = RealAuthServer(settings)
    await server.start()
    server.banner()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info(
        "shutting down: health is NOT_SERVING, finishing in-flight calls",
        extra={"grace_s": settings.shutdown_grace},
    )
    await server.stop(drain=min(drain, settings.shutdown_grace))
    log.info("stopped")
    return 0
