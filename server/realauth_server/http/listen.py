"""Listening sockets bound before anything needs the port, so port 0 (any free port) works end to end."""

from __future__ import annotations

import socket


def bind_tcp(host: str, port: int) -> socket.socket:
    """Bind now and return the socket: with ``port=0`` the kernel picks the port atomically (no probe-then-bind race),
    and the caller can build URLs from the real port before serving."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bound_port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])
