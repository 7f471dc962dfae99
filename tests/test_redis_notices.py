"""Change notifications on Redis: every replica hears every write, and one whose session nobody in this process
watches is skipped on its head (the session id), without decoding the ~1 KiB record (issue 11). One that someone
watches is decoded and delivered as before; odd shapes fall back to decoding in full."""

from __future__ import annotations

import asyncio
import json

import pytest

from realauth_server.clock import Clock
from realauth_server.store import redis as redis_store
from realauth_server.store.redis import RedisStore, notified_session

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
