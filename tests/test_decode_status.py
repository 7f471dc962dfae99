"""tools/decode_status.py reads `buf curl` output (with or without -v) from a real server; --emit-defaults shows
`passed: false`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ROOT, VENV_BIN
from .proc_util import ServeProcess, start_serve

pytestmark = pytest.mark.slow
CREATE = "realauth.v1.RealAuthService/CreateAuthSession"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("decode-status")
    cfg = tmp / "realauth.toml"
    cfg.write_text("[providers.seedance]\nsandbox = true\nmax_attempts = 1\n")
    served = start_serve(tmp, "--config", str(cfg))
    try:
        yield served
    finally:
        assert served.stop() == 0


def curl(srv: ServeProcess, method: str, data: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(VENV_BIN / "buf"), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *extra]
    cmd += ["--data", json.dumps(data), f"http://{srv.target}/{method}"]
    env = {**os.environ, "BUF_CACHE_DIR": str(ROOT / ".cache" / "buf")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def decode(text: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "decode_status.py"), *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout)) if out.stdout.startswith("{") else {"list": json.loads(out.stdout)}


def test_decodes_buf_curl_errors_with_and_without_verbose(srv: ServeProcess) -> None:
    bad = {"callback_url": "ftp://nope"}
    verbose = curl(srv, CREATE, bad, "-v", "-H", "x-request-id: decode-1")
    assert verbose.returncode != 0
    seen = decode(verbose.stdout + verbose.stderr)
    status = seen["status"]
    assert status["grpc_code"] == "INVALID_ARGUMENT" and status["error_code"] == "InvalidParameter"
    assert status["metadata"]["request_id"] == "decode-1"
    assert [v["field"] for v in status["field_violations"]] == ["callback_url"]
    assert seen["response_metadata"]["request_id"] == "decode-1"
    assert seen["response_metadata"]["error"]["code"] == "InvalidParameter"
    # Without -v: buf curl's own JSON error on stderr, details as base64 values.
    plain = curl(srv, CREATE, bad, "-H", "x-request-id: decode-2")
    status = decode(plain.stderr)["status"]
    assert status["error_code"] == "InvalidParameter" and status["metadata"]["request_id"] == "decode-2"
    assert status["field_violations"][0]["field"] == "callback_url"


def test_decodes_retry_info_and_bare_values(srv: ServeProcess) -> None:
    faults = f"{srv.http_url}/sandbox/seedance/_emulator/faults"
    assert httpx.put(faults, json={"status": 503, "count": 1}, timeout=5).status_code == 200
    try:
        down = curl(srv, CREATE, {"callback_url": "https://caller.example/done"}, "-v")
    finally:
        httpx.delete(faults, timeout=5)
    status = decode(down.stderr)["status"]
    assert status["grpc_code"] == "UNAVAILABLE" and status["error_code"] == "ProviderUnavailable"
    assert status["retry_delay"] == "1s" and status["metadata"]["vendor_code"] == "ServiceUnavailable"
    value = next(
        line.rsplit(":", 1)[1].strip() for line in down.stderr.splitlines() if "Grpc-Status-Details-Bin" in line
    )
    (bare,) = decode("", value)["list"]
    assert bare["error_code"] == "ProviderUnavailable"


def test_nothing_to_decode_says_so(srv: ServeProcess) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "decode_status.py")], input="{}", capture_output=True, text=True
    )
    assert out.returncode == 1 and "no error details" in out.stderr
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "decode_status.py"), "!!!"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "cannot decode" in out.stderr


def test_emit_defaults_shows_a_failed_verification(srv: ServeProcess) -> None:
    created = curl(srv, CREATE, {"callback_url": "https://caller.example/done"})
    assert created.returncode == 0, created.stderr
    session = json.loads(created.stdout)["session"]
    page = httpx.get(f"{session['verificationUrl']}&outcome=fail" if "?" in session["verificationUrl"]
                     else f"{session['verificationUrl']}?outcome=fail", timeout=10)  # fmt: skip
    assert page.status_code in (302, 303)
    httpx.get(page.headers["location"], timeout=10)
    exchange = "realauth.v1.RealAuthService/ExchangeToken"
    quiet = curl(srv, exchange, {"session_id": session["sessionId"]})
    loud = curl(srv, exchange, {"session_id": session["sessionId"]}, "--emit-defaults")
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "passed" not in json.loads(quiet.stdout).get("result", {})  # proto3 JSON drops false …
    assert json.loads(loud.stdout)["result"]["passed"] is False  # … --emit-defaults prints it


def test_decoder_ships_in_the_client_package() -> None:
    src = (Path(ROOT) / "clients" / "python" / "realauth_client" / "decode.py").read_text()
    assert "def main(" in src and "grpc-status-details-bin" in src
