"""``--store`` URL → store backend."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit

import redis.exceptions

from .base import SessionStore
from .memory import MemoryStore
from .redis import RedisStore
from .retention import Retention
from .sqlite import SqliteStore

SCHEMES = ("sqlite", "memory", "redis")

#: Store failures that mean "cannot serve right now" (UNAVAILABLE, retriable), not a bug (INTERNAL).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlite3.OperationalError,
)


def open_store(url: str, retention: Retention | None = None, *, shared: bool = False) -> SessionStore:
    """``sqlite:///relative/or/abs.db`` (``sqlite:////abs``), ``memory://``, ``redis://host:port/db``.

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
        return SqliteStore(path, retention, follow_others=shared)
    if scheme in ("redis", "rediss"):
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("--store redis://HOST:PORT/DB needs a host")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError("--store redis://HOST:PORT/DB: DB must be a number")
        return RedisStore(url, retention)
    raise ValueError(f"--store: unsupported scheme {scheme!r}; use one of {', '.join(s + '://' for s in SCHEMES)}")
