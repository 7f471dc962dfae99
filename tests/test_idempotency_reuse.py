"""Honest idempotency: a key is bound to its parameters, and a create whose outcome is unknown is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.emulators.base import FaultPlan
from realauth_server.store.base import unknown_outcome_marker

from .conftest import Harness, ServerFactory
from .errors_util import decode
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)
from .test_store_idempotency import CREATE, creates, store_url

MODEL = "doubao-seedance-2-0-260128"
FAST = "doubao-seedance-2-0-fast-260128"
BASE: dict[str, Any] = {
    "provider": "seedance",
    "callback_url": "https://caller.example/done",
    "subject_id": "user-1",
    "locale": "en",
    "model": MODEL,
}
#: One changed parameter each, named as the error must name it.
CHANGES: dict[str, dict[str, Any]] = {
    "provider": {"provider": ""},  # routed by model to the same instance: still another request
    "callback_url": {"callback_url": "https://caller.example/other"},
    "subject_id": {"subject_id": "user-2"},
    "locale": {"locale": "zh"},
    "model": {"model": FAST},
    "options": {"seedance": pb.SeedanceOptions()},  # the options oneof set (even empty) is another request
}


async def create(h: Harness, key: str, **changes: Any) -> pb.AuthSession:
    fields = {**BASE, **changes, "idempotency_key": key}
    return await h.create(**{k: v for k, v in fields.items() if v is not None})


async def metric(h: Harness, event: str) -> float:
    text = (await h.http.get(f"{h.http_url}/metrics")).text
    prefix = f'realauth_idempotency_events_total{{event="{event}"}}'
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
async def test_a_reused_key_with_other_parameters_is_refused_naming_them(
    backend: str, make_realauth: ServerFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    h = await make_realauth(store=store_url(backend, tmp_path, request))
    for field, change in CHANGES.items():
        key = f"order-{backend}-{field}"
        first = await create(h, key)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create(h, key, **change)
        d = decode(err.value)
        assert (d.code, d.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "IdempotencyKeyReused"), field
        assert d.fields == [field] and field in d.message
        # The same parameters still get the earlier session, and the vendor was asked once per key.
        assert (await create(h, key)).session_id == first.session_id
    assert creates(h) == len(CHANGES)
    # Two differences are both named.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(h, "order-" + backend + "-callback_url", subject_id="x", locale="zh")
    assert decode(err.value).fields == ["subject_id", "locale"]


async def test_reuse_is_refused_across_replicas(
    make_realauth: ServerFactory,
    redis_url: str,  # noqa: F811
) -> None:
    a = await make_realauth(store=redis_url)
    b = await make_realauth(store=redis_url)
    first = await create(a, "shared-1")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(b, "shared-1", callback_url="https://caller.example/elsewhere")
    assert decode(err.value).reason == "IdempotencyKeyReused" and decode(err.value).fields == ["callback_url"]
    assert (await create(b, "shared-1")).session_id == first.session_id
    # Concurrent duplicates on both replicas, half with another subject: one vendor call, the others refused.
    outcomes = await asyncio.gather(
        *(create(h, "shared-2", subject_id=s) for s in ("u-1", "u-2") for h in (a, b) for _ in range(5)),
        return_exceptions=True,
    )
    made = {o.session_id for o in outcomes if isinstance(o, pb.AuthSession)}
    refusals = [decode(o).reason for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(made) == 1 and refusals == ["IdempotencyKeyReused"] * 10
    assert creates(a) + creates(b) == 2


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
async def test_a_retry_after_an_unknown_outcome_is_deliberate_and_counted(
    backend: str, make_realauth: ServerFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The vendor answers after realauth gave up; the retry calls it again, flagged in the store and metrics."""
    h = await make_realauth(store=store_url(backend, tmp_path, request))
    emu = h.emulator("seedance")
    n = 10
    unknown0, retried0 = await metric(h, "outcome_unknown"), await metric(h, "retry_after_unknown")
    emu.set_fault(FaultPlan(latency=2.0, path="auth/session"))
    keys = [f"slow-{backend}-{i}" for i in range(n)]
    reqs = [pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", idempotency_key=k) for k in keys]
    gave_up = await asyncio.gather(*(h.stub.CreateAuthSession(r, timeout=0.5) for r in reqs), return_exceptions=True)
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in gave_up)
    assert {o.code() for o in gave_up if isinstance(o, grpc.aio.AioRpcError)} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    for k in keys:  # recorded for every key (the handler may finish just after the caller's deadline)
        for _ in range(50):
            if await h.server.store.has_marker(unknown_outcome_marker("sandbox", k)):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"no unknown-outcome record for {k}")
    emu.set_fault(None)
    retried = await asyncio.gather(*(h.stub.CreateAuthSession(r, timeout=10) for r in reqs))
    assert emu.stats.by_action[CREATE] == 2 * n  # the documented guarantee: one more vendor session per such key
    assert await metric(h, "outcome_unknown") - unknown0 == n
    assert await metric(h, "retry_after_unknown") - retried0 == n
    for r in retried:
        stored = await h.server.store.get(r.session.session_id)
        assert stored is not None and stored.vendor_data.get("retry_after_unknown_outcome") == "true"
    # Once a session exists for the key, further retries are plain replays: no vendor call.
    again = await h.stub.CreateAuthSession(reqs[0], timeout=10)
    assert again.session.session_id == retried[0].session.session_id
    assert emu.stats.by_action[CREATE] == 2 * n


async def test_a_session_stored_before_fingerprints_is_still_replayed(make_realauth: ServerFactory) -> None:
    """Rows written by an older realauth have no digests: they are replayed as before, never refused."""
    h = await make_realauth()
    first = await create(h, "legacy-1")
    stored = await h.server.store.get(first.session_id)
    assert stored is not None and stored.fingerprint
    await h.server.store.update(stored.evolve(fingerprint={}))
    again = await create(h, "legacy-1", subject_id="someone-else")
    assert again.session_id == first.session_id and creates(h) == 1
