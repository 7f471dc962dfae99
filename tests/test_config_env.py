"""Twelve-factor configuration: the REALAUTH_* overlay, start-up refusals, --print-config, reloads, connection age."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import grpc
import httpx
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server.config import ConfigError, load_settings
from realauth_server.config_env import parse_value
from realauth_server.config_print import render_toml
from realauth_server.secret import resolve_secret
from realauth_server.server import grpc_options
from realauth_server.vendors.seedance.adapter import SANDBOX_API_KEY
from realauth_server.vendors.volcengine.adapter import (
    SANDBOX_CALLBACK_KEY,
    SANDBOX_SECRET_ACCESS_KEY,
    callback_key_bytes,
)

from .conftest import ServerFactory
from .errors_util import decode
from .test_auth import _cert, _pem

# --- the environment overlay ---------------------------------------------------------------------------------------


def test_env_overlay_naming_and_precedence(tmp_path: Path) -> None:
    """flags > REALAUTH_* variables > file > defaults; `__` separates levels, values are TOML when they parse."""
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(
        '[server]\nstore = "sqlite:///from-file.db"\nregion = "file-region"\nport = 1111\n'
        "[providers.seedance]\nsandbox = true\n[providers.megvii]\nsandbox = true\n"
        '[tenants.kyc-gateway]\nkeys = ["from-file-key-1"]\n'
    )
    env = {
        "REALAUTH_SERVER__STORE": "memory://",  # not TOML: kept as text
        "REALAUTH_SERVER__PORT": "2222",  # TOML integer
        "REALAUTH_SERVER__RPC_CAP_SECONDS": "12.5",
        "REALAUTH_SERVER__SANDBOX_ADMIN": "false",
        "REALAUTH_PROVIDERS__SEEDANCE__MAX_ATTEMPTS": "5",
        "REALAUTH_PROVIDERS__MEGVII__DEFAULT": "true",
        # `_` matches the `-` of an existing table name; a TOML array; a quoted string stays a string.
        "REALAUTH_TENANTS__KYC_GATEWAY__KEYS": '["from-env-key-1", "123456789"]',
        "REALAUTH_TENANTS__KYC_GATEWAY__PROVIDERS": '["megvii"]',
        "REALAUTH_TENANTS__NEWCOMER__KEYS": '["newcomer-key-1"]',  # a table only the environment has
        "REALAUTH_TEST_KEY": "not configuration: no __",
        "OTHER__THING": "ignored",
    }
    s = load_settings(str(cfg), environ=env, port=3333)
    assert s.port == 3333, "a flag beats the environment"
    assert s.store == "memory://" and s.rpc_cap_seconds == 12.5 and s.sandbox_admin is False
    assert s.region == "file-region", "the file beats the defaults where the environment says nothing"
    seedance, megvii = s.providers
    assert seedance.max_attempts == 5 and megvii.is_default and not seedance.is_default
    tenants = {t.name: t for t in s.tenants}
    assert [k.reveal() for k in tenants["kyc-gateway"].keys] == ["from-env-key-1", "123456789"]
    assert tenants["kyc-gateway"].providers == ["megvii"]
    assert [k.reveal() for k in tenants["newcomer"].keys] == ["newcomer-key-1"]
    assert load_settings(str(cfg), environ=env).port == 2222, "the environment beats the file"
    assert load_settings(str(cfg)).port == 1111, "no environ: no overlay"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("8080", 8080),
        ("true", True),
        ("2.5", 2.5),
        ('["a", "b"]', ["a", "b"]),
        ('"123456"', "123456"),
        ("memory://", "memory://"),
        ("env:SOME_KEY", "env:SOME_KEY"),
        ("sqlite:////var/x.db", "sqlite:////var/x.db"),
        ("2026-01-01", "2026-01-01"),  # a TOML date, but no key takes one
        ("1\nport = 2", "1\nport = 2"),  # cannot smuggle a second key in
        ("", ""),
    ],
)
def test_env_values_are_toml_when_they_parse(raw: str, value: object) -> None:
    assert parse_value(raw) == value


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("REALAUTH_NOPE__PORT", "REALAUTH_NOPE__PORT: unknown configuration table 'nope'"),
        ("REALAUTH_SERVER__", "REALAUTH_SERVER__: empty name part"),
        ("REALAUTH_SERVER__BOGUS", "unknown key server.bogus"),
        ("REALAUTH_SERVER__PORT", r"server.port has the wrong type \(str\) \(set by REALAUTH_SERVER__PORT\)"),
        (
            "REALAUTH_PROVIDERS__SEEDANCE__NOPE",
            r"unknown keys \['nope'\] \(set by REALAUTH_PROVIDERS__SEEDANCE__NOPE\)",
        ),
        ("REALAUTH_SERVER__STORE__X", "REALAUTH_SERVER__STORE__X: server.store is a value in the configuration file"),
        ("REALAUTH_PROVIDERS__SEEDANCE", "REALAUTH_PROVIDERS__SEEDANCE: providers.seedance is a table"),
    ],
)
def test_bad_env_variables_are_refused_by_name_without_their_value(tmp_path: Path, name: str, message: str) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text('[server]\nstore = "memory://"\n[providers.seedance]\nsandbox = true\n')
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(str(cfg), environ={name: "secret-looking-value-42"})
    assert "secret-looking-value-42" not in str(err.value)


# --- start-up refusals ---------------------------------------------------------------------------------------------


def _real(kind: str, extra: str = "") -> str:
    return f'[providers.p]\nkind = "{kind}"\nbase_url = "https://vendor.example.com"\n{extra}'


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        (_real("seedance"), "api_key"),
        (_real("seedance", 'transport = "ark"\napi_key = "x"\naccess_key_id = "ak"\n'), "secret_access_key"),
        (_real("volcengine", 'secret_access_key = "sk"\n'), "access_key_id"),
        (_real("megvii", 'api_key = "k"\napi_secret = ""\n'), "api_secret"),
        (_real("tencent", 'secret_id = "id"\n'), "secret_key"),
    ],
)
def test_real_provider_without_credentials_is_refused_at_start_up(tmp_path: Path, config: str, missing: str) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(config)
    with pytest.raises(ConfigError, match=f"providers.p.{missing} is required"):
        load_settings(str(cfg))


def test_missing_provider_credentials_are_fine_when_every_tenant_that_may_use_it_brings_them(tmp_path: Path) -> None:
    cfg = tmp_path / "realauth.toml"
    base = (
        _real("seedance")
        + "[providers.megvii]\nsandbox = true\n"
        + '[tenants.a]\nkeys = ["tenant-a-key-1"]\n[tenants.a.credentials.p]\napi_key = "a-relay-key"\n'
        + '[tenants.b]\nkeys = ["tenant-b-key-1"]\nproviders = ["megvii"]\n'  # may not use p: needs nothing
    )
    cfg.write_text(base)
    s = load_settings(str(cfg))
    assert [p.name for p in s.providers] == ["p", "megvii"]
    # Volcengine's session_token comes only with temporary keys: not required.
    cfg.write_text(_real("volcengine", 'access_key_id = "ak"\nsecret_access_key = "sk"\n'))
    load_settings(str(cfg))
    cfg.write_text(base + '[tenants.c]\nkeys = ["tenant-c-key-1"]\n')  # c may use every provider, brings nothing
    with pytest.raises(ConfigError, match=r"providers\.p\.api_key is required: tenant 'c' may use 'p'"):
        load_settings(str(cfg))


# --- --print-config ------------------------------------------------------------------------------------------------


def test_print_config_masks_every_secret_and_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALAUTH_TEST_PRINT_KEY", "env-key-value-11")
    (tmp_path / "relay.key").write_text("relay-key-from-a-file\n")
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(
        '[server]\nstore = "redis://user:redis-password-9@redis:6379/0"\nlanding_secret = "landing-literal-77"\n'
        f'[providers.seedance]\nbase_url = "https://relay.example.com"\napi_key = "file:{tmp_path / "relay.key"}"\n'
        "[providers.volcengine]\nsandbox = true\n"
        '[tenants.alpha]\nkeys = ["env:REALAUTH_TEST_PRINT_KEY", "alpha-literal-key-5"]\n'
        '[tenants.alpha.credentials.seedance]\napi_key = "alpha-relay-literal-3"\n'
    )
    s = load_settings(str(cfg), environ={"REALAUTH_SERVER__REGION": "r1"})
    text = render_toml(s)
    for value in (
        "redis-password-9",
        "landing-literal-77",
        "relay-key-from-a-file",
        "env-key-value-11",
        "alpha-literal-key-5",
        "alpha-relay-literal-3",
        SANDBOX_SECRET_ACCESS_KEY,  # the sandbox providers' built-in keys are masked too
        SANDBOX_CALLBACK_KEY,
    ):
        assert value not in text, value
    doc = tomllib.loads(text)
    assert doc["server"]["region"] == "r1" and doc["server"]["store"] == "redis://user:****@redis:6379/0"
    assert doc["server"]["landing_secret"] == "****"
    assert doc["server"]["max_connection_age_grace_seconds"] == s.rpc_cap_seconds
    assert doc["providers"]["seedance"]["api_key"] == f"file:{tmp_path / 'relay.key'}"
    assert doc["providers"]["volcengine"]["callback_key"] == "****"
    assert doc["providers"]["volcengine"]["access_key_id"] == "****"
    assert doc["tenants"]["alpha"]["keys"] == ["env:REALAUTH_TEST_PRINT_KEY", "****"]
    assert doc["tenants"]["alpha"]["credentials"]["seedance"] == {"api_key": "****"}
    # What it prints is a configuration --config reads, once the masked literals are left out.
    doc["server"]["store"] = "memory://"
    del doc["server"]["landing_secret"]
    for table in doc["providers"].values():
        for key in [k for k, v in table.items() if v == "****"]:
            del table[key]  # a sandbox provider fills its built-in keys in again
    doc["tenants"]["alpha"]["keys"] = ["env:REALAUTH_TEST_PRINT_KEY"]
    del doc["tenants"]["alpha"]["credentials"]
    again = tmp_path / "again.toml"
    again.write_text(_dump(doc))
    reread = load_settings(str(again))
    assert render_toml(reread) == render_toml(load_settings(str(again))), "print, read back: the same settings"
    assert reread.region == "r1" and [p.name for p in reread.providers] == ["seedance", "volcengine"]
    assert reread.providers[0].extra["api_key"] == f"file:{tmp_path / 'relay.key'}"


def _dump(doc: dict[str, object]) -> str:
    from realauth_server.config_print import _table

    lines: list[str] = []
    _table("", doc, lines)
    return "\n".join(lines) + "\n"


# --- SIGHUP: file: secrets and the TLS certificate, re-read in place -----------------------------------------------


def test_file_secret_reload_swaps_in_place_and_keeps_the_old_value_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("first-value-123\n")
    secret = resolve_secret(f"file:{path}")
    assert secret.reloadable and secret.reveal() == "first-value-123"
    assert secret.reload() is False
    path.write_text("")  # a rotation caught half-way
    with pytest.raises(ValueError, match=f"file:{path}: the file is empty") as err:
        secret.reload()
    assert "first-value" not in str(err.value)
    assert secret.reveal() == "first-value-123"
    path.unlink()
    with pytest.raises(ValueError, match="No such file"):
        secret.reload()
    path.write_text("second-value-456\n")
    assert secret.reload() is True and secret.reveal() == "second-value-456"
    assert not resolve_secret("literal-value-1").reloadable and resolve_secret("literal-value-1").reload() is False


def test_a_reloaded_secret_is_checked_by_its_owner_first(tmp_path: Path) -> None:
    """Volcengine's callback key has a form (128 bits): a malformed rotation must not replace a working key."""
    path = tmp_path / "callback.key"
    path.write_text(SANDBOX_CALLBACK_KEY)
    secret = resolve_secret(f"file:{path}")
    secret.validate_with(callback_key_bytes)
    path.write_text("hex:0123")
    with pytest.raises(ValueError, match=r"callback_key must be 128 bits: .*; keeping the previous value") as err:
        secret.reload()
    assert "0123" not in str(err.value) and secret.reveal() == SANDBOX_CALLBACK_KEY
    path.write_text("hex:" + "ab" * 16)
    assert secret.reload() and secret.reveal() == "hex:" + "ab" * 16


async def test_reload_reaches_provider_credentials(make_realauth: ServerFactory, tmp_path: Path) -> None:
    """A vendor key mounted from a file: the adapter signs with the new one after a reload, without a restart."""
    key = tmp_path / "relay.key"
    key.write_text("a-relay-key-nobody-has\n")
    h = await make_realauth(f'[providers.seedance]\nsandbox = true\napi_key = "file:{key}"\n')
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.create(provider="seedance")
    assert decode(err.value).reason == "ProviderAuthFailed"
    key.write_text(SANDBOX_API_KEY + "\n")
    report = h.server.reload()
    assert report == {"file_secrets": 1, "changed": 1, "failed": 0, "tls": "off"}
    assert (await h.create(provider="seedance")).session_id.startswith("ses_")


async def test_tls_certificate_is_reloaded_for_new_connections(make_realauth: ServerFactory, tmp_path: Path) -> None:
    ca1_key, ca1 = _cert("realauth-ca-one")
    ca2_key, ca2 = _cert("realauth-ca-two")
    ca1_pem, ca2_pem = _pem(ca1_key, ca1)[1], _pem(ca2_key, ca2)[1]

    def install(ca_key: object, ca: object) -> None:
        k, c = _pem(*_cert("localhost", ca_key, ca))  # type: ignore[arg-type]
        (tmp_path / "server.key").write_bytes(k)
        (tmp_path / "server.crt").write_bytes(c)

    install(ca1_key, ca1)
    h = await make_realauth('[tls]\ncert_file = "server.crt"\nkey_file = "server.key"\n')
    target = f"localhost:{h.server.grpc_port}"

    async def works(ca_pem: bytes) -> bool:
        async with grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca_pem)) as ch:
            try:
                await pb_grpc.RealAuthServiceStub(ch).ListProviders(pb.ListProvidersRequest(), timeout=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                return False
            return True

    assert await works(ca1_pem) and not await works(ca2_pem)
    established = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca1_pem))
    await pb_grpc.RealAuthServiceStub(established).ListProviders(pb.ListProvidersRequest(), timeout=5)
    assert h.server.reload()["tls"] == "unchanged"
    install(ca2_key, ca2)
    assert h.server.reload()["tls"] == "reloaded"
    assert await works(ca2_pem) and not await works(ca1_pem)
    # A connection set up before the rotation keeps going.
    await pb_grpc.RealAuthServiceStub(established).ListProviders(pb.ListProvidersRequest(), timeout=5)
    await established.close()
    # A broken pair (a rotation caught half-way) keeps the certificate that works.
    (tmp_path / "server.key").write_bytes(b"")
    assert h.server.reload()["tls"] == "failed"
    assert await works(ca2_pem)


# --- connections: keepalive and max_connection_age -----------------------------------------------------------------


def test_grpc_options_come_from_documented_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(
        "[server]\nkeepalive_time_seconds = 30\nkeepalive_timeout_seconds = 5\n"
        "keepalive_min_ping_interval_seconds = 15\nmax_connection_age_seconds = 600\n"
    )
    options = dict(grpc_options(load_settings(str(cfg))))
    assert options["grpc.so_reuseport"] == 0
    assert options["grpc.keepalive_time_ms"] == 30_000 and options["grpc.keepalive_timeout_ms"] == 5_000
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 15_000
    assert options["grpc.max_connection_age_ms"] == 600_000
    assert options["grpc.max_connection_age_grace_ms"] == 30_000, "the grace follows rpc_cap_seconds by default"
    cfg.write_text("[server]\nmax_connection_age_seconds = 0\n")
    assert "grpc.max_connection_age_ms" not in dict(grpc_options(load_settings(str(cfg)))), "0 turns it off"
    for bad in ("keepalive_time_seconds = 0", "max_connection_age_seconds = -1", "keepalive_timeout_seconds = 1e9"):
        cfg.write_text(f"[server]\n{bad}\n")
        with pytest.raises(ConfigError, match=f"server.{bad.split()[0]} must be in"):
            load_settings(str(cfg))


async def test_max_connection_age_goaways_and_the_client_reconnects_transparently(
    make_realauth: ServerFactory,
) -> None:
    h = await make_realauth("[server]\nmax_connection_age_seconds = 1\nmax_connection_age_grace_seconds = 5\n")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{h.server.grpc_port}")
    stub = pb_grpc.RealAuthServiceStub(channel)
    try:
        await stub.ListProviders(pb.ListProvidersRequest(), timeout=5)
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        # A call in flight when the GOAWAY comes finishes within the grace: the vendor answers after 2 s.
        async with httpx.AsyncClient() as http:
            put = await http.put(
                f"{h.http_url}/sandbox/seedance/_emulator/faults", json={"latency": 2.0, "count": 1}, timeout=5
            )
        assert put.status_code == 200

        async def create() -> pb.CreateAuthSessionResponse:
            request = pb.CreateAuthSessionRequest(provider="seedance", callback_url="https://caller.example/done")
            return await stub.CreateAuthSession(request, timeout=10)

        in_flight = asyncio.create_task(create())
        # The server closes the connection (GOAWAY at about 1 s, ±10 % jitter): the channel leaves READY.
        await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), timeout=8)
        assert (await in_flight).session.session_id.startswith("ses_")
        # The next call connects again by itself.
        listed = await stub.ListProviders(pb.ListProvidersRequest(), timeout=5)
        assert listed.providers and channel.get_state() == grpc.ChannelConnectivity.READY
    finally:
        await channel.close()
