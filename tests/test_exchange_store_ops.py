"""An ExchangeToken is three store operations around the vendor call (issue 11), on every store: the read that
checks the tenant, the lease taken together with the session's fresh read, and the token claim written together
with the result (and, where the store can, the lease's release). It was six: read, lease, read again, claim,
update, release."""

from __future__ import annotations

from pathlib import Path

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
