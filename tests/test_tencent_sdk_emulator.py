"""The official Tencent SDK (CommonClient) against `realauth emulate tencent` as a separate process."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from realauth_server.providers.tencent import SANDBOX_SECRET_ID, SANDBOX_SECRET_KEY

from .proc_util import run_emulator


@pytest.fixture(autouse=True)
def _quiet_sdk_debug_log() -> Iterator[None]:
    """The SDK (a test oracle here) logs whole requests, Authorization included, at DEBUG."""
    sdk_log = logging.getLogger("tencentcloud_sdk_common")
    level = sdk_log.level
    sdk_log.setLevel(logging.INFO)
    yield
    sdk_log.setLevel(level)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    with run_emulator("tencent", tmp_path) as base:
        yield base.removeprefix("http://")


def _client(endpoint: str, secret_key: str = SANDBOX_SECRET_KEY, region: str = "ap-singapore") -> CommonClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=10))
    profile.disable_region_breaker = True
    return CommonClient("faceid", "2018-03-01", credential.Credential(SANDBOX_SECRET_ID, secret_key), region, profile)


def _call(client: CommonClient, action: str, params: dict[str, Any]) -> dict[str, Any]:
    return client.call_json(action, params)["Response"]  # type: ignore[no-any-return]


def test_sdk_gets_a_biz_token_and_a_result(emulator: str) -> None:
    client = _client(emulator)
    applied = _call(
        client,
        "ApplyWebVerificationBizTokenIntl",
        {
            "RedirectURL": "https://shop.example/kyc/done?order=42",
            "Extra": "order-42",
            "Config": {"CheckMode": 3, "SecurityLevel": 3, "Language": "en"},
        },
    )
    token = applied["BizToken"]
    assert applied["VerificationURL"] == f"http://{emulator}/reflect/?token={token}"
    assert applied["RequestId"]

    pending = _call(client, "GetWebVerificationResultIntl", {"BizToken": token})
    assert pending["ErrorCode"] is None and pending["Extra"] == "order-42"

    page = httpx.get(applied["VerificationURL"] + "&outcome=pass")
    assert page.status_code == 302
    target = urlsplit(page.headers["location"])
    assert (target.netloc, target.path) == ("shop.example", "/kyc/done")
    assert parse_qs(target.query) == {"order": ["42"], "token": [token]}

    done = _call(client, "GetWebVerificationResultIntl", {"BizToken": token})
    assert done["ErrorCode"] == 0 and done["ErrorMsg"] == "Success"
    assert done["VerificationDetailList"][0]["LivenessErrorCode"] == 0


@pytest.mark.parametrize(
    ("kwargs", "action", "params", "code"),
    [
        (
            {"secret_key": "wrong-key"},
            "ApplyWebVerificationBizTokenIntl",
            {"RedirectURL": "https://a.b/"},
            "AuthFailure.SignatureFailure",
        ),
        (
            {"region": "ap-guangzhou"},
            "ApplyWebVerificationBizTokenIntl",
            {"RedirectURL": "https://a.b/"},
            "UnsupportedRegion",
        ),
        ({}, "DescribeInstances", {}, "InvalidAction"),
        ({}, "ApplyWebVerificationBizTokenIntl", {}, "MissingParameter"),
        ({}, "ApplyWebVerificationBizTokenIntl", {"RedirectURL": "https://a.b/", "Colour": "red"}, "UnknownParameter"),
        (
            {},
            "ApplyWebVerificationBizTokenIntl",
            {"RedirectURL": "https://a.b/", "Config": {"LivenessTimeout": 601}},
            "InvalidParameterValue",
        ),
        (
            {},
            "ApplyWebVerificationBizTokenIntl",
            {"RedirectURL": "https://a.b/", "CompareImageBase64": "data:image/png;base64,iVBORw0KGgo="},
            "InvalidParameterValue",
        ),
        ({}, "GetWebVerificationResultIntl", {"BizToken": "NOPE"}, "InvalidParameterValue.BizTokenIllegal"),
    ],
)
def test_sdk_sees_tencent_errors(
    emulator: str, kwargs: dict[str, str], action: str, params: dict[str, Any], code: str
) -> None:
    with pytest.raises(TencentCloudSDKException) as err:
        _call(_client(emulator, **kwargs), action, params)
    assert err.value.get_code() == code
    assert err.value.get_request_id()


def test_sdk_json_body_is_what_was_signed(emulator: str) -> None:
    # Non-ASCII text is escaped by the SDK's json.dumps; the emulator must verify those exact bytes.
    applied = _call(
        _client(emulator), "ApplyWebVerificationBizTokenIntl", {"RedirectURL": "https://a.b/", "Extra": "ไทย ✓"}
    )
    got = _call(_client(emulator), "GetWebVerificationResultIntl", {"BizToken": applied["BizToken"]})
    assert got["Extra"] == "ไทย ✓"
    assert json.dumps(got["Extra"]) == '"\\u0e44\\u0e17\\u0e22 \\u2713"'
