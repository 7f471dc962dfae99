"""One structured log line per RPC and per vendor call; Prometheus metrics on the HTTP side."""

from __future__ import annotations

import json
import logging

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.logs import JsonFormatter

from .conftest import Harness


async def test_log_lines_per_rpc_and_vendor_call(realauth: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    md = (("x-request-id", "obs-req-1"),)
    await realauth.stub.CreateAuthSession(
        pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", subject_id="user-9"), metadata=md
    )
    fmt = JsonFormatter()
    lines = [json.loads(fmt.format(r)) for r in caplog.records]
    rpc = [line for line in lines if line["logger"] == "realauth.rpc" and line.get("request_id") == "obs-req-1"]
    assert len(rpc) == 1
    assert rpc[0]["action"] == "CreateAuthSession" and rpc[0]["status"] == "OK"
    assert rpc[0]["tenant"] == "sandbox" and rpc[0]["provider"] == "seedance"
    assert isinstance(rpc[0]["latency_ms"], float)
    vendor = [line for line in lines if line["logger"] == "realauth.vendor" and line["msg"] == "vendor call"]
    assert vendor and vendor[-1]["provider"] == "seedance" and vendor[-1]["outcome"] == "200"
    assert "latency_ms" in vendor[-1]
    # A failed call's line carries the message the caller got (so the suite's leak check covers error messages).
    caplog.clear()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="ftp://x"), metadata=md)
    failed = [json.loads(fmt.format(r)) for r in caplog.records if r.name == "realauth.rpc"]
    assert failed[-1]["status"] == "INVALID_ARGUMENT" and failed[-1]["error_code"] == "InvalidParameter"
    assert failed[-1]["error"] == err.value.details()
    # No payloads: no callback URLs, tokens or subject ids in the per-call lines.
    for line in rpc + vendor:
        text = json.dumps(line)
        assert "caller.example" not in text and "user-9" not in text


async def test_metrics_endpoint(realauth: Harness) -> None:
    await realauth.stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="https://caller.example/done"))
    await realauth.stub.ListProviders(pb.ListProvidersRequest())
    r = await realauth.http.get(f"{realauth.http_url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    body = r.text
    assert 'realauth_rpc_requests_total{code="OK",method="CreateAuthSession"}' in body
    assert 'realauth_rpc_latency_seconds_bucket{code="OK",le="0.005",method="ListProviders"}' in body
    assert 'realauth_rpc_in_flight{method="CreateAuthSession"} 0.0' in body
    assert (
        'realauth_vendor_calls_total{action="CreateAuthSession",kind="seedance",outcome="200",provider="seedance"}'
        in body
    )
    assert 'realauth_vendor_latency_seconds_count{action="CreateAuthSession",outcome="200",provider="seedance"}' in body
