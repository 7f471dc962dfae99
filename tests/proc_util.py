"""Run `realauth serve` as a real process (the way `make serve` does) and talk to it."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import PROCESS_LOGS, ROOT, VENV_BIN

_SERIAL = itertools.count()


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    port: int
    http_port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise


def start_serve(
    workdir: Path,
    *args: str,
    port: int = 0,
    http_port: int = 0,
    env: dict[str, str] | None = None,
    ready_timeout: float = 30,
) -> ServeProcess:
    """Port 0 (the default) lets the process bind any free port; the real ones are read from its `listening` line."""
    log_path = workdir / f"serve-{next(_SERIAL)}.log"
    PROCESS_LOGS.append(log_path)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "realauth"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--http-port",
                str(http_port),
                "--log-format",
                "json",
                *args,
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    sp = ServeProcess(proc, port, http_port, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"realauth serve exited with {proc.returncode}:\n{sp.log()}")
        listening = _log_record(log_path, "realauth listening")
        if listening is not None:
            sp.port = int(listening["grpc"].rsplit(":", 1)[1])
            sp.http_port = int(listening["http"].rsplit(":", 1)[1])
            if health(sp.target) == "SERVING":
                return sp
        time.sleep(0.1)
    sp.stop(signal.SIGKILL)
    raise RuntimeError(f"realauth serve not ready in {ready_timeout}s:\n{sp.log()}")


def _log_record(log_path: Path, msg: str) -> dict[str, Any] | None:
    """The first JSON log record with this message, or None while it has not been written yet."""
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if record.get("msg") == msg:
                return dict(record)
    return None


@contextmanager
def run_emulator(
    vendor: str, workdir: Path, *args: str, ready_timeout: float = 20, log_format: str | None = "json"
) -> Iterator[str]:
    """`realauth emulate VENDOR` as a real process; yields its base URL. Its output joins the suite's leak check.

    ``log_format`` None passes no ``--log-format`` (the default, auto: JSON, since the output is a file)."""
    log_path = workdir / f"emulate-{vendor}-{next(_SERIAL)}.log"
    PROCESS_LOGS.append(log_path)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "realauth"), "emulate", vendor, "--port", "0", *args]
            + (["--log-format", log_format] if log_format else []),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            listening = _log_record(log_path, "emulator listening")
            if listening is not None:
                base = str(listening["url"])
                try:
                    httpx.get(f"{base}/_emulator/stats", timeout=1)
                    break
                except httpx.TransportError:
                    pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"realauth emulate {vendor} did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def health(target: str, service: str = "") -> str:
    try:
        with grpc.insecure_channel(target) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
    except grpc.RpcError:
        return "UNREACHABLE"


def buf_curl(target: str, method: str, data: dict[str, Any] | None = None, *extra: str) -> dict[str, Any]:
    """`buf curl` over gRPC with reflection, exactly as the README shows; returns the JSON answer."""
    cmd = [str(VENV_BIN / "buf"), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *extra]
    if data is not None:
        cmd += ["--data", json.dumps(data)]
    cmd.append(f"http://{target}/{method}")
    env = {**os.environ, "BUF_CACHE_DIR": str(ROOT / ".cache" / "buf")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    if out.returncode != 0:
        raise AssertionError(f"buf curl {method} failed ({out.returncode}): {out.stderr}")
    return dict(json.loads(out.stdout)) if out.stdout.strip().startswith("{") else {"_text": out.stdout}
