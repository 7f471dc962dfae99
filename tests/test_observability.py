"""One structured log line per RPC and per vendor call, every line of a call carrying its request id, trace id,
tenant and provider; Prometheus metrics on the HTTP side (docs/operations.md lists both)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.emulators.base import FaultPlan
from realauth_server.logs import CALL_FIELDS, JsonFormatter, LogContext, TextFormatter, bind_call, unbind_call
from realauth_server.metrics import REGISTRY
from realauth_server.tracecontext import parse_traceparent

from .conftest import PROCESS_LOGS, Harness, ServerFactory
from .proc_util import run_emulator

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
#: realauth's own loggers that log inside a call (the emulators log in their own server tasks).
CALL_LOGGERS = ("realauth.rpc", "realauth.vendor", "realauth.service")


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    fmt = JsonFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_log_lines_per_rpc_and_vendor_call(realauth: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    md = (("x-request-id", "obs-req-1"),)
    await realauth.stub.CreateAuthSession(
        pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", subject_id="user-9"), metadata=md
    )
    got = lines(caplog)
    rpc = [line for line in got if line["logger"] == "realauth.rpc" and line.get("request_id") == "obs-req-1"]
    assert len(rpc) == 1
    assert rpc[0]["action"] == "CreateAuthSession" and rpc[0]["status"] == "OK"
    assert rpc[0]["tenant"] == "sandbox" and rpc[0]["provider"] == "seedance"
    assert isinstance(rpc[0]["latency_ms"], float)
    # The accepted vendor call is on the rpc line; its own line is DEBUG only.
    assert rpc[0]["vendor_calls"] == 1 and rpc[0]["vendor_outcome"] == "200"
    assert isinstance(rpc[0]["vendor_ms"], float)
    vendor = [line for line in got if line["logger"] == "realauth.vendor" and line["msg"] == "vendor call"]
    assert vendor == []
    # A failed call's line carries the message the caller got (so the suite's leak check covers error messages).
    caplog.clear()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="ftp://x"), metadata=md)
    failed = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "realauth.rpc"]
    assert failed[-1]["status"] == "INVALID_ARGUMENT" and failed[-1]["error_code"] == "InvalidParameter"
    assert failed[-1]["error"] == err.value.details()
    # No payloads: no callback URLs, tokens or subject ids in the per-call lines.
    for line in rpc + vendor:
        text = json.dumps(line)
        assert "caller.example" not in text and "user-9" not in text


async def test_a_successful_create_logs_one_info_line_and_a_failed_vendor_call_its_own(
    realauth: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """An accepted vendor answer goes onto the rpc line (one record per call, not two); a vendor call that failed
    (here: HTTP 200 with a body that is not the vendor's JSON, then retried) keeps its INFO line for operators."""
    caplog.set_level(logging.INFO)
    await realauth.stub.CreateAuthSession(
        pb.CreateAuthSessionRequest(callback_url="https://caller.example/done"), metadata=(("x-request-id", "one-1"),)
    )
    mine = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("realauth.")]
    mine = [r for r in mine if getattr(r, "_call", ()) and dict(r._call)["request_id"] == "one-1"]
    assert [r.getMessage() for r in mine] == ["rpc"]
    (line,) = [json.loads(JsonFormatter().format(r)) for r in mine]
    assert line["vendor_calls"] == 1 and line["vendor_outcome"] == "200" and line["vendor_ms"] > 0
    caplog.clear()
    realauth.emulator("seedance").set_fault(FaultPlan(malformed=True, count=1))
    await realauth.stub.CreateAuthSession(
        pb.CreateAuthSessionRequest(callback_url="https://caller.example/done"), metadata=(("x-request-id", "two-2"),)
    )
    got = [line for line in lines(caplog) if line.get("request_id") == "two-2"]
    vendor = [line for line in got if line["msg"] == "vendor call"]
    assert len(vendor) == 1 and vendor[0]["outcome"] == "200" and vendor[0]["level"] == "info"
    assert [line["msg"] for line in got].count("vendor call retry") == 1
    (rpc,) = [line for line in got if line["msg"] == "rpc"]
    assert rpc["status"] == "OK" and rpc["vendor_calls"] == 2 and rpc["vendor_outcome"] == "200"


async def test_a_vendor_call_without_an_answer_logs_its_line(
    make_realauth: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """No answer at all (the connection dropped): its own INFO line, the rpc line counting it."""
    h = await make_realauth("[providers.seedance]\nsandbox = true\nmax_attempts = 1\n")
    h.emulator("seedance").set_fault(FaultPlan(reset=True))
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.aio.AioRpcError):
        await h.stub.CreateAuthSession(
            pb.CreateAuthSessionRequest(callback_url="https://caller.example/done"),
            metadata=(("x-request-id", "three-3"),),
        )
    got = [line for line in lines(caplog) if line.get("request_id") == "three-3"]
    vendor = [line for line in got if line["msg"] == "vendor call"]
    assert [v["outcome"] for v in vendor] == ["transport_error"]
    (rpc,) = [line for line in got if line["msg"] == "rpc"]
    assert rpc["vendor_calls"] == 1 and rpc["vendor_outcome"] == "transport_error"


async def test_every_line_of_a_call_carries_request_trace_tenant_and_provider(
    realauth: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="realauth.vendor")  # an accepted vendor call logs at DEBUG
    md = (("x-request-id", "obs-req-2"), ("traceparent", TRACEPARENT))
    created = await realauth.stub.CreateAuthSession(
        pb.CreateAuthSessionRequest(callback_url="https://caller.example/d"), metadata=md
    )
    mine = [line for line in lines(caplog) if line["logger"] in CALL_LOGGERS]
    assert {line["msg"] for line in mine} >= {"vendor call", "rpc"}
    # The session the create made is on its `rpc` line; the separate `session created` line is DEBUG only.
    rpc = [line for line in mine if line["msg"] == "rpc"]
    assert rpc[-1]["session_id"] == created.session.session_id and rpc[-1]["status"] == "OK"
    assert "session created" not in {line["msg"] for line in mine}
    for line in mine:
        assert line["request_id"] == "obs-req-2", line
        assert line["trace_id"] == TRACE_ID, line
        assert line["tenant"] == "sandbox" and line["provider"] == "seedance", line
    # Outside any call nothing is added.
    logging.getLogger("realauth.test").info("outside")
    assert "request_id" not in lines(caplog)[-1]


async def test_rpc_lines_name_the_session_and_debug_keeps_the_session_created_line(
    realauth: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    md = (("x-request-id", "obs-req-sid"),)
    created = (
        await realauth.stub.CreateAuthSession(
            pb.CreateAuthSessionRequest(callback_url="https://caller.example/d"), metadata=md
        )
    ).session
    await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=created.session_id), metadata=md)
    await realauth.stub.CancelAuthSession(pb.CancelAuthSessionRequest(session_id=created.session_id), metadata=md)
    await realauth.stub.ListProviders(pb.ListProvidersRequest(), metadata=md)
    mine = [line for line in lines(caplog) if line.get("request_id") == "obs-req-sid"]
    rpc = {line["action"]: line for line in mine if line["msg"] == "rpc"}
    for action in ("CreateAuthSession", "GetAuthSession", "CancelAuthSession"):
        assert rpc[action]["session_id"] == created.session_id, rpc[action]
    assert rpc["ListProviders"]["session_id"] == ""
    debug = [line for line in mine if line["msg"] == "session created"]
    assert len(debug) == 1 and debug[0]["level"] == "debug" and debug[0]["session_id"] == created.session_id


async def test_an_invalid_traceparent_is_ignored(realauth: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bad = f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01"  # uppercase hex is not W3C trace context
    md = (("x-request-id", "obs-req-3"), ("traceparent", bad))
    await realauth.stub.ListProviders(pb.ListProvidersRequest(), metadata=md)
    rpc = [line for line in lines(caplog) if line["logger"] == "realauth.rpc"]
    assert rpc[-1]["request_id"] == "obs-req-3" and rpc[-1]["status"] == "OK"
    assert rpc[-1]["trace_id"] == ""


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        (TRACEPARENT, TRACE_ID),
        (f"00-{TRACE_ID}-00f067aa0ba902b7-00", TRACE_ID),  # not sampled: still the caller's trace
        (f"01-{TRACE_ID}-00f067aa0ba902b7-01-future", TRACE_ID),  # a later version may append fields
        (f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra", None),  # version 00 may not
        (f"ff-{TRACE_ID}-00f067aa0ba902b7-01", None),  # version ff is invalid
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),  # all-zero trace id
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),  # all-zero parent id
        (f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01", None),  # short
        (f"00-{TRACE_ID}-00F067AA0BA902B7-01", None),  # uppercase
        ("", None),
        ("garbage", None),
    ],
)
def test_traceparent_parsing(header: str, trace_id: str | None) -> None:
    parsed = parse_traceparent(header)
    assert (parsed.trace_id if parsed else None) == trace_id


async def test_a_landing_has_a_request_id_and_the_sessions_tenant_and_provider(
    realauth: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    session = await realauth.create(provider="seedance")
    caplog.clear()
    caplog.set_level(logging.INFO)
    first = await realauth.http.get(session.verification_url + "&outcome=pass")
    landing = await realauth.http.get(
        first.headers["location"], headers={"x-request-id": "land-1", "traceparent": TRACEPARENT}
    )
    assert landing.status_code == 302 and landing.headers["x-request-id"] == "land-1"
    mine = [line for line in lines(caplog) if line["logger"] in CALL_LOGGERS]
    assert any(line["msg"] == "vendor call" and line["action"] == "ExchangeToken" for line in mine)
    for line in mine:
        assert line["request_id"] == "land-1" and line["trace_id"] == TRACE_ID, line
        assert line["tenant"] == "sandbox" and line["provider"] == "seedance", line
    # Without x-request-id the landing gets one of its own, and says which.
    refused = await realauth.http.get(f"{realauth.http_url}/v1/callback/{session.session_id}/bad-signature")
    assert refused.status_code == 403 and re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])


def test_text_lines_carry_a_timestamp_and_the_call_fields() -> None:
    record = logging.LogRecord("realauth.x", logging.INFO, __file__, 1, "hello", (), None)
    token = bind_call(LogContext("req-7", TRACE_ID, "acme", "seedance"))
    try:
        inside = logging.getLogRecordFactory()("realauth.x", logging.INFO, __file__, 1, "hello", (), None)
    finally:
        unbind_call(token)
    text = TextFormatter().format(inside)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO    realauth\.x: hello  ", text), text
    assert f"request_id=req-7 trace_id={TRACE_ID} tenant=acme provider=seedance" in text
    assert "request_id" not in TextFormatter().format(record)


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
    assert (
        'realauth_vendor_latency_seconds_count{action="CreateAuthSession",kind="seedance",outcome="200",'
        'provider="seedance"}' in body
    )
    assert re.search(r'^realauth_build_info\{python="[^"]+",version="\d+\.\d+\.\d+[^"]*"\} 1\.0$', body, re.M)
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info", "python_gc_"):
        assert family in body, family
    assert 'realauth_sessions_created_total{kind="seedance",provider="seedance"}' in body
    assert 'realauth_store_latency_seconds_count{backend="memory",op="insert",outcome="ok"}' in body
    assert "_created" not in body.replace("realauth_sessions_created", "")


async def test_business_counters_follow_a_session(realauth: Harness) -> None:
    labels = {"provider": "seedance", "kind": "seedance"}
    before = {
        "created": sample("realauth_sessions_created_total", **labels),
        "passed": sample("realauth_sessions_finished_total", **labels, outcome="passed"),
        "expired": sample("realauth_sessions_finished_total", **labels, outcome="expired"),
        "failed": sample("realauth_sessions_finished_total", **labels, outcome="failed"),
        "redirected": sample("realauth_landings_total", **labels, outcome="redirected"),
        "refused": sample("realauth_landings_total", **labels, outcome="refused"),
    }
    passed = await realauth.create(provider="seedance")
    location, _query = await realauth.vendor_redirect(passed, "pass")
    assert (await realauth.http.get(location)).status_code == 302
    assert (await realauth.http.get(location)).status_code == 409  # the replay is refused
    failed = await realauth.create(provider="seedance")
    assert (await realauth.complete(failed, "fail")).status_code == 302
    await realauth.create(provider="seedance", idempotency_key="k1")
    await realauth.create(provider="seedance", idempotency_key="k1")  # a duplicate creates nothing
    late = await realauth.create(provider="seedance")
    realauth.clock.advance(3600)
    got = await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=late.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_EXPIRED
    await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=late.session_id))  # stays expired
    assert sample("realauth_sessions_created_total", **labels) == before["created"] + 4
    assert sample("realauth_sessions_finished_total", **labels, outcome="failed") == before["failed"] + 1
    assert sample("realauth_sessions_finished_total", **labels, outcome="passed") == before["passed"] + 1
    assert sample("realauth_sessions_finished_total", **labels, outcome="expired") == before["expired"] + 1
    assert sample("realauth_landings_total", **labels, outcome="redirected") == before["redirected"] + 2
    assert sample("realauth_landings_total", **labels, outcome="refused") == before["refused"] + 1
    assert sample("realauth_landing_refused_total", route="landing", reason="replayed", **labels) >= 1


def test_store_latency_has_no_id_labels() -> None:
    for metric in REGISTRY.collect():
        for s in metric.samples:
            for value in s.labels.values():
                assert not value.startswith("ses_") and urlsplit(value).scheme == "", (s.name, s.labels)


@pytest.mark.parametrize("log_format", [None, "auto"])
def test_emulate_follows_the_log_format_of_serve(tmp_path: Path, log_format: str | None) -> None:
    """``realauth emulate`` takes --log-format auto|json|text like serve; auto (the default) writes JSON to a file."""
    with run_emulator("seedance", tmp_path, log_format=log_format) as base:
        assert base.startswith("http://127.0.0.1:")
    first = json.loads(PROCESS_LOGS[-1].read_text().splitlines()[0])
    assert first["msg"] == "emulator listening" and first["ts"].endswith("Z")


def test_operations_doc_lists_every_metric_and_call_field() -> None:
    """docs/operations.md is the operator's reference: every realauth metric and every per-call log field is in it."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    for metric in REGISTRY.collect():
        if metric.name.startswith("realauth_"):
            name = metric.name + "_total" if metric.type == "counter" else metric.name
            assert f"`{name}`" in doc, name
    for field in CALL_FIELDS:
        assert f"| `{field}` |" in doc, field


async def test_a_push_has_a_request_id_and_the_sessions_tenant_and_provider(
    realauth: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    session = await realauth.create(provider="seedance")
    caplog.clear()
    caplog.set_level(logging.INFO)
    before = sample("realauth_pushes_total", provider="seedance", kind="seedance", outcome="refused")
    pushed = await realauth.http.post(
        realauth.server.service.push_url(session.session_id),
        content=b"{}",
        headers={"content-type": "application/json", "x-request-id": "push-1", "traceparent": TRACEPARENT},
    )
    assert pushed.status_code == 404 and pushed.headers["x-request-id"] == "push-1"  # Seedance takes no pushes
    (line,) = [line for line in lines(caplog) if line["msg"] == "vendor push refused"]
    assert line["request_id"] == "push-1" and line["trace_id"] == TRACE_ID
    assert line["tenant"] == "sandbox" and line["provider"] == "seedance" and line["reason"] == "no_pushes"
    assert sample("realauth_pushes_total", provider="seedance", kind="seedance", outcome="refused") == before + 1


def test_caller_request_ids_are_kept_exactly_when_short_letters_digits_and_dashes() -> None:
    """The ASCII shortcut in _clean_request_id keeps exactly what the per-character rule keeps (isalnum or -_.:)."""
    from realauth_server.interceptors.observe import _clean_request_id

    def kept(value: str) -> bool:
        return bool(value) and len(value) <= 128 and all(c.isalnum() or c in "-_.:" for c in value)

    samples = ["a" * 128, "a" * 129, "", "req-1_2.3:4", "abc\n", "a b", "a/b", "é-1", "٣", "x\u200b", "Ⅻ", "\x00"]
    samples += [chr(i) + "x" for i in range(0, 256)]
    for value in samples:
        got = _clean_request_id(value)
        assert (got == value) == kept(value), repr(value)
        if got != value:
            assert re.fullmatch(r"[0-9a-f]{32}", got), got
