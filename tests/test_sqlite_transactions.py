"""SQLite: a write transaction is one hand-off to aiosqlite's thread (not one per statement), and stays one
transaction: all or nothing, and ``BEGIN IMMEDIATE`` so a second connection on the file waits its turn."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from realauth_server.clock import Clock
from realauth_server.domain import SessionState, VerificationResult
from realauth_server.store import sqlite as sqlite_store
from realauth_server.store.base import vendor_token_key
from realauth_server.store.sqlite import SqliteStore

from .test_store_contract import _outbox_for_transitions, make_session


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    a, b = SqliteStore(str(tmp_path / "s.db")), SqliteStore(str(tmp_path / "s.db"))  # two workers on one file
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def count_hops(store: SqliteStore) -> list[int]:
    """Counts the calls handed to the connection's thread (aiosqlite's ``Connection._execute``)."""
    hops = [0]
    real = store.db._execute

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops[0] += 1
        return await real(fn, *args, **kwargs)

    store.db._execute = counted  # type: ignore[method-assign]
    return hops


async def test_each_exchange_write_is_one_transaction_on_the_loop(stores: tuple[SqliteStore, SqliteStore]) -> None:
    """With the connection's thread idle, a write transaction (and a session read) runs on the event loop: no
    hand-off at all; each write is still one transaction (the statements listed below)."""
    a, _ = stores
    clock = Clock()
    a.use_clock(clock)
    a.use_outbox(_outbox_for_transitions(clock))
    s = await a.insert(make_session(clock))
    await a.purge()  # not due again for a minute: the counts below are the operations' own
    hops = count_hops(a)
    name = f"exchange:{s.session_id}"
    taken, seen = await a.acquire_lease_get(name, "o", 5, s.session_id)
    assert taken and seen == s and hops[0] == 0
    result = VerificationResult(passed=True, complete_time=clock.now())
    key = vendor_token_key("seedance", "tok")
    recorded = await a.record_result(key, s.evolve(state=SessionState.EXCHANGED, result=result), 1e12, (name, "o"))
    assert recorded.released and hops[0] == 0  # claim, owner read, state read, update, webhook row, release
    assert await a.get(s.session_id) == recorded.session and hops[0] == 0
    s2 = await a.insert(make_session(clock))
    await a.update(s2.evolve(state=SessionState.COMPLETED))
    assert await a.vendor_token_owner(key) == s.session_id and hops[0] == 0


async def test_a_write_goes_to_the_thread_while_it_is_busy(stores: tuple[SqliteStore, SqliteStore]) -> None:
    """The loop never uses the connection while the thread does: a write or read issued while a call is in flight
    on the thread is handed to the thread (behind that call) instead."""
    a, _ = stores
    clock = Clock()
    s = await a.insert(make_session(clock))
    await a.purge()
    hops = count_hops(a)
    pinging = asyncio.ensure_future(a.db.execute_fetchall("SELECT 1"))  # one call on the thread
    await asyncio.sleep(0)  # handed over
    assert hops[0] == 1 and a._handed != a._finished
    updated = await a.update(s.evolve(state=SessionState.COMPLETED))
    assert hops[0] == 2
    await pinging
    pinging = asyncio.ensure_future(a.db.execute_fetchall("SELECT 1"))
    await asyncio.sleep(0)
    assert await a.get(s.session_id) == updated and hops[0] == 4
    await pinging


async def test_a_locked_file_waits_on_the_thread_not_the_loop(stores: tuple[SqliteStore, SqliteStore]) -> None:
    """A sibling worker holding the file's write lock: the write waits for it on the connection's thread
    (busy_timeout), and the event loop keeps serving meanwhile; the write lands once the lock is released."""
    a, b = stores
    clock = Clock()
    s = await a.insert(make_session(clock))
    async with b._immediate():  # b's transaction holds the write lock
        writing = asyncio.ensure_future(a.update(s.evolve(state=SessionState.COMPLETED)))
        started = time.monotonic()
        await asyncio.sleep(0.05)
        assert time.monotonic() - started < 1.0  # the loop was not blocked by the wait
        assert not writing.done()
    updated = await asyncio.wait_for(writing, 5)
    assert updated.version == s.version + 1 and await b.get(s.session_id) == updated


async def test_the_wal_is_checkpointed_on_a_thread_of_its_own_while_writes_go_on(
    stores: tuple[SqliteStore, SqliteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's auto-checkpoint is off (it would fsync inside a write, on the event loop); every CHECKPOINT_EVERY
    writes a passive checkpoint runs on a connection and thread of its own, so no write is handed to the store's
    thread to wait behind it (that made SQLite creates' p99 at half of saturation 2x worse)."""
    a, _ = stores
    clock = Clock()
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 5)
    await a.purge()
    hops = count_hops(a)
    checkpointer = a._checkpointer
    assert checkpointer is not None
    for _ in range(12):  # checkpoints due at the 5th and the 10th write
        await a.insert(make_session(clock))
        await asyncio.sleep(0.02)  # let a started checkpoint finish before the next one is due
    assert checkpointer.runs == 2
    assert hops[0] == 0  # every write ran on the loop: none waited on the store's thread for a checkpoint
    frames = await a.db.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
    busy, logged, done = next(iter(frames))
    assert busy == 0 and logged >= done >= 0
    assert await a.get((await a.insert(make_session(clock))).session_id) is not None


async def test_a_failing_transaction_writes_nothing(stores: tuple[SqliteStore, SqliteStore]) -> None:
    a, b = stores
    clock = Clock()
    s = await a.insert(make_session(clock))

    def half(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE sessions SET state = 'exchanged' WHERE session_id = ?", (s.session_id,))
        raise sqlite3.IntegrityError("boom")

    with pytest.raises(sqlite3.IntegrityError):
        await a._transaction(half)
    assert await b.get(s.session_id) == s
    await a.update(s.evolve(state=SessionState.COMPLETED))  # the connection is usable: no transaction left open


async def test_writers_on_one_file_wait_their_turn(stores: tuple[SqliteStore, SqliteStore]) -> None:
    """Many concurrent combined writes from two connections (two workers): none fails with "database is locked",
    and each token is claimed by exactly one session."""
    a, b = stores
    clock = Clock()
    sessions = [await a.insert(make_session(clock)) for _ in range(20)]
    result = VerificationResult(passed=True, complete_time=clock.now())
    keys = [vendor_token_key("seedance", f"tok-{i % 5}") for i in range(20)]
    got = await asyncio.gather(
        *(
            (a if i % 2 else b).record_result(keys[i], s.evolve(state=SessionState.EXCHANGED, result=result), 1e12)
            for i, s in enumerate(sessions)
        )
    )
    assert sum(1 for r in got if r.session is not None) == 5  # one winner per token
    for key in set(keys):
        owners = {r.owner for r, k in zip(got, keys, strict=True) if k == key}
        assert len(owners) == 1 and await a.vendor_token_owner(key) in owners


async def test_an_idempotency_reservation_is_one_transaction(stores: tuple[SqliteStore, SqliteStore]) -> None:
    """The look-up and the lease in one transaction: no session can be stored between them (by a sibling worker
    either), so the second look-up of the three-step default is not needed."""
    a, b = stores
    clock = Clock()
    await a.purge()
    hops = count_hops(a)
    first = await a.claim_idempotency("t1", "order-1", "claim-a", 10)
    assert first.claimed and hops[0] == 0  # on the loop: the thread was idle
    assert not (await b.claim_idempotency("t1", "order-1", "claim-b", 10)).claimed  # reserved by another worker
    assert (await a.claim_idempotency("t1", "order-1", "claim-a", 10)).claimed  # its owner again
    s = await a.insert(make_session(clock, idempotency_key="order-1"))
    done = await b.claim_idempotency("t1", "order-1", "claim-b", 10)
    assert not done.claimed and done.session == s
