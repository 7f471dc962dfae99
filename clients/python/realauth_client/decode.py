"""Decode realauth's binary error details from `buf curl` (or any gRPC tool) output into readable JSON.

`buf curl` prints a failed call as JSON on stderr whose `details` carry base64 protobuf values, and with `-v` the
raw trailers `Grpc-Status-Details-Bin` (a serialized google.rpc.Status) and `Realauth-Response-Metadata-Bin` (a
realauth.v1.ResponseMetadata). This reads either form (or bare base64 arguments) and prints the neutral error code
(ErrorInfo.reason), its metadata (request_id, vendor_code, …), the BadRequest field violations and the RetryInfo
delay:

    buf curl … 2>&1 | python -m realauth_client.decode
    python -m realauth_client.decode CAMSTWludmFsaWQ…
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

from .v1 import realauth_pb2 as pb

_DETAIL_TYPES: dict[str, type[Message]] = {
    "google.rpc.ErrorInfo": error_details_pb2.ErrorInfo,
    "google.rpc.BadRequest": error_details_pb2.BadRequest,
    "google.rpc.RetryInfo": error_details_pb2.RetryInfo,
    "google.rpc.QuotaFailure": error_details_pb2.QuotaFailure,
    "google.rpc.PreconditionFailure": error_details_pb2.PreconditionFailure,
    "google.rpc.ResourceInfo": error_details_pb2.ResourceInfo,
    "google.rpc.Help": error_details_pb2.Help,
    "google.rpc.LocalizedMessage": error_details_pb2.LocalizedMessage,
    "google.rpc.DebugInfo": error_details_pb2.DebugInfo,
}
_TRAILER = re.compile(r"(grpc-status-details-bin|realauth-response-metadata-bin)\s*:\s*([A-Za-z0-9+/_=-]+)", re.I)
_GRPC_CODES = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
]  # fmt: skip


def b64decode(text: str) -> bytes:
    """gRPC binary metadata and buf's JSON use unpadded base64 (standard or URL-safe alphabet)."""
    text = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc


def _as_dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _detail(type_name: str, raw: bytes) -> dict[str, Any]:
    cls = _DETAIL_TYPES.get(type_name.rsplit("/", 1)[-1])
    if cls is None:
        return {"type": type_name, "value_base64": base64.b64encode(raw).decode()}
    msg = cls.FromString(raw)
    return {"type": cls.DESCRIPTOR.full_name, **_as_dict(msg)}


def _summary(code: int | str, message: str, details: list[dict[str, Any]]) -> dict[str, Any]:
    """The decoded status with the fields a caller looks at first lifted to the top."""
    out: dict[str, Any] = {"grpc_code": code, "message": message}
    for d in details:
        if d["type"] == "google.rpc.ErrorInfo":
            out["error_code"] = d.get("reason", "")
            out["domain"] = d.get("domain", "")
            out["metadata"] = d.get("metadata", {})
        elif d["type"] == "google.rpc.BadRequest":
            out["field_violations"] = d.get("field_violations", [])
        elif d["type"] == "google.rpc.RetryInfo":
            out["retry_delay"] = d.get("retry_delay", "0s")
    out["details"] = details
    return out


def decode_status_bin(raw: bytes) -> dict[str, Any]:
    """A serialized google.rpc.Status (grpc-status-details-bin) as a dict."""
    status = status_pb2.Status.FromString(raw)
    details = [_detail(a.type_url, a.value) for a in status.details]
    code = _GRPC_CODES[status.code] if 0 <= status.code < len(_GRPC_CODES) else status.code
    return _summary(code, status.message, details)


def decode_response_metadata_bin(raw: bytes) -> dict[str, Any]:
    return _as_dict(pb.ResponseMetadata.FromString(raw))


def _json_objects(text: str) -> list[Any]:
    """Every top-level JSON object in ``text`` (buf curl interleaves them with its -v lines)."""
    found, decoder, i = [], json.JSONDecoder(), 0
    while (i := text.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        found.append(obj)
        i = end
    return found


def decode_text(text: str) -> dict[str, Any]:
    """Everything decodable in buf curl output (stdout and stderr together, with or without -v)."""
    out: dict[str, Any] = {}
    for name, value in _TRAILER.findall(text):
        raw = b64decode(value)
        if name.lower() == "grpc-status-details-bin":
            out["status"] = decode_status_bin(raw)
        else:
            out["response_metadata"] = decode_response_metadata_bin(raw)
    if "status" not in out:
        for obj in _json_objects(text):
            if isinstance(obj, dict) and "code" in obj and isinstance(obj.get("details"), list):
                details = [
                    _detail(str(d.get("type", "")), b64decode(str(d.get("value", ""))))
                    for d in obj["details"]
                    if isinstance(d, dict)
                ]
                out["status"] = _summary(str(obj["code"]).upper(), str(obj.get("message", "")), details)
                break
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m realauth_client.decode",
        description="Decode grpc-status-details-bin / realauth-response-metadata-bin from buf curl output.",
    )
    parser.add_argument(
        "base64", nargs="*", help="grpc-status-details-bin values (default: read buf curl output on stdin)"
    )
    args = parser.parse_args(argv)
    try:
        if args.base64:
            result: Any = [decode_status_bin(b64decode(v)) for v in args.base64]
        else:
            result = decode_text(sys.stdin.read())
    except (ValueError, DecodeError) as exc:
        print(f"cannot decode: {exc}", file=sys.stderr)
        return 2
    if not result:
        print("no error details found (did the call fail? add -v to buf curl for the raw trailers)", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0


__all__ = ["decode_response_metadata_bin", "decode_status_bin", "decode_text", "main"]

if __name__ == "__main__":
    sys.exit(main())
