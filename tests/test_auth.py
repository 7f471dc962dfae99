"""Caller identity (API keys, mTLS), tenants, per-tenant vendor credentials under concurrency."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server.config import ConfigError, load_settings
from realauth_server.secret import Secret, resolve_secret
from realauth_server.vendors.seedance.adapter import SANDBOX_API_KEY

from .conftest import Harness, ServerFactory
from .errors_util import decode

KEY_A = "ak-tenant-a-0123456789abcdef"
KEY_B = "ak-tenant-b-fedcba9876543210"
BAD_VENDOR_KEY = "not-the-relay-key-of-anyone"


def config(tmp_path: Path) -> str:
    (tmp_path / "b.key").write_text(KEY_B + "\n")
    return f"""
[providers.seedance]
kind = "seedance"
sandbox = true

[providers.seedance-fast]
kind = "seedance"
sandbox = true
models = ["doubao-seedance-2-0-fast-260128"]

[tenants.alpha]
keys = ["env:REALAUTH_TEST_KEY_A"]
[tenants.alpha.credentials.seedance]
api_key = "{SANDBOX_API_KEY}"

[tenants.beta]
keys = ["file:{tmp_path / "b.key"}"]
providers = ["seedance"]
[tenants.beta.credentials.seedance]
api_key = "{BAD_VENDOR_KEY}"
"""


@pytest.fixture
async def tenanted(make_realauth: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.setenv("REALAUTH_TEST_KEY_A", KEY_A)
    return await make_realauth(config(tmp_path))


def as_(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


REQ = pb.CreateAuthSessionRequest(provider="seedance", callback_url="https://caller.example/done")


@pytest.mark.parametrize("header", [None, "Bearer nope-not-a-key", "Basic " + KEY_A, "Bearer "])
async def test_missing_or_unknown_key_is_unauthenticated(tenanted: Harness, header: str | None) -> None:
    md = (("authorization", header),) if header is not None else None
    for call in (
        tenanted.stub.CreateAuthSession(REQ, metadata=md),
        tenanted.stub.ListProviders(pb.ListProvidersRequest(), metadata=md),
        tenanted.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id="ses_x"), metadata=md),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        d = decode(err.value)
        assert d.code == grpc.StatusCode.UNAUTHENTICATED and d.reason == "Unauthenticated"
        assert KEY_A not in d.message


async def test_health_and_reflection_need_no_key(tenanted: Harness) -> None:
    health = health_pb2_grpc.HealthStub(tenanted.channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(service="realauth.v1.RealAuthService"))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    refl = reflection_pb2_grpc.ServerReflectionStub(tenanted.channel)

    async def one() -> reflection_pb2.ServerReflectionResponse:
        call = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        async for r in call:
            return r
        raise AssertionError("no reflection answer")

    listed = await one()
    names = {s.name for s in listed.list_services_response.service}
    assert "realauth.v1.RealAuthService" in names


async def test_tenants_sign_with_their_own_vendor_keys_under_concurrency(tenanted: Harness) -> None:
    """alpha's relay key is valid, beta's is not: any cross-use would flip an outcome."""

    async def create(key: str) -> str:
        try:
            await tenanted.stub.CreateAuthSession(REQ, metadata=as_(key))
            return "ok"
        except grpc.aio.AioRpcError as exc:
            d = decode(exc)
            return f"{d.code.name}:{d.reason}:{d.metadata.get('vendor_code', '')}"

    keys = [KEY_A, KEY_B] * 20
    results = await asyncio.gather(*(create(k) for k in keys))
    alpha = [r for k, r in zip(keys, results, strict=True) if k == KEY_A]
    beta = [r for k, r in zip(keys, results, strict=True) if k == KEY_B]
    assert alpha == ["ok"] * 20
    assert set(beta) == {"FAILED_PRECONDITION:ProviderAuthFailed:InvalidAccessKey"}


async def test_provider_not_allowed_for_tenant_looks_unknown_without_vendor_call(tenanted: Harness) -> None:
    emu = tenanted.emulator("seedance")
    before = emu.stats.requests
    req = pb.CreateAuthSessionRequest(provider="seedance-fast", callback_url="https://caller.example/done")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tenanted.stub.CreateAuthSession(req, metadata=as_(KEY_B))
    d = decode(err.value)
    # Exactly like a provider that does not exist: the caller learns nothing of what it may not use.
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.reason == "InvalidParameter"
    assert d.fields == ["provider"] and "seedance-fast" in d.message and "may use: seedance" in d.message
    assert emu.stats.requests == before
    # Refused before the provider's own checks: a denied caller learns nothing about its options or models.
    bad_model = pb.CreateAuthSessionRequest(provider="seedance-fast", model="nope", callback_url="https://c.example/d")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tenanted.stub.CreateAuthSession(bad_model, metadata=as_(KEY_B))
    assert decode(err.value).fields == ["provider"]
    # Routing by model only considers the caller's providers: both instances serve the fast model, and beta's
    # request goes to the one it may use (where its own, deliberately bad, relay key is what fails).
    by_model = pb.CreateAuthSessionRequest(model="doubao-seedance-2-0-fast-260128", callback_url="https://c.example/d")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tenanted.stub.CreateAuthSession(by_model, metadata=as_(KEY_B))
    routed = decode(err.value)
    assert routed.reason == "ProviderAuthFailed" and routed.metadata["provider"] == "seedance"
    wrong_kind = pb.CreateAuthSessionRequest(
        provider="seedance-fast", callback_url="https://c.example/d", tencent=pb.TencentOptions(extra="x")
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tenanted.stub.CreateAuthSession(wrong_kind, metadata=as_(KEY_B))
    assert decode(err.value).fields == ["provider"]
    # alpha has no provider list: it may use both.
    ok = await tenanted.stub.CreateAuthSession(req, metadata=as_(KEY_A))
    assert ok.session.provider == "seedance-fast"


async def test_other_tenants_session_looks_like_a_missing_one(tenanted: Harness) -> None:
    mine = (await tenanted.stub.CreateAuthSession(REQ, metadata=as_(KEY_A))).session
    for call in (
        tenanted.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=mine.session_id), metadata=as_(KEY_B)),
        tenanted.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=mine.session_id), metadata=as_(KEY_B)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        theirs = decode(err.value)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await tenanted.stub.GetAuthSession(
                pb.GetAuthSessionRequest(session_id="ses_" + "0" * 24), metadata=as_(KEY_B)
            )
        missing = decode(err.value)
        assert theirs.code == missing.code == grpc.StatusCode.NOT_FOUND
        assert theirs.reason == missing.reason
        assert theirs.message.replace(mine.session_id, "ID") == missing.message.replace("ses_" + "0" * 24, "ID")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tenanted.stub.ExchangeToken(pb.ExchangeTokenRequest(token=mine.token), metadata=as_(KEY_B))
    assert decode(err.value).code == grpc.StatusCode.NOT_FOUND
    got = await tenanted.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=mine.session_id), metadata=as_(KEY_A))
    assert got.session.session_id == mine.session_id


def test_secret_is_masked_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Secret("hunter2-very-secret")
    for text in (str(s), repr(s), f"{s}", f"{s!r}", f"{s}", str([s]), str({"k": s})):
        assert "hunter2" not in text
    assert s.reveal() == "hunter2-very-secret"
    monkeypatch.setenv("SOME_KEY", "from-env-value-123")
    assert resolve_secret("env:SOME_KEY").reveal() == "from-env-value-123"
    assert "from-env" not in repr(resolve_secret("env:SOME_KEY"))
    with pytest.raises(ValueError, match="MISSING_ONE"):
        resolve_secret("env:MISSING_ONE")


def test_config_errors_name_the_key_and_never_the_secret(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[providers.seedance]\nsandbox = true\n[tenants.t]\nkeys = ["literal-secret-key-xyz"]\n'
        '[tenants.t.credentials.seedance]\napi_secret = "another-secret-value"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings(str(cfg))
    assert "tenants.t.credentials.seedance" in str(err.value)
    assert "another-secret-value" not in str(err.value) and "literal-secret-key-xyz" not in str(err.value)


# --- mTLS ----------------------------------------------------------------------------------------------------------


def _cert(
    name: str, issuer_key: ec.EllipticCurvePrivateKey | None = None, issuer: x509.Certificate | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _pem(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[bytes, bytes]:
    return (
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM),
    )


async def test_mtls_client_certificate_names_the_tenant(
    make_realauth: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_key, ca = _cert("realauth-test-ca")
    server_key, server_cert = _cert("localhost", ca_key, ca)
    gw_key, gw_cert = _cert("acme-gateway", ca_key, ca)
    other_key, other_cert = _cert("stranger", ca_key, ca)
    k, c = _pem(server_key, server_cert)
    (tmp_path / "server.key").write_bytes(k)
    (tmp_path / "server.crt").write_bytes(c)
    (tmp_path / "ca.crt").write_bytes(_pem(ca_key, ca)[1])
    monkeypatch.setenv("REALAUTH_TEST_KEY_A", KEY_A)
    cfg = config(tmp_path) + (
        '\n[tenants.acme]\nclient_cert_names = ["acme-gateway"]\n'
        '[tls]\ncert_file = "server.crt"\nkey_file = "server.key"\nclient_ca_file = "ca.crt"\n'
        "require_client_cert = true\n"
    )
    h = await make_realauth(cfg)
    target = f"localhost:{h.server.grpc_port}"
    ca_pem = _pem(ca_key, ca)[1]

    def channel(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> grpc.aio.Channel:
        k, c = _pem(key, cert)
        creds = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=k, certificate_chain=c)
        return grpc.aio.secure_channel(target, creds)

    async with channel(gw_key, gw_cert) as ch:
        stub = pb_grpc.RealAuthServiceStub(ch)
        listed = await stub.ListProviders(pb.ListProvidersRequest())  # no key: the certificate names acme
        assert listed.providers
        with pytest.raises(grpc.aio.AioRpcError) as err:  # key and certificate disagree
            await stub.ListProviders(pb.ListProvidersRequest(), metadata=as_(KEY_A))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with channel(other_key, other_cert) as ch:
        stub = pb_grpc.RealAuthServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListProviders(pb.ListProvidersRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = await stub.ListProviders(pb.ListProvidersRequest(), metadata=as_(KEY_A))  # a key still works
        assert ok.providers
    # Without a client certificate the TLS handshake itself is refused.
    async with grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca_pem)) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.RealAuthServiceStub(ch).ListProviders(pb.ListProvidersRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
