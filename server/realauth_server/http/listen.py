"""Listening sockets bound before anything needs the port, so port 0 (any free port) works end to end."""

from __future__ import annotations

import socket


def bind_tcp(host: str, port: int) -> socket.socket:
    """Bind now and return the listening socket: with ``port=0`` the kernel picks the port atomically (no
    probe-then-bind race), and the caller can build URLs from the real port before serving."""
    sock = bind_only(host, port)
    try:
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bind_only(host: str, port: int, *, reuseport: bool = False) -> socket.socket:
    """A bound socket that does not listen yet. ``reuseport``: other sockets with it may bind the port too (the
    supervisor of ``--workers N`` holds the port for its workers this way, and only there)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def bound_port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])
