"""A real Redis Cluster for tests: 3 primaries + 3 replicas of Debian's ``redis-server`` on loopback.

Cluster nodes cannot bind port 0 (each announces its port, and its cluster bus listens on port + 10000), so
ports are picked below the ephemeral range with their bus ports free too. The cluster is created with
``redis-cli --cluster create`` exactly as an operator would, and every node is stopped at the end.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from .conftest import _GIVEN_PORTS
from .redis_util import redis_server_binary

#: Node ports come from here; their bus ports (+10000) stay below Linux's ephemeral range (32768).
NODE_PORTS = (20000, 22700)
BUS_OFFSET = 10000
#: Small, so a killed primary is failed over within a couple of seconds (the default is 15 s).
NODE_TIMEOUT_MS = 1000
START_TIMEOUT = 30.0


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(n: int) -> list[int]:
    """``n`` loopback ports free now (and their bus ports), never handed out twice in this run."""
    ports: list[int] = []
    for _ in range(5000):
        port = random.randrange(*NODE_PORTS)
        if port in _GIVEN_PORTS or port + BUS_OFFSET in _GIVEN_PORTS or port in ports:
            continue
        if _free(port) and _free(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == n:
                _GIVEN_PORTS.update(ports)
                _GIVEN_PORTS.update(p + BUS_OFFSET for p in ports)
                return ports
    raise RuntimeError(f"no {n} free loopback ports in {NODE_PORTS}")


@dataclass
class ClusterNode:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
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
        log.close()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything to its replica (what a crashed host looks like)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=5)

    def pause(self, paused: bool) -> None:
        """SIGSTOP / SIGCONT: a node that is alive but not keeping up (a slow host or a congested link)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)  # a paused node cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@dataclass
class RedisCluster:
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The store URL realauth takes: every node as a start-up node (any one is enough)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def node(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def primaries(self) -> list[ClusterNode]:
        """Live nodes that are primaries right now (they change on failover)."""
        found = []
        for n in self.nodes:
            if not n.alive():
                continue
            with n.client() as c:
                if c.execute_command("ROLE")[0] == b"master":
                    found.append(n)
        return found

    def replica_of(self, primary: ClusterNode) -> ClusterNode:
        with primary.client() as c:
            role = c.execute_command("ROLE")
        return self.node(int(role[2][0][1]))

    def flushall(self) -> None:
        for n in self.primaries():
            with n.client() as c:
                c.flushall()

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Every live node says ``cluster_state:ok`` and every slot is served by a live primary."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                states = []
                for n in self.nodes:
                    if n.alive():
                        with n.client() as c:
                            info = c.execute_command("CLUSTER", "INFO").decode()
                            states.append("cluster_state:ok" in info and "cluster_slots_ok:16384" in info)
                if states and all(states) and len(self.primaries()) == 3:
                    return
                last = f"states={states}"
            except redis.RedisError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise RuntimeError(f"Redis Cluster not healthy in {timeout}s: {last}")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def start_cluster(workdir: Path) -> RedisCluster:
    """6 nodes, then ``redis-cli --cluster create ... --cluster-replicas 1``: 3 primaries, each with a replica."""
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.fail("redis-cli is required for the Redis Cluster tests (Debian package redis-tools)", pytrace=False)
    cluster = RedisCluster([ClusterNode(p, workdir / str(p)) for p in cluster_ports(6)])
    try:
        for n in cluster.nodes:
            n.start()
        deadline = time.monotonic() + 10
        for n in cluster.nodes:
            while True:
                try:
                    with n.client() as c:
                        c.ping()
                    break
                except redis.RedisError:
                    if not n.alive() or time.monotonic() > deadline:
                        log = (n.workdir / "redis.log").read_text(errors="replace")
                        raise RuntimeError(f"cluster node {n.port} did not start:\n{log}") from None
                    time.sleep(0.05)
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in cluster.nodes)]
        out = subprocess.run(
            [*create, "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True, timeout=30
        )
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{out.stdout}\n{out.stderr}")
        cluster.wait_healthy()
        # Every replica must have finished its first sync, or a failover test starts with an empty replica.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            linked = 0
            for n in cluster.nodes:
                with n.client() as c:
                    role = c.execute_command("ROLE")
                if role[0] == b"slave" and role[3] == b"connected":
                    linked += 1
            if linked == 3:
                break
            time.sleep(0.1)
        return cluster
    except BaseException:
        cluster.stop()
        raise


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The shared cluster, emptied for this test."""
    redis_cluster.wait_healthy()
    redis_cluster.flushall()
    return redis_cluster.url
