"""The official ``volcengine`` SDK's VisualService against a standalone emulator (``realauth emulate``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from realauth_server.signing.volc_v4 import sign_v4
from realauth_server.vendors.volcengine.adapter import (
    SANDBOX_ACCESS_KEY_ID,
    SANDBOX_ROLE_TRN,
    SANDBOX_SECRET_ACCESS_KEY,
)

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


# --- STS AssumeRole as the official SDK sends it (a GET), and visual's mandatory signed content-type (issue 10) ---


def _sts(host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ak: str, sk: str) -> Any:
    monkeypatch.setenv("HOME", str(tmp_path))
    from volcengine.sts.StsService import StsService

    sts = StsService()  # a process-wide singleton: every setting is made again here
    sts.set_host(host)
    sts.set_scheme("http")
    sts.set_ak(ak)
    sts.set_sk(sk)
    return sts


async def test_official_sts_get_gives_keys_that_sign_visual_calls(
    standalone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sts = _sts(standalone, tmp_path, monkeypatch, SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY)
    assert sts.api_info["AssumeRole"].method == "GET"
    resp = await asyncio.to_thread(
        sts.assume_role, {"RoleTrn": SANDBOX_ROLE_TRN, "RoleSessionName": "sdk", "DurationSeconds": 900}
    )
    assert resp["ResponseMetadata"]["Action"] == "AssumeRole" and "Error" not in resp["ResponseMetadata"]
    creds = resp["Result"]["Credentials"]
    assert creds["AccessKeyId"].startswith("AKTP") and creds["SessionToken"]

    # The temporary keys (with X-Security-Token) sign a visual call the emulator accepts.
    vs = _visual(standalone, tmp_path, monkeypatch, creds["AccessKeyId"], creds["SecretAccessKey"])
    vs.set_session_token(creds["SessionToken"])
    form = {
        "req_key": "cert_h5_config_init",
        "h5_config": {"type": "1", "redirect_url": "https://example.com/done"},
        "liveness_config": {"ref_source": "1", "liveness_type": "motion"},
    }
    assert (await asyncio.to_thread(vs.cert_h5_config_init, form))["code"] == 10000


@pytest.mark.parametrize(
    ("ak", "sk", "params", "code"),
    [
        (SANDBOX_ACCESS_KEY_ID, "not-the-secret", {"RoleTrn": SANDBOX_ROLE_TRN}, "SignatureDoesNotMatch"),
        ("AKLTnobody", "x", {"RoleTrn": SANDBOX_ROLE_TRN}, "InvalidAccessKey"),
        (SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY, {"RoleTrn": "trn:iam::1:role/x"}, "AccessDenied"),
        (SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY, {}, "MissingParameter"),
    ],
)
async def test_official_sts_get_sees_the_vendor_errors(
    standalone: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ak: str,
    sk: str,
    params: dict[str, str],
    code: str,
) -> None:
    sts = _sts(standalone, tmp_path, monkeypatch, ak, sk)
    with pytest.raises(Exception) as err:
        await asyncio.to_thread(sts.assume_role, {"RoleSessionName": "sdk", **params})
    body = json.loads(_body_of(err.value))
    assert body["ResponseMetadata"]["Error"]["Code"] == code
    assert body["ResponseMetadata"]["Service"] == "sts"


def test_visual_call_without_signed_content_type_is_refused(standalone: str) -> None:
    body = json.dumps({"req_key": "cert_pro_verify_query", "byted_token": "x"}).encode()
    url = f"http://{standalone}/?Action=CertVerifyQuery&Version=2022-08-31"
    signed = sign_v4(
        "POST", url, {}, body, access_key_id=SANDBOX_ACCESS_KEY_ID, secret_access_key=SANDBOX_SECRET_ACCESS_KEY,
        region="cn-north-1", service="cv", now=time.time(),
    )  # fmt: skip
    assert "SignedHeaders=host;x-content-sha256;x-date," in signed["Authorization"]
    # The signature itself holds (over what it names); Content-Type travels unsigned.
    resp = httpx.post(url, content=body, headers={**signed, "Content-Type": "application/json"})
    assert resp.status_code == 401
    error = resp.json()["ResponseMetadata"]["Error"]
    assert error["Code"] == "SignatureDoesNotMatch" and "content-type" in error["Message"]
    # The same request with Content-Type signed is answered by the service (no result for that token).
    good = sign_v4(
        "POST", url, {"Content-Type": "application/json"}, body, access_key_id=SANDBOX_ACCESS_KEY_ID,
        secret_access_key=SANDBOX_SECRET_ACCESS_KEY, region="cn-north-1", service="cv", now=time.time(),
    )  # fmt: skip
    ok = httpx.post(url, content=body, headers={**good, "Content-Type": "application/json"})
    assert ok.json()["code"] == 50215
