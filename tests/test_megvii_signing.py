"""Megvii hmac_sha1 sign (vendors.md §4.3) and the H5 return-data sign (§4.2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from realauth_server.secret import Secret
from realauth_server.signing import megvii as m

from .conftest import on_loopback

# The published example (faceid sdkauth page); only the first 28 characters of the sign are on the page.
KEY = "ICVvC_xUs6177WEtyUNwIH8J6NfGu50t"
SECRET = "UjYGdN9CBZKsDBLB5-5v3DykPXY6dw3q"
RAW = "a=ICVvC_xUs6177WEtyUNwIH8J6NfGu50t&b=1530762218&c=1530762118&d=0799687066"
SIGN = (
    "SPzLRbDBgTGC2A8YdDaa7Jrny+5hPUlDVnZDX3hVczYxNzdXRXR5VU53SUg4SjZOZkd1NTB0JmI9MTUzMDc2MjIxOCZjPTE1MzA3NjIxMTgmZD0w"
    "Nzk5Njg3MDY2"
)


def secrets_of(key: str) -> str | None:
    return {KEY: SECRET}.get(key)


def test_published_vector() -> None:
    assert m.raw_string(KEY, 1530762218, 1530762118, "0799687066") == RAW
    assert m.sign_raw(SECRET, RAW) == SIGN
    assert SIGN.startswith("SPzLRbDBgTGC2A8YdDaa7Jrny+5h")  # the part the vendor page shows
    # The pure function with the example's clock and random draw gives the same sign.
    assert m.sign(KEY, SECRET, now=1530762118.9, ttl=100, random_source=lambda: 799687066) == SIGN


def test_layout_is_digest_then_raw_in_standard_base64() -> None:
    blob = base64.b64decode(SIGN, validate=True)
    assert blob[20:].decode() == RAW
    assert blob[:20] == hmac.new(SECRET.encode(), RAW.encode(), hashlib.sha1).digest()
    # A digest whose base64 needs '+' or '/' must keep them (not URL-safe base64).
    assert "+" in SIGN


def test_round_trip_and_fields() -> None:
    s = m.sign(KEY, SECRET, now=2_000_000_000, ttl=60, random_source=lambda: 42)
    signed = m.verify_sign(s, secrets_of, now=2_000_000_030)
    assert (signed.api_key, signed.current_time, signed.expire_time, signed.random) == (
        KEY,
        2_000_000_000,
        2_000_000_060,
        "0000000042",
    )
    fields = m.sign_fields(Secret(KEY), Secret(SECRET), now=2_000_000_000)
    assert fields["sign_version"] == "hmac_sha1"
    assert m.verify_sign(fields["sign"], secrets_of, now=2_000_000_000).api_key == KEY


def test_random_draws_differ_and_stay_in_range() -> None:
    signs = {m.sign(KEY, SECRET, now=1_700_000_000) for _ in range(20)}
    assert len(signs) == 20
    for s in signs:
        assert len(m.verify_sign(s, secrets_of, now=1_700_000_000).random) == 10
    with pytest.raises(ValueError):
        m.sign(KEY, SECRET, now=1, random_source=lambda: 10**10)
    with pytest.raises(ValueError):
        m.sign(KEY, SECRET, now=1, ttl=0)


def test_expiry_uses_the_injected_clock() -> None:
    assert m.verify_sign(SIGN, secrets_of, now=1530762218).api_key == KEY  # now == b is still valid
    with pytest.raises(m.SignError) as err:
        m.verify_sign(SIGN, secrets_of, now=1530762219)
    assert err.value.error == "AUTHORIZATION_ERROR: EXPIRED_SIGN"


def _forge(digest: bytes, raw: str) -> str:
    return base64.b64encode(digest + raw.encode()).decode()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        # Raw changed after signing (longer expiry): the HMAC no longer matches.
        (
            _forge(base64.b64decode(SIGN)[:20], RAW.replace("b=1530762218", "b=1630762218")),
            "AUTHORIZATION_ERROR: INVALID_SIGN",
        ),
        (m.sign_raw("not-the-secret", RAW), "AUTHORIZATION_ERROR: INVALID_SIGN"),
        # c must be before b, even when correctly signed.
        (m.sign_raw(SECRET, m.raw_string(KEY, 1530762118, 1530762118, "1")), "AUTHORIZATION_ERROR: INVALID_SIGN"),
        (m.sign_raw(SECRET, m.raw_string("unknown-key", 1530762218, 1530762118, "1")), "AUTHENTICATION_ERROR"),
        (SIGN.replace("+", "-"), "AUTHENTICATION_ERROR"),  # URL-safe alphabet is not the vendor's
        ("not base64!", "AUTHENTICATION_ERROR"),
        (base64.b64encode(b"x" * 20).decode(), "AUTHENTICATION_ERROR"),
        (_forge(b"\0" * 20, "a=k&b=1&c=0"), "AUTHENTICATION_ERROR"),  # no d
        (_forge(b"\0" * 20, RAW + "&e=1"), "AUTHENTICATION_ERROR"),
    ],
)
def test_tampered_signs_are_refused(value: str, error: str) -> None:
    with pytest.raises(m.SignError) as err:
        m.verify_sign(value, secrets_of, now=1530762150)
    assert err.value.error == error


def test_flipping_any_digest_byte_is_refused() -> None:
    blob = bytearray(base64.b64decode(SIGN))
    for i in range(20):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(m.SignError):
            m.verify_sign(base64.b64encode(bytes(bad)).decode(), secrets_of, now=1530762150)


def test_h5_data_sign() -> None:
    data = '{"status":"OK","biz_info":{"biz_id":"1,abc"}}'
    expected = hashlib.sha1((SECRET + data).encode()).hexdigest()
    assert m.data_sign(SECRET, data) == expected and expected == expected.lower()
    assert m.verify_data_sign(SECRET, data, expected)
    assert not m.verify_data_sign(SECRET, data, expected.upper())  # documented as lower-case hex
    assert not m.verify_data_sign(SECRET, data + " ", expected)
    assert not m.verify_data_sign("other", data, expected)
    assert not m.verify_data_sign(SECRET, data, "é")


def test_secrets_do_not_show_in_fields_repr() -> None:
    key, secret = Secret(KEY), Secret(SECRET)
    assert SECRET not in repr(secret) and SECRET not in f"{secret}"
    assert SECRET not in str(m.sign_fields(key, secret, now=1_700_000_000))


# --- the form-data body realauth builds itself (the bytes sent are known) ---------------------------------------------


async def _parsed(body: bytes, content_type: str) -> dict[str, Any]:
    """The form as a server reads it (aiohttp's ``request.post()``, as the emulator does), sent over a real port."""
    seen: dict[str, Any] = {}

    async def receive(request: web.Request) -> web.Response:
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                seen[name] = (value.filename, value.file.read(), value.content_type)
            else:
                seen[name] = value
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", receive)
    async with (
        on_loopback(lambda _url: app) as (_app, url),
        aiohttp.ClientSession() as http,
        http.post(url + "/", data=body, headers={"Content-Type": content_type}) as resp,
    ):
        assert resp.status == 200, await resp.text()
    return seen


async def test_form_data_is_read_back_field_for_field() -> None:
    fields = {"api_key": "k", "biz_extra_data": 'line1\r\n--not-a-boundary "quoted" é\x01', "empty": ""}
    image = bytes(range(256)) * 4
    body, content_type = m.form_data(fields, {"image_ref1": ("image_ref1.jpg", image, "application/octet-stream")})
    assert content_type.startswith("multipart/form-data; boundary=")
    assert await _parsed(body, content_type) == {
        **fields,
        "image_ref1": ("image_ref1.jpg", image, "application/octet-stream"),
    }


def test_form_data_boundaries_are_random_and_never_inside_the_content() -> None:
    one, two = m.form_data({"a": "1"})[1], m.form_data({"a": "1"})[1]
    assert one != two and len(one.rsplit("=", 1)[1]) == 32
    fixed, _ = m.form_data({"a": "1"}, boundary="b0undary")
    assert fixed == b'--b0undary\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b0undary--\r\n'
    with pytest.raises(ValueError, match="boundary"):
        m.form_data({"a": "xx b0undary xx"}, boundary="b0undary")


def test_form_data_names_cannot_break_out_of_their_header() -> None:
    body, _ = m.form_data({'a"\r\nX-Evil: 1': "v"}, boundary="B")
    assert b'name="a%22%0D%0AX-Evil: 1"' in body and b"\r\nX-Evil" not in body
