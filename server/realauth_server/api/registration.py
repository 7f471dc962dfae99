"""Registers RealAuthService with request deserializers that never raise.

grpc decodes a request before any interceptor runs. A deserializer that raises (truncated or
garbage protobuf, invalid UTF-8 in a string field) makes grpc answer UNKNOWN with the Python
exception class in the message, and log an ERROR traceback, with no request id, ErrorInfo or
RPC log line. Here a bad request decodes to an :class:`Undecodable` marker instead, and the
handler turns it into ``InvalidParameter("request", ...)`` inside every interceptor, so it gets
the normal status, details, request id and log line like any other invalid request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc

from ..errors import InvalidParameter

SERVICE = pb.DESCRIPTOR.services_by_name["RealAuthService"]


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes are not a valid message of ``type_name``; ``problem`` says why, in our words."""

    type_name: str
    problem: str


def describe(exc: Exception) -> str:
    """Our own wording for a decode failure: the caller never sees a Python class name or parser internals."""
    if "UTF-8" in str(exc):
        return "a string field is not valid UTF-8"
    return "the bytes are truncated or not a protobuf message of this type"


def tolerant_deserializer(cls: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """``cls.FromString`` that returns an :class:`Undecodable` marker instead of raising."""
    name = cls.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return cls.FromString(data)
        except Exception as exc:  # DecodeError mostly; whatever the parser raises, the call must not die here
            return Undecodable(name, describe(exc))

    return deserialize


def decoded(request: Any) -> Any:
    """The request, or the caller's InvalidParameter when it could not be decoded."""
    if isinstance(request, Undecodable):
        raise InvalidParameter("request", f"could not be decoded as {request.type_name}: {request.problem}")
    return request


def _unary(fn: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await fn(decoded(request), context)

    return handle


def _stream(fn: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for item in fn(decoded(request), context):
            yield item

    return handle


def method_handlers(servicer: pb_grpc.RealAuthServiceServicer) -> dict[str, grpc.RpcMethodHandler]:
    """One handler per method of the service descriptor, so a method added to the proto is never missed."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        request_cls: type[Message] = getattr(pb, method.input_type.name)
        response_cls: type[Message] = getattr(pb, method.output_type.name)
        fn = getattr(servicer, method.name)
        deserialize = tolerant_deserializer(request_cls)
        serialize = response_cls.SerializeToString
        if method.client_streaming:
            raise TypeError(f"{method.full_name}: client streaming is not supported by this registration")
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _stream(fn), request_deserializer=deserialize, response_serializer=serialize
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(fn), request_deserializer=deserialize, response_serializer=serialize
            )
    return handlers


def add_realauth_service(servicer: pb_grpc.RealAuthServiceServicer, server: grpc.aio.Server) -> None:
    """What the generated ``add_RealAuthServiceServicer_to_server`` does, with tolerant deserializers."""
    handlers = method_handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
