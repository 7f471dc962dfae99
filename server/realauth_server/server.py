"""Wiring: store, providers, emulators, the gRPC server and the HTTP side, and graceful shutdown."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import threading
from dataclasses import dataclass, field

import grpc
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from realauth.v1 import realauth_pb2

from .api.registration import add_realauth_service
from .api.servicer import RealAuthServicer
from .clock import SYSTEM_CLOCK, Clock
from .config import Settings, TlsSettings, check_sandbox_admin
from .emulators.base import Emulator
from .emulators.registry import EMULATORS
from .http.app import build_http_app
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

log = logging.getLogger("realauth")

SERVICE_NAME = realauth_pb2.DESCRIPTOR.services_by_name["RealAuthService"].full_name
MAX_MESSAGE = 16 * 1024 * 1024  # Tencent's CompareImageBase64 alone may be 8 MB


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def grpc_options(s: Settings) -> list[tuple[str, int]]:
    """Channel arguments of the gRPC server (docs/configuration.md: server.keepalive_*, max_connection_age_*).

    ``so_reuseport`` is off: grpcio turns it on by default, and then a second process bound to the same port
    silently shares (or steals) its connections instead of failing at start-up.
    """
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.so_reuseport", 0),
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


@dataclass
class RealAuthServer:
    settings: Settings
    clock: Clock = field(default_factory=lambda: SYSTEM_CLOCK)
    grpc_port: int = 0
    http_port: int = 0
    emulators: dict[str, Emulator] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)

    async def start(self) -> None:
        # The HTTP socket is bound first: with --http-port 0 the default public URL needs the real port.
        check_sandbox_admin(self.settings)  # settings built without load_settings get the same refusal
        http_sock = _bind_http(self.settings.effective_http_host, self.settings.http_port)
        self.http_port = bound_port(http_sock)
        self.settings = s = self.settings.with_http_port(self.http_port)
        try:
            await self._start(s, http_sock)
        except BaseException:
            http_sock.close()
            await self._abort()
            raise

    async def _abort(self) -> None:
        """Undo a start that failed half-way (e.g. the gRPC port was taken after the store opened)."""
        runner = getattr(self, "http_runner", None)
        if runner is not None:
            await runner.cleanup()
        for p in self.providers.values():
            await p.aclose()
        store = getattr(self, "store", None)
        if store is not None:
            await store.close()

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

        self.http_runner = web.AppRunner(
            build_http_app(self.service, self.emulators), access_log=None, handler_cancellation=True
        )
        await self.http_runner.setup()
        await web.SockSite(self.http_runner, http_sock).start()

        self.auth = AuthInterceptor(s.tenants)
        self.grpc = grpc.aio.server(
            interceptors=[
                ObserveInterceptor(s.region),
                ErrorInterceptor(),
                self.auth,
                DeadlineInterceptor(s.rpc_cap_seconds),
            ],
            options=grpc_options(s),
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
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)

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
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        if drain > 0:
            await asyncio.sleep(drain)
        self.service.begin_shutdown()
        await self.grpc.stop(grace)
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
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    await stop.wait()
    log.info(
        "shutting down: health is NOT_SERVING, finishing in-flight calls",
        extra={"grace_s": settings.shutdown_grace},
    )
    await server.stop(drain=min(drain, settings.shutdown_grace))
    log.info("stopped")
    return 0
