"""``realauth serve``, ``realauth emulate VENDOR`` and ``realauth health``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from . import __version__
from .config import ConfigError, Settings, load_settings
from .http.listen import bind_tcp, bound_port
from .logs import LEVELS, setup_logging

log = logging.getLogger("realauth")


def _run(coro: object) -> int:
    try:
        import uvloop

        return int(uvloop.run(coro))  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return int(asyncio.run(coro))  # type: ignore[arg-type]


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    try:
        settings = load_settings(
            args.config,
            environ=os.environ,
            host=args.host,
            port=args.port,
            http_host=args.http_host,
            http_port=args.http_port,
            health_port=args.health_port,
            public_url=args.public_url,
            store=args.store,
            log_format=args.log_format,
            log_level=args.log_level,
            sandbox_admin=args.sandbox_admin,
        )
    except ConfigError as exc:
        print(f"realauth: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        from .config_print import render_toml

        sys.stdout.write(render_toml(settings))
        return 0
    if args.worker_id is not None:
        return _serve_worker(args, settings)
    from .workers import Supervisor, WorkerRefused, check_workers, parse_workers, strip_workers

    try:
        count = parse_workers(args.workers)
        check_workers(settings, count)
    except ValueError as exc:  # WorkerRefused included
        kind = "refused" if isinstance(exc, WorkerRefused) else "configuration error"
        print(f"realauth: {kind}: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    if count > 1:
        supervisor = Supervisor(settings, count, strip_workers(args.argv))
        try:
            supervisor.bind()
        except OSError as exc:
            log.error("cannot start", extra={"error": str(exc)})
            return 1
        return supervisor.run()
    try:
        return _run(serve(settings))
    except (OSError, ValueError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1


def _serve_worker(args: argparse.Namespace, settings: Settings) -> int:
    """One worker of ``--workers N``: the supervisor's sockets, a ``worker`` field on every log line."""
    from .server import WorkerSlot, serve

    if args.http_fd is None or args.ready_fd is None:
        print("realauth: --worker-id is set by the supervisor of --workers N, never by hand", file=sys.stderr)
        return 2
    # SIGHUP is forwarded by the supervisor: never let it end a worker (serve may install its own handler).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    setup_logging(settings.log_level, settings.log_format, worker=args.worker_id)
    slot = WorkerSlot(index=args.worker_id, http_fd=args.http_fd, ready_fd=args.ready_fd)
    try:
        return _run(serve(settings, worker=slot))
    except (OSError, ValueError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1


def cmd_emulate(args: argparse.Namespace) -> int:
    from .vendors.registry import VENDORS

    setup_logging(args.log_level, args.log_format)
    sock = bind_tcp(args.host, args.port)
    port = bound_port(sock)
    public = (args.public_url or f"http://127.0.0.1:{port}").rstrip("/")
    # Standalone is as permissive as the vendor: control endpoints on, any valid redirect or push URL accepted.
    emulator = VENDORS[args.vendor].emulator_class()(public_url=public, admin=True, targets=None)
    pusher = getattr(emulator, "pusher", None)  # the kinds that push results: volcengine, megvii
    if pusher is not None:
        # Pushes go to loopback and the emulator's own host only; a named host (realauth's, in compose) is opt-in.
        pusher.hosts.update(h.lower() for h in args.push_host)
    log.info("emulator listening", extra={"vendor": args.vendor, "url": public, "port": port})
    web.run_app(emulator.app(), sock=sock, print=None, access_log=None, handler_cancellation=True)
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """One ``grpc.health.v1.Health/Check``: exit 0 when SERVING, else 1 (a container ``HEALTHCHECK`` needs a client,
    and the image has no grpc_health_probe). Plaintext only, like the kubelet's own gRPC probe."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"{args.host}:{args.port}"
    name = args.service or '""'
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        print(f"realauth health: {target} service {name}: {code.name if code else 'error'}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{target} service {name}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def build_parser() -> argparse.ArgumentParser:
    from .vendors.registry import VENDORS

    parser = argparse.ArgumentParser(prog="realauth", description=__doc__)
    parser.add_argument("--version", action="version", version=f"realauth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC service and its HTTP side")
    serve.add_argument("--config", help="TOML configuration file (docs/configuration.md)")
    serve.add_argument("--host", help="gRPC listen address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="gRPC port (default 50051; 0 picks a free one, logged)")
    serve.add_argument("--http-host", help="HTTP listen address (default: the same as --host)")
    serve.add_argument(
        "--http-port",
        type=int,
        help="HTTP port: callbacks, sandbox pages, /metrics (default 8080; 0 picks a free one, logged)",
    )
    serve.add_argument(
        "--health-port",
        type=int,
        help="also serve grpc.health.v1 alone on this port, from its own threads (for probes; 0 picks a free one)",
    )
    serve.add_argument(
        "--public-url",
        help="base URL browsers and vendors use to reach the HTTP side (default http://127.0.0.1:PORT)",
    )
    serve.add_argument(
        "--store",
        help="session store: sqlite:///PATH (default sqlite:///var/realauth.db), redis://HOST:PORT/DB, "
        "redis+cluster://HOST:PORT,... (either with ?wait=N: durable writes) or memory://",
    )
    serve.add_argument(
        "--log-format", choices=("auto", "json", "text"), help="auto (default: text on a terminal, else json)"
    )
    serve.add_argument(
        "--log-level",
        help="realauth's own loggers: DEBUG, INFO (default), WARNING, ERROR; library loggers stay at WARNING or above",
    )
    serve.add_argument(
        "--sandbox-admin",
        action=argparse.BooleanOptionalAction,
        help="mount the emulators' fault and stats endpoints (default: on only when every provider is a sandbox "
        "one; refused next to a real provider)",
    )
    serve.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration (defaults, file, REALAUTH_* variables, flags) as TOML with "
        "secrets masked, then exit",
    )
    serve.add_argument(
        "--workers",
        default="1",
        help="server processes sharing the ports, under one supervisor that restarts a dead one (default 1; auto: "
        "one per core this process may use); needs a shared store (sqlite:// or redis://), docs/deployment.md",
    )
    # Set by the supervisor on the processes it starts (workers.py), never by hand.
    serve.add_argument("--worker-id", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--http-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    emulate = sub.add_parser("emulate", help="run one vendor emulator standalone, at the vendor's own paths")
    emulate.add_argument("vendor", choices=sorted(VENDORS))
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, required=True, help="listen port; 0 picks a free one (logged)")
    emulate.add_argument("--public-url", help="base URL of this emulator as browsers see it")
    emulate.add_argument(
        "--push-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also deliver result pushes (Volcengine callback, Megvii notify_url) to this host name; by default only "
        "loopback and the emulator's own host (repeatable)",
    )
    emulate.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default="auto",
        help="auto (default: text on a terminal, else json), as for serve",
    )
    emulate.add_argument("--log-level", default="INFO", type=str.upper, choices=LEVELS)
    emulate.set_defaults(func=cmd_emulate)

    health = sub.add_parser("health", help="check a running server's gRPC health service; exit 0 when SERVING")
    health.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    health.add_argument("--port", type=int, default=Settings.port, help=f"gRPC port (default {Settings.port})")
    health.add_argument(
        "--service",
        default="",
        help='service to check: "" (default: the process is up; liveness) or realauth.v1.RealAuthService (readiness)',
    )
    health.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer (default 2)")
    health.set_defaults(func=cmd_health)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # a supervisor starts its workers with the same arguments
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
