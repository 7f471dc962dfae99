"""Tencent Cloud API signature v1 (HmacSHA1 / HmacSHA256) as the emulator verifies it, and GET form parsing.

The published example is Tencent's own ("Signature", e.g. https://www.tencentcloud.com/document/product/214/33794,
and the Chinese CVM page with the masked key); the official SDK's runs are in test_tencent_sdk_emulator.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realauth_server.vendors.tencent.adapter import APPLY, RESULT, SANDBOX_SECRET_ID, SANDBOX_SECRET_KEY
from realauth_server.vendors.tencent.emulator import (
    TencentEmulator,
    _form_pairs,
    _Refused,
    _typed,
    v1_signature,
    v1_string_to_sign,
    verify_v1,
)

from .conftest import on_loopback

DOC_PARAMS = {
    "Action": "DescribeInstances",
    "InstanceIds.0": "ins-09dx96dg",
    "Limit": "20",
    "Nonce": "11886",
    "Offset": "0",
    "Region": "ap-guangzhou",
    "Timestamp": "1465185768",
    "Version": "2017-03-12",
}


@pytest.mark.parametrize(
    ("secret_id", "secret_key", "expected"),
    [
        ("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "EliP9YW3pW28FpsEdkXt/+WcGeI="),
        ("AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******", "Gu5t9xGARNpq86cd98joQYCN3*******", "zmmjn35mikh6pM3V7sUEuX4wyYM="),
    ],
)
def test_published_v1_example(secret_id: str, secret_key: str, expected: str) -> None:
    params = {**DOC_PARAMS, "SecretId": secret_id}
    text = v1_string_to_sign("GET", "cvm.tencentcloudapi.com", "/", params)
    assert text == (
        "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Limit=20&Nonce=11886"
        f"&Offset=0&Region=ap-guangzhou&SecretId={secret_id}&Timestamp=1465185768&Version=2017-03-12"
    )
    assert v1_signature(secret_key, text, "HmacSHA1") == expected
    # Signature itself never takes part; neither does the order the parameters came in.
    again = {"Signature": "x", **dict(reversed(list(params.items())))}
    assert v1_string_to_sign("GET", "cvm.tencentcloudapi.com", "/", again) == text


@pytest.fixture(autouse=True)
def _quiet_client_log() -> Iterator[None]:
    """httpx logs each URL it fetches; a v1 GET's URL carries the SecretId (the suite's leak check looks for it)."""
    client_log = logging.getLogger("httpx")
    level = client_log.level
    client_log.setLevel(logging.WARNING)
    yield
    client_log.setLevel(level)


@pytest.fixture
async def emulator() -> Any:
    async with on_loopback(lambda url: TencentEmulator(public_url=url)) as (emu, url):
        yield emu, url


def _v1(url: str, params: dict[str, str], *, method: str = "GET", key: str = SANDBOX_SECRET_KEY) -> dict[str, str]:
    """A v1-signed parameter set for ``url`` (a Signature over exactly these values)."""
    host = httpx.URL(url).netloc.decode()
    out = {
        "Action": "GetWebVerificationResultIntl",
        "Version": "2018-03-01",
        "Region": "ap-singapore",
        "SecretId": SANDBOX_SECRET_ID,
        "Timestamp": str(int(time.time())),
        "Nonce": "424242",
        "SignatureMethod": "HmacSHA256",
        **params,
    }
    sig_method = out["SignatureMethod"] if out["SignatureMethod"] in ("HmacSHA1", "HmacSHA256") else "HmacSHA1"
    out["Signature"] = v1_signature(key, v1_string_to_sign(method, host, "/", out), sig_method)
    return out


def _code(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    return str(resp.json()["Response"].get("Error", {}).get("Code", ""))


async def test_v1_get_and_post_are_verified(emulator: Any) -> None:
    _, url = emulator
    async with httpx.AsyncClient() as c:
        ok = await c.get(url + "/?" + urlencode(_v1(url, {"BizToken": "NOPE"})))
        assert _code(ok) == "InvalidParameterValue.BizTokenIllegal"  # past the signature
        form = urlencode(_v1(url, {"BizToken": "NOPE"}, method="POST"))
        posted = await c.post(url + "/", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert _code(posted) == "InvalidParameterValue.BizTokenIllegal"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda p: p.pop("Signature"), "MissingParameter"),
        (lambda p: p.pop("Nonce"), "MissingParameter"),
        (lambda p: p.pop("Action"), "MissingParameter"),
        (lambda p: p.update(BizToken="OTHER"), "AuthFailure.SignatureFailure"),
        (lambda p: p.update(SignatureMethod="HmacMD5"), "InvalidParameterValue"),
        (lambda p: p.update(Timestamp="１２３"), "InvalidParameter"),
        (lambda p: p.update(Nonce="-1"), "InvalidParameter"),
        (lambda p: p.update(SecretId="AKIDnobody"), "AuthFailure.SecretIdNotFound"),
        (lambda p: p.update(Version="2017-03-12"), "NoSuchVersion"),
    ],
)
async def test_v1_refusals_carry_tencent_codes(emulator: Any, mutate: Any, code: str) -> None:
    _, url = emulator
    params = _v1(url, {"BizToken": "NOPE"})
    mutate(params)
    async with httpx.AsyncClient() as c:
        assert _code(await c.get(url + "/?" + urlencode(params))) == code


async def test_v1_stale_timestamp_is_signature_expire(emulator: Any) -> None:
    _, url = emulator
    params = _v1(url, {"BizToken": "NOPE", "Timestamp": str(int(time.time()) - 301)})
    async with httpx.AsyncClient() as c:
        assert _code(await c.get(url + "/?" + urlencode(params))) == "AuthFailure.SignatureExpire"


async def test_a_parameter_given_twice_is_refused(emulator: Any) -> None:
    """Which copy was signed and which one used? Neither: the request is refused (parameter pollution)."""
    _, url = emulator
    query = urlencode(_v1(url, {"BizToken": "NOPE"})) + "&BizToken=OTHER"
    async with httpx.AsyncClient() as c:
        resp = await c.get(url + "/?" + query)
    assert _code(resp) == "InvalidParameter" and "BizToken" in resp.json()["Response"]["Error"]["Message"]


@pytest.mark.parametrize(
    ("query", "body"),
    [("Action=%FF%FE&Nonce=1", None), (None, b"Action=\xff\xfe"), ("%", None), ("a=%zz&&&==", None)],
)
async def test_malformed_form_encoding_is_a_clear_error(emulator: Any, query: str | None, body: bytes | None) -> None:
    _, url = emulator
    async with httpx.AsyncClient() as c:
        if body is None:
            resp = await c.get(f"{url}/?{query}")
        else:
            resp = await c.post(url + "/", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert _code(resp) in ("InvalidParameter", "MissingParameter")


async def test_v1_post_over_1_mb_is_request_size_limit_exceeded(emulator: Any) -> None:
    _, url = emulator
    form = urlencode(_v1(url, {"BizToken": "x" * (1024 * 1024)}, method="POST"))
    async with httpx.AsyncClient() as c:
        resp = await c.post(url + "/", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert _code(resp) == "RequestSizeLimitExceeded"


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab.=&%+_-ZConfigCheckModeAutoSkip1F9\u00e9 "), max_size=80),
    st.sampled_from([APPLY, RESULT]),
)
def test_form_parsing_only_ever_answers_a_tencent_refusal(text: str, action: str) -> None:
    """Whatever a query or form body holds, it parses or is refused with a Tencent code: never another exception."""
    try:
        pairs = _form_pairs(text, "query string")
        _typed(action, pairs)
        verify_v1("GET", "h", "/", pairs, secret_for={SANDBOX_SECRET_ID: SANDBOX_SECRET_KEY}.get, now=time.time())
    except _Refused as exc:
        assert exc.code and exc.message
