"""Seedance over the Ark OpenAPI transport (V4-signed), against the seedance emulator over real HTTP."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb

from .conftest import Harness, ServerFactory
from .errors_util import decode

ARK = """
[providers.ark]
kind = "seedance"
sandbox = true
transport = "ark"
max_attempts = {attempts}
{extra}
"""


async def ark(make_realauth: ServerFactory, attempts: int = 3, extra: str = "") -> Harness:
    return await make_realauth(ARK.format(attempts=attempts, extra=extra))


async def test_create_pass_group_id_over_ark(make_realauth: ServerFactory) -> None:
    h = await ark(make_realauth)
    emu = h.emulator("seedance")
    session = await h.create(provider="ark", locale="en", seedance=pb.SeedanceOptions(project_name="proj-a"))
    q = parse_qs(urlsplit(session.verification_url).query)
    assert q["bytedToken"] == [session.token] and q["lng"] == ["en"]
    assert emu.tokens[session.token].project == "proj-a"
    assert emu.stats.by_action["CreateVisualValidateSession"] == 1
    assert "CreateSession" not in emu.stats.by_action  # the relay path was not used

    done = await h.complete(session, "pass")
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]
    resp = await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert resp.result.passed and resp.result.group_id.startswith("group-")
    assert emu.stats.by_action["GetVisualValidateResult"] == 1


async def test_ark_pending_and_default_project(make_realauth: ServerFactory) -> None:
    h = await ark(make_realauth, extra='project_name = "team-x"')
    session = await h.create(provider="ark")
    assert h.emulator("seedance").tokens[session.token].project == "team-x"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
    d = decode(err.value)
    assert d.reason == "VerificationPending" and d.metadata["vendor_code"] == "ValidateNotReady"


async def test_ark_three_qps_limit_arrives_as_rate_limited(make_realauth: ServerFactory) -> None:
    h = await ark(make_realauth, attempts=1)
    results = await asyncio.gather(*(h.create(provider="ark") for _ in range(5)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(results) - len(errors) == 3
    assert len(errors) == 2
    for e in errors:
        d = decode(e)
        assert d.code == grpc.StatusCode.RESOURCE_EXHAUSTED and d.reason == "RateLimited"
        assert d.metadata["vendor_code"] == "RequestLimitExceeded"
    h.clock.advance(1.0)  # the next second has room again
    assert (await h.create(provider="ark")).token


async def test_ark_wrong_secret_is_provider_auth_failed(make_realauth: ServerFactory) -> None:
    h = await ark(make_realauth, extra='secret_access_key = "not-the-sandbox-secret"')
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.create(provider="ark")
    d = decode(err.value)
    assert d.reason == "ProviderAuthFailed" and d.metadata["vendor_code"] == "SignatureDoesNotMatch"
    assert "not-the-sandbox-secret" not in d.message


async def test_project_name_on_relay_is_invalid(realauth: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create(provider="seedance", seedance=pb.SeedanceOptions(project_name="p"))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.fields == ["seedance.project_name"]
