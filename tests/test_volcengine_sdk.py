"""The official ``volcengine`` SDK's VisualService against a standalone emulator (``realauth emulate``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from realauth_server.providers.volcengine import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY

from .proc_util import run_emulator


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[str]:
    with run_emulator("volcengine", tmp_path) as base:
        yield base.removeprefix("http://")


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
