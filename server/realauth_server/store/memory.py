"""In-process store (``memory://``): for tests and throwaway runs; lost on restart."""

from __future__ import annotations

import secrets

from ..domain import AuthSession
from .base import SessionStore, StoreConflict


class MemoryStore(SessionStore):
    def __init__(self) -> None:
        self._rows: dict[str, dict[str, object]] = {}
        self._tokens: dict[str, str] = {}
        self._idem: dict[tuple[str, str], str] = {}
        self._secrets: dict[str, bytes] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def insert(self, session: AuthSession) -> AuthSession:
        if session.idempotency_key:
            existing = self._idem.get((session.tenant, session.idempotency_key))
            if existing is not None:
                return AuthSession.from_dict(self._rows[existing])  # type: ignore[arg-type]
            self._idem[(session.tenant, session.idempotency_key)] = session.session_id
        self._rows[session.session_id] = session.to_dict()
        if session.token:
            self._tokens[session.token] = session.session_id
        return session

    async def get(self, session_id: str) -> AuthSession | None:
        row = self._rows.get(session_id)
        return AuthSession.from_dict(row) if row is not None else None  # type: ignore[arg-type]

    async def get_by_token(self, token: str) -> AuthSession | None:
        sid = self._tokens.get(token)
        return await self.get(sid) if sid else None

    async def find_idempotent(self, tenant: str, key: str) -> AuthSession | None:
        sid = self._idem.get((tenant, key))
        return await self.get(sid) if sid else None

    async def shared_secret(self, name: str) -> bytes:
        return self._secrets.setdefault(name, secrets.token_bytes(32))

    async def update(self, session: AuthSession) -> AuthSession:
        row = self._rows.get(session.session_id)
        if row is None or row["version"] != session.version:
            raise StoreConflict(session.session_id)
        new = session.evolve(version=session.version + 1)
        self._rows[session.session_id] = new.to_dict()
        if new.token:
            self._tokens[new.token] = new.session_id
        return new
