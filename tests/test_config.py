"""Configuration edges that a user meets before any RPC: ports, and the URLs derived from them."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.clock import Clock
from realauth_server.config import ConfigError, load_settings

from .conftest import ServerFactory


async def test_port_zero_binds_free_ports_and_sandbox_urls_follow(make_realauth: ServerFactory) -> None:
    h = await make_realauth(port=0, http_port=0)
    assert h.server.grpc_port > 0 and h.server.http_port > 0
    assert h.server.settings.effective_public_url == f"http://127.0.0.1:{h.server.http_port}"
    session = await h.create(provider="seedance")
    assert session.verification_url.startswith(f"http://127.0.0.1:{h.server.http_port}/sandbox/seedance/")
    done = await h.complete(session)
    assert done.status_code == 302 and done.headers["location"].endswith("state=exchanged")


def test_bound_port_keeps_explicit_urls(tmp_path: Path) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(
        '[providers.seedance]\nkind = "seedance"\nsandbox = true\n'
        '[providers.tencent]\nkind = "tencent"\nsandbox = true\nbase_url = "http://127.0.0.1:9/tencent/"\n'
    )
    settings = load_settings(str(cfg), http_port=0)
    bound = settings.with_http_port(41234)
    seedance, tencent = bound.providers
    assert seedance.base_url == "http://127.0.0.1:41234/sandbox/seedance"
    assert tencent.base_url == "http://127.0.0.1:9/tencent/", "an explicit base_url is the user's, not a default"

    public = load_settings(str(cfg), http_port=0, public_url="https://auth.example.com").with_http_port(41234)
    assert public.effective_public_url == "https://auth.example.com"
    assert public.providers[0].base_url == "https://auth.example.com/sandbox/seedance"


@pytest.mark.parametrize("key", ["port", "http_port"])
@pytest.mark.parametrize("value", [-1, 65536])
def test_out_of_range_ports_are_refused_by_name(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"server.{key} must be in \\[0, 65535\\]"):
        load_settings(None, **{key: value})


async def test_retention_is_configurable_end_to_end(make_realauth: ServerFactory) -> None:
    """`server.retention_seconds` reaches the store: a session is gone that long after its last usable moment."""
    short = await make_realauth(config="[server]\nretention_seconds = 600\n", clock=Clock())
    default = await make_realauth(clock=Clock())
    sessions = [await h.create(provider="megvii") for h in (short, default)]
    for h, s in zip((short, default), sessions, strict=True):
        usable = max(s.exchange_deadline.seconds, s.expire_time.seconds)
        # Megvii's own retention is a day from creation; move past it and 600 s past the last usable moment.
        h.clock.advance(max(usable - s.create_time.seconds + 601, 86_401))
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await short.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=sessions[0].session_id))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    kept = await default.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=sessions[1].session_id))
    assert kept.session.session_id == sessions[1].session_id


@pytest.mark.parametrize("value", ["0", "-5", "40000000"])
def test_retention_out_of_range_is_refused(tmp_path: Path, value: str) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(f"[server]\nretention_seconds = {value}\n")
    with pytest.raises(ConfigError, match=r"server\.retention_seconds"):
        load_settings(str(cfg))
