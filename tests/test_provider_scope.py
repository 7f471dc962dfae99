"""A tenant never learns providers it may not use: ListProviders, error lists and its default are scoped to it."""

from __future__ import annotations

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb

from .conftest import Harness, ServerFactory
from .errors_util import decode

KEY_ALL = "ak-scope-all-0123456789abcdef"
KEY_NARROW = "ak-scope-narrow-0123456789abc"
KEY_NONE = "ak-scope-none-0123456789abcde"
MAIN_MODEL = "doubao-seedance-2-0-260128"
FAST_MODEL = "doubao-seedance-2-0-fast-260128"
HIDDEN = ("relay-main", "faceid-hidden", MAIN_MODEL)  # what the narrow tenant must never be told about

CONFIG = f"""
[providers.relay-main]
kind = "seedance"
sandbox = true
models = ["{MAIN_MODEL}"]

[providers.relay-fast]
kind = "seedance"
sandbox = true
models = ["{FAST_MODEL}"]

[providers.faceid-hidden]
kind = "megvii"
sandbox = true

[tenants.all]
keys = ["{KEY_ALL}"]

[tenants.narrow]
keys = ["{KEY_NARROW}"]
providers = ["relay-fast"]

[tenants.none]
keys = ["{KEY_NONE}"]
providers = []
"""


def as_(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
async def scoped(make_realauth: ServerFactory) -> Harness:
    return await make_realauth(CONFIG)


async def listed(h: Harness, key: str) -> dict[str, bool]:
    resp = await h.stub.ListProviders(pb.ListProvidersRequest(), metadata=as_(key))
    return {p.name: p.is_default for p in resp.providers}


async def failure(h: Harness, key: str, **fields: str) -> tuple[grpc.StatusCode, str, str]:
    """Create a session that must fail; returns its code, its message and everything its details say."""
    fields.setdefault("callback_url", "https://caller.example/done")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.CreateAuthSession(pb.CreateAuthSessionRequest(**fields), metadata=as_(key))
    d = decode(err.value)
    return d.code, d.message, repr(d)


async def test_list_providers_shows_only_allowed_ones_with_the_callers_default(scoped: Harness) -> None:
    assert await listed(scoped, KEY_ALL) == {"relay-main": True, "relay-fast": False, "faceid-hidden": False}
    # The server default (relay-main) is not narrow's: its default is its first allowed provider.
    assert await listed(scoped, KEY_NARROW) == {"relay-fast": True}
    assert await listed(scoped, KEY_NONE) == {}


async def test_error_lists_name_only_the_callers_providers_and_models(scoped: Harness) -> None:
    code, message, everything = await failure(scoped, KEY_NARROW, provider="no-such-provider")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "relay-fast" in message
    assert not [h for h in HIDDEN if h in everything], everything
    # A model only a forbidden provider serves is as unknown to the caller as any other.
    code, message, everything = await failure(scoped, KEY_NARROW, model=MAIN_MODEL)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and FAST_MODEL in message
    assert not [h for h in HIDDEN[:2] if h in everything], everything
    code, message, everything = await failure(scoped, KEY_NARROW, model="no-such-model")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and FAST_MODEL in message
    assert not [h for h in HIDDEN if h in everything], everything
    # The unrestricted tenant is told about every configured provider.
    code, message, _ = await failure(scoped, KEY_ALL, provider="no-such-provider")
    assert all(name in message for name in ("relay-main", "relay-fast", "faceid-hidden")), message


async def test_naming_no_provider_routes_to_the_callers_default(scoped: Harness) -> None:
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done")
    narrow = await scoped.stub.CreateAuthSession(req, metadata=as_(KEY_NARROW))
    assert narrow.session.provider == "relay-fast"
    everyone = await scoped.stub.CreateAuthSession(req, metadata=as_(KEY_ALL))
    assert everyone.session.provider == "relay-main"
    # A tenant allowed no provider is refused clearly, without naming the server's default.
    code, message, everything = await failure(scoped, KEY_NONE)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "no provider" in message
    assert not [h for h in HIDDEN if h in everything], everything
    code, message, everything = await failure(scoped, KEY_NONE, provider="nope")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "none" in message
    assert not [h for h in HIDDEN if h in everything], everything


async def test_the_public_index_page_names_no_real_provider(make_realauth: ServerFactory) -> None:
    """The HTTP index is open to anyone: it lists sandbox instances only."""
    real = (
        '[providers.faceid-prod]\nkind = "megvii"\nbase_url = "http://127.0.0.1:9"\n'
        'api_key = "k-not-used"\napi_secret = "s-not-used"\n'
    )
    h = await make_realauth(CONFIG + real)
    page = await h.http.get(f"{h.http_url}/")
    assert page.status_code == 200 and "relay-main" in page.text
    assert "faceid-prod" not in page.text
