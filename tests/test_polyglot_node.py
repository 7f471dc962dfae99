"""A Node caller (@grpc/grpc-js + @grpc/proto-loader, from npm) creates a session and decodes error details."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .proc_util import start_serve

NODE_DIR = Path(__file__).resolve().parent / "node"

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


def test_node_client(node_modules: Path, tmp_path: Path) -> None:
    srv = start_serve(tmp_path)
    try:
        out = subprocess.run(
            ["node", str(NODE_DIR / "client.js"), srv.target], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
        assert seen["session_id"].startswith("ses_")
        assert seen["state"] == "AUTH_SESSION_STATE_PENDING"
        assert seen["verification_url"].startswith(srv.http_url + "/sandbox/seedance/")
        assert seen["request_id"] == "node-1"
        assert seen["error_code"] == 3  # INVALID_ARGUMENT
        assert seen["reason"] == "InvalidParameter" and seen["error_request_id"] == "node-2"
        assert seen["trailer_error_code"] == "InvalidParameter"
    finally:
        assert srv.stop() == 0
