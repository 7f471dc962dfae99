"""The official ``volcengine`` SDK's VisualService against a standalone emulator (``realauth emulate``)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from realauth_server.providers.volcengine import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY

from .conftest import free_port


@pytest.fixture
def standalone() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "realauth_server", "emulate", "volcengine", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"http://{url}/_emulator/stats", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _visual(host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ak: str, sk: str) -> Any:
    monkeypatch.setenv("HOME", str(tmp_path))
    from volcengine.visual.VisualService import VisualService

    vs = VisualService()
    vs.set_host(host)
    vs.set_scheme("http")
    vs.set_ak(ak)
    vs.set_sk(sk)
    return vs


async def test_official_sdk_gets_a_config_id(standalone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vs = _visual(standalone, tmp_path, monkeypatch, SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY)
    form = {
        "req_key": "cert_h5_config_init",
        "h5_config": {"type": "1", "redirect_url": "https://example.com/done"},
        "liveness_config": {"ref_source": "1", "liveness_type": "motion", "motion_count": 2},
    }
    resp = await asyncio.to_thread(vs.cert_h5_config_init, form)
    assert resp["code"] == 10000 and resp["message"] == "Success"
    assert len(resp["data"]["config_id"]) == 36 and resp["request_id"]
    assert set(resp) == {"code", "data", "message", "request_id", "status", "time_elapsed"}

    # A range violation answers the vendor's error envelope, which the SDK raises as non-200.
    bad = dict(form, expire_duration=59)
    with pytest.raises(Exception) as err:
        await asyncio.to_thread(vs.cert_h5_config_init, bad)
    body = json.loads(_body_of(err.value))
    assert body["code"] == 50200 and "expire_duration" in body["message"]


def _body_of(exc: BaseException) -> str:
    """The SDK raises ``Exception(b'<body>')`` for a non-200 answer: take the JSON out of it."""
    arg = exc.args[0] if exc.args else str(exc)
    text = arg.decode() if isinstance(arg, bytes) else str(arg)
    return text[text.index("{") : text.rindex("}") + 1]


async def test_official_sdk_with_wrong_secret_is_refused(
    standalone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vs = _visual(standalone, tmp_path, monkeypatch, SANDBOX_ACCESS_KEY_ID, "not-the-secret")
    with pytest.raises(Exception) as err:
        await asyncio.to_thread(vs.cert_verify_query, {"req_key": "cert_pro_verify_query", "byted_token": "x"})
    body = json.loads(_body_of(err.value))
    assert body["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"
