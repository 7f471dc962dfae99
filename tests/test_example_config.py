"""examples/emulators.toml: every provider pointed at its standalone emulator (`realauth emulate`), driven end to
end through a real `realauth serve --config`; and an unreachable vendor endpoint is named in the error."""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from contextlib import ExitStack
from pathlib import Path

import grpc
import httpx
import pytest
from aiohttp import web

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server.config import load_settings
from realauth_server.vendors.megvii.adapter import SANDBOX_API_KEY as MEGVII_KEY
from realauth_server.vendors.megvii.adapter import SANDBOX_API_SECRET as MEGVII_SECRET
from realauth_server.vendors.registry import KINDS

from .conftest import ROOT, ServerFactory
from .errors_util import decode
from .proc_util import run_emulator, start_serve
from .signing_util import form

EXAMPLE = ROOT / "examples" / "emulators.toml"


def example_ports() -> dict[str, int]:
    """The emulator port each provider of the example uses (one port per kind, every endpoint key on it)."""
    data = tomllib.loads(EXAMPLE.read_text())
    ports: dict[str, int] = {}
    for name, table in data["providers"].items():
        urls = {v for k, v in table.items() if isinstance(v, str) and v.startswith("http")}
        (port,) = {int(m) for u in urls for m in re.findall(r"^http://127\.0\.0\.1:(\d+)", u)}
        ports[name] = port
    return ports


def test_example_covers_every_kind_with_no_sandbox_flag() -> None:
    settings = load_settings(str(EXAMPLE))
    assert sorted(p.kind for p in settings.providers) == sorted(KINDS)
    assert not settings.sandbox and not any(p.sandbox for p in settings.providers)
    assert len(set(example_ports().values())) == len(KINDS)
    volc = settings.provider("volcengine")
    assert volc is not None and {"sts_base_url", "h5_url"} <= set(volc.extra)  # not only base_url


@pytest.mark.slow
def test_every_provider_runs_against_the_standalone_emulators(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    with ExitStack() as stack:
        for name, port in example_ports().items():
            base = stack.enter_context(run_emulator(name, tmp_path))
            text = text.replace(f"http://127.0.0.1:{port}", base)
        config = tmp_path / "emulators.toml"
        config.write_text(text)
        srv = start_serve(tmp_path, "--config", str(config))
        try:
            with grpc.insecure_channel(srv.target) as ch, httpx.Client(timeout=30) as browser:
                stub = pb_grpc.RealAuthServiceStub(ch)
                listed = stub.ListProviders(pb.ListProvidersRequest(), timeout=10)
                assert {p.name for p in listed.providers} == set(KINDS)
                assert not any(p.sandbox for p in listed.providers)
                for name in KINDS:
                    session = stub.CreateAuthSession(
                        pb.CreateAuthSessionRequest(provider=name, callback_url="https://caller.example/done"),
                        timeout=20,
                    ).session
                    assert session.state == pb.AUTH_SESSION_STATE_PENDING, name
                    # The person's browser: the emulator's page, Pass, the redirect to realauth's landing.
                    sep = "&" if "?" in session.verification_url else "?"
                    page = browser.get(f"{session.verification_url}{sep}outcome=pass")
                    assert page.status_code in (302, 303), (name, page.text)
                    assert page.headers["location"].startswith(srv.http_url + "/v1/callback/"), name
                    landing = browser.get(page.headers["location"])
                    assert landing.status_code in (302, 303), (name, landing.text)
                    assert landing.headers["location"].startswith("https://caller.example/done?"), name
                    got = stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token), timeout=20)
                    assert got.result.passed, (name, got.result)
                    assert got.session.state == pb.AUTH_SESSION_STATE_EXCHANGED, name
        finally:
            assert srv.stop() == 0


UNREACHABLE = "http://realauth-test.invalid:9443"


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_unreachable_endpoint_is_named_without_path_or_query(make_realauth: ServerFactory, kind: str) -> None:
    """A DNS failure names the scheme, host and port it tried, and never the path or query (signatures)."""
    table = {**KINDS[kind].sandbox_settings(f"{UNREACHABLE}/x/y"), "kind": kind, "max_attempts": 1}
    h = await make_realauth("[providers.p]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.create(provider="p")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    message = err.value.details() or ""
    assert f"failed to reach the vendor at {UNREACHABLE} (" in message, message
    assert "/x/y" not in message and "?" not in message and "Action" not in message
    assert decode(err.value).reason == "ProviderUnavailable"


async def test_volcengine_sts_endpoint_is_the_one_named(make_realauth: ServerFactory, tmp_path: Path) -> None:
    """The case that used to need the source: base_url set, the STS call going elsewhere, the error not saying where.
    (The default STS host is a real vendor's, so the test points sts_base_url at a name that never resolves.)"""
    with ExitStack() as stack:
        base = stack.enter_context(run_emulator("volcengine", tmp_path))
        table = {
            **KINDS["volcengine"].sandbox_settings(base),
            "base_url": base,
            "h5_url": f"{base}/h5",
            "sts_base_url": "https://sts.realauth-test.invalid",
            "max_attempts": 1,
        }
        config = "[providers.volcengine]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
        h = await make_realauth(config)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await h.create(provider="volcengine")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "https://sts.realauth-test.invalid (" in (err.value.details() or ""), err.value.details()


# --- pushes to a named host (compose: realauth is `realauth.localhost`, not loopback, seen from an emulator) ---------

#: Loopback, but not a name the emulators treat as loopback: stands in for another container's host name.
OTHER_HOST = "127.0.0.2"


async def megvii_pass_with_notify(base: str, notify_url: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        resp = await http.post(
            "/faceid/lite/get_token",
            **form(
                {
                    "api_key": MEGVII_KEY,
                    "api_secret": MEGVII_SECRET,
                    "return_url": "https://caller.example/back",
                    "notify_url": notify_url,
                    "biz_no": "order-1",
                    "comparison_type": "1",
                    "idcard_mode": "2",
                    "action_http_method": "GET",
                }
            ),
        )
        assert resp.status_code == 200, resp.text
        page = await http.get("/faceid/lite/do", params={"token": resp.json()["token"], "outcome": "pass"})
        assert page.status_code == 302


@pytest.mark.parametrize("opt_in", [False, True])
async def test_emulator_pushes_to_a_named_host_only_when_told(tmp_path: Path, opt_in: bool) -> None:
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path}")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/notify", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, OTHER_HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        extra = ("--push-host", OTHER_HOST) if opt_in else ()
        with run_emulator("megvii", tmp_path, *extra) as base:
            await megvii_pass_with_notify(base, f"http://{OTHER_HOST}:{port}/notify")
            for _ in range(40):
                if hits:
                    break
                await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    assert hits == (["POST /notify"] if opt_in else [])
