"""clients/node (realauth-client for Node) against a real `realauth serve`: the example's create → sandbox pass →
exchange, error decoding, RetryInfo retries, webhook verification matching the Python library; its .d.ts compiles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from realauth_client import sign_webhook

from .proc_util import ServeProcess, start_serve

NODE_DIR = Path(__file__).resolve().parent.parent / "clients" / "node"
KEY = "node-client-key-0123456789abcd"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not on this machine")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        out = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("client-node")
    cfg = tmp / "realauth.toml"
    # max_attempts = 1: the server surfaces a vendor fault at once, so the client's own retry is what is tested.
    cfg.write_text(f'[providers.seedance]\nsandbox = true\nmax_attempts = 1\n[tenants.main]\nkeys = ["{KEY}"]\n')
    served = start_serve(tmp, "--config", str(cfg))
    try:
        yield served
    finally:
        assert served.stop() == 0


def node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=90, env={**os.environ, **(env or {})}
    )


def test_example_creates_passes_and_exchanges(node_modules: Path, srv: ServeProcess) -> None:
    out = node("example.js", srv.target, env={"REALAUTH_API_KEY": KEY})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["session_id"].startswith("ses_") and seen["passed"] is True and seen["group_id"]
    assert seen["callback"].startswith("https://example.com/done")


def test_errors_retries_and_webhooks(node_modules: Path, srv: ServeProcess) -> None:
    secret, body, t = "whsec-node-check-0123456789", '{"id":"evt_1","type":"session.exchanged"}', 1_764_650_000
    env = {
        "REALAUTH_API_KEY": KEY,
        "WEBHOOK_SECRET": secret,
        "WEBHOOK_BODY": body,
        "WEBHOOK_T": str(t),
        "WEBHOOK_HEADER": sign_webhook(secret, body.encode(), t),
    }
    out = node("test/check.js", srv.target, srv.http_url, env=env)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["key_hidden"] is True
    bad = seen["bad"]
    assert bad["grpcCodeName"] == "INVALID_ARGUMENT" and bad["code"] == "InvalidParameter"
    assert bad["requestId"] == "node-bad-1" and bad["attempts"] == 1 and bad["retriable"] is False
    assert bad["fields"] == ["callback_url"] and bad["trailerCode"] == "InvalidParameter"
    assert seen["pending"] == {"code": "VerificationPending", "vendorCode": "ValidateNotReady"}
    assert seen["retry"]["elapsedMs"] >= 900 and seen["retry"]["requestId"] == "node-retry-1"
    assert seen["retry"]["state"] == "AUTH_SESSION_STATE_PENDING"
    down = seen["down"]
    assert down["attempts"] >= 2 and down["elapsedMs"] < 2600 and down["code"] and down["retryDelayMs"] is not None
    assert seen["unauth"] == {"grpcCodeName": "UNAUTHENTICATED", "code": "Unauthenticated"}
    assert seen["webhook_ok"] is True and seen["webhook_same_header"] is True
    assert [r.split(" ")[0] for r in seen["webhook_refusals"]] == ["signature", "signature", "malformed"]


def test_type_declarations_compile(node_modules: Path) -> None:
    tsc = NODE_DIR / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.skip("typescript (a devDependency) not installed")
    out = subprocess.run([str(tsc), "-p", "tsconfig.json"], cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
