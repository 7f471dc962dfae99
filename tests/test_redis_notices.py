"""Per-command CPU of the Redis store (issue 11). Change notifications: every replica hears every write, and one
whose session nobody in this process watches is skipped on its head (the session id), without decoding the ~1 KiB
record; one that someone watches is decoded and delivered as before; odd shapes fall back to decoding in full.
Writes: the socket timeout without a task per command (:class:`TimedSend`), with redis-py's errors."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from realauth_server.clock import Clock
from realauth_server.store import redis as redis_store
from realauth_server.store.factory import unavailable_errors
from realauth_server.store.redis import RedisStore, TimedSend, notified_session

from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)
from .test_store_contract import make_session, opened


def test_the_session_id_is_read_off_the_notice_head() -> None:
    s = make_session(Clock())
    assert notified_session(json.dumps(s.to_dict()).encode()) == s.session_id
    # Anything else is left to json.loads: another key order, an escape, not bytes, not UTF-8, no closing quote.
    for odd in (b'{"tenant": "t", "session_id": "x"}', b'{"session_id": "a\\u0041"}', b'{"session_id": "\xff"}'):
        assert notified_session(odd) is None
    assert notified_session(b'{"session_id": "ses_1') is None
    assert notified_session('{"session_id": "x"}') is None


async def test_unwatched_notices_are_not_decoded_watched_ones_are(
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    writer = await opened(RedisStore(redis_url))
    reader = await opened(RedisStore(redis_url))
    writer.use_clock(clock)
    decoded: list[str] = []
    real_loads = json.loads

    def counting_loads(data: str | bytes) -> object:
        got = real_loads(data)
        if isinstance(got, dict) and "session_id" in got:
            decoded.append(got["session_id"])
        return got

    monkeypatch.setattr(redis_store.json, "loads", counting_loads)
    try:
        unwatched = await writer.insert(make_session(clock))
        watched = make_session(clock)
        with reader.feed.listen(watched.session_id) as queue:
            await writer.insert(watched)
            got = await asyncio.wait_for(queue.get(), 5)
        assert got == watched
        await writer.insert(make_session(clock))  # after the watcher left: skipped again
        await asyncio.sleep(0.2)
        assert unwatched.session_id not in decoded
        assert decoded.count(watched.session_id) >= 1
        assert len(set(decoded)) == 1  # the writer's own listener skipped all three too (nobody watches there)
    finally:
        await writer.close()
        await reader.close()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12's wait_for makes no task; the mixin steps aside")
async def test_a_command_write_makes_no_task_of_its_own(
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py wraps each write in ``asyncio.wait_for`` (a task per command on 3.11); the store's connections put
    the same socket timeout on it with ``asyncio.timeout``."""
    import redis.asyncio.connection as redis_connection

    store = await opened(RedisStore(redis_url))
    waits: list[object] = []
    real_wait_for = asyncio.wait_for

    async def counting_wait_for(aw: Any, limit: float | None) -> Any:
        waits.append(aw)
        return await real_wait_for(aw, limit)

    monkeypatch.setattr(redis_connection.asyncio, "wait_for", counting_wait_for)
    try:
        s = await store.insert(make_session(Clock()))
        assert await store.get(s.session_id) == s
        assert waits == []
    finally:
        await store.close()


async def test_a_write_past_the_socket_timeout_is_a_redis_timeout(redis_url: str) -> None:  # noqa: F811
    """The timeout path of :class:`TimedSend` is redis-py's: ``TimeoutError`` (UNAVAILABLE), connection dropped."""
    store = await opened(RedisStore(redis_url))
    pool = store.r.connection_pool  # type: ignore[attr-defined]
    conn = await pool.get_connection()
    try:
        assert isinstance(conn, TimedSend)
        conn.socket_timeout = 0.05

        async def stuck(command: object) -> None:
            await asyncio.sleep(10)

        conn._send_packed_command = stuck
        with pytest.raises(RedisTimeoutError, match="Timeout writing to socket"):
            await conn.send_packed_command(conn.pack_command("PING"))
        assert not conn.is_connected
        assert isinstance(RedisTimeoutError("x"), unavailable_errors())
    finally:
        await pool.release(conn)
        await store.close()
