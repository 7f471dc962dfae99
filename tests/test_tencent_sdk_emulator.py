"""The official Tencent SDK (CommonClient, and the intl SDK's FaceidClient in every request form: POST/GET, TC3/v1)
against `realauth emulate tencent` as a separate process."""

from __future__ import annotations

import base64
import json
import logging
import time
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

from realauth_server.vendors.tencent.adapter import SANDBOX_SECRET_ID, SANDBOX_SECRET_KEY

from .proc_util import run_emulator

RESULT_ACTION = "GetWebVerificationResultIntl"


@pytest.fixture(autouse=True)
def _quiet_sdk_debug_log() -> Iterator[None]:
    """The SDK (a test oracle here) logs whole requests, Authorization included, at DEBUG; and urllib3 under it
    logs each URL, which for a signature v1 GET carries the SecretId (the vendor's design puts it there)."""
    loggers = {"tencentcloud_sdk_common": logging.INFO, "urllib3": logging.WARNING}
    before = {name: logging.getLogger(name).level for name in loggers}
    for name, level in loggers.items():
        logging.getLogger(name).setLevel(level)
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


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


# --- the international SDK's own FaceidClient: GET, signature v1 (issue 10) ---------------------------------


@pytest.fixture(autouse=True)
def _paced() -> None:
    """The emulator enforces Tencent's real 20 requests/s per action: tests sharing one stay below it."""
    time.sleep(0.06)


@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_emulator("tencent", tmp_path_factory.mktemp("tencent-sdk")) as base:
        yield base.removeprefix("http://")


def _faceid(
    endpoint: str,
    *,
    method: str = "POST",
    sign: str = "TC3-HMAC-SHA256",
    secret_id: str = SANDBOX_SECRET_ID,
    secret_key: str = SANDBOX_SECRET_KEY,
) -> Any:
    """``tencentcloud-sdk-python-intl-en``'s FaceidClient, as a caller would build it, pointed at the emulator."""
    from tencentcloud.faceid.v20180301 import faceid_client

    http = HttpProfile(protocol="http", endpoint=endpoint, reqMethod=method, reqTimeout=10)
    profile = ClientProfile(signMethod=sign, httpProfile=http)
    profile.disable_region_breaker = True
    return faceid_client.FaceidClient(credential.Credential(secret_id, secret_key), "ap-singapore", profile)


def _apply(client: Any, params: dict[str, Any]) -> Any:
    from tencentcloud.faceid.v20180301 import models

    req = models.ApplyWebVerificationBizTokenIntlRequest()
    req.from_json_string(json.dumps(params))
    return client.ApplyWebVerificationBizTokenIntl(req)


def _result(client: Any, token: str) -> Any:
    from tencentcloud.faceid.v20180301 import models

    req = models.GetWebVerificationResultIntlRequest()
    req.BizToken = token
    return client.GetWebVerificationResultIntl(req)


FORMS = [
    ("GET", "TC3-HMAC-SHA256"),
    ("GET", "HmacSHA1"),
    ("GET", "HmacSHA256"),
    ("POST", "HmacSHA1"),
    ("POST", "HmacSHA256"),
    ("POST", "TC3-HMAC-SHA256"),
]


@pytest.mark.parametrize(("method", "sign"), FORMS)
def test_intl_sdk_every_request_form_gets_a_token_and_a_result(shared_emulator: str, method: str, sign: str) -> None:
    client = _faceid(shared_emulator, method=method, sign=sign)
    applied = _apply(
        client,
        {
            "RedirectURL": "https://shop.example/kyc/done?order=42&x=1%2B1",
            "Extra": "ไทย ✓ 50%+1",
            "Config": {"CheckMode": 3, "SecurityLevel": 2, "AutoSkip": True, "Language": "th", "ThemeColor": "#2d72f1"},
        },
    )
    token = applied.BizToken
    assert applied.VerificationURL == f"http://{shared_emulator}/reflect/?token={token}" and applied.RequestId
    assert _result(client, token).ErrorCode is None

    page = httpx.get(applied.VerificationURL + "&outcome=pass")
    assert page.status_code == 302
    assert parse_qs(urlsplit(page.headers["location"]).query) == {"order": ["42"], "x": ["1+1"], "token": [token]}
    done = _result(client, token)
    assert (done.ErrorCode, done.ErrorMsg, done.Extra) == (0, "Success", "ไทย ✓ 50%+1")


@pytest.mark.parametrize(("method", "sign"), FORMS)
def test_intl_sdk_wrong_key_gets_signature_failure(shared_emulator: str, method: str, sign: str) -> None:
    with pytest.raises(TencentCloudSDKException) as err:
        _apply(
            _faceid(shared_emulator, method=method, sign=sign, secret_key="wrong-key"), {"RedirectURL": "https://a.b/"}
        )
    assert err.value.get_code() == "AuthFailure.SignatureFailure"
    assert err.value.get_request_id()


@pytest.mark.parametrize(("method", "sign"), [("GET", "HmacSHA1"), ("POST", "HmacSHA256"), ("GET", "TC3-HMAC-SHA256")])
def test_intl_sdk_unknown_secret_id(shared_emulator: str, method: str, sign: str) -> None:
    client = _faceid(shared_emulator, method=method, sign=sign, secret_id="AKIDnobody")
    with pytest.raises(TencentCloudSDKException) as err:
        _result(client, "NOPE")
    assert err.value.get_code() == "AuthFailure.SecretIdNotFound"


@pytest.mark.parametrize("sign", ["HmacSHA1", "TC3-HMAC-SHA256"])
def test_intl_sdk_stale_clock_gets_signature_expire(
    shared_emulator: str, sign: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tencentcloud.common.abstract_client as ac

    real = time.time  # ac.time is the time module itself
    monkeypatch.setattr(ac.time, "time", lambda: real() - 301)
    with pytest.raises(TencentCloudSDKException) as err:
        _result(_faceid(shared_emulator, method="GET", sign=sign), "NOPE")
    assert err.value.get_code() == "AuthFailure.SignatureExpire"


@pytest.mark.parametrize("sign", ["TC3-HMAC-SHA256", "HmacSHA256"])
@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"RedirectURL": "https://a.b/", "Config": {"CheckMode": "two"}}, "InvalidParameter"),
        ({"RedirectURL": "https://a.b/", "Config": {"AutoSkip": "maybe"}}, "InvalidParameter"),
        ({"RedirectURL": "https://a.b/", "Config": {"CheckMode": "--2"}}, "InvalidParameter"),
        ({"RedirectURL": "https://a.b/", "Config": {"CheckMode": "9" * 5000}}, "InvalidParameter"),
        ({"RedirectURL": "https://a.b/", "Config": {"CheckMode": "２"}}, "InvalidParameter"),
        ({"RedirectURL": "https://a.b/", "Config": {"CheckMode": -1}}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"LivenessTimeout": 601}}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"Colour": "red"}}, "UnknownParameter"),
        ({"RedirectURL": "https://a.b/", "Colour": "red"}, "UnknownParameter"),
        ({"Extra": "no redirect"}, "MissingParameter"),
    ],
)
def test_intl_sdk_get_values_are_read_as_the_api_types(
    shared_emulator: str, sign: str, params: dict[str, Any], code: str
) -> None:
    # CommonClient: the typed models would drop the unknown names before sending.
    http = HttpProfile(protocol="http", endpoint=shared_emulator, reqMethod="GET", reqTimeout=10)
    profile = ClientProfile(signMethod=sign, httpProfile=http)
    profile.disable_region_breaker = True
    cred = credential.Credential(SANDBOX_SECRET_ID, SANDBOX_SECRET_KEY)
    client = CommonClient("faceid", "2018-03-01", cred, "ap-singapore", profile)
    with pytest.raises(TencentCloudSDKException) as err:
        _call(client, "ApplyWebVerificationBizTokenIntl", params)
    assert err.value.get_code() == code


def test_intl_sdk_get_up_to_32_kb(shared_emulator: str) -> None:
    # 20 KB of base64: longer than aiohttp's default 8 KB request line, within the vendor's 32 KB GET.
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 15_000).decode()
    client = _faceid(shared_emulator, method="GET")
    assert _apply(client, {"RedirectURL": "https://a.b/", "CompareImageBase64": image}).BizToken
    big = base64.b64encode(b"\0" * 30_000).decode()
    with pytest.raises(TencentCloudSDKException) as err:
        _apply(client, {"RedirectURL": "https://a.b/", "CompareImageBase64": big})
    assert err.value.get_code() == "RequestSizeLimitExceeded"


def test_v1_get_is_counted_and_faulted_as_an_api_call(shared_emulator: str) -> None:
    base = f"http://{shared_emulator}"
    before = httpx.get(f"{base}/_emulator/stats").json()["by_action"].get(RESULT_ACTION, 0)
    httpx.put(f"{base}/_emulator/faults", json={"rate_limit": True, "count": 1, "path": RESULT_ACTION})
    with pytest.raises(TencentCloudSDKException) as err:
        _result(_faceid(shared_emulator, method="GET", sign="HmacSHA1"), "NOPE")
    assert err.value.get_code() == "RequestLimitExceeded"
    with pytest.raises(TencentCloudSDKException) as err:
        _result(_faceid(shared_emulator, method="GET", sign="HmacSHA1"), "NOPE")
    assert err.value.get_code() == "InvalidParameterValue.BizTokenIllegal"
    assert httpx.get(f"{base}/_emulator/stats").json()["by_action"][RESULT_ACTION] == before + 2
