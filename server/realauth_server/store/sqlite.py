"""Embedded SQLite store (``sqlite:///path``), the single-replica default: survives restarts.

Retention: every row carries ``retain_until`` (see retention.py); reads never return a row past
it, and expired rows are deleted at most once a minute, on access.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

from ..domain import AuthSession
from .base import Cursor, SessionFilter, SessionStore, StoreConflict
from .retention import Retention

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
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS vendor_claims (
    key          TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL,
    retain_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS markers (name TEXT PRIMARY KEY, until REAL NOT NULL);
"""

#: Columns ListAuthSessions filters on, added to databases from before it and filled from each row's JSON.
LIST_COLUMNS = (
    ("create_time", "REAL NOT NULL DEFAULT 0", "json_extract(data, '$.create_time')"),
    ("subject_id", "TEXT NOT NULL DEFAULT ''", "coalesce(json_extract(data, '$.subject_id'), '')"),
    ("provider", "TEXT NOT NULL DEFAULT ''", "coalesce(json_extract(data, '$.provider'), '')"),
)
#: Rows a listing reads per query.
LIST_BATCH = 200

#: Rows written before retention existed are kept this long past their expire time.
LEGACY_RETENTION = 3 * 86_400.0
PURGE_EVERY = 60.0


class SqliteStore(SessionStore):
    def __init__(self, path: str, retention: Retention | None = None) -> None:
        super().__init__(retention)
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._next_purge = 0.0
        # Group commit: the commit that writes made since the last one started will share (None: none asked yet).
        self._next_commit: asyncio.Future[None] | None = None
        self._committer: asyncio.Task[None] | None = None

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
        async with self._db.execute("PRAGMA table_info(sessions)") as cur:
            columns = {row[1] for row in await cur.fetchall()}
        if "retain_until" not in columns:  # a database from before retention: migrate in place
            await self._db.execute("ALTER TABLE sessions ADD COLUMN retain_until REAL NOT NULL DEFAULT 0")
            await self._db.execute("UPDATE sessions SET retain_until = expire_at + ?", (LEGACY_RETENTION,))
        await self._db.execute("CREATE INDEX IF NOT EXISTS sessions_retain ON sessions(retain_until)")
        for name, decl, fill in LIST_COLUMNS:
            if name not in columns:
                await self._db.execute(f"ALTER TABLE sessions ADD COLUMN {name} {decl}")
                await self._db.execute(f"UPDATE sessions SET {name} = {fill}")
        # Keyset pagination per tenant, newest first: (tenant, create_time, session_id) walked backwards.
        await self._db.execute("CREATE INDEX IF NOT EXISTS sessions_list ON sessions(tenant, create_time, session_id)")
        await self._db.commit()

    async def _commit(self) -> None:
        """Commit this caller's writes, sharing one commit with every concurrent caller (group commit).

        One connection means one transaction for all coroutines anyway: a write is durable once any commit that
        started after it finishes. So a caller waits for the next commit to start, and all the callers that arrive
        while one commit runs share the one after it: one round trip to the database thread for many writes instead
        of one each (docs/performance.md). Returns only after a commit that began after the caller's write.
        """
        if self._next_commit is None:
            self._next_commit = asyncio.get_running_loop().create_future()
            # Retrieved even when every waiter was cancelled, so a failed commit never logs "never retrieved".
            self._next_commit.add_done_callback(lambda f: f.cancelled() or f.exception())
        waiter = self._next_commit
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop())
        await asyncio.shield(waiter)  # a caller cancelled meanwhile must not cancel the others' commit

    async def _commit_loop(self) -> None:
        """Run commits back to back while callers wait for one; each takes every write made before it starts."""
        try:
            while self._next_commit is not None:
                waiter, self._next_commit = self._next_commit, None
                try:
                    await self.db.commit()
                except Exception as exc:
                    waiter.set_exception(exc)
                except BaseException:
                    waiter.cancel()
                    raise
                else:
                    waiter.set_result(None)
        finally:
            self._committer = None

    async def ping(self) -> None:
        async with self.db.execute("SELECT 1") as cur:
            await cur.fetchone()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def purge(self) -> int:
        """Delete sessions past retention (and stale leases); returns how many sessions went."""
        cur = await self.db.execute("DELETE FROM sessions WHERE retain_until < ?", (self.clock.now(),))
        await self.db.execute("DELETE FROM leases WHERE until < ?", (time.time(),))
        await self.db.execute("DELETE FROM vendor_claims WHERE retain_until < ?", (self.clock.now(),))
        await self.db.execute("DELETE FROM markers WHERE until < ?", (time.time(),))
        await self._commit()
        self._next_purge = self.clock.now() + PURGE_EVERY
        return cur.rowcount

    async def _maybe_purge(self) -> None:
        if self.clock.now() >= self._next_purge:
            await self.purge()

    async def insert(self, session: AuthSession) -> AuthSession:
        await self._maybe_purge()
        for _attempt in range(2):
            cur = await self.db.execute(
                "INSERT INTO sessions (session_id, tenant, token, idempotency_key, state, version, expire_at,"
                " retain_until, data, create_time, subject_id, provider)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    session.session_id,
                    session.tenant,
                    session.token,
                    session.idempotency_key,
                    session.state.value,
                    session.version,
                    session.expire_time,
                    self.retain_until(session),
                    json.dumps(session.to_dict()),
                    session.create_time,
                    session.subject_id,
                    session.provider,
                ),
            )
            await self._commit()
            if cur.rowcount == 1:
                self.feed.publish(session)
                return session
            if session.idempotency_key:
                existing = await self.find_idempotent(session.tenant, session.idempotency_key)
                if existing is not None:
                    return existing
            await self.purge()  # the conflicting row is past retention but not yet deleted
        raise StoreConflict(session.session_id)

    async def _one(self, where: str, args: tuple[object, ...]) -> AuthSession | None:
        await self._maybe_purge()
        sql = f"SELECT data FROM sessions WHERE {where} AND retain_until >= ?"
        async with self.db.execute(sql, (*args, self.clock.now())) as cur:
            row = await cur.fetchone()
        return AuthSession.from_dict(json.loads(row[0])) if row else None

    async def get(self, session_id: str) -> AuthSession | None:
        return await self._one("session_id = ?", (session_id,))

    async def get_by_token(self, token: str) -> AuthSession | None:
        return await self._one("token = ? AND token != ''", (token,))

    async def find_idempotent(self, tenant: str, key: str) -> AuthSession | None:
        return await self._one("tenant = ? AND idempotency_key = ? AND idempotency_key != ''", (tenant, key))

    async def scan_tenant(self, tenant: str, flt: SessionFilter, after: Cursor | None) -> AsyncIterator[AuthSession]:
        """Batches from the ``sessions_list`` index, filtered in SQL as far as the columns allow."""
        await self._maybe_purge()
        where = ["tenant = ?", "retain_until >= ?"]
        args: list[object] = [tenant, self.clock.now()]
        if flt.subject_id:
            where.append("subject_id = ?")
            args.append(flt.subject_id)
        if flt.provider:
            where.append("provider = ?")
            args.append(flt.provider)
        states = flt.stored_states()
        if states:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(st.value for st in states)
        if flt.create_time_start is not None:
            where.append("create_time >= ?")
            args.append(flt.create_time_start)
        if flt.create_time_end is not None:
            where.append("create_time < ?")
            args.append(flt.create_time_end)
        sql = f"SELECT data FROM sessions WHERE {' AND '.join(where)}"
        order = f" ORDER BY create_time DESC, session_id DESC LIMIT {LIST_BATCH}"
        while True:
            keyset = " AND (create_time, session_id) < (?, ?)" if after is not None else ""
            async with self.db.execute(sql + keyset + order, (*args, *(after or ()))) as cur:
                rows = list(await cur.fetchall())
            for row in rows:
                session = AuthSession.from_dict(json.loads(row[0]))
                after = (session.create_time, session.session_id)
                yield session
            if len(rows) < LIST_BATCH:
                return

    async def shared_secret(self, name: str) -> bytes:
        await self.db.execute(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, secrets.token_bytes(32))
        )
        await self._commit()
        async with self.db.execute("SELECT value FROM secrets WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        return bytes(row[0])

    async def update(self, session: AuthSession) -> AuthSession:
        new = session.evolve(version=session.version + 1)
        cur = await self.db.execute(
            "UPDATE sessions SET token = ?, state = ?, version = ?, expire_at = ?, retain_until = ?, data = ?"
            " WHERE session_id = ? AND version = ? AND retain_until >= ?",
            (
                new.token,
                new.state.value,
                new.version,
                new.expire_time,
                self.retain_until(new),
                json.dumps(new.to_dict()),
                session.session_id,
                session.version,
                self.clock.now(),
            ),
        )
        await self._commit()
        if cur.rowcount == 0:
            raise StoreConflict(session.session_id)
        self.feed.publish(new)
        return new

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        now = time.time()  # leases bound real vendor calls: real time, shared by processes on this host
        cur = await self.db.execute(
            "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE"
            " SET owner = excluded.owner, until = excluded.until WHERE leases.until < ? OR leases.owner = ?",
            (name, owner, now + seconds, now, owner),
        )
        await self._commit()
        return bool(cur.rowcount)

    async def release_lease(self, name: str, owner: str) -> None:
        await self.db.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))
        await self._commit()

    async def claim_vendor_token(self, key: str, session_id: str, until: float) -> str:
        # One statement: the primary key makes the first writer win; a claim past retention may be retaken.
        await self.db.execute(
            "INSERT INTO vendor_claims (key, session_id, retain_until) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
            " SET session_id = excluded.session_id, retain_until = max(excluded.retain_until, retain_until)"
            " WHERE vendor_claims.retain_until < ? OR vendor_claims.session_id = excluded.session_id",
            (key, session_id, until, self.clock.now()),
        )
        await self._commit()
        owner = await self.vendor_token_owner(key)
        if owner is None:  # pragma: no cover - only if the claim expired between the two statements
            raise StoreConflict(session_id)
        return owner

    async def vendor_token_owner(self, key: str) -> str | None:
        sql = "SELECT session_id FROM vendor_claims WHERE key = ? AND retain_until >= ?"
        async with self.db.execute(sql, (key, self.clock.now())) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def put_marker(self, name: str, seconds: float) -> None:
        await self.db.execute(
            "INSERT INTO markers (name, until) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET until = excluded.until",
            (name, time.time() + seconds),
        )
        await self._commit()

    async def has_marker(self, name: str) -> bool:
        async with self.db.execute("SELECT 1 FROM markers WHERE name = ? AND until > ?", (name, time.time())) as cur:
            return await cur.fetchone() is not None
