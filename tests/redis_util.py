"""A real ``redis-server`` for tests (never a fake): one per test session on a free loopback port.

Import the fixtures into a test module: ``from .redis_util import redis_server, redis_url``.
If redis-server is missing it is installed with apt-get (as root); if it still cannot be
started the fixture fails loudly: nothing that needs Redis is ever skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from .conftest import free_port

START_TIMEOUT = 10.0


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
            subprocess.run(cmd, check=False, env=env, timeout=300, capture_output=True)
        found = shutil.which("redis-server")
        if found:
            return found
    pytest.fail(
        "redis-server is required by the Redis store tests and could not be found or installed; "
        "install the Debian package redis-server (apt-get install redis-server)",
        pytrace=False,
    )


@dataclass
class RedisServer:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, socket_timeout=5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_redis(workdir: Path, port: int | None = None) -> RedisServer:
    """A fresh redis-server; ``port`` restarts one on the port a stopped one had (clients reconnect to it)."""
    binary = redis_server_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = workdir / f"redis-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RedisServer(proc, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if server.client().ping():
                return server
        except redis.RedisError:
            time.sleep(0.05)
    server.stop()
    pytest.fail(f"redis-server did not start on port {port}:\n{log_path.read_text(errors='replace')}", pytrace=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server, emptied for this test."""
    with redis_server.client() as c:
        c.flushall()
    return redis_server.url
