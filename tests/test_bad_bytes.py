"""Bad bytes and big values get INVALID_ARGUMENT with the normal details, never UNKNOWN or RESOURCE_EXHAUSTED.

Requests are sent as raw bytes over the real gRPC port (an identity serializer), so the server's own
deserialization is what is tested.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from realauth.v1 import realauth_pb2 as pb
from realauth_server import errors as E
from realauth_server.logs import JsonFormatter

from .conftest import Harness, ServerFactory
from .errors_util import Decoded, decode

SERVICE = "/realauth.v1.RealAuthService/"
CB = "https://caller.example/done"
KEY = "caller-key-for-bad-bytes-0001"

UNARY = ("CreateAuthSession", "ExchangeToken", "GetAuthSession", "ListProviders")
ALL_METHODS = (*UNARY, "WatchAuthSession")

#: Bodies no request type decodes: a length-delimited field cut short, and a run of 0xff (a varint that never ends).
TRUNCATED = b"\x0a\x05ab"
GARBAGE = b"\xff" * 12
#: Field 1 (a string in every request type that has one) holding invalid UTF-8.
BAD_UTF8 = b"\x0a\x02\xc3\x28"
#: CreateAuthSessionRequest.seedance.project_name holding invalid UTF-8 (a nested string field).
NESTED_BAD_UTF8 = b"\x52\x04\x0a\x02\xc3\x28"


async def call_raw(h: Harness, method: str, body: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    """Send ``body`` as the request bytes of ``method``; returns the raw response bytes (the first, for a stream)."""
    if method == "WatchAuthSession":
        stream = h.channel.unary_stream(SERVICE + method, request_serializer=None, response_deserializer=None)
        call = stream(body, metadata=metadata, timeout=10)
        return await call.read()
    unary = h.channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)
    return await unary(body, metadata=metadata, timeout=10)


async def rejected(h: Harness, method: str, body: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> Decoded:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call_raw(h, method, body, metadata)
    return decode(err.value)


async def rpc_lines(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    """The call's "rpc" log lines. The server writes it just after the status is sent, so wait a moment for it."""
    for _ in range(100):
        found = [r for r in caplog.records if r.getMessage() == "rpc" and getattr(r, "request_id", "") == request_id]
        if found:
            await asyncio.sleep(0.05)  # a second line, if there were one, would come now
            return [r for r in caplog.records if r.getMessage() == "rpc" and getattr(r, "request_id", "") == request_id]
        await asyncio.sleep(0.02)
    return []


async def assert_serving(h: Harness) -> None:
    health = health_pb2_grpc.HealthStub(h.channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(service="realauth.v1.RealAuthService"))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


CASES = [(m, "truncated", TRUNCATED) for m in ALL_METHODS]
CASES += [(m, "garbage", GARBAGE) for m in ALL_METHODS]
CASES += [(m, "bad-utf8", BAD_UTF8) for m in ALL_METHODS if m != "ListProviders"]  # it has no string field
CASES += [("CreateAuthSession", "nested-bad-utf8", NESTED_BAD_UTF8)]


@pytest.mark.parametrize(("method", "kind", "body"), CASES, ids=[f"{m}-{k}" for m, k, _ in CASES])
async def test_undecodable_request_is_invalid_parameter(
    realauth: Harness, caplog: pytest.LogCaptureFixture, method: str, kind: str, body: bytes
) -> None:
    rid = f"bad-bytes-{method}-{kind}"
    d = await rejected(realauth, method, body, (("x-request-id", rid),))
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT, d.message
    assert d.reason == "InvalidParameter"
    assert d.fields == ["request"]
    assert f"could not be decoded as realauth.v1.{method}Request" in d.message
    if "utf8" in kind:
        assert "not valid UTF-8" in d.message
    for internal in ("DecodeError", "class", "Unexpected", "Traceback", "google.protobuf"):
        assert internal not in d.message
    assert d.metadata["request_id"] == rid
    assert d.response_metadata is not None
    assert d.response_metadata.request_id == rid and d.response_metadata.action == method
    assert d.response_metadata.error.code == "InvalidParameter"
    lines = await rpc_lines(caplog, rid)
    assert len(lines) == 1, "exactly one per-RPC log line"
    assert lines[0].__dict__["status"] == "INVALID_ARGUMENT" and lines[0].__dict__["error_code"] == "InvalidParameter"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no ERROR (traceback) for a bad request"
    await assert_serving(realauth)


async def test_undecodable_request_after_authentication(
    make_realauth: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Authentication still comes first; an authenticated bad request is logged with its tenant."""
    h = await make_realauth(f'[providers.seedance]\nsandbox = true\n[tenants.main]\nkeys = ["{KEY}"]\n')
    anonymous = await rejected(h, "GetAuthSession", GARBAGE, (("x-request-id", "bb-anon"),))
    assert anonymous.code == grpc.StatusCode.UNAUTHENTICATED
    d = await rejected(h, "GetAuthSession", GARBAGE, (("authorization", f"Bearer {KEY}"), ("x-request-id", "bb-auth")))
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.fields == ["request"]
    (line,) = await rpc_lines(caplog, "bb-auth")
    assert line.__dict__["tenant"] == "main"


async def test_well_formed_raw_request_still_works(realauth: Harness) -> None:
    """The tolerant deserializer decodes good bytes exactly as before."""
    body = pb.CreateAuthSessionRequest(callback_url=CB, locale="en").SerializeToString()
    resp = pb.CreateAuthSessionResponse.FromString(await call_raw(realauth, "CreateAuthSession", body))
    assert resp.session.session_id and resp.session.locale == "en"
    listed = pb.ListProvidersResponse.FromString(await call_raw(realauth, "ListProviders", b""))
    assert [p.name for p in listed.providers]
    first = await call_raw(
        realauth, "WatchAuthSession", pb.WatchAuthSessionRequest(session_id=resp.session.session_id).SerializeToString()
    )
    assert pb.WatchAuthSessionResponse.FromString(first).session.session_id == resp.session.session_id


# --- big values -------------------------------------------------------------------------------------------------


def assert_small(d: Decoded, field: str) -> None:
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT, d.message
    assert d.fields == [field]
    assert len(d.message) <= E.MAX_PUBLIC_MESSAGE
    assert d.response_metadata is not None and len(d.response_metadata.error.message) <= E.MAX_PUBLIC_MESSAGE


@pytest.mark.parametrize("field", ["provider", "model", "locale", "subject_id", "idempotency_key"])
@pytest.mark.parametrize("size", [6_000, 5_000_000])
async def test_huge_value_is_invalid_parameter_not_resource_exhausted(
    realauth: Harness, caplog: pytest.LogCaptureFixture, field: str, size: int
) -> None:
    rid = f"bb-huge-{field}-{size}"
    req = pb.CreateAuthSessionRequest(callback_url=CB, **{field: "x" * size})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.CreateAuthSession(req, metadata=(("x-request-id", rid),), timeout=20)
    d = decode(err.value)
    assert_small(d, field)
    assert "x" * (E.ECHO_LIMIT + 1) not in d.message
    (line,) = await rpc_lines(caplog, rid)
    assert len(JsonFormatter().format(line)) < 4096, "the RPC log line stays small"
    await assert_serving(realauth)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"provider": "p" * 100}, "provider"),  # unknown provider, under the length limit: quoted, cut
        ({"model": "m" * 100}, "model"),  # unknown model
    ],
    ids=["unknown-provider", "unknown-model"],
)
async def test_echoed_values_are_cut(realauth: Harness, fields: dict[str, str], bad: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url=CB, **fields))
    d = decode(err.value)
    assert_small(d, bad)
    value = fields[bad]
    assert value[: E.ECHO_LIMIT] + E.ELLIPSIS in d.message, d.message
    assert value[: E.ECHO_LIMIT + 1] not in d.message


async def test_unknown_session_id_is_cut(realauth: Harness) -> None:
    sid = "s" * 128
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=sid))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.NOT_FOUND
    assert sid[: E.ECHO_LIMIT] + E.ELLIPSIS in d.message and sid[: E.ECHO_LIMIT + 1] not in d.message


def test_public_message_and_violation_are_bounded() -> None:
    """However long a message gets (a vendor's text, a description), what reaches the caller is bounded."""
    vendor = E.ProviderError("seedance: " + "v" * 100_000, vendor_code="X", vendor_request_id="r-1")
    assert len(vendor.public_message()) == E.MAX_PUBLIC_MESSAGE and vendor.public_message().endswith(E.ELLIPSIS)
    bad = E.InvalidParameter("provider_request", "d" * 100_000)
    assert len(bad.public_message()) <= E.MAX_PUBLIC_MESSAGE
    assert len(bad.violations[0].description) <= E.MAX_PUBLIC_MESSAGE
    assert E.echo("short") == "short" and E.echo("y" * 65) == "y" * 64 + E.ELLIPSIS
