"""`realauth serve` as a real process: the README's buf curl tour, restart persistence, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc

from .conftest import VENV_BIN, free_port
from .proc_util import buf_curl, health, start_serve

pytestmark = pytest.mark.slow

SVC = "realauth.v1.RealAuthService"


def complete_in_browser(verification_url: str, outcome: str = "pass") -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        page = http.get(verification_url)
        assert page.status_code == 200 and "outcome=pass" in page.text
        vendor = http.get(verification_url + f"&outcome={outcome}")
        assert vendor.status_code == 302
        return http.get(vendor.headers["location"])


def test_readme_tour_with_buf_curl(tmp_path: Path) -> None:
    srv = start_serve(tmp_path)
    try:
        listing = buf_curl(srv.target, "", None, "--list-methods")["_text"]
        assert f"{SVC}/CreateAuthSession" in listing and "grpc.health.v1.Health/Check" in listing
        assert buf_curl(srv.target, "grpc.health.v1.Health/Check", {}) == {"status": "SERVING"}
        checked = buf_curl(srv.target, "grpc.health.v1.Health/Check", {"service": SVC})
        assert checked == {"status": "SERVING"}

        providers = buf_curl(srv.target, f"{SVC}/ListProviders", {})
        assert any(p["name"] == "seedance" and p.get("sandbox") for p in providers["providers"])

        created = buf_curl(
            srv.target,
            f"{SVC}/CreateAuthSession",
            {"model": "doubao-seedance-2-0-260128", "callback_url": "https://example.com/done"},
        )
        session = created["session"]
        assert session["state"] == "AUTH_SESSION_STATE_PENDING"

        done = complete_in_browser(session["verificationUrl"])
        assert done.status_code == 302
        assert done.headers["location"].startswith("https://example.com/done?")

        exchanged = buf_curl(srv.target, f"{SVC}/ExchangeToken", {"token": session["token"]})
        assert exchanged["result"]["passed"] is True
        assert exchanged["result"]["groupId"].startswith("group-")

        got = buf_curl(srv.target, f"{SVC}/GetAuthSession", {"session_id": session["sessionId"]})
        assert got["session"]["state"] == "AUTH_SESSION_STATE_EXCHANGED"

        # The first log lines say where it listens and give a copy-paste buf curl line.
        log = srv.log()
        assert "realauth listening" in log and "buf curl" in log and "sandbox" in log
    finally:
        assert srv.stop() == 0


def test_sessions_survive_a_restart_with_sqlite(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'state' / 'realauth.db'}"
    # Fixed ports outside the ephemeral range, so the restart below can take them again.
    srv = start_serve(tmp_path, "--store", store, port=free_port(), http_port=free_port())
    try:
        with grpc.insecure_channel(srv.target) as ch:
            stub = pb_grpc.RealAuthServiceStub(ch)
            done = stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="https://example.com/a")).session
            pending = stub.CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="https://example.com/b")).session
        complete_in_browser(done.verification_url)
        with httpx.Client() as http:
            vendor_redirect = http.get(pending.verification_url + "&outcome=pass").headers["location"]
    finally:
        assert srv.stop() == 0

    srv = start_serve(tmp_path, "--store", store, port=srv.port, http_port=srv.http_port)
    try:
        with grpc.insecure_channel(srv.target) as ch:
            stub = pb_grpc.RealAuthServiceStub(ch)
            got = stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=done.session_id)).session
            assert got.state == pb.AUTH_SESSION_STATE_EXCHANGED
            assert got.token == done.token and got.result.group_id.startswith("group-")
            again = stub.ExchangeToken(pb.ExchangeTokenRequest(token=done.token))
            assert again.result.group_id == got.result.group_id
            still = stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=pending.session_id)).session
            assert still.state == pb.AUTH_SESSION_STATE_PENDING
            assert still.verification_url == pending.verification_url
        # A person who finishes across the restart still lands: the landing signature survives.
        with httpx.Client() as http:
            landed = http.get(vendor_redirect)
        assert landed.status_code == 302
        assert parse_qs(urlsplit(landed.headers["location"]).query)["session_id"] == [pending.session_id]
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_calls_and_exits_zero(tmp_path: Path, sig: signal.Signals) -> None:
    srv = start_serve(tmp_path)
    try:
        # Make the vendor slow so a CreateAuthSession is in flight when SIGTERM arrives.
        r = httpx.put(f"{srv.http_url}/sandbox/seedance/_emulator/faults", json={"latency": 2.5, "count": 1}, timeout=5)
        assert r.status_code == 200
        result: dict[str, object] = {}

        def in_flight() -> None:
            with grpc.insecure_channel(srv.target) as ch:
                try:
                    resp = pb_grpc.RealAuthServiceStub(ch).CreateAuthSession(
                        pb.CreateAuthSessionRequest(callback_url="https://example.com/x"), timeout=15
                    )
                    result["session"] = resp.session.session_id
                except grpc.RpcError as exc:
                    result["error"] = exc

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(0.7)
        srv.proc.send_signal(sig)
        statuses = set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and srv.proc.poll() is None:
            statuses.add(health(srv.target))
            if "NOT_SERVING" in statuses:
                break
            time.sleep(0.05)
        assert "NOT_SERVING" in statuses
        t.join(timeout=20)
        assert "error" not in result, result.get("error")
        assert str(result.get("session", "")).startswith("ses_")
        assert srv.proc.wait(timeout=20) == 0
        assert "shutting down" in srv.log()
    finally:
        if srv.proc.poll() is None:
            srv.stop(signal.SIGKILL)


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[providers.main]\nkind = "nosuch"\n')
    out = subprocess.run(
        [str(VENV_BIN / "realauth"), "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={**os.environ},
    )
    assert out.returncode == 2
    assert "providers.main.kind" in out.stderr and "Traceback" not in out.stderr
