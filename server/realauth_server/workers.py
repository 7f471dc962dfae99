"""``realauth serve --workers N``: N server processes on one set of ports, under one supervisor.

A Python gRPC server runs its calls on one core; a pod with more cores gets them used by more processes. The
supervisor (this module, the process the operator starts) binds the ports, starts N workers (re-executions of
``realauth serve`` with hidden ``--worker-id``/``--http-fd``/``--ready-fd`` options), restarts a worker that dies,
and on SIGTERM/SIGINT drains them all and exits 0. It serves no calls itself.

Ports: the HTTP listening socket is bound here and inherited by every worker (one accept queue: a dying worker
loses no queued connection). gRPC core binds its own sockets and cannot adopt one, so each worker binds the gRPC
(and health probe) port with ``SO_REUSEPORT`` and the kernel spreads connections across them; the supervisor holds
a bound, never listening, ``SO_REUSEPORT`` socket on each such port, which keeps the port number (``--port 0``
picks one for all workers) and makes a process that does not ask for port sharing fail to bind it. This is the
only place realauth shares a port (server.py refuses ``SO_REUSEPORT`` otherwise).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from urllib.parse import urlsplit

from .config import Settings
from .http.listen import bind_only, bind_tcp, bound_port

log = logging.getLogger("realauth.supervisor")

#: A worker that dies is restarted after this delay, doubled on each quick death up to the maximum; a worker that
#: lived RESTART_RESET seconds starts the count again.
RESTART_FIRST, RESTART_MAX, RESTART_RESET = 0.5, 30.0, 60.0
#: Past the workers' own shutdown grace (and their drain), a worker still running is killed.
STOP_MARGIN = 5.0
POLL = 0.1


class WorkerRefused(ValueError):
    """``--workers`` cannot be used with these settings (the message says why and what to do)."""


def parse_workers(value: str) -> int:
    """``N`` (1 or more) or ``auto``: the cores this process may run on (its CPU affinity, as a container sees it)."""
    if value == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--workers must be a number of processes or 'auto', not {value[:40]!r}") from None
    if not 1 <= count <= 256:
        raise ValueError("--workers must be in [1, 256] (or 'auto')")
    return count


def check_workers(settings: Settings, count: int) -> None:
    """Refuse settings whose state would be split between workers, with what to do instead."""
    if count <= 1:
        return
    if urlsplit(settings.store).scheme == "memory":
        raise WorkerRefused(
            f"--workers {count} needs a store every worker process shares: memory:// keeps sessions inside one "
            "process (a session created by one worker would be unknown to the others); use --store sqlite:///PATH "
            "or --store redis://HOST:PORT/DB"
        )
    embedded = sorted(p.name for p in settings.providers if p.sandbox)
    if embedded:
        raise WorkerRefused(
            f"--workers {count} cannot serve the built-in sandbox emulators ({', '.join(embedded)}): each keeps its "
            "vendor state inside one process; run one with `realauth emulate KIND --port P` and point the "
            "provider's base_url at it (docs/deployment.md)"
        )


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, never listening, SO_REUSEPORT socket: it holds the port (and picks one for port 0) for the workers."""
    return bind_only(host, port, reuseport=True)


def strip_workers(argv: Sequence[str]) -> list[str]:
    """The ``serve`` arguments without ``--workers``: what each worker is started with (plus its own options)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM if the supervisor dies (even by SIGKILL), so no worker outlives it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    ready_fd: int = -1
    ready: bool = False
    started: float = 0.0
    delay: float = RESTART_FIRST
    restart_at: float = 0.0
    ever_ready: bool = False


@dataclass
class Supervisor:
    """Start, watch, restart and stop the workers; ``run`` returns the process exit code."""

    settings: Settings
    count: int
    argv: list[str]  # ``serve`` and its arguments, without --workers
    workers: list[Worker] = field(default_factory=list)
    _stopping: int = 0
    _hup: bool = False

    def bind(self) -> None:
        s = self.settings
        self.http_sock = bind_tcp(s.effective_http_host, s.http_port)
        self.http_sock.set_inheritable(True)
        self.grpc_hold = reserve_port(s.host, s.port)
        self.health_hold = reserve_port(s.host, s.health_port) if s.health_port is not None else None

    def worker_argv(self, worker: Worker, ready_w: int) -> list[str]:
        argv = [sys.executable, "-m", "realauth_server", *self.argv]
        argv += ["--port", str(bound_port(self.grpc_hold)), "--http-port", str(bound_port(self.http_sock))]
        if self.health_hold is not None:
            argv += ["--health-port", str(bound_port(self.health_hold))]
        argv += ["--worker-id", str(worker.index), "--http-fd", str(self.http_sock.fileno())]
        return [*argv, "--ready-fd", str(ready_w)]

    def spawn(self, worker: Worker) -> None:
        ready_r, ready_w = os.pipe()
        try:
            worker.proc = subprocess.Popen(
                self.worker_argv(worker, ready_w),
                pass_fds=(self.http_sock.fileno(), ready_w),
                preexec_fn=_die_with_parent,  # the supervisor runs no threads
            )
        finally:
            os.close(ready_w)
        worker.ready_fd, worker.ready, worker.started = ready_r, False, time.monotonic()
        log.info("worker started", extra={"worker": worker.index, "pid": worker.proc.pid})

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._hup = True
        else:
            self._stopping = self._stopping or signum

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        self.workers = [Worker(i) for i in range(1, self.count + 1)]
        for w in self.workers:
            self.spawn(w)
        announced = False
        try:
            while not self._stopping:
                if self._hup:
                    self._hup = False
                    self._forward(signal.SIGHUP)
                self._read_ready()
                if not announced and all(w.ready for w in self.workers):
                    announced = True
                    log.info(
                        "realauth workers listening",
                        extra={
                            "workers": self.count,
                            "pids": ",".join(str(w.proc.pid) for w in self.workers if w.proc),
                            "grpc": f"{self.settings.host}:{bound_port(self.grpc_hold)}",
                            "http": f"{self.settings.effective_http_host}:{bound_port(self.http_sock)}",
                        },
                    )
                failed = self._reap()
                if failed is not None:
                    self._stop_all()
                    return failed
            log.info("stopping: every worker goes NOT_SERVING, then drains", extra={"signal": self._stopping})
            self._stop_all()
            return 0
        finally:
            self.http_sock.close()
            self.grpc_hold.close()
            if self.health_hold is not None:
                self.health_hold.close()

    def _forward(self, sig: int) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(sig)

    def _read_ready(self) -> None:
        fds = [w.ready_fd for w in self.workers if w.proc is not None and not w.ready and w.ready_fd >= 0]
        if not fds:
            time.sleep(POLL)
            return
        try:
            readable, _, _ = select.select(fds, [], [], POLL)
        except InterruptedError:  # pragma: no cover - a signal; PEP 475 retries select, the loop checks flags
            return
        for w in self.workers:
            if w.ready_fd in readable:
                data = os.read(w.ready_fd, 16)
                if data:
                    w.ready = w.ever_ready = True
                    w.delay = RESTART_FIRST if time.monotonic() - w.started >= RESTART_RESET else w.delay
                os.close(w.ready_fd)
                w.ready_fd = -1

    def _reap(self) -> int | None:
        """Restart dead workers (with backoff); a worker that dies before ever serving fails the whole start."""
        now = time.monotonic()
        for w in self.workers:
            if w.proc is None:
                if now >= w.restart_at:
                    self.spawn(w)
                continue
            code = w.proc.poll()
            if code is None:
                if w.ready and now - w.started >= RESTART_RESET:
                    w.delay = RESTART_FIRST
                continue
            if w.ready_fd >= 0:
                os.close(w.ready_fd)
                w.ready_fd = -1
            if not w.ever_ready:
                log.error("worker failed to start: stopping", extra={"worker": w.index, "exit_code": code})
                return code or 1
            w.proc, w.ready, w.restart_at = None, False, now + w.delay
            log.warning(
                "worker exited: restarting", extra={"worker": w.index, "exit_code": code, "restart_in_s": w.delay}
            )
            w.delay = min(w.delay * 2, RESTART_MAX)
        return None

    def _stop_all(self) -> None:
        """SIGTERM to every worker at once: each goes NOT_SERVING at once and drains before closing (server.py)."""
        self._forward(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + STOP_MARGIN
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                code = w.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("worker did not stop in time: killed", extra={"worker": w.index})
                w.proc.kill()
                code = w.proc.wait()
            if code not in (0, -signal.SIGTERM):
                log.warning("worker stopped with an error", extra={"worker": w.index, "exit_code": code})
            if w.ready_fd >= 0:
                os.close(w.ready_fd)
                w.ready_fd = -1
        log.info("stopped")
