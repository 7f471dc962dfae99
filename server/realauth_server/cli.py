"""``realauth serve`` and ``realauth emulate VENDOR``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from .config import ConfigError, load_settings
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
    setup_logging(settings.log_level, settings.log_format)
    try:
        return _run(serve(settings))
    except (OSError, ValueError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1


def cmd_emulate(args: argparse.Namespace) -> int:
    from .emulators.registry import EMULATORS

    setup_logging(args.log_level, args.log_format or "text")
    sock = bind_tcp(args.host, args.port)
    port = bound_port(sock)
    public = (args.public_url or f"http://127.0.0.1:{port}").rstrip("/")
    # Standalone is as permissive as the vendor: control endpoints on, any valid redirect or push URL accepted.
    emulator = EMULATORS[args.vendor](public_url=public, admin=True, targets=None)
    log.info("emulator listening", extra={"vendor": args.vendor, "url": public, "port": port})
    web.run_app(emulator.app(), sock=sock, print=None, access_log=None, handler_cancellation=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .emulators.registry import EMULATORS

    parser = argparse.ArgumentParser(prog="realauth", description=__doc__)
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
    serve.set_defaults(func=cmd_serve)

    emulate = sub.add_parser("emulate", help="run one vendor emulator standalone, at the vendor's own paths")
    emulate.add_argument("vendor", choices=sorted(EMULATORS))
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, required=True, help="listen port; 0 picks a free one (logged)")
    emulate.add_argument("--public-url", help="base URL of this emulator as browsers see it")
    emulate.add_argument("--log-format", choices=("json", "text"))
    emulate.add_argument("--log-level", default="INFO", type=str.upper, choices=LEVELS)
    emulate.set_defaults(func=cmd_emulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
