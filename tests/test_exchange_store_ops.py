"""An ExchangeToken is three store operations around the vendor call (issue 11), on every store: the read that
checks the tenant, the lease taken together with the session's fresh read, and the token claim written together
with the result (and, where the store can, the lease's release). It was six: read, lease, read again, claim,
update, release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.store import base

from .conftest import ServerFactory
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

FAST = "doubao-seedance-2-0-fast-260128"


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_an_exchange_is_three_store_operations(
    kind: str, make_realauth: ServerFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/x.db"}.get(kind) or request.getfixturevalue(
        "redis_url"
    )
    realauth = await make_realauth(store=url)
    session = await realauth.create(model=FAST)
    await realauth.vendor_redirect(session)  # the person passed; the landing is not followed: ExchangeToken fetches
    ops: list[str] = []
    base._store_observers.append(lambda backend, op, outcome, seconds: ops.append(op))
    try:
        resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
        first = list(ops)
        again = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    finally:
        base._store_observers.pop()
    assert resp.result.passed and resp.session.state == pb.AUTH_SESSION_STATE_EXCHANGED
    assert first == ["get", "acquire_lease_get", "record_result"]
    # Asking again: the stored result (the vendor is not asked), and the lease is released as usual.
    assert again.result.group_id == resp.result.group_id
    assert ops[len(first) :] == ["get", "acquire_lease_get", "release_lease"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_write_between_the_lease_read_and_the_result_is_retried_on_a_fresh_read(
    kind: str, make_realauth: ServerFactory, tmp_path: Path
) -> None:
    """Another writer moves the session on just before the result is recorded (the combined write then conflicts):
    the token stays claimed by this session, the result is written on a fresh read, and it is written once."""
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/x.db"}[kind]
    realauth = await make_realauth(store=url)
    store = realauth.server.store
    session = await realauth.create(model=FAST)
    await realauth.vendor_redirect(session)
    real = store.record_result
    calls: list[int] = []

    async def interloper_first(key: str, written: Any, until: float, lease: Any = None) -> Any:
        calls.append(1)
        if len(calls) == 1:  # another replica's write lands first: the combined write must conflict
            stored = await store.get(written.session_id)
            assert stored is not None
            await store.update(stored.evolve(update_time=stored.update_time + 1))
        return await real(key, written, until, lease)

    before = await store.get(session.session_id)
    assert before is not None
    store.record_result = interloper_first  # type: ignore[method-assign]
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert resp.result.passed and resp.session.state == pb.AUTH_SESSION_STATE_EXCHANGED
    stored = await store.get(session.session_id)
    assert stored is not None and stored.state.value == "exchanged" and stored.result is not None
    assert calls == [1]  # the retry is a plain update on the fresh read: the claim is already this session's
    assert stored.version == before.version + 2  # the interloper's write, then the result's: once
    # The lease was released by the service (the combined write that would have released it did not happen).
    assert await store.acquire_lease(f"exchange:{session.session_id}", "someone-else", 5)
