"""Decode realauth's rich error details the way a Python caller would."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from realauth.v1 import realauth_pb2 as pb


@dataclass
class Decoded:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    retry_delay: float | None = None
    response_metadata: pb.ResponseMetadata | None = None


def decode(err: grpc.aio.AioRpcError) -> Decoded:
    out = Decoded(err.code(), err.details() or "")
    trailing = err.trailing_metadata() or ()
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    if status is not None:
        for any_ in status.details:
            if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                any_.Unpack(info)
                out.reason = info.reason
                out.metadata = dict(info.metadata)
            elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                any_.Unpack(br)
                out.fields = [v.field for v in br.field_violations]
            elif any_.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                ri = error_details_pb2.RetryInfo()
                any_.Unpack(ri)
                out.retry_delay = ri.retry_delay.ToNanoseconds() / 1e9
    for k, v in trailing:
        if k == "realauth-response-metadata-bin":
            out.response_metadata = pb.ResponseMetadata.FromString(v)
    return out
