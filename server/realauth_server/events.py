"""In-process fan-out of session changes to watchers (WatchAuthSession).

Every store publishes each successful write here: memory and SQLite directly, Redis through
pub/sub so that a watcher on one replica sees writes made by another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from .domain import AuthSession

#: A session changes state a handful of times; a full queue means the watcher is stuck.
QUEUE_SIZE = 64


class ChangeFeed:
    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[AuthSession | None]]] = {}

    @contextmanager
    def listen(self, session_id: str) -> Iterator[asyncio.Queue[AuthSession | None]]:
        """Receive every later write of ``session_id`` (subscribe before reading, to miss nothing)."""
        queue: asyncio.Queue[AuthSession | None] = asyncio.Queue(QUEUE_SIZE)
        self._listeners.setdefault(session_id, set()).add(queue)
        try:
            yield queue
        finally:
            listeners = self._listeners.get(session_id)
            if listeners is not None:
                listeners.discard(queue)
                if not listeners:
                    del self._listeners[session_id]

    def publish(self, session: AuthSession) -> None:
        for queue in self._listeners.get(session.session_id, ()):
            if queue.full():
                # Drop the oldest: watchers only ever move forward by version, and resync from the store.
                queue.get_nowait()
            queue.put_nowait(session)

    def close_all(self) -> None:
        """Wake every watcher with ``None``: the server is shutting down and they should end."""
        for queues in self._listeners.values():
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(None)

    def listening(self, session_id: str) -> int:
        return len(self._listeners.get(session_id, ()))
