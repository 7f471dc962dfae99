"""`realauth emulate seedance --port N`: any plain HTTP client gets the relay's answers at the relay's own paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from realauth_server.vendors.seedance.adapter import SANDBOX_API_KEY

from .proc_util import run_emulator

pytestmark = pytest.mark.slow
MODEL = "doubao-seedance-2-0-260128"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[str]:
    with run_emulator("seedance", tmp_path) as base:
        yield base


def test_relay_flow_with_a_plain_client(relay: str) -> None:
    auth = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    with httpx.Client(base_url=relay, timeout=10) as http:
        r = http.post(
            "/v1/real-avatar/auth/session",
            json={"model": MODEL, "CallbackURL": "https://app.example/done?src=x", "Lng": "en"},
            headers=auth,
        )
        assert r.status_code == 200
        body = r.json()
        meta, result = body["ResponseMetadata"], body["Result"]
        assert meta["Service"] == "ark" and meta["Version"] == "2024-01-01" and meta["RequestId"]
        assert result["CallbackURL"] == "https://app.example/done?src=x"
        assert result["H5Link"].startswith(relay + "/h5?")
        token = result["BytedToken"]

        early = http.post("/v1/real-avatar/groups/from-token", json={"model": MODEL, "BytedToken": token}, headers=auth)
        assert early.status_code == 400 and early.json()["ResponseMetadata"]["Error"]["Code"] == "ValidateNotReady"

        page = http.get(result["H5Link"] + "&outcome=pass")
        assert page.status_code == 302
        back = urlsplit(page.headers["location"])
        q = parse_qs(back.query)
        assert back.netloc == "app.example" and q["src"] == ["x"] and q["bytedToken"] == [token]
        assert q["resultCode"] == ["10000"] and q["verify_type"] == ["real_time"]

        got = http.post("/v1/real-avatar/groups/from-token", json={"model": MODEL, "BytedToken": token}, headers=auth)
        assert got.status_code == 200 and got.json()["Result"]["GroupId"].startswith("group-")
        again = http.post("/v1/real-avatar/groups/from-token", json={"model": MODEL, "BytedToken": token}, headers=auth)
        assert again.status_code == 404  # single use


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"model": MODEL, "CallbackURL": "https://a.example"}, 401, "MissingAuthenticationToken"),
        (
            {"Authorization": "Bearer wrong"},
            {"model": MODEL, "CallbackURL": "https://a.example"},
            401,
            "InvalidAccessKey",
        ),
        (None, {"CallbackURL": "https://a.example"}, 400, "MissingParameter"),
        (None, {"model": "doubao-seedance-1-0", "CallbackURL": "https://a.example"}, 400, "InvalidParameter"),
        (None, {"model": MODEL}, 400, "MissingParameter"),
        (None, {"model": MODEL, "CallbackURL": "not a uri"}, 400, "InvalidParameter"),
        (None, {"model": MODEL, "CallbackURL": "https://a.example", "Lng": "fr"}, 400, "InvalidParameter"),
    ],
)
def test_relay_validates_like_the_seed(
    relay: str, headers: dict[str, str] | None, body: dict[str, str], status: int, code: str
) -> None:
    h = {"Authorization": f"Bearer {SANDBOX_API_KEY}"} if headers is None else headers
    r = httpx.post(relay + "/v1/real-avatar/auth/session", json=body, headers=h, timeout=10)
    assert r.status_code == status
    assert r.json()["ResponseMetadata"]["Error"]["Code"] == code
