"""OpenTelemetry, the opt-in extra: a SERVER span per RPC (and per landing) continuing the caller's trace, CLIENT
child spans for vendor calls and store operations, OTLP export by the standard variables; off, nothing is imported.

Everything goes over real ports: the gRPC and HTTP sides of an in-process server, the embedded emulators, and for
the export an OTLP/HTTP receiver on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server.clock import Clock
from realauth_server.config import ConfigError, load_settings
from realauth_server.emulators.base import FaultPlan
from realauth_server.server import RealAuthServer
from realauth_server.tracecontext import otel_enabled
from realauth_server.tracing import OtelTracing

from .conftest import ROOT, Harness, on_loopback, read_all

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
CREATE = "realauth.v1.RealAuthService/CreateAuthSession"


@asynccontextmanager
async def traced(tracing: OtelTracing) -> AsyncIterator[Harness]:
    settings = load_settings(None, store="memory://", host="127.0.0.1", http_host="127.0.0.1", port=0, http_port=0)
    clock = Clock()
    server = RealAuthServer(settings, clock=clock, tracing=tracing)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    h = Harness(server, channel, pb_grpc.RealAuthServiceStub(channel), httpx.AsyncClient(timeout=30), clock)
    try:
        yield h
    finally:
        await h.http.aclose()
        await channel.close()
        await server.stop(grace=1)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def children_of(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_an_rpc_span_continues_the_callers_trace_with_vendor_and_store_children(
    exporter: InMemorySpanExporter,
) -> None:
    async with traced(OtelTracing(exporter)) as h:
        md = (("traceparent", TRACEPARENT), ("x-request-id", "otel-1"))
        created = await h.stub.CreateAuthSession(
            pb.CreateAuthSessionRequest(callback_url="https://caller.example/d"), metadata=md
        )
        spans = exporter.get_finished_spans()
        (server,) = [s for s in spans if s.name == CREATE]
        assert server.kind is SpanKind.SERVER and hex_trace(server) == TRACE_ID
        assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
        attrs = dict(server.attributes or {})
        assert attrs["rpc.system"] == "grpc" and attrs["rpc.method"] == "CreateAuthSession"
        assert attrs["rpc.grpc.status_code"] == 0 and attrs["realauth.request_id"] == "otel-1"
        assert attrs["realauth.tenant"] == "sandbox" and attrs["realauth.provider"] == "seedance"
        assert server.resource.attributes["service.name"] == "realauth"
        kids = children_of(spans, server)
        vendor = [s for s in kids if s.name == "vendor seedance CreateAuthSession"]
        assert len(vendor) == 1 and vendor[0].kind is SpanKind.CLIENT
        assert dict(vendor[0].attributes or {})["http.response.status_code"] == 200
        assert server.start_time is not None and vendor[0].start_time is not None
        assert server.start_time <= vendor[0].start_time
        store = {s.name for s in kids if s.name.startswith("store ")}
        assert "store insert" in store
        assert all(hex_trace(s) == TRACE_ID for s in kids)
        # No payloads on any span: no callback URL, no vendor token or verification link, no landing signature.
        token = parse_qs(urlsplit(created.session.verification_url).query)["bytedToken"][0]
        signature = h.server.service.landing_signature(created.session.session_id)
        for s in spans:
            text = json.dumps({k: str(v) for k, v in (s.attributes or {}).items()}) + s.name
            for value in ("caller.example", token, signature, created.session.verification_url):
                assert value not in text, (s.name, value)


async def test_a_failing_rpc_span_is_an_error_and_a_new_trace_without_traceparent(
    exporter: InMemorySpanExporter,
) -> None:
    async with traced(OtelTracing(exporter)) as h:
        h.emulator("seedance").set_fault(FaultPlan(status=503))  # retriable, until the budget is spent
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await h.stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="https://c.example/d"), timeout=2)
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        (server,) = [s for s in exporter.get_finished_spans() if s.name == CREATE]
        assert server.parent is None and hex_trace(server) != TRACE_ID
        assert server.status.status_code is StatusCode.ERROR
        vendor = [s for s in children_of(exporter.get_finished_spans(), server) if s.name.startswith("vendor ")]
        assert vendor and all(s.status.status_code is StatusCode.ERROR for s in vendor)


async def test_a_landing_has_an_http_server_span_with_the_exchange_under_it(exporter: InMemorySpanExporter) -> None:
    async with traced(OtelTracing(exporter)) as h:
        session = await h.create(provider="seedance")
        location, _query = await h.vendor_redirect(session, "pass")
        exporter.clear()
        landing = await h.http.get(location, headers={"traceparent": TRACEPARENT})
        assert landing.status_code == 302
        spans = exporter.get_finished_spans()
        (server,) = [s for s in spans if s.name == "GET /v1/landing"]
        assert server.kind is SpanKind.SERVER and hex_trace(server) == TRACE_ID
        attrs = dict(server.attributes or {})
        assert attrs["http.response.status_code"] == 302 and attrs["realauth.provider"] == "seedance"
        assert "{sig}" in str(attrs["http.route"])  # the route template, never the signed path
        names = {s.name for s in children_of(spans, server)}
        assert "vendor seedance ExchangeToken" in names and "store update" in names


async def test_spans_are_exported_over_otlp_http_as_the_otel_variables_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[bytes] = []

    async def traces(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    def collector(url: str) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        return app

    async with on_loopback(collector) as (_app, url):
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "realauth-test")
        async with traced(OtelTracing()) as h:
            await h.stub.ListProviders(pb.ListProvidersRequest(), metadata=(("traceparent", TRACEPARENT),))
        # Server stop flushed the batch (off the event loop, so this receiver could answer).
    assert received
    names, services = set(), set()
    for body in received:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            services |= {a.value.string_value for a in rs.resource.attributes if a.key == "service.name"}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    names.add(span.name)
                    assert span.trace_id.hex() == TRACE_ID
    assert "realauth.v1.RealAuthService/ListProviders" in names
    assert services == {"realauth-test"}


@pytest.mark.parametrize(
    ("environ", "setting", "on"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"REALAUTH_OTEL": "1"}, False, True),
        ({"REALAUTH_OTEL": "off"}, True, False),
        ({"REALAUTH_OTEL": "1", "OTEL_SDK_DISABLED": "true"}, True, False),
        ({"OTEL_SDK_DISABLED": "TRUE"}, True, False),
    ],
)
def test_when_tracing_is_on(environ: dict[str, str], setting: bool, on: bool) -> None:
    assert otel_enabled(setting, environ) is on


def test_a_bad_realauth_otel_value_is_refused() -> None:
    with pytest.raises(ValueError, match="REALAUTH_OTEL"):
        otel_enabled(False, {"REALAUTH_OTEL": "maybe"})


PROBE = """
import asyncio, sys
import grpc
from realauth.v1 import realauth_pb2 as pb, realauth_pb2_grpc as pb_grpc
from realauth_server.config import ConfigError, load_settings
from realauth_server.emulators.base import FaultPlan
from realauth_server.server import RealAuthServer

async def main():
    s = load_settings(None, store="memory://", host="127.0.0.1", port=0, http_port=0)
    server = RealAuthServer(s)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        await pb_grpc.RealAuthServiceStub(ch).CreateAuthSession(
            pb.CreateAuthSessionRequest(callback_url="https://caller.example/d"))
    await server.stop(grace=1)
    # redis-py 8 imports the OpenTelemetry metrics API whenever it is installed (its own opt-in instrumentation):
    # what must stay unloaded is realauth's tracing, the tracing SDK, the propagators and the exporters.
    ours = ("realauth_server.tracing", "opentelemetry.sdk.trace", "opentelemetry.propagate", "opentelemetry.exporter")
    print(sorted({p for p in ours for m in sys.modules if m == p or m.startswith(p + ".")}))

asyncio.run(main())
"""


ours = ("opentelemetry.exporter", "opentelemetry.propagate", "opentelemetry.sdk.trace", "realauth_server.tracing")


@pytest.mark.parametrize(
    ("environ", "imported"),
    [
        ({}, False),
        ({"REALAUTH_OTEL": "1", "OTEL_TRACES_EXPORTER": "none"}, True),
        ({"REALAUTH_OTEL": "1", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_with_tracing_off_no_tracing_code_is_imported(tmp_path: Path, environ: dict[str, str], imported: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "REALAUTH_"))}
    env.update(environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "server"), str(ROOT / "clients" / "python")])
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    modules = json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))
    on = [m for m in ours if m != "opentelemetry.exporter"]  # OTEL_TRACES_EXPORTER=none: no exporter either
    assert modules == (on if imported else []), modules


def test_server_otel_is_a_checked_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text("[server]\notel = true\n")
    assert load_settings(str(cfg)).otel is True
    cfg.write_text('[server]\notel = "yes"\n')
    with pytest.raises(ConfigError, match=r"server\.otel"):
        load_settings(str(cfg))


async def test_a_watch_stream_has_one_server_span_for_the_whole_stream(exporter: InMemorySpanExporter) -> None:
    async with traced(OtelTracing(exporter)) as h:
        session = await h.create(provider="seedance")
        assert (await h.complete(session, "pass")).status_code == 302
        exporter.clear()
        call = h.stub.WatchAuthSession(
            pb.WatchAuthSessionRequest(session_id=session.session_id), metadata=(("traceparent", TRACEPARENT),)
        )
        states = [s.state for s in await read_all(call)]
        assert states == [pb.AUTH_SESSION_STATE_EXCHANGED]
        (server,) = [s for s in exporter.get_finished_spans() if s.name.endswith("/WatchAuthSession")]
        assert hex_trace(server) == TRACE_ID and dict(server.attributes or {})["rpc.grpc.status_code"] == 0
        assert any(s.name == "store get" for s in children_of(exporter.get_finished_spans(), server))
