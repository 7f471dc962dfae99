"""The session store: one interface, several backends (memory, SQLite; Redis for many replicas)."""

from __future__ import annotations

import abc

from ..domain import AuthSession


class StoreConflict(Exception):
    """The session changed since it was read (optimistic concurrency)."""


class SessionStore(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def insert(self, session: AuthSession) -> AuthSession:
        """Insert a new session. When (tenant, idempotency_key) already exists, return that one."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> AuthSession | None: ...

    @abc.abstractmethod
    async def get_by_token(self, token: str) -> AuthSession | None: ...

    @abc.abstractmethod
    async def find_idempotent(self, tenant: str, key: str) -> AuthSession | None: ...

    @abc.abstractmethod
    async def shared_secret(self, name: str) -> bytes:
        """A random secret created once and shared by every replica using this store."""

    @abc.abstractmethod
    async def update(self, session: AuthSession) -> AuthSession:
        """Write back a session read at ``session.version``; raise StoreConflict if it moved on."""
