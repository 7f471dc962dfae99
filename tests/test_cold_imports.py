"""A server imports only the store backend its ``--store`` names: redis-py (which pulls in the OpenTelemetry SDK)
and aiosqlite are a fifth of a cold start (docs/performance.md), so a memory-store server must not load them, and a
SQLite one must not load redis-py. Each case runs in a fresh interpreter (this test process has them all loaded):
it starts a real server on loopback ports, serves one CreateAuthSession in sandbox mode, stops, and reports which
of the modules it loaded."""

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
    settings = load_settings(None, store=sys.argv[1], host="127.0.0.1", http_host="127.0.0.1", port=0, http_port=0)
    server = RealAuthServer(settings)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.RealAuthServiceStub(channel)
            await stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="https://example.com/done"))
    finally:
        await server.stop(grace=0)
    watched = ("redis", "redis.asyncio", "redis.cluster", "aiosqlite", "opentelemetry.sdk")
    print(json.dumps(sorted(m for m in watched if m in sys.modules)))

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("store", "loaded"),
    [("memory://", []), ("sqlite:///{tmp}/cold.db", ["aiosqlite"])],
    ids=["memory", "sqlite"],
)
def test_a_server_imports_only_its_store_backend(tmp_path: Path, store: str, loaded: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, store.format(tmp=tmp_path)],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout.decode().strip().splitlines()[-1]) == loaded
