"""``--store`` URL → store backend.

The backends are imported when a URL names them, not before: redis-py (with the OpenTelemetry SDK it pulls in) and
aiosqlite are a fifth of a cold start, and a memory-store server uses neither (tests/test_cold_imports.py).
"""

from __future__ import annotations

import math
import sqlite3
import sys
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from .base import SessionStore
from .memory import MemoryStore
from .retention import Retention

if TYPE_CHECKING:
    from .redis_cluster import RedisClusterStore

SCHEMES = ("sqlite", "memory", "redis", "redis+cluster")
#: Query parameters of a Redis store URL that realauth reads itself (the rest go to redis-py).
DURABILITY_PARAMS = ("wait", "wait_timeout")


_WITHOUT_REDIS: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
_with_redis: tuple[type[Exception], ...] | None = None


def unavailable_errors() -> tuple[type[Exception], ...]:
    """Store failures that mean "cannot serve right now" (UNAVAILABLE, retriable), not a bug (INTERNAL).

    redis-py's connection and timeout errors belong here only once redis-py is imported: before that no Redis error
    can exist, and importing it just to name them costs 80 ms of every cold start. Called where an exception is
    being classified (an ``except`` clause's expression runs only then), so the tuple is always current.
    """
    global _with_redis
    if _with_redis is not None:
        return _with_redis
    exceptions = sys.modules.get("redis.exceptions")
    if exceptions is None or not hasattr(exceptions, "TimeoutError"):
        return _WITHOUT_REDIS
    connection_error = cast("type[Exception]", exceptions.ConnectionError)
    timeout_error = cast("type[Exception]", exceptions.TimeoutError)
    _with_redis = (connection_error, timeout_error, *_WITHOUT_REDIS)
    return _with_redis


def __getattr__(name: str) -> tuple[type[Exception], ...]:
    """``UNAVAILABLE_ERRORS``, the full tuple (imports redis-py): for callers that want a constant."""
    if name == "UNAVAILABLE_ERRORS":
        import redis.exceptions  # noqa: F401

        return unavailable_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url: str, retention: Retention | None = None, *, shared: bool = False) -> SessionStore:
    """``sqlite:///relative/or/abs.db`` (``sqlite:////abs``), ``memory://``, ``redis://host:port/db``,
    ``redis+cluster://host:port,host:port`` (``?wait=N&wait_timeout=S`` on either Redis form: durability).

    ``shared``: other processes (the sibling workers of ``--workers N``) write to the same SQLite file; follow their
    writes for this process's watchers (Redis always does, through pub/sub).
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryStore(retention)
    if scheme == "sqlite":
        path = url[len("sqlite://") :]
        if path.startswith("/"):  # sqlite:///rel.db → rel.db, sqlite:////abs.db → /abs.db
            path = path[1:]
        if not path:
            raise ValueError("--store sqlite:///PATH needs a path")
        from .sqlite import SqliteStore

        return SqliteStore(path, retention, follow_others=shared)
    if scheme in ("redis+cluster", "rediss+cluster"):
        return _cluster_store(url, retention)
    if scheme in ("redis", "rediss"):
        url, wait, timeout = _durability(url)
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("--store redis://HOST:PORT/DB needs a host")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError("--store redis://HOST:PORT/DB: DB must be a number")
        from .redis import RedisStore

        return RedisStore(url, retention, wait_replicas=wait, wait_timeout=timeout)
    raise ValueError(f"--store: unsupported scheme {scheme!r}; use one of {', '.join(s + '://' for s in SCHEMES)}")


def _durability(url: str) -> tuple[str, int, float]:
    """Take ``wait`` (replicas to WAIT for, 0-5) and ``wait_timeout`` (seconds, 0.01-10) out of the query."""
    from .redis import DEFAULT_WAIT_TIMEOUT

    parts = urlsplit(url)
    rest, wait, timeout = [], 0, DEFAULT_WAIT_TIMEOUT
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "wait":
            if not value.isdigit() or not 0 <= int(value) <= 5:
                raise ValueError("--store ...?wait=N: N must be a whole number of replicas from 0 to 5")
            wait = int(value)
        elif name == "wait_timeout":
            try:
                timeout = float(value)
            except ValueError:
                timeout = math.nan
            if not 0.01 <= timeout <= 10:  # NaN fails too
                raise ValueError("--store ...?wait_timeout=S: S must be seconds from 0.01 to 10")
        else:
            rest.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), wait, timeout


def _cluster_store(url: str, retention: Retention | None) -> RedisClusterStore:
    """``redis+cluster://[user:password@]host:port[,host:port...][?wait=N&wait_timeout=S]``: start-up nodes."""
    url, wait, timeout = _durability(url)
    parts = urlsplit(url)
    if parts.query:
        raise ValueError("--store redis+cluster://...: the only parameters are wait and wait_timeout")
    if parts.path.strip("/"):
        raise ValueError("--store redis+cluster://HOST:PORT,...: a cluster has no database number")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("--store redis+cluster://HOST:PORT,HOST:PORT: each node needs a host and a port")
        nodes.append((host.strip("[]"), int(port)))
    from .redis_cluster import RedisClusterStore

    return RedisClusterStore(
        nodes,
        retention,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=parts.scheme.startswith("rediss"),
        wait_replicas=wait,
        wait_timeout=timeout,
    )
