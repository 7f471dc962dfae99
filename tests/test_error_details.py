"""Every RPC's errors decode on the client: google.rpc.Status details and the ResponseMetadata trailer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.emulators.base import FaultPlan
from realauth_server.vendors.seedance.adapter import SANDBOX_API_KEY

from .conftest import Harness, ServerFactory
from .errors_util import Decoded, decode

KEY = "caller-key-for-error-tests-0001"
BAD_KEY_TENANT = "caller-key-bad-vendor-key-0002"
NO_PROVIDER_TENANT = "caller-key-no-provider-at-all-0003"
CB = "https://caller.example/done"


@pytest.fixture
async def h(make_realauth: ServerFactory, tmp_path: Path) -> Harness:
    return await make_realauth(
        f"""
[providers.seedance]
sandbox = true
[providers.fast]
kind = "seedance"
sandbox = true
models = ["doubao-seedance-2-0-fast-260128"]
[tenants.main]
keys = ["{KEY}"]
[tenants.limited]
keys = ["{BAD_KEY_TENANT}"]
providers = ["seedance"]
[tenants.limited.credentials.seedance]
api_key = "wrong-relay-key-{SANDBOX_API_KEY[:4]}"
[tenants.none]
keys = ["{NO_PROVIDER_TENANT}"]
providers = []
""",
        rpc_cap_seconds=5,
    )


def md(key: str = KEY, request_id: str = "") -> tuple[tuple[str, str], ...]:
    out = [("authorization", f"Bearer {key}")]
    if request_id:
        out.append(("x-request-id", request_id))
    return tuple(out)


async def expect(call: Awaitable[Any], code: grpc.StatusCode, reason: str, request_id: str) -> Decoded:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    d = decode(err.value)
    assert d.code == code, d.message
    assert d.reason == reason
    assert d.metadata["request_id"] == request_id
    assert d.response_metadata is not None
    assert d.response_metadata.request_id == request_id
    assert d.response_metadata.error.code == reason
    assert d.response_metadata.version == "v1" and d.response_metadata.service == "realauth"
    retriable = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert (d.retry_delay is not None) == (code in retriable), "RetryInfo exactly on retriable errors"
    return d


Case = Callable[[Harness, str], Awaitable[Any]]


async def _pending_session(h: Harness) -> pb.AuthSession:
    return (await h.stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url=CB), metadata=md())).session


CASES: list[tuple[str, grpc.StatusCode, str, Case]] = [
    # CreateAuthSession
    (
        "create-invalid",
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidParameter",
        lambda h, rid: h.stub.CreateAuthSession(pb.CreateAuthSessionRequest(), metadata=md(request_id=rid)),
    ),
    (
        "create-unauthenticated",
        grpc.StatusCode.UNAUTHENTICATED,
        "Unauthenticated",
        lambda h, rid: h.stub.CreateAuthSession(
            pb.CreateAuthSessionRequest(callback_url=CB), metadata=(("x-request-id", rid),)
        ),
    ),
    (
        "create-denied",
        grpc.StatusCode.PERMISSION_DENIED,
        "AccessDenied",
        lambda h, rid: h.stub.CreateAuthSession(
            pb.CreateAuthSessionRequest(callback_url=CB), metadata=md(NO_PROVIDER_TENANT, rid)
        ),
    ),
    (
        "create-provider-auth",
        grpc.StatusCode.FAILED_PRECONDITION,
        "ProviderAuthFailed",
        lambda h, rid: h.stub.CreateAuthSession(
            pb.CreateAuthSessionRequest(callback_url=CB), metadata=md(BAD_KEY_TENANT, rid)
        ),
    ),
    # GetAuthSession
    (
        "get-invalid",
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidParameter",
        lambda h, rid: h.stub.GetAuthSession(pb.GetAuthSessionRequest(), metadata=md(request_id=rid)),
    ),
    (
        "get-not-found",
        grpc.StatusCode.NOT_FOUND,
        "SessionNotFound",
        lambda h, rid: h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id="ses_x"), metadata=md(request_id=rid)),
    ),
    (
        "get-unauthenticated",
        grpc.StatusCode.UNAUTHENTICATED,
        "Unauthenticated",
        lambda h, rid: h.stub.GetAuthSession(
            pb.GetAuthSessionRequest(session_id="ses_x"), metadata=md("nope-nope-nope", rid)
        ),
    ),
    # ExchangeToken
    (
        "exchange-invalid",
        grpc.StatusCode.INVALID_ARGUMENT,
        "InvalidParameter",
        lambda h, rid: h.stub.ExchangeToken(pb.ExchangeTokenRequest(), metadata=md(request_id=rid)),
    ),
    (
        "exchange-token-not-found",
        grpc.StatusCode.NOT_FOUND,
        "TokenNotFound",
        lambda h, rid: h.stub.ExchangeToken(pb.ExchangeTokenRequest(token="nope"), metadata=md(request_id=rid)),
    ),
    (
        "exchange-unauthenticated",
        grpc.StatusCode.UNAUTHENTICATED,
        "Unauthenticated",
        lambda h, rid: h.stub.ExchangeToken(pb.ExchangeTokenRequest(token="x"), metadata=(("x-request-id", rid),)),
    ),
    # ListProviders
    (
        "list-unauthenticated",
        grpc.StatusCode.UNAUTHENTICATED,
        "Unauthenticated",
        lambda h, rid: h.stub.ListProviders(pb.ListProvidersRequest(), metadata=(("x-request-id", rid),)),
    ),
]


@pytest.mark.parametrize(("name", "code", "reason", "call"), CASES, ids=[c[0] for c in CASES])
async def test_error_details_decode(h: Harness, name: str, code: grpc.StatusCode, reason: str, call: Case) -> None:
    rid = f"req-{name}"
    d = await expect(call(h, rid), code, reason, rid)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert d.fields, "BadRequest field violations are attached to invalid input"
    if reason == "ProviderAuthFailed":
        assert d.metadata["provider"] == "seedance" and d.metadata["vendor_code"] == "InvalidAccessKey"
        assert d.metadata.get("vendor_request_id")


async def test_exchange_errors_from_the_vendor(h: Harness) -> None:
    emu = h.emulator("seedance")
    s = await _pending_session(h)
    d = await expect(
        h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=s.session_id), metadata=md(request_id="r-pending")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "VerificationPending",
        "r-pending",
    )
    assert d.metadata["vendor_code"] == "ValidateNotReady"
    emu.set_fault(FaultPlan(status=503))
    d = await expect(
        h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=s.session_id), metadata=md(request_id="r-unavail")),
        grpc.StatusCode.UNAVAILABLE,
        "ProviderUnavailable",
        "r-unavail",
    )
    assert d.metadata["vendor_code"] == "ServiceUnavailable"
    emu.set_fault(FaultPlan(rate_limit=True))
    await expect(
        h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=s.session_id), metadata=md(request_id="r-429")),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RateLimited",
        "r-429",
    )
    emu.set_fault(FaultPlan(hang=True))
    await expect(
        h.stub.ExchangeToken(
            pb.ExchangeTokenRequest(session_id=s.session_id), metadata=md(request_id="r-slow"), timeout=30
        ),
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "ProviderTimeout",
        "r-slow",
    )
    emu.set_fault(FaultPlan(malformed=True))
    d = await expect(
        h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=s.session_id), metadata=md(request_id="r-bad")),
        grpc.StatusCode.UNAVAILABLE,
        "ProviderError",
        "r-bad",
    )
    emu.set_fault(FaultPlan(reset=True))
    await expect(
        h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=s.session_id), metadata=md(request_id="r-reset")),
        grpc.StatusCode.UNAVAILABLE,
        "ProviderUnavailable",
        "r-reset",
    )
    emu.set_fault(None)
    h.clock.advance(121)
    await expect(
        h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=s.session_id), metadata=md(request_id="r-late")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "TokenExpired",
        "r-late",
    )


async def test_unknown_exceptions_become_internal_with_only_the_request_id(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = h.server.providers["seedance"]

    async def boom(params: object) -> object:
        raise RuntimeError("kaboom: token=supersecret-internal-value")

    monkeypatch.setattr(provider, "create_session", boom)
    d = await expect(
        h.stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url=CB), metadata=md(request_id="r-boom")),
        grpc.StatusCode.INTERNAL,
        "InternalError",
        "r-boom",
    )
    assert "r-boom" in d.message
    assert "kaboom" not in d.message and "supersecret" not in d.message and "Traceback" not in d.message


async def test_request_id_set_in_the_interceptor_reaches_the_handler_and_the_caller(h: Harness) -> None:
    call = h.stub.ListProviders(pb.ListProvidersRequest(), metadata=md(request_id="caller-chosen-id-1"))
    resp = await call
    assert resp.response_metadata.request_id == "caller-chosen-id-1"
    assert ("x-request-id", "caller-chosen-id-1") in tuple(await call.initial_metadata())
    generated = await h.stub.ListProviders(pb.ListProvidersRequest(), metadata=md())
    assert len(generated.response_metadata.request_id) == 32
    assert generated.response_metadata.action == "ListProviders"
    bad = await h.stub.ListProviders(pb.ListProvidersRequest(), metadata=md(request_id="bad id with spaces"))
    assert bad.response_metadata.request_id != "bad id with spaces"
