"""`realauth health`: the image's HEALTHCHECK client, against a real server's grpc.health.v1 service."""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health_pb2

from realauth_server.server import SERVICE_NAME

from .conftest import VENV_BIN, Harness, free_port


async def health_cli(*args: str) -> tuple[int, str]:
    # A subprocess on the event loop: the in-process server must keep answering while the CLI waits.
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "realauth"),
        "health",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_serving_exits_zero_for_liveness_and_readiness(realauth: Harness) -> None:
    port = str(realauth.server.grpc_port)
    code, out = await health_cli("--port", port)
    assert code == 0 and "SERVING" in out, out
    code, out = await health_cli("--port", port, "--service", SERVICE_NAME)
    assert code == 0 and f"{SERVICE_NAME}: SERVING" in out, out


async def test_not_serving_and_unknown_services_exit_one(realauth: Harness) -> None:
    port = str(realauth.server.grpc_port)
    await realauth.server.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    code, out = await health_cli("--port", port, "--service", SERVICE_NAME)
    assert code == 1 and "NOT_SERVING" in out, out
    code, out = await health_cli("--port", port)  # liveness is independent of readiness
    assert code == 0, out
    code, out = await health_cli("--port", port, "--service", "no.such.Service")
    assert code == 1 and "NOT_FOUND" in out, out


async def test_nothing_listening_exits_one_quickly() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    code, out = await health_cli("--port", str(free_port()), "--timeout", "2")
    assert code == 1 and "UNAVAILABLE" in out and "Traceback" not in out, out
    assert loop.time() - start < 15
