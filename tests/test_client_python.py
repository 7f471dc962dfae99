"""The Python caller library (clients/python, import package realauth_client) against real servers.

A `realauth serve` process for the sync client, the in-process server for the asyncio one, and a small gRPC server
on a real port where a test needs to see exactly what each attempt sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from realauth_client import AsyncClient, Client, RealAuthError, pb
from realauth_client.v1 import realauth_pb2_grpc as client_grpc
from realauth_server.emulators.base import FaultPlan

from .conftest import ServerFactory
from .proc_util import start_serve
from .test_auth import _cert, _pem

KEY = "py-client-key-0123456789abcdef"
CB = "https://caller.example/done"
# max_attempts = 1: the server surfaces a vendor fault at once (it would otherwise retry the vendor itself), so the
# client's own retry is what these tests see.
CONFIG = f"""
[providers.seedance]
sandbox = true
max_attempts = 1
[tenants.main]
keys = ["{KEY}"]
"""


def _browser_passes(verification_url: str) -> httpx.Response:
    """What the person's browser does in the sandbox: press Pass, follow to realauth's landing (not the caller)."""
    sep = "&" if "?" in verification_url else "?"
    page = httpx.get(f"{verification_url}{sep}outcome=pass", timeout=10)
    assert page.status_code in (302, 303), page.text
    landing = httpx.get(page.headers["location"], timeout=10)
    assert landing.status_code in (302, 303), landing.text
    return landing


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("client-python")
    cfg = tmp / "realauth.toml"
    cfg.write_text(CONFIG)
    srv = start_serve(tmp, "--config", str(cfg))
    try:
        yield srv
    finally:
        assert srv.stop() == 0


def _faults(srv: Any, plan: dict[str, Any] | None) -> None:
    url = f"{srv.http_url}/sandbox/seedance/_emulator/faults"
    resp = httpx.put(url, json=plan, timeout=5) if plan is not None else httpx.delete(url, timeout=5)
    assert resp.status_code == 200, resp.text


def _create_count(srv: Any) -> int:
    stats = httpx.get(f"{srv.http_url}/sandbox/seedance/_emulator/stats", timeout=5).json()
    return sum(n for action, n in stats["by_action"].items() if "validate" not in action.lower())


@pytest.mark.slow
def test_sync_client_create_pass_exchange(served: Any) -> None:
    with Client(served.target, api_key=KEY) as client:
        assert [p.name for p in client.list_providers().providers] == ["seedance"]
        created = client.create_auth_session(
            model="doubao-seedance-2-0-260128", callback_url=CB, locale="en", request_id="py-create-1"
        )
        session = created.session
        assert created.response_metadata.request_id == "py-create-1"
        assert session.session_id.startswith("ses_") and session.state == pb.AUTH_SESSION_STATE_PENDING
        assert session.verification_url.startswith(served.http_url + "/sandbox/seedance/")
        landing = _browser_passes(session.verification_url)
        assert landing.headers["location"].startswith(CB)
        exchanged = client.exchange_token(session_id=session.session_id)
        assert exchanged.result.passed and exchanged.result.group_id
        assert exchanged.session.state == pb.AUTH_SESSION_STATE_EXCHANGED
        generated = client.get_auth_session(session.session_id).response_metadata.request_id
        assert len(generated) == 32 and generated != "py-create-1"  # one generated per call when none is given


@pytest.mark.slow
def test_sync_client_errors_decode(served: Any) -> None:
    with Client(served.target, api_key=KEY) as client:
        with pytest.raises(RealAuthError) as bad:
            client.create_auth_session(callback_url="ftp://nope", request_id="py-bad-1")
        err = bad.value
        assert err.grpc_code == grpc.StatusCode.INVALID_ARGUMENT and err.code == "InvalidParameter"
        assert err.request_id == "py-bad-1" and err.attempts == 1 and not err.retriable
        assert [v.field for v in err.field_violations] == ["callback_url"]
        assert err.response_metadata is not None and err.response_metadata.error.code == "InvalidParameter"
        assert "callback_url" in str(err) and "py-bad-1" in str(err)
        with pytest.raises(RealAuthError) as pending:
            session = client.create_auth_session(callback_url=CB).session
            client.exchange_token(token=session.token)
        assert pending.value.code == "VerificationPending" and pending.value.vendor_code == "ValidateNotReady"
    with Client(served.target, api_key="not-a-key-of-anyone-000") as stranger, pytest.raises(RealAuthError) as unauth:
        stranger.list_providers()
    assert unauth.value.grpc_code == grpc.StatusCode.UNAUTHENTICATED and unauth.value.code == "Unauthenticated"
    assert KEY not in repr(Client(served.target, api_key=KEY))


@pytest.mark.slow
def test_sync_client_retries_a_faulted_vendor_after_retry_info(served: Any) -> None:
    with Client(served.target, api_key=KEY, timeout=8) as client:
        before = _create_count(served)
        _faults(served, {"status": 503, "count": 1})
        start = time.monotonic()
        session = client.create_auth_session(callback_url=CB).session  # 1st attempt: ProviderUnavailable + 1 s
        assert time.monotonic() - start >= 0.9, "the RetryInfo delay is honoured"
        assert session.state == pb.AUTH_SESSION_STATE_PENDING
        assert _create_count(served) - before == 2
        # A vendor down for good: retried only while the deadline leaves room, then the server's error.
        _faults(served, {"status": 503})
        try:
            start = time.monotonic()
            with pytest.raises(RealAuthError) as down:
                client.create_auth_session(callback_url=CB, timeout=2.5)
            elapsed = time.monotonic() - start
        finally:
            _faults(served, None)
    assert down.value.grpc_code == grpc.StatusCode.UNAVAILABLE and down.value.retriable
    assert down.value.attempts >= 2 and 0.5 <= elapsed < 2.6


async def test_async_client_flow_watch_and_own_deadline(make_realauth: ServerFactory) -> None:
    h = await make_realauth(CONFIG)
    async with AsyncClient(f"127.0.0.1:{h.server.grpc_port}", api_key=KEY, timeout=5) as client:
        session = (await client.create_auth_session(callback_url=CB, subject_id="user-1")).session
        states = []
        await h.complete(session, "pass")
        async for s in client.watch_auth_session(session.session_id, timeout=5):
            states.append(s.state)
        assert states[-1] == pb.AUTH_SESSION_STATE_EXCHANGED
        result = (await client.exchange_token(token=session.token)).result
        assert result.passed and result.group_id
        listed = await client.list_auth_sessions(subject_id="user-1")
        assert [s.session_id for s in listed.sessions] == [session.session_id]
        # A hung vendor: the caller's own deadline ends the call (no RetryInfo from the client side: no retry).
        h.emulator("seedance").set_fault(FaultPlan(hang=True))
        start = time.monotonic()
        with pytest.raises(RealAuthError) as slow:
            await client.create_auth_session(callback_url=CB, timeout=1.0, request_id="py-slow")
        h.emulator("seedance").set_fault(None)
        assert slow.value.grpc_code == grpc.StatusCode.DEADLINE_EXCEEDED and slow.value.attempts == 1
        assert slow.value.request_id == "py-slow" and time.monotonic() - start < 2.5


async def test_async_client_over_tls(make_realauth: ServerFactory, tmp_path: Path) -> None:
    ca_key, ca = _cert("realauth-client-test-ca")
    server_key, server_cert = _cert("localhost", ca_key, ca)
    k, c = _pem(server_key, server_cert)
    (tmp_path / "server.key").write_bytes(k)
    (tmp_path / "server.crt").write_bytes(c)
    h = await make_realauth(CONFIG + '[tls]\ncert_file = "server.crt"\nkey_file = "server.key"\n')
    target = f"localhost:{h.server.grpc_port}"
    ca_pem = _pem(ca_key, ca)[1]
    async with AsyncClient(target, api_key=KEY, root_certificates=ca_pem) as client:
        assert (await client.list_providers()).providers
    async with AsyncClient(target, api_key=KEY, tls=False, timeout=2, max_attempts=1) as plain:
        with pytest.raises(RealAuthError) as err:
            await plain.list_providers()
    assert err.value.grpc_code == grpc.StatusCode.UNAVAILABLE and err.value.code == ""
    assert err.value.request_id, "the id the client sent, for the bug report"


# --- what each attempt sends: a gRPC server on a real port that records it -------------------------------------


class _Recorder(client_grpc.RealAuthServiceServicer):
    """Answers CreateAuthSession with ``failures`` (one per attempt, then success) and records every attempt."""

    def __init__(self, failures: list[tuple[grpc.StatusCode, float | None]]) -> None:
        self.failures = list(failures)
        self.seen: list[tuple[dict[str, str], pb.CreateAuthSessionRequest, float | None]] = []
        self.lock = threading.Lock()

    def CreateAuthSession(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.seen.append((dict(context.invocation_metadata()), request, context.time_remaining()))
            failure = self.failures.pop(0) if self.failures else None
        if failure is None:
            return pb.CreateAuthSessionResponse(session=pb.AuthSession(session_id="ses_fake"))
        code, delay = failure
        info = error_details_pb2.ErrorInfo(reason="ProviderUnavailable", domain="realauth.v1")
        details = [info]
        if delay is not None:
            retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration())
            retry.retry_delay.FromNanoseconds(int(delay * 1e9))
            details.append(retry)
        packed = []
        for d in details:
            a = any_pb2.Any()
            a.Pack(d)
            packed.append(a)
        status = status_pb2.Status(code=code.value[0], message="try later", details=packed)
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        context.abort(code, "try later")


@pytest.fixture
def recorder() -> Iterator[tuple[_Recorder, str]]:
    rec = _Recorder([])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    client_grpc.add_RealAuthServiceServicer_to_server(rec, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield rec, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_retries_reuse_one_idempotency_key_and_request_id(recorder: tuple[_Recorder, str]) -> None:
    rec, target = recorder
    rec.failures = [(grpc.StatusCode.UNAVAILABLE, 0.2), (grpc.StatusCode.RESOURCE_EXHAUSTED, 0.2)]
    with Client(target, api_key=KEY, timeout=5) as client:
        start = time.monotonic()
        assert client.create_auth_session(callback_url=CB).session.session_id == "ses_fake"
        assert time.monotonic() - start >= 0.4
        keys = {req.idempotency_key for _, req, _ in rec.seen}
        rids = {md["x-request-id"] for md, _, _ in rec.seen}
        assert len(rec.seen) == 3 and len(keys) == 1 and len(rids) == 1 and len(keys.pop()) == 32
        assert all(md["authorization"] == f"Bearer {KEY}" for md, _, _ in rec.seen)
        # One deadline for the whole call: each attempt is sent with what is left of it.
        remaining = [r for _, _, r in rec.seen]
        assert all(r is not None and r <= 5.1 for r in remaining)
        assert remaining[2] < remaining[0] - 0.3  # type: ignore[operator]
        # The caller's own key is kept, and the caller's request message is not changed.
        rec.seen.clear()
        rec.failures = [(grpc.StatusCode.UNAVAILABLE, 0.05)]
        mine = pb.CreateAuthSessionRequest(callback_url=CB)
        client.create_auth_session(mine)
        assert mine.idempotency_key == "" and rec.seen[0][1].idempotency_key == rec.seen[1][1].idempotency_key
        rec.seen.clear()
        client.create_auth_session(pb.CreateAuthSessionRequest(callback_url=CB, idempotency_key="order-42"))
        assert rec.seen[0][1].idempotency_key == "order-42"


def test_no_retry_without_retry_info_or_beyond_the_deadline(recorder: tuple[_Recorder, str]) -> None:
    rec, target = recorder
    with Client(target, timeout=2) as client:
        rec.failures = [(grpc.StatusCode.UNAVAILABLE, None)]
        with pytest.raises(RealAuthError) as err:
            client.create_auth_session(callback_url=CB)
        assert err.value.attempts == 1 and len(rec.seen) == 1 and err.value.code == "ProviderUnavailable"
        rec.seen.clear()
        rec.failures = [(grpc.StatusCode.UNAVAILABLE, 30.0)]  # asks for longer than the deadline: answer now
        start = time.monotonic()
        with pytest.raises(RealAuthError) as err:
            client.create_auth_session(callback_url=CB)
        assert time.monotonic() - start < 1 and err.value.retry_delay == 30.0 and len(rec.seen) == 1
        rec.seen.clear()
        rec.failures = [(grpc.StatusCode.UNAVAILABLE, 0.01)] * 10
        with pytest.raises(RealAuthError) as err:
            client.create_auth_session(callback_url=CB)
        assert err.value.attempts == 4 and len(rec.seen) == 4  # max_attempts


async def test_async_client_retries_like_the_sync_one(recorder: tuple[_Recorder, str]) -> None:
    rec, target = recorder
    rec.failures = [(grpc.StatusCode.UNAVAILABLE, 0.1)]
    async with AsyncClient(target, timeout=5) as client:
        assert (await client.create_auth_session(callback_url=CB)).session.session_id == "ses_fake"
    assert len(rec.seen) == 2 and rec.seen[0][1].idempotency_key == rec.seen[1][1].idempotency_key
    assert rec.seen[0][0]["x-request-id"] == rec.seen[1][0]["x-request-id"]


def test_bad_options_are_refused_clearly() -> None:
    for kwargs, words in [
        ({"timeout": 0}, "timeout"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"api_key": "a\nb"}, "api_key"),
        ({"root_certificates": b"x", "tls": False}, "tls"),
    ]:
        with pytest.raises(ValueError, match=words):
            Client("127.0.0.1:1", **kwargs)
    with Client("127.0.0.1:1") as client:
        with pytest.raises(TypeError, match="either"):
            client.create_auth_session(pb.CreateAuthSessionRequest(), callback_url=CB)
        with pytest.raises(TypeError, match="CreateAuthSessionRequest"):
            client.create_auth_session(pb.GetAuthSessionRequest())  # type: ignore[arg-type]
