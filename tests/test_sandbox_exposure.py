"""The sandbox is not an open door: where the HTTP side listens, when the emulators' control endpoints exist, and
where an embedded emulator may send a browser or a push. Every check goes over real loopback ports; bound addresses
are read from the kernel's socket table, never probed from another interface."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web

from realauth.v1 import realauth_pb2 as pb
from realauth_server.clock import Clock
from realauth_server.config import ConfigError, load_settings
from realauth_server.emulators.base import is_under
from realauth_server.secret import Secret
from realauth_server.signing import tc3
from realauth_server.signing.volc_v4 import VolcV4Signer
from realauth_server.vendors.megvii.adapter import SANDBOX_API_KEY as MEGVII_KEY
from realauth_server.vendors.megvii.adapter import SANDBOX_API_SECRET as MEGVII_SECRET
from realauth_server.vendors.megvii.emulator import GET_TOKEN, MegviiEmulator
from realauth_server.vendors.seedance.adapter import SANDBOX_API_KEY as SEEDANCE_KEY
from realauth_server.vendors.tencent.adapter import SANDBOX_SECRET_ID, SANDBOX_SECRET_KEY
from realauth_server.vendors.volcengine.adapter import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY

from .conftest import VENV_BIN, Harness, ServerFactory, free_port, on_loopback
from .proc_util import _log_record, run_emulator, start_serve
from .signing_util import SignerAuth, form

MODEL = "doubao-seedance-2-0-260128"

#: One real provider (a closed loopback port: nothing is ever sent to it) next to a sandbox instance of every kind.
MIXED = """
[providers.live]
kind = "seedance"
base_url = "http://127.0.0.1:9"
api_key = "real-relay-key-never-used"

[providers.seedance]
sandbox = true
[providers.volcengine]
sandbox = true
[providers.megvii]
sandbox = true
[providers.tencent]
sandbox = true
"""

#: Every control route the emulators have: (method, path below /sandbox/<kind>).
ADMIN_ROUTES = [
    ("PUT", "seedance/_emulator/faults"),
    ("DELETE", "seedance/_emulator/faults"),
    ("GET", "seedance/_emulator/stats"),
    ("PUT", "volcengine/_emulator/faults"),
    ("PUT", "volcengine/_emulator/codes"),
    ("GET", "megvii/_emulator/stats"),
    ("PUT", "megvii/_emulator/sdk_run"),
    ("PUT", "tencent/_emulator/faults"),
    ("PUT", "tencent/_emulator/tencent/errors"),
    ("DELETE", "tencent/_emulator/tencent/errors"),
]


# --- where the HTTP side listens ------------------------------------------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN on ``port``, from /proc/net/tcp{,6} (this network namespace);
    an IPv4-mapped IPv6 socket (how gRPC binds) is reported as its IPv4 address."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(address)  # the kernel prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(packed)
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            found.add(str(mapped or ip))
    return found


async def test_http_side_follows_the_grpc_host_when_not_set(make_realauth: ServerFactory) -> None:
    h = await make_realauth(host="127.0.0.1", http_host=None)
    assert listening_addresses(h.server.http_port) == {"127.0.0.1"}
    assert listening_addresses(h.server.grpc_port) == {"127.0.0.1"}
    assert (await h.http.get(f"{h.http_url}/healthz")).status_code == 200
    assert h.server.settings.effective_http_host == "127.0.0.1"


async def test_http_host_can_differ_from_the_grpc_host(make_realauth: ServerFactory) -> None:
    h = await make_realauth(host="127.0.0.1", http_host="127.0.0.2")  # both loopback: nothing leaves the machine
    assert listening_addresses(h.server.http_port) == {"127.0.0.2"}
    assert listening_addresses(h.server.grpc_port) == {"127.0.0.1"}
    resp = await h.http.get(f"http://127.0.0.2:{h.server.http_port}/healthz")
    assert resp.status_code == 200


def test_http_host_config_key_and_default(tmp_path: Path) -> None:
    assert load_settings(None, host="127.0.0.1").effective_http_host == "127.0.0.1"
    assert load_settings(None).effective_http_host == "0.0.0.0"
    cfg = tmp_path / "realauth.toml"
    cfg.write_text('[server]\nhost = "127.0.0.1"\nhttp_host = "127.0.0.2"\n')
    assert load_settings(str(cfg)).effective_http_host == "127.0.0.2"
    assert load_settings(str(cfg), http_host="127.0.0.3").effective_http_host == "127.0.0.3"
    cfg.write_text('[server]\nhttp_host = ""\n')
    with pytest.raises(ConfigError, match=r"server\.http_host"):
        load_settings(str(cfg))


@pytest.mark.slow
def test_serve_host_flag_keeps_both_sides_on_loopback_and_logs_them(tmp_path: Path) -> None:
    srv = start_serve(tmp_path)  # --host 127.0.0.1, no --http-host
    try:
        assert listening_addresses(srv.http_port) == {"127.0.0.1"}
        listening = _log_record(srv.log_path, "realauth listening")
        assert listening is not None
        assert listening["grpc"] == f"127.0.0.1:{srv.port}" and listening["http"] == f"127.0.0.1:{srv.http_port}"
        assert listening["grpc_host"] == "127.0.0.1" and listening["http_host"] == "127.0.0.1"
        assert listening["sandbox_admin"] is True and listening["emulators"] == "megvii,seedance,tencent,volcengine"
    finally:
        assert srv.stop() == 0

    srv = start_serve(tmp_path, "--http-host", "127.0.0.2")
    try:
        assert listening_addresses(srv.http_port) == {"127.0.0.2"}
        assert listening_addresses(srv.port) == {"127.0.0.1"}
        listening = _log_record(srv.log_path, "realauth listening")
        assert listening is not None and listening["http"] == f"127.0.0.2:{srv.http_port}"
    finally:
        assert srv.stop() == 0


# --- the emulators' control endpoints -------------------------------------------------------------------------------


async def _admin_statuses(h: Harness) -> dict[str, int]:
    out = {}
    for method, path in ADMIN_ROUTES:
        resp = await h.http.request(method, f"{h.http_url}/sandbox/{path}", json={})
        out[f"{method} {path}"] = resp.status_code
    return out


async def test_no_control_endpoints_next_to_a_real_provider(make_realauth: ServerFactory) -> None:
    h = await make_realauth(config=MIXED)
    assert set((await _admin_statuses(h)).values()) == {404}
    assert not h.server.settings.sandbox_admin_enabled
    for kind in ("seedance", "volcengine", "megvii", "tencent"):
        assert h.emulator(kind).fault is None and h.emulator(kind).stats.requests == 0
    # The sandbox instances themselves still work end to end.
    session = await h.create(provider="seedance")
    done = await h.complete(session)
    assert done.status_code == 302 and done.headers["location"].endswith("state=exchanged")


async def test_control_endpoints_on_a_sandbox_only_server(make_realauth: ServerFactory) -> None:
    h = await make_realauth()
    resp = await h.http.put(f"{h.http_url}/sandbox/seedance/_emulator/faults", json={"status": 503, "count": 1})
    assert resp.status_code == 200 and h.emulator("seedance").fault.status == 503
    assert (await h.http.get(f"{h.http_url}/sandbox/megvii/_emulator/stats")).status_code == 200

    off = await make_realauth(config="[server]\nsandbox_admin = false\n")
    assert set((await _admin_statuses(off)).values()) == {404}


def test_enabling_control_endpoints_next_to_a_real_provider_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "mixed.toml"
    cfg.write_text(MIXED)
    with pytest.raises(ConfigError, match=r"server\.sandbox_admin .*\(live\)"):
        load_settings(str(cfg), sandbox_admin=True)
    cfg.write_text("[server]\nsandbox_admin = true\n" + MIXED)
    with pytest.raises(ConfigError, match=r"server\.sandbox_admin"):
        load_settings(str(cfg))
    cfg.write_text('[server]\nsandbox_admin = "yes"\n')
    with pytest.raises(ConfigError, match=r"server\.sandbox_admin has the wrong type"):
        load_settings(str(cfg))


@pytest.mark.slow
def test_serve_refuses_sandbox_admin_next_to_a_real_provider(tmp_path: Path) -> None:
    cfg = tmp_path / "mixed.toml"
    cfg.write_text(MIXED)
    out = subprocess.run(
        [str(VENV_BIN / "realauth"), "serve", "--config", str(cfg), "--sandbox-admin", "--store", "memory://"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={**os.environ},
    )
    assert out.returncode == 2
    assert "server.sandbox_admin (--sandbox-admin)" in out.stderr and "Traceback" not in out.stderr


async def test_standalone_emulator_keeps_its_control_endpoints(tmp_path: Path) -> None:
    with run_emulator("seedance", tmp_path) as base:
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.put(f"{base}/_emulator/faults", json={"latency": 0.1})).status_code == 200
            assert (await http.get(f"{base}/_emulator/stats")).status_code == 200


# --- where an embedded emulator may send a browser or a push --------------------------------------------------------


class Receiver:
    """A loopback listener that records every request: whatever reaches it was sent where it must not be."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            self.hits.append(f"{request.method} {request.path}")
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app


def foreign_urls(h: Harness, receiver_url: str) -> list[str]:
    own = h.http_url
    return [
        f"{receiver_url}/v1/callback/ses_x/sig",  # another loopback port
        "https://attacker.example/v1/callback/ses_x/sig",  # another host
        f"{own}/v1/callback/../../sandbox/megvii/faceid/lite/get_token",  # dot segments out of the landing
        f"{own}/v1/callback/%2e%2e/%2E%2E/metrics",
        f"{own.replace('http://', 'http://user@')}/v1/callback/ses_x/sig",  # user info
        f"{own.replace('http://', 'https://')}/v1/callback/ses_x/sig",  # another scheme
        f"{own}/v1/other/ses_x/sig",  # this host, another route
        f"{own}/healthz",
    ]


async def test_megvii_embedded_refuses_foreign_notify_and_return_urls(make_realauth: ServerFactory) -> None:
    h = await make_realauth()
    url = f"{h.http_url}/sandbox/megvii{GET_TOKEN}"
    own = {
        "api_key": MEGVII_KEY,
        "api_secret": MEGVII_SECRET,
        "return_url": f"{h.http_url}/v1/callback/ses_x/sig",
        "notify_url": f"{h.http_url}/v1/push/ses_x/sig",
        "biz_no": "b",
        "comparison_type": "1",
        "idcard_mode": "2",
        "action_http_method": "GET",
    }
    async with on_loopback(lambda _url: Receiver()) as (receiver, receiver_url):
        for key in ("notify_url", "return_url"):
            for bad in foreign_urls(h, receiver_url):
                resp = await h.http.post(url, **form({**own, key: bad}))
                assert resp.status_code == 400 and resp.json()["error"] == f"BAD_ARGUMENTS: {key}", (key, bad)
        ok = await h.http.post(url, **form(own))
        assert ok.status_code == 200, ok.text
        emu: MegviiEmulator = h.emulator("megvii")
        assert emu.pusher.stats.skipped == 0
        # Defence in depth: a stored entry pointing elsewhere is neither followed nor notified.
        entry = emu.lite[ok.json()["token"]]
        entry.fields["return_url"] = entry.fields["notify_url"] = f"{receiver_url}/steal"
        page = await h.http.get(f"{h.http_url}/sandbox/megvii/faceid/lite/do?token={entry.token}&outcome=pass")
        assert page.status_code == 400 and "location" not in page.headers
        await asyncio.wait_for(emu.pusher.settle(), 10)
        assert emu.pusher.stats.skipped == 1 and emu.pusher.stats.attempts == 0
        assert receiver.hits == []


async def test_megvii_embedded_post_return_to_a_foreign_url_is_not_rendered(make_realauth: ServerFactory) -> None:
    h = await make_realauth()
    emu: MegviiEmulator = h.emulator("megvii")
    emu.pusher.enabled = False
    session = await h.create(provider="megvii")
    entry = emu.lite[urlsplit(session.verification_url).query.removeprefix("token=")]
    entry.fields["action_http_method"] = "POST"
    entry.fields["return_url"] = "https://attacker.example/collect"
    page = await h.http.get(session.verification_url + "&outcome=pass")
    assert page.status_code == 400 and "attacker.example" not in page.text and "<form" not in page.text


async def test_seedance_embedded_refuses_a_foreign_callback(make_realauth: ServerFactory) -> None:
    h = await make_realauth()
    url = f"{h.http_url}/sandbox/seedance/v1/real-avatar/auth/session"
    auth = {"Authorization": f"Bearer {SEEDANCE_KEY}"}
    async with on_loopback(lambda _url: Receiver()) as (_receiver, receiver_url):
        for bad in foreign_urls(h, receiver_url):
            resp = await h.http.post(url, json={"model": MODEL, "CallbackURL": bad}, headers=auth)
            error = resp.json()["ResponseMetadata"]["Error"]
            assert resp.status_code == 400 and error["Code"] == "InvalidParameter", bad
            assert "CallbackURL" in error["Message"]
    ok = await h.http.post(url, json={"model": MODEL, "CallbackURL": f"{h.http_url}/v1/callback/s/x"}, headers=auth)
    assert ok.status_code == 200, ok.text


async def test_tencent_embedded_refuses_a_foreign_redirect(make_realauth: ServerFactory) -> None:
    h = await make_realauth()
    url = f"{h.http_url}/sandbox/tencent/"

    async def apply(redirect: str) -> dict[str, object]:
        body = json.dumps({"RedirectURL": redirect}).encode()
        headers = tc3.sign_tc3(
            "POST",
            url,
            {
                "Content-Type": "application/json",
                "X-TC-Action": "ApplyWebVerificationBizTokenIntl",
                "X-TC-Version": "2018-03-01",
                "X-TC-Region": "ap-singapore",
            },
            body,
            secret_id=SANDBOX_SECRET_ID,
            secret_key=SANDBOX_SECRET_KEY,
            service="faceid",
            now=Clock().now(),
        )
        resp = await h.http.post(url, content=body, headers=headers)
        return json.loads(resp.content)["Response"]  # type: ignore[no-any-return]

    async with on_loopback(lambda _url: Receiver()) as (_receiver, receiver_url):
        for bad in foreign_urls(h, receiver_url):
            error = (await apply(bad)).get("Error")
            assert isinstance(error, dict) and error["Code"] == "InvalidParameterValue", bad
    assert "BizToken" in await apply(f"{h.http_url}/v1/callback/ses_x/sig")


async def test_volcengine_embedded_refuses_a_foreign_redirect(make_realauth: ServerFactory) -> None:
    h = await make_realauth()
    url = f"{h.http_url}/sandbox/volcengine/?Action=CertH5ConfigInit&Version=2022-08-31"
    auth = SignerAuth(
        VolcV4Signer(
            Secret(SANDBOX_ACCESS_KEY_ID), Secret(SANDBOX_SECRET_ACCESS_KEY), region="cn-north-1", service="cv"
        )
    )

    def body(redirect: str) -> dict[str, object]:
        return {
            "req_key": "cert_h5_config_init",
            "h5_config": {"type": "1", "redirect_url": redirect},
            "liveness_config": {"ref_source": "1", "liveness_type": "motion"},
        }

    async with httpx.AsyncClient(auth=auth) as client, on_loopback(lambda _url: Receiver()) as (_r, receiver_url):
        for bad in foreign_urls(h, receiver_url):
            resp = await client.post(url, json=body(bad))
            assert resp.json()["code"] == 50200 and "redirect_url" in resp.json()["message"], bad
        assert (await client.post(url, json=body(f"{h.http_url}/v1/callback/s/x"))).json()["code"] == 10000


async def test_embedded_flows_still_land_with_a_public_url(make_realauth: ServerFactory) -> None:
    """With --public-url the allowed prefixes are the public ones realauth gives vendors (a same-host alias here)."""
    port = free_port()
    h = await make_realauth(http_port=port, public_url=f"http://localhost:{port}/")
    h.emulator("megvii").pusher.enabled = False
    for kind in ("seedance", "volcengine", "megvii", "tencent"):
        session = await h.create(provider=kind)
        first = await h.http.get(session.verification_url + "&outcome=pass")
        assert first.status_code == 302, (kind, first.text)
        assert first.headers["location"].startswith(f"http://localhost:{port}/v1/callback/{session.session_id}/")
        landed = await h.http.get(first.headers["location"])
        assert landed.status_code == 302 and "state=" in landed.headers["location"], kind
        got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
        assert got.session.state == pb.AUTH_SESSION_STATE_EXCHANGED, kind


async def test_standalone_emulate_stays_as_permissive_as_the_vendor(tmp_path: Path) -> None:
    """`realauth emulate megvii`: any http(s) return_url is followed, a loopback notify_url on any port is pushed."""
    async with on_loopback(lambda _url: Receiver()) as (receiver, receiver_url):
        with run_emulator("megvii", tmp_path) as base:
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                resp = await http.post(
                    GET_TOKEN,
                    **form(
                        {
                            "api_key": MEGVII_KEY,
                            "api_secret": MEGVII_SECRET,
                            "return_url": "https://caller.example/back",
                            "notify_url": f"{receiver_url}/notify",
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
                assert page.headers["location"].startswith("https://caller.example/back?data=")
                for _ in range(100):
                    if receiver.hits:
                        break
                    await asyncio.sleep(0.05)
        assert receiver.hits == ["POST /notify"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:8080/v1/callback/s/x", True),
        ("http://127.0.0.1:8080/v1/callback/s/x?realauth_notify=1", True),
        ("HTTP://127.0.0.1:8080/v1/callback/s/x", True),
        ("http://127.0.0.1:8080/v1/callback/", True),
        ("http://127.0.0.1:8080/v1/callback", False),
        ("http://127.0.0.1:8081/v1/callback/s/x", False),
        ("http://127.0.0.1/v1/callback/s/x", False),
        ("http://127.0.0.1:8080@evil.example/v1/callback/s/x", False),
        ("http://evil.example#@127.0.0.1:8080/v1/callback/", False),
        ("http://127.0.0.1:8080/v1/callback/s/../../x", False),
        ("http://127.0.0.1:8080/v1/callback/%2E./x", False),
        ("http://127.0.0.1:8080/v1/callback/s\\..\\..\\x", False),
        ("http://127.0.0.1:8080/v1/callback/s/x\n", False),
        ("http://127.0.0.1:99999/v1/callback/s/x", False),
        ("https://127.0.0.1:8080/v1/callback/s/x", False),
        ("http://[::1/v1/callback/", False),
    ],
)
def test_is_under(url: str, ok: bool) -> None:
    assert is_under(url, "http://127.0.0.1:8080/v1/callback/") is ok
    assert is_under("https://auth.example.com/v1/push/s/x", "https://auth.example.com:443/v1/push/")
