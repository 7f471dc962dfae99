"""Issue 11's hot-path changes keep their semantics: the SQLite group commit, the single interceptor chain, and the
process-separated benchmark harness (a tiny run of it; the real one is `make bench`, docs/performance.md)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from realauth_server.interceptors.base import ScopeChain, ScopeInterceptor

from .conftest import ROOT, VENV_BIN

CONCURRENT = 50


def _committed(path: Path, session_id: str) -> bool:
    """Whether another connection (another process, after a crash) sees the row: it was committed."""
    with sqlite3.connect(path) as other:
        return other.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone() is not None


class _Recording(ScopeInterceptor):
    def __init__(self, name: str, seen: list[str], refuse: str = "") -> None:
        self.name, self.seen, self.refuse = name, seen, refuse

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        self.seen.append(f"enter {self.name}")
        try:
            if self.refuse and method.endswith(self.refuse):
                raise ValueError(f"{self.name} refused")
            yield
        except ValueError as exc:
            self.seen.append(f"{self.name} saw {exc}")
            raise
        finally:
            self.seen.append(f"exit {self.name}")


async def test_scope_chain_nests_like_separate_interceptors_and_wraps_once() -> None:
    seen: list[str] = []
    chain = ScopeChain([_Recording("outer", seen), _Recording("inner", seen, refuse="Refused")])

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append("handler")
        return request

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(echo, request_deserializer=None, response_serializer=None)
        for name in ("Echo", "Refused")
    }
    server = grpc.aio.server(interceptors=[chain])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("realauth.v1.PerfProbe", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            echo_call = ch.unary_unary("/realauth.v1.PerfProbe/Echo")
            for _ in range(5):
                assert await echo_call(b"hi", timeout=5) == b"hi"
            assert seen[:5] == ["enter outer", "enter inner", "handler", "exit inner", "exit outer"]
            assert len(chain._wrapped) == 1  # built once for the method, reused by the later calls
            seen.clear()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ch.unary_unary("/realauth.v1.PerfProbe/Refused")(b"x", timeout=5)
            assert err.value.code() is grpc.StatusCode.UNKNOWN
            # the inner scope's refusal on entry passes through the outer scope's exit; the handler never ran
            assert seen == ["enter outer", "enter inner", "inner saw inner refused", "exit inner",
                            "outer saw inner refused", "exit outer"]  # fmt: skip
    finally:
        await server.stop(0)


@pytest.mark.slow
def test_bench_harness_prints_its_table(tmp_path: Path) -> None:
    """`make bench`'s harness end to end, very small: realauth, the vendor and the callers as separate processes."""
    out = tmp_path / "bench.json"
    cmd = [str(VENV_BIN / "python"), str(ROOT / "tools" / "bench.py"), "--quick", "--seconds", "0.5"]
    cmd += ["--rounds", "1", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, timeout=90, cwd=ROOT, check=False)
    text = done.stdout.decode()
    assert done.returncode == 0, text + done.stderr.decode()[-3000:]
    assert "CreateAuthSession memory" in text and "floor: bare grpc.aio" in text, text
    data: dict[str, Any] = json.loads(out.read_text())
    for row in ("floor_grpc", "floor_post", "post_shipped", "create_memory", "exchange_memory"):
        assert data["rows"][row]["calls"] > 0 and data["rows"][row]["errors"] == 0, (row, data["rows"])
        assert data["rows"][row]["cpu_ms"] > 0, (row, data["rows"])
    assert data["rows"]["create_memory"]["ratio"] > 0


def test_configured_server_imports_neither_emulators_nor_tls_code() -> None:
    """Cold start: `realauth serve` with real providers and no TLS loads neither (≈ 50 ms of imports, perf doc)."""
    code = (
        "import sys; import realauth_server.server; "
        "print(sorted(m for m in sys.modules if m.startswith(('realauth_server.emulators.registry', "
        "'cryptography.x509'))))"
    )
    done = subprocess.run([str(VENV_BIN / "python"), "-c", code], capture_output=True, timeout=60, check=True)
    assert done.stdout.decode().strip() == "[]", done.stdout.decode()
