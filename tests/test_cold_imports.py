"""A server imports only the store backend its ``--store`` names: redis-py (which pulls in the OpenTelemetry SDK)
and aiosqlite are a fifth of a cold start (docs/performance.md), so a memory-store server must not load them, a
SQLite one must not load redis-py, and one with configured providers loads no emulator. Each case runs in a fresh
interpreter (this test process has them all loaded): it starts a real server on loopback ports, serves one
CreateAuthSession, stops, and reports which of the watched modules it loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import asyncio, json, sys
import grpc
from realauth.v1 import realauth_pb2 as pb, realauth_pb2_grpc as pb_grpc
from realauth_server.config import load_settings
from realauth_server.server import RealAuthServer

async def main() -> None:
    config = sys.argv[2] or None
    settings = load_settings(config, store=sys.argv[1], host="127.0.0.1", http_host="127.0.0.1", port=0, http_port=0)
    server = RealAuthServer(settings)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.RealAuthServiceStub(channel)
            try:
                await stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="https://example.com/done"))
            except grpc.aio.AioRpcError as exc:  # the configured vendor is not there: UNAVAILABLE, as it should
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
    finally:
        await server.stop(grace=0)
    watched = ("redis", "redis.asyncio", "redis.cluster", "aiosqlite", "opentelemetry.sdk")
    watched += ("realauth_server.emulators.base",)
    print(json.dumps(sorted(m for m in watched if m in sys.modules)))

asyncio.run(main())
"""


EMULATORS = "realauth_server.emulators.base"
#: A real provider (nothing listens on port 9): no emulator is loaded either.
CONFIGURED = '[providers.seedance]\nbase_url = "http://127.0.0.1:9"\napi_key = "k-cold-imports-0123456789"\n'


@pytest.mark.parametrize(
    ("store", "config", "loaded"),
    [
        ("memory://", "", [EMULATORS]),
        ("sqlite:///{tmp}/cold.db", "", ["aiosqlite", EMULATORS]),
        ("memory://", CONFIGURED, []),
    ],
    ids=["memory-sandbox", "sqlite-sandbox", "memory-configured"],
)
def test_a_server_imports_only_its_store_backend(tmp_path: Path, store: str, config: str, loaded: list[str]) -> None:
    path = ""
    if config:
        (tmp_path / "realauth.toml").write_text(config)
        path = str(tmp_path / "realauth.toml")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, store.format(tmp=tmp_path), path],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout.decode().strip().splitlines()[-1]) == loaded
