"""Embedded SQLite store (``sqlite:///path``), the single-replica default: survives restarts.

Retention: every row carries ``retain_until`` (see retention.py); reads never return a row past
it, and expired rows are deleted at most once a minute, on access.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from ..domain import AuthSession
from ..outbox import WEBHOOK_RETENTION, DeliveryStatus, WebhookDelivery
from .base import Cursor, IdempotencyClaim, Recorded, SessionFilter, SessionStore, StoreConflict, idempotency_lease
from .retention import Retention

log = logging.getLogger("realauth.store")

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
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id  TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created      REAL NOT NULL,
    next_at      REAL NOT NULL,
    give_up_at   REAL NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    owner        TEXT NOT NULL,
    last_error   TEXT NOT NULL,
    last_status  INTEGER NOT NULL,
    updated      REAL NOT NULL,
    delivered_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_due ON webhook_deliveries(next_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_tenant ON webhook_deliveries(tenant, created);
CREATE INDEX IF NOT EXISTS webhook_session ON webhook_deliveries(session_id);
CREATE TABLE IF NOT EXISTS changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    at         REAL NOT NULL DEFAULT (julianday('now'))
);
CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, window INTEGER NOT NULL, n INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS sessions_changed AFTER UPDATE ON sessions BEGIN
    INSERT INTO changes (session_id) VALUES (NEW.session_id);
END;
"""

#: Columns ListAuthSessions filters on, added to databases from before it and filled from each row's JSON.
LIST_COLUMNS = (
    ("create_time", "REAL NOT NULL DEFAULT 0", "json_extract(data, '$.create_time')"),
    ("subject_id", "TEXT NOT NULL DEFAULT ''", "coalesce(json_extract(data, '$.subject_id'), '')"),
    ("provider", "TEXT NOT NULL DEFAULT ''", "coalesce(json_extract(data, '$.provider'), '')"),
)
#: Rows a listing reads per query.
LIST_BATCH = 200

WEBHOOK_COLUMNS = (
    "delivery_id, event_id, tenant, endpoint, session_id, event_type, sequence, body, created, next_at, give_up_at,"
    " status, attempts, owner, last_error, last_status, updated, delivered_at"
)
_WEBHOOK_NAMES = [c.strip() for c in WEBHOOK_COLUMNS.split(",")]

#: Rows written before retention existed are kept this long past their expire time.
LEGACY_RETENTION = 3 * 86_400.0
PURGE_EVERY = 60.0
#: With ``follow_others`` (``--workers N``): how often the change log is read for other processes' writes (a watcher
#: here wakes within this of a write by a sibling worker), and how long change rows are kept.
FOLLOW_EVERY = 0.02
CHANGES_KEPT_SECONDS = 300.0
T = TypeVar("T")
#: Busy wait of the connection's thread for the file's write lock (a sibling worker's transaction), in ms.
BUSY_TIMEOUT_MS = 5000
#: SQLite's own auto-checkpoint is off on the store's connection (it would fsync inside a write, on the event loop):
#: every this many writes a passive checkpoint (``PRAGMA wal_checkpoint(PASSIVE)``) runs on a connection and thread
#: of its own. A passive checkpoint takes no write lock, so the writes go on meanwhile; run on the store's own
#: connection instead, every write behind it waited for its fsync (SQLite creates' p99 at half of saturation
#: 7.7–9.0 ms against 3.3–4.4 ms without, docs/performance.md).
CHECKPOINT_EVERY = 200
#: SQLite's primary result codes for a lock held elsewhere (``sqlite3.Error.sqlite_errorcode & 0xFF``).
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

#: Change rows read per poll; a process further behind catches up over the next polls (watchers also resync).
FOLLOW_BATCH = 5000


INSERT_SESSION = (
    "INSERT INTO sessions (session_id, tenant, token, idempotency_key, state, version, expire_at,"
    " retain_until, data, create_time, subject_id, provider)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
UPDATE_SESSION = (
    "UPDATE sessions SET token = ?, state = ?, version = ?, expire_at = ?, retain_until = ?, data = ?"
    " WHERE session_id = ? AND version = ? AND retain_until >= ?"
)
ACQUIRE_LEASE = (
    "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE"
    " SET owner = excluded.owner, until = excluded.until WHERE leases.until < ? OR leases.owner = ?"
)
RELEASE_LEASE = "DELETE FROM leases WHERE name = ? AND owner = ?"
#: The primary key makes the first writer win; a claim past retention may be retaken; the owner's re-claim only
#: lengthens it.
CLAIM_TOKEN = (
    "INSERT INTO vendor_claims (key, session_id, retain_until) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
    " SET session_id = excluded.session_id, retain_until = max(excluded.retain_until, retain_until)"
    " WHERE vendor_claims.retain_until < ? OR vendor_claims.session_id = excluded.session_id"
)
TOKEN_OWNER = "SELECT session_id FROM vendor_claims WHERE key = ? AND retain_until >= ?"
SELECT_SESSION = "SELECT data FROM sessions WHERE session_id = ? AND retain_until >= ?"
SELECT_IDEMPOTENT = (
    "SELECT data FROM sessions WHERE tenant = ? AND idempotency_key = ? AND idempotency_key != '' AND retain_until >= ?"
)
SELECT_STATE = "SELECT state FROM sessions WHERE session_id = ? AND version = ?"
INSERT_WEBHOOK = f"INSERT INTO webhook_deliveries ({WEBHOOK_COLUMNS}) VALUES ({', '.join('?' * len(_WEBHOOK_NAMES))})"


def _in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """On the connection's thread: ``work`` between ``BEGIN IMMEDIATE`` and ``COMMIT`` (rolled back if it raises)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = work(conn)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return out


class _Checkpointer:
    """A connection and a thread of their own that checkpoint the WAL (passive: never waiting for a lock), one at a
    time, while the store's connection goes on writing."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="realauth-checkpoint")
        self._conn: sqlite3.Connection | None = None
        self._running: asyncio.Future[None] | None = None
        #: Checkpoints run so far (what tests count).
        self.runs = 0

    def _checkpoint(self) -> None:  # on the checkpoint thread
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=0")
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.runs += 1

    def start(self) -> None:
        """Start a checkpoint unless one is still running (the next due one catches up)."""
        if self._running is not None and not self._running.done():
            return
        self._running = asyncio.get_running_loop().run_in_executor(self._pool, self._checkpoint)
        self._running.add_done_callback(_ignore_busy)

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
        if self._conn is not None:
            self._pool.submit(self._conn.close).result()
        self._pool.shutdown(wait=True)


def _ignore_busy(done: asyncio.Future[None]) -> None:
    """A checkpoint that could not run is retried at the next one due; only a failure other than a busy file is
    worth a line (the WAL then grows until one succeeds)."""
    if done.cancelled():
        return
    exc = done.exception()
    if exc is not None and not (isinstance(exc, sqlite3.Error) and _busy(exc)):
        log.warning("SQLite WAL checkpoint failed", extra={"error": type(exc).__name__})


def _busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _BUSY_CODES


class _Busy(Exception):
    """Another process holds the file's lock: what ran on the event loop was rolled back; run it on the thread."""


def _claim_token(conn: sqlite3.Connection, key: str, session_id: str, until: float, now: float) -> str | None:
    """Inside a transaction: claim ``key`` for ``session_id`` (first writer wins) and read who holds it now."""
    conn.execute(CLAIM_TOKEN, (key, session_id, until, now))
    row = conn.execute(TOKEN_OWNER, (key, now)).fetchone()
    return str(row[0]) if row else None


class SqliteStore(SessionStore):
    """One file, WAL mode: several processes may share it (the workers of ``--workers N``, on one host).

    Updates are logged by a trigger into ``changes``; with ``follow_others`` a task reads that log every
    :data:`FOLLOW_EVERY` seconds and publishes the changed sessions that watchers of this process are waiting for, so a
    landing served by one worker wakes a watcher on another at once.
    """

    def __init__(self, path: str, retention: Retention | None = None, *, follow_others: bool = False) -> None:
        super().__init__(retention)
        self.path = path
        self.follow_others = follow_others
        self._db: aiosqlite.Connection | None = None
        self._next_purge = 0.0
        #: One connection is shared by every coroutine: a write of several statements (a session and its webhook
        #: records) holds this so no other coroutine's commit lands in the middle of it.
        self._writing = asyncio.Lock()

        self._follower: asyncio.Task[None] | None = None
        #: Calls handed to the connection's thread, and those it has finished (counted on that thread): equal when
        #: the thread is idle, so the event loop may use the connection itself.
        self._handed = 0
        self._finished = 0
        self._since_checkpoint = 0
        self._checkpointer = _Checkpointer(path) if path != ":memory:" else None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore used before open()")
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every write is one explicit transaction run in one go (:meth:`_transaction`), so the file's
        # write lock is never held across an await (with Python's implicit BEGIN another worker's writes would wait
        # while this process's event loop runs other calls before its commit).
        # ``check_same_thread=False``: a write transaction may run on the event loop while the thread is idle
        # (:meth:`_transaction`); the two never use the connection at once.
        self._db = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        await self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: sibling workers open the file
        await self._wal()
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA wal_autocheckpoint=0")  # a checkpointer of its own: CHECKPOINT_EVERY
        self._count_hand_offs(self._db)
        await self._db.executescript(SCHEMA)
        await self._db.execute("BEGIN IMMEDIATE")  # one migrating process at a time; the others see it done
        try:
            async with self._db.execute("PRAGMA table_info(sessions)") as cur:
                columns = {row[1] for row in await cur.fetchall()}
            if "retain_until" not in columns:  # a database from before retention: migrate in place
                await self._db.execute("ALTER TABLE sessions ADD COLUMN retain_until REAL NOT NULL DEFAULT 0")
                await self._db.execute("UPDATE sessions SET retain_until = expire_at + ?", (LEGACY_RETENTION,))
            await self._db.execute("CREATE INDEX IF NOT EXISTS sessions_retain ON sessions(retain_until)")
            # Inside the same transaction as the read of the columns: a sibling worker opening the file at the
            # same moment sees them added, instead of adding them a second time.
            for name, decl, fill in LIST_COLUMNS:
                if name not in columns:
                    await self._db.execute(f"ALTER TABLE sessions ADD COLUMN {name} {decl}")
                    await self._db.execute(f"UPDATE sessions SET {name} = {fill}")
            # Keyset pagination per tenant, newest first: (tenant, create_time, session_id) walked backwards.
            await self._db.execute(
                "CREATE INDEX IF NOT EXISTS sessions_list ON sessions(tenant, create_time, session_id)"
            )
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise
        if self.follow_others:
            async with self._db.execute("SELECT coalesce(max(seq), 0) FROM changes") as cur:
                row = await cur.fetchone()
            self._seen = int(row[0]) if row else 0
            self._follower = asyncio.create_task(self._follow(), name="sqlite-follow")

    def _count_hand_offs(self, db: aiosqlite.Connection) -> None:
        """Wrap aiosqlite's ``Connection._execute`` (every call it hands to its thread, cursors' included) to count
        the calls handed over and, on the thread, those finished: a cancelled caller does not stop its call."""
        handoff = db._execute

        def finishing(fn: Callable[..., object], *args: object, **kwargs: object) -> object:
            try:
                return fn(*args, **kwargs)
            finally:
                self._finished += 1  # only the connection's thread writes this

        async def counted(fn: Callable[..., object], *args: object, **kwargs: object) -> object:
            self._handed += 1
            return await handoff(finishing, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

        db._execute = counted  # type: ignore[method-assign]

    async def _wal(self) -> None:
        """Switch the file to WAL once. Sibling workers open it at the same moment, and changing the journal mode
        needs the file to itself, for which SQLite's busy handler does not wait: retry briefly instead."""
        for attempt in range(50):
            async with self.db.execute("PRAGMA journal_mode") as cur:
                row = await cur.fetchone()
            if row is not None and str(row[0]).lower() == "wal":
                return
            try:
                await self.db.execute("PRAGMA journal_mode=WAL")
                return
            except aiosqlite.OperationalError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)

    async def _follow(self) -> None:
        """Publish sessions changed by any process (this one included: watchers skip versions they have sent)."""
        while True:
            await asyncio.sleep(FOLLOW_EVERY)
            try:
                await self.follow_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a busy or closing database: the next poll (or the watcher's resync) catches up
                continue

    async def follow_once(self) -> int:
        """Read the change log since the last read; returns how many watched sessions were published."""
        sql = "SELECT seq, session_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?"
        async with self.db.execute(sql, (self._seen, FOLLOW_BATCH)) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return 0
        self._seen = int(rows[-1][0])
        published = 0
        for session_id in dict.fromkeys(str(r[1]) for r in rows):
            if self.feed.listening(session_id):
                session = await self.get(session_id)
                if session is not None:
                    self.feed.publish(session)
                    published += 1
        return published

    async def ping(self) -> None:
        async with self.db.execute("SELECT 1") as cur:
            await cur.fetchone()

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
            self._follower = None
        if self._checkpointer is not None:
            await self._checkpointer.close()
            self._checkpointer = _Checkpointer(self.path)  # a store may be opened again
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def purge(self) -> int:
        """Delete sessions past retention (and stale leases); returns how many sessions went."""
        async with self._immediate():
            return await self._purge()

    async def _purge(self) -> int:
        cur = await self.db.execute("DELETE FROM sessions WHERE retain_until < ?", (self.clock.now(),))
        await self.db.execute("DELETE FROM leases WHERE until < ?", (time.time(),))
        await self.db.execute("DELETE FROM vendor_claims WHERE retain_until < ?", (self.clock.now(),))
        await self.db.execute("DELETE FROM markers WHERE until < ?", (time.time(),))
        await self.db.execute(
            "DELETE FROM webhook_deliveries WHERE status != 'pending' AND updated < ?",
            (self.clock.now() - WEBHOOK_RETENTION,),
        )
        await self.db.execute("DELETE FROM changes WHERE at < julianday('now') - ?", (CHANGES_KEPT_SECONDS / 86_400.0,))
        self._next_purge = self.clock.now() + PURGE_EVERY
        return cur.rowcount

    async def _maybe_purge(self) -> None:
        if self.clock.now() >= self._next_purge:
            await self.purge()

    @contextlib.asynccontextmanager
    async def _immediate(self) -> AsyncIterator[None]:
        """One write transaction that takes the file's write lock first (``BEGIN IMMEDIATE``).

        In WAL mode a statement that reads before it writes (an upsert, ``UPDATE … WHERE``) in a deferred
        transaction fails at once with "database is locked" when another connection (a sibling worker, another
        store object) committed in between: its snapshot is stale, and SQLite's busy handler does not wait for
        that. Taking the write lock first makes every writer wait its turn (``busy_timeout``) on a fresh snapshot.
        """
        async with self._writing:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self.db.rollback()
                raise
            await self.db.commit()

    async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, as :meth:`_immediate`), run whole in
        one go: on the event loop while the connection's thread is idle, else in one hand-off to that thread and
        back (instead of one per statement: three for a single-statement write, up to seven for a session update
        with its webhook records).

        ``work`` must only use the connection it is given. The ``_writing`` lock keeps it out of a multi-statement
        transaction another coroutine has open (:meth:`_immediate`), and serialises the writes of this process.
        """
        db = self.db
        async with self._writing:
            self._since_checkpoint += 1  # every write counts, on either path
            if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpointer is not None:
                self._since_checkpoint = 0
                self._checkpointer.start()
            if self._thread_idle:
                # Run it here: a hand-off to the thread and back costs more CPU (two wake-ups, the GIL passed twice)
                # than the transaction itself; synchronous=NORMAL has no fsync per commit, and checkpoints run on a
                # thread of their own.
                with contextlib.suppress(_Busy):  # the thread waits for the other process's lock, the loop not
                    return self._on_loop(lambda conn: _in_transaction(conn, work))
            # aiosqlite runs every call through Connection._execute (its worker-thread queue); this hands it a
            # whole transaction. Pinned by tests/test_sqlite_transactions.py.
            return await db._execute(_in_transaction, db._conn, work)  # type: ignore[no-untyped-call,no-any-return]

    async def _write(self, sql: str, args: Iterable[object]) -> int:
        """One statement in its own write transaction; returns its row count."""
        params = tuple(args)
        return await self._transaction(lambda conn: conn.execute(sql, params).rowcount)

    async def insert(self, session: AuthSession) -> AuthSession:
        await self._maybe_purge()
        for _attempt in range(2):
            rowcount = await self._write(
                INSERT_SESSION,
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
            if rowcount == 1:
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
        rows = await self._fetchall(sql, (*args, self.clock.now()))
        for row in rows:
            return AuthSession.from_dict(json.loads(row[0]))
        return None

    async def _fetchall(self, sql: str, args: tuple[object, ...]) -> Iterable[sqlite3.Row]:
        """A read's rows: on the event loop while the connection's thread is idle (a WAL read takes no lock), else
        one hand-off (``execute_fetchall``: no cursor round trips)."""
        if self._thread_idle:
            with contextlib.suppress(_Busy):
                return self._on_loop(lambda conn: conn.execute(sql, args).fetchall())
        return await self.db.execute_fetchall(sql, args)

    @property
    def _thread_idle(self) -> bool:
        """Nothing handed to the connection's thread is still running there: the event loop may use the connection."""
        return self._handed == self._finished

    def _on_loop(self, run: Callable[[sqlite3.Connection], T]) -> T:
        """``run`` on the event loop, never waiting for a lock (``busy_timeout`` 0): a lock held by another process
        rolls back what it began and raises :class:`_Busy`, for the caller to hand it to the thread instead."""
        conn = self.db._conn
        conn.execute("PRAGMA busy_timeout=0")
        try:
            return run(conn)
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.rollback()
            if _busy(exc):
                raise _Busy from None
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

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
        await self._write("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, secrets.token_bytes(32)))
        async with self.db.execute("SELECT value FROM secrets WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        return bytes(row[0])

    def _update_work(self, session: AuthSession, new: AuthSession) -> Callable[[sqlite3.Connection], tuple[int, bool]]:
        """The session row at its read version, and its webhook records when the state changes: (rows, written).

        Built on the event loop (the JSON, the records), run on the connection's thread inside a transaction.
        """
        records = [_webhook_row(r) for r in self.outbox_for(new)]
        params = (
            new.token,
            new.state.value,
            new.version,
            new.expire_time,
            self.retain_until(new),
            json.dumps(new.to_dict()),
            session.session_id,
            session.version,
            self.clock.now(),
        )
        key, version, state = session.session_id, session.version, new.state.value

        def work(conn: sqlite3.Connection) -> tuple[int, bool]:
            old_state = None
            if records:  # the state at one version never changes: read it, then update that version only
                row = conn.execute(SELECT_STATE, (key, version)).fetchone()
                old_state = row[0] if row else None
            rowcount = conn.execute(UPDATE_SESSION, params).rowcount
            written = bool(rowcount == 1 and records and old_state != state)
            if written:
                conn.executemany(INSERT_WEBHOOK, records)
            return rowcount, written

        return work

    def _updated(self, session: AuthSession, new: AuthSession, rows: int, written: bool) -> AuthSession:
        if rows == 0:
            raise StoreConflict(session.session_id)
        self.feed.publish(new)
        if written:
            self.enqueued()
        return new

    async def update(self, session: AuthSession) -> AuthSession:
        new = session.evolve(version=session.version + 1)
        # The session and its webhook records are one transaction, so a crash can never keep one without the other.
        rows, written = await self._transaction(self._update_work(session, new))
        return self._updated(session, new, rows, written)

    async def record_result(
        self, key: str, session: AuthSession, until: float, lease: tuple[str, str] | None = None
    ) -> Recorded:
        """The claim, the update (with its webhook records) and the lease release in one transaction."""
        new = session.evolve(version=session.version + 1)
        update = self._update_work(session, new)
        sid, now = session.session_id, self.clock.now()

        def work(conn: sqlite3.Connection) -> tuple[str | None, int, bool, bool]:
            owner = _claim_token(conn, key, sid, until, now)
            if owner != sid:
                return owner, 0, False, False
            rows, written = update(conn)
            released = False
            if rows and lease is not None:
                released = conn.execute(RELEASE_LEASE, lease).rowcount == 1
            return owner, rows, written, released

        owner, rows, written, released = await self._transaction(work)
        if owner is None:  # pragma: no cover - only if the claim expired between the two statements
            raise StoreConflict(sid)
        if owner != sid:
            return Recorded(owner, None)
        return Recorded(owner, self._updated(session, new, rows, written), released=released)

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        now = time.time()  # leases bound real vendor calls: real time, shared by processes on this host
        return bool(await self._write(ACQUIRE_LEASE, (name, owner, now + seconds, now, owner)))

    async def acquire_lease_get(
        self, name: str, owner: str, seconds: float, session_id: str
    ) -> tuple[bool, AuthSession | None]:
        """The lease and the session's row in one transaction (one hand-off to the connection's thread)."""
        await self._maybe_purge()
        now = time.time()
        lease = (name, owner, now + seconds, now, owner)
        read = (session_id, self.clock.now())

        def work(conn: sqlite3.Connection) -> tuple[bool, str | None]:
            if not conn.execute(ACQUIRE_LEASE, lease).rowcount:
                return False, None
            row = conn.execute(SELECT_SESSION, read).fetchone()
            return True, (str(row[0]) if row else None)

        taken, data = await self._transaction(work)
        return taken, AuthSession.from_dict(json.loads(data)) if data else None

    async def claim_idempotency(self, tenant: str, key: str, owner: str, seconds: float) -> IdempotencyClaim:
        """The look-up and the reservation in one transaction (one hand-off instead of three operations)."""
        if not key:
            return await super().claim_idempotency(tenant, key, owner, seconds)
        await self._maybe_purge()
        now = time.time()
        find = (tenant, key, self.clock.now())
        lease = (idempotency_lease(tenant, key), owner, now + seconds, now, owner)

        def work(conn: sqlite3.Connection) -> tuple[bool, str | None]:
            row = conn.execute(SELECT_IDEMPOTENT, find).fetchone()
            if row:
                return False, str(row[0])
            return bool(conn.execute(ACQUIRE_LEASE, lease).rowcount), None

        claimed, data = await self._transaction(work)
        if data is not None:
            return IdempotencyClaim(session=AuthSession.from_dict(json.loads(data)))
        return IdempotencyClaim(claimed=claimed)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._write(RELEASE_LEASE, (name, owner))

    async def claim_vendor_token(self, key: str, session_id: str, until: float) -> str:
        now = self.clock.now()

        owner = await self._transaction(lambda conn: _claim_token(conn, key, session_id, until, now))
        if owner is None:  # pragma: no cover - only if the claim expired between the two statements
            raise StoreConflict(session_id)
        return owner

    async def vendor_token_owner(self, key: str) -> str | None:
        rows = await self._fetchall(TOKEN_OWNER, (key, self.clock.now()))
        for row in rows:
            return str(row[0])
        return None

    async def count_hit(self, key: str, window_seconds: float) -> tuple[int, float]:
        """Alone on the file: counted in process. Shared with sibling workers: one counter row per key in the file,
        so a tenant's limit holds for all the workers together, not for each."""
        if not self.follow_others:
            return await super().count_hit(key, window_seconds)
        now = time.time()
        index = int(now // window_seconds)
        sql = (
            "INSERT INTO hits (key, window, n) VALUES (?, ?, 1) ON CONFLICT(key) DO UPDATE"
            " SET n = CASE WHEN hits.window = excluded.window THEN hits.n + 1 ELSE 1 END, window = excluded.window"
            " RETURNING n"
        )
        async with self._immediate(), self.db.execute(sql, (key, index)) as cur:
            row = await cur.fetchone()
        return (int(row[0]) if row else 1), (index + 1) * window_seconds - now

    async def put_marker(self, name: str, seconds: float) -> None:
        await self._write(
            "INSERT INTO markers (name, until) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET until = excluded.until",
            (name, time.time() + seconds),
        )

    async def has_marker(self, name: str) -> bool:
        async with self.db.execute("SELECT 1 FROM markers WHERE name = ? AND until > ?", (name, time.time())) as cur:
            return await cur.fetchone() is not None

    # --- webhook outbox ---------------------------------------------------------------------------

    async def claim_webhooks(self, owner: str, limit: int, lease: float) -> list[WebhookDelivery]:
        now = self.clock.now()
        # One statement: replicas sharing this file (one host) never claim one record twice.
        async with self._immediate():
            cur = await self.db.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, owner = ?, next_at = ?, updated = ?"
                " WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries WHERE status = 'pending'"
                f" AND next_at <= ? ORDER BY next_at LIMIT ?) RETURNING {WEBHOOK_COLUMNS}",
                (owner, now + lease, now, now, limit),
            )
            rows = await cur.fetchall()
            await cur.close()
        return sorted((_webhook(r) for r in rows), key=lambda d: d.created)

    async def finish_webhook(
        self,
        claimed: WebhookDelivery,
        status: DeliveryStatus,
        next_at: float,
        last_error: str,
        last_status: int,
    ) -> bool:
        now = self.clock.now()
        delivered = now if status is DeliveryStatus.DELIVERED else 0.0
        rowcount = await self._write(
            "UPDATE webhook_deliveries SET status = ?, next_at = ?, last_error = ?, last_status = ?, updated = ?,"
            " delivered_at = CASE WHEN ? > 0 THEN ? ELSE delivered_at END, owner = ''"
            " WHERE delivery_id = ? AND owner = ? AND owner != '' AND attempts = ?",
            (
                status.value,
                next_at,
                last_error,
                last_status,
                now,
                delivered,
                delivered,
                claimed.delivery_id,
                claimed.owner,
                claimed.attempts,
            ),
        )
        return rowcount == 1

    async def get_webhook(self, delivery_id: str) -> WebhookDelivery | None:
        sql = f"SELECT {WEBHOOK_COLUMNS} FROM webhook_deliveries WHERE delivery_id = ?"
        async with self.db.execute(sql, (delivery_id,)) as cur:
            row = await cur.fetchone()
        return _webhook(row) if row else None

    async def list_webhooks(
        self, tenant: str, session_id: str, status: DeliveryStatus | None, offset: int, limit: int
    ) -> tuple[list[WebhookDelivery], int | None]:
        where, args = ["tenant = ?"], [tenant]
        if session_id:
            where.append("session_id = ?")
            args.append(session_id)
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        sql = (
            f"SELECT {WEBHOOK_COLUMNS} FROM webhook_deliveries WHERE {' AND '.join(where)}"
            " ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?"
        )
        async with self.db.execute(sql, (*args, limit + 1, offset)) as cur:
            rows = list(await cur.fetchall())
        more = len(rows) > limit
        return [_webhook(r) for r in rows[:limit]], (offset + limit if more else None)

    async def redeliver_webhook(self, delivery_id: str, give_up_at: float) -> WebhookDelivery | None:
        now = self.clock.now()
        rowcount = await self._write(
            "UPDATE webhook_deliveries SET status = 'pending', next_at = ?, owner = '', give_up_at = ?, updated = ?"
            " WHERE delivery_id = ?",
            (now, give_up_at, now, delivery_id),
        )
        if rowcount:
            self.enqueued()
        return await self.get_webhook(delivery_id) if rowcount else None

    async def pending_webhooks(self) -> int:
        async with self.db.execute("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0


def _webhook_row(d: WebhookDelivery) -> tuple[object, ...]:
    values = d.to_dict()
    return tuple(values[name] for name in _WEBHOOK_NAMES)


def _webhook(row: Iterable[object]) -> WebhookDelivery:
    return WebhookDelivery.from_dict(dict(zip(_WEBHOOK_NAMES, row, strict=True)))
