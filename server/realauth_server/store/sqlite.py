"""Embedded SQLite store (``sqlite:///path``), the single-replica default: survives restarts."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import aiosqlite

from ..domain import AuthSession
from .base import SessionStore, StoreConflict

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id      TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    token           TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL,
    version         INTEGER NOT NULL,
    expire_at       REAL NOT NULL,
    data            TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_idem ON sessions(tenant, idempotency_key)
    WHERE idempotency_key != '';
CREATE INDEX IF NOT EXISTS sessions_token ON sessions(token) WHERE token != '';
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class SqliteStore(SessionStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore used before open()")
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.executescript(SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def insert(self, session: AuthSession) -> AuthSession:
        cur = await self.db.execute(
            "INSERT INTO sessions (session_id, tenant, token, idempotency_key, state, version, expire_at, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                session.session_id,
                session.tenant,
                session.token,
                session.idempotency_key,
                session.state.value,
                session.version,
                session.expire_time,
                json.dumps(session.to_dict()),
            ),
        )
        await self.db.commit()
        if cur.rowcount == 0 and session.idempotency_key:
            existing = await self.find_idempotent(session.tenant, session.idempotency_key)
            if existing is not None:
                return existing
        return session

    async def _one(self, sql: str, args: tuple[object, ...]) -> AuthSession | None:
        async with self.db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return AuthSession.from_dict(json.loads(row[0])) if row else None

    async def get(self, session_id: str) -> AuthSession | None:
        return await self._one("SELECT data FROM sessions WHERE session_id = ?", (session_id,))

    async def get_by_token(self, token: str) -> AuthSession | None:
        return await self._one("SELECT data FROM sessions WHERE token = ? AND token != ''", (token,))

    async def find_idempotent(self, tenant: str, key: str) -> AuthSession | None:
        return await self._one(
            "SELECT data FROM sessions WHERE tenant = ? AND idempotency_key = ? AND idempotency_key != ''",
            (tenant, key),
        )

    async def shared_secret(self, name: str) -> bytes:
        await self.db.execute(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, secrets.token_bytes(32))
        )
        await self.db.commit()
        async with self.db.execute("SELECT value FROM secrets WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        return bytes(row[0])

    async def update(self, session: AuthSession) -> AuthSession:
        new = session.evolve(version=session.version + 1)
        cur = await self.db.execute(
            "UPDATE sessions SET token = ?, state = ?, version = ?, expire_at = ?, data = ?"
            " WHERE session_id = ? AND version = ?",
            (
                new.token,
                new.state.value,
                new.version,
                new.expire_time,
                json.dumps(new.to_dict()),
                session.session_id,
                session.version,
            ),
        )
        await self.db.commit()
        if cur.rowcount == 0:
            raise StoreConflict(session.session_id)
        return new
