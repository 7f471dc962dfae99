"""Fuzz every realauth.v1 request over the real gRPC port: no input ends in UNKNOWN, INTERNAL or a sick server.

Strategies are derived from the proto descriptors, so every field of every request message (nested option
messages, each arm of each oneof, repeated and optional fields) is covered, and a field added to the proto is
fuzzed without touching this file. Strings mix realistic values (so calls get past the first check and reach the
sandbox vendors over HTTP) with long, empty, unicode edge cases and NUL; a oneof arm may be one the chosen provider
does not take. Raw bytes (random, truncated or bit-flipped encodings) go to each method through an identity
serializer. Every call must end OK or with a documented code; INVALID_ARGUMENT must name a real field.
Bounded (a few hundred examples in all) so the suite stays fast.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realauth.v1 import realauth_pb2 as pb
from realauth_server import errors as E

from .conftest import Harness
from .errors_util import Decoded, decode

SERVICE = pb.DESCRIPTOR.services_by_name["RealAuthService"]
CB = "https://caller.example/done"

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Values the server or a vendor gives meaning to: with these a call gets past the first check.
MEANINGFUL = [
    *("seedance", "volcengine", "megvii", "tencent"),
    *("doubao-seedance-2-0-260128", "doubao-seedance-2-0-fast-260128"),
    *("zh", "en", "zh-Hant", "0", "1", "2", "3", "4", "meet", "still", "motion", "#FF0000", "true", "false"),
    CB,
    "http://127.0.0.1:1/x",
    "ses_000000000000000000000000",
]
EDGES = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\n\r",
    "\x7f",
    "\x1b[31mred",
    "\u0085",
    "\u2028\u2029",
    "\u200b\ufeff",
    "\u202eevil",
    "\U0001f600" * 40,
    "e\u0301" * 50,
    "\uffff",
    "\U0010ffff",
    "%00%ff",
    "../../etc/passwd",
    "'\"\\",
    "<script>",
    "https://caller.example/done\x00",
    "https://user:pw@[::1]:99999/x",
    "x" * 129,
    "x" * 6_000,
    "x" * 200_000,
]
#: Unicode without lone surrogates (which protobuf cannot encode: a client-side error, not a request).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
STRINGS = st.one_of(st.sampled_from(MEANINGFUL), st.sampled_from(EDGES), TEXT)
INT32_EDGES = [0, 1, -1, 2, 3, 30, 100, 2**31 - 1, -(2**31)]

#: Fields that gate everything behind them: always set, mostly to a realistic value, else to anything.
FIELD_HINTS: dict[str, st.SearchStrategy[Any]] = {
    "realauth.v1.CreateAuthSessionRequest.callback_url": st.one_of(st.just(CB), st.just(CB), STRINGS),
    "realauth.v1.CreateAuthSessionRequest.provider": st.one_of(
        st.sampled_from(["", "seedance", "volcengine", "megvii", "tencent"]), STRINGS
    ),
}


def _is_synthetic(field: FieldDescriptor) -> bool:
    """A proto3 ``optional`` field sits in a one-field oneof named ``_<field>``: not a real choice."""
    oneof = field.containing_oneof
    return oneof is not None and len(oneof.fields) == 1 and oneof.name == "_" + field.name


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    hint = FIELD_HINTS.get(field.full_name)
    if hint is not None:
        return hint
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"\x00" * 300_000, b"\xff\xd8\xff" * 1000]))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return st.one_of(st.sampled_from(INT32_EDGES), st.integers(-(2**31), 2**31 - 1))
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return st.integers(-(2**63), 2**63 - 1)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if t == FieldDescriptor.TYPE_FLOAT else 64)
    if t == FieldDescriptor.TYPE_ENUM:
        return st.integers(-1, 10)  # open enums: unknown numbers are legal on the wire
    raise AssertionError(f"no strategy for {field.full_name} (type {t})")


def value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    one = messages(field.message_type, depth + 1) if field.type == FieldDescriptor.TYPE_MESSAGE else scalar(field)
    return st.lists(one, max_size=4) if field.is_repeated else one


def _assign(msg: Message, field: FieldDescriptor, v: Any) -> None:
    if field.is_repeated:
        getattr(msg, field.name).extend(v)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(msg, field.name).CopyFrom(v)
    else:
        setattr(msg, field.name, v)


def messages(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of ``desc``: each plain field set or not, each real oneof with no arm or one arm."""
    cls = message_factory.GetMessageClass(desc)  # also well-known types (a Timestamp filter), nested messages
    plain = [f for f in desc.fields if f.containing_oneof is None or _is_synthetic(f)]
    oneofs = [o for o in desc.oneofs if not (len(o.fields) == 1 and o.name == "_" + o.fields[0].name)]

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        msg: Message = cls()
        for f in plain:
            if f.full_name in FIELD_HINTS or draw(st.booleans()):
                _assign(msg, f, draw(value(f, depth)))
        for o in oneofs:
            arm = draw(st.sampled_from([None, *o.fields]))
            if arm is not None:
                _assign(msg, arm, draw(value(arm, depth)))
        return msg

    return build()


def field_exists(request: Descriptor, path: str) -> bool:
    """``path`` ("volcengine.h5_config.theme_color", "key") names a field or oneof of the request message."""
    desc: Descriptor | None = request
    for i, part in enumerate(path.split(".")):
        if desc is None:
            return False
        if part in desc.fields_by_name:
            desc = desc.fields_by_name[part].message_type
        elif i == len(path.split(".")) - 1 and part in desc.oneofs_by_name:
            desc = None
        else:
            return False
    return True


#: Pseudo-fields that are documented: the whole request (it did not decode) and a vendor's rejection of it.
PSEUDO_FIELDS = {"request", "provider_request"}
#: Codes a call may legitimately end with besides OK and INVALID_ARGUMENT (docs/api.md, docs/errors.md).
ALLOWED: dict[str, set[grpc.StatusCode]] = {
    "CreateAuthSession": set(),
    "ExchangeToken": {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION},
    "GetAuthSession": {grpc.StatusCode.NOT_FOUND},
    "WatchAuthSession": {grpc.StatusCode.NOT_FOUND},
    "ListProviders": set(),
    "ListAuthSessions": set(),
    "CancelAuthSession": {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION},
    "ListWebhookDeliveries": set(),
    "RedeliverWebhook": {grpc.StatusCode.NOT_FOUND},
}


async def call(h: Harness, method: str, body: bytes) -> Decoded | None:
    """One call with raw request bytes; None when it succeeded, else its decoded error."""
    path = f"/{SERVICE.full_name}/{method}"
    try:
        if SERVICE.methods_by_name[method].server_streaming:
            stream = h.channel.unary_stream(path, request_serializer=None, response_deserializer=None)
            c = stream(body, timeout=10)
            await c.read()  # the first message, or the error; a live session's stream is then dropped
            c.cancel()
        else:
            unary = h.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            await unary(body, timeout=10)
    except grpc.aio.AioRpcError as err:
        return decode(err)
    return None


def check(method: str, d: Decoded | None) -> None:
    if d is None:
        return
    request = SERVICE.methods_by_name[method].input_type
    assert d.code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (method, d.code, d.message)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT or d.code in ALLOWED[method], (method, d.code, d.message)
    assert d.reason, f"{method}: {d.code.name} without ErrorInfo: {d.message}"
    assert len(d.message) <= E.MAX_PUBLIC_MESSAGE
    if d.code == grpc.StatusCode.INVALID_ARGUMENT:
        assert d.reason == "InvalidParameter"
        assert len(d.fields) == 1, d.message
        name = d.fields[0]
        assert name in PSEUDO_FIELDS or field_exists(request, name), f"{method}: {name!r} is no field: {d.message}"
        assert name in d.message


async def assert_serving(h: Harness) -> None:
    health = health_pb2_grpc.HealthStub(h.channel)
    for service in ("", SERVICE.full_name):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


_LIVE: dict[int, pb.AuthSession] = {}


async def live_session(h: Harness) -> pb.AuthSession:
    """One real pending session per server, so the session-keyed RPCs also see ids that exist."""
    if id(h) not in _LIVE:
        _LIVE[id(h)] = await h.create(callback_url=CB)
    return _LIVE[id(h)]


async def aimed(h: Harness, method: str, msg: Message, data: st.DataObject) -> Message:
    """Sometimes point a fuzzed request at something real: the provider its options arm is for, a live session."""
    if isinstance(msg, pb.CreateAuthSessionRequest):
        arm = msg.WhichOneof("options")
        if arm and data.draw(st.booleans(), label="provider matches options"):
            msg.provider = arm
    elif isinstance(msg, (pb.GetAuthSessionRequest, pb.WatchAuthSessionRequest, pb.CancelAuthSessionRequest)):
        if data.draw(st.booleans(), label="live session"):
            msg.session_id = (await live_session(h)).session_id
    elif isinstance(msg, pb.ExchangeTokenRequest):
        which = data.draw(st.sampled_from(["as drawn", "session_id", "token"]), label="live session")
        if which != "as drawn":
            setattr(msg, which, getattr(await live_session(h), which))
    return msg


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
@FUZZ
@given(data=st.data())
async def test_fuzz_request_messages(realauth: Harness, method: str, data: st.DataObject) -> None:
    request = SERVICE.methods_by_name[method].input_type
    msg = await aimed(realauth, method, data.draw(messages(request), label=request.name), data)
    check(method, await call(realauth, method, msg.SerializeToString()))
    await assert_serving(realauth)


OPTION_ARMS = [f.name for f in pb.CreateAuthSessionRequest.DESCRIPTOR.oneofs_by_name["options"].fields]


@pytest.mark.parametrize("arm", OPTION_ARMS)
@settings(FUZZ, max_examples=30)
@given(data=st.data())
async def test_fuzz_create_options(realauth: Harness, arm: str, data: st.DataObject) -> None:
    """Valid top-level fields and the provider of the arm's kind, so the options reach validation and the vendor."""
    field = pb.CreateAuthSessionRequest.DESCRIPTOR.fields_by_name[arm]
    options = data.draw(messages(field.message_type), label=arm)
    msg = pb.CreateAuthSessionRequest(callback_url=CB, provider=arm, **{arm: options})
    check("CreateAuthSession", await call(realauth, "CreateAuthSession", msg.SerializeToString()))
    await assert_serving(realauth)


def _mangled(encoded: bytes, cut: int, flip: int, bit: int) -> bytes:
    """A valid encoding cut short, or with one bit flipped."""
    if not encoded:
        return bytes([1 << (bit % 8)])
    if cut % 2:
        return encoded[: cut % len(encoded)]
    i = flip % len(encoded)
    return encoded[:i] + bytes([encoded[i] ^ (1 << (bit % 8))]) + encoded[i + 1 :]


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
@settings(FUZZ, max_examples=40)
@given(data=st.data())
async def test_fuzz_raw_bytes(realauth: Harness, method: str, data: st.DataObject) -> None:
    request = SERVICE.methods_by_name[method].input_type
    random_bytes = st.binary(max_size=128)
    mangled = st.builds(
        _mangled,
        messages(request).map(lambda m: m.SerializeToString()),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
        st.integers(0, 7),
    )
    body = data.draw(st.one_of(random_bytes, mangled), label="body")
    check(method, await call(realauth, method, body))
    await assert_serving(realauth)
